"""zrepl's `send`, `recv`, `replication`, `conflict_resolution` and `pruning` → a target's fields.

Owns `convert_send` (send flags → `send`), `convert_receive` (`recv.properties` → `receive`),
`convert_replication` (protection and initial replication) and `convert_retention` (keep rules
through `zrepl_pruning.convert_keep_rules`, each produced rule checked against the models).
Called by `zrepl.py`. Pure. The mapping is in docs/migrating-zrepl.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from reconciler.manifest.models import ReceivePropertiesSpec, Rule
from reconciler.migrate.report import Outcome
from reconciler.migrate.zrepl_pruning import convert_keep_rules
from reconciler.migrate.zrepl_read import Node

_SEND_FLAGS = {
    "raw": "raw",
    "send_properties": "properties",
    "compressed": "compressed",
    "large_blocks": "largeBlocks",
    "embedded_data": "embeddedData",
}
_PROTECTION = {
    "guarantee_resumability": "resumable",
    "guarantee_incremental_replication": "incremental",
    "guarantee_nothing": "none",
}
_DEFAULT_PROTECTION = "guarantee_resumability"
_INITIAL = {"most_recent": "mostRecent", "all": "all", "fail": "fail"}
_RULE: TypeAdapter[Any] = TypeAdapter(Rule)  # the models' own check of one rule


def convert_send(job: Node) -> dict[str, bool]:
    node = job.mapping("send")
    if node is None:
        return {}
    send: dict[str, bool] = {}
    for key, ours in _SEND_FLAGS.items():
        if node.flag(key):
            send[ours] = True
    if node.flag("encrypted"):
        send["raw"] = True
        (node.child("encrypted") or node).note(
            "sent raw (-w); zrepl also refused to send a filesystem that is not encrypted, "
            "which the reconciler does not check"
        )
    for key, why in (
        ("backup_properties", "zfs send -b is not one of our send flags"),
        ("saved", "zfs send -S (saved partial receives) is not one of our send flags"),
    ):
        if node.flag(key):
            (node.child(key) or node).drop(why)
    _bandwidth(node)
    return send


def _bandwidth(node: Node) -> None:
    limit = node.child("bandwidth_limit")
    if limit is not None:
        limit.drop("the reconciler does not limit bandwidth (use ssh or traffic shaping)")


def convert_receive(job: Node) -> dict[str, Any]:
    node = job.mapping("recv")
    if node is None:
        return {}
    _bandwidth(node)
    placeholder = node.child("placeholder")
    if placeholder is not None:
        placeholder.note(
            "the reconciler creates missing parents with `zfs create -p` as the receiving "
            "user's defaults say, not zrepl placeholders",
            whole=True,
        )
    properties = node.mapping("properties")
    if properties is None:
        return {}
    properties.handled()
    spec: dict[str, Any] = {}
    override = properties.typed("override", dict)
    if override and any(isinstance(v, dict | list) or v is None for v in override.values()):
        properties.drop("an override value is a single value, not a list, mapping or null")
        return {}
    if override:
        spec["override"] = {str(k): _property_text(v) for k, v in override.items()}
    inherit = properties.typed("inherit", list)
    if inherit:
        spec["inherit"] = [str(item) for item in inherit]
    if not spec:
        return {}
    try:
        ReceivePropertiesSpec.model_validate(spec)
    except ValidationError as error:
        properties.drop(f"receive properties not converted: {error.errors()[0]['msg']}")
        return {}
    return {"properties": spec}


def _property_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def convert_replication(job: Node) -> dict[str, str]:
    """protection and initialReplication from `replication` and `conflict_resolution`."""
    target: dict[str, str] = {}
    replication = job.mapping("replication", affects=True)
    if replication is not None:
        protection = replication.mapping("protection", affects=True)
        if protection is not None:
            target.update(_protection(protection))
        concurrency = replication.child("concurrency")
        if concurrency is not None:
            concurrency.note(
                "the reconciler sends independent filesystems in parallel itself", whole=True
            )
    conflict = job.mapping("conflict_resolution", affects=True)
    if conflict is not None:
        initial = conflict.text("initial_replication", affects=True)
        where = conflict.child("initial_replication")
        if initial is not None and where is not None:
            if initial in _INITIAL:
                target["initialReplication"] = _INITIAL[initial]
            else:
                where.drop(f"unknown initial_replication {initial!r}: mostRecent applies", True)
    return target


def _protection(node: Node) -> dict[str, str]:
    """One protection for both of zrepl's (each defaults to guarantee_resumability): the
    incremental one, which governs every send after the first; a difference is noted."""
    values: dict[str, str] = {}
    for key in ("initial", "incremental"):
        value = node.text(key, affects=True)
        where = node.child(key)
        if value is not None and value not in _PROTECTION and where is not None:
            where.drop(f"unknown protection {value!r}: resumable applies", True)
        values[key] = value if value in _PROTECTION else _DEFAULT_PROTECTION
    chosen = _PROTECTION[values["incremental"]]
    if values["initial"] != values["incremental"]:
        node.note(
            f"one protection for every send: {chosen} (zrepl's incremental); zrepl used "
            f"{values['initial']} for initial sends"
        )
    return {"protection": chosen}


Side = Literal["sender", "receiver", "local"]


def convert_retention(pruning: Node | None, key: str, side: Side) -> dict[str, Any] | None:
    """`{keep: [...]}` for the keep rules under `pruning.<key>`, or None (keep everything)."""
    rules_node = None if pruning is None else pruning.sequence(key, affects=True)
    if rules_node is None:
        where = pruning if pruning is not None else None
        if where is not None and where.child(key) is None:
            where.drop(f"no {key}: zrepl would refuse the job; everything is kept", True)
        return None
    rules_node.note(
        "the rules see only managed snapshots (the prefix and adopted names); zrepl's saw every "
        "snapshot of the filesystem, so snapshots of other names are never destroyed",
        whole=True,
    )
    result = convert_keep_rules(rules_node.value, side=side)
    for problem in result.problems:
        rule = rules_node.child(problem.index) if problem.index >= 0 else None
        where = rule or rules_node
        if problem.key is not None and rule is not None:
            where = rule.child(problem.key) or rule
        outcome = Outcome.NOT_CONVERTED if problem.affects_retention else Outcome.NOTE
        where.report(outcome, problem.why, problem.affects_retention)
    if result.keep_all:
        return None
    kept = _valid_rules(result.rules, rules_node)
    if kept:
        return {"keep": kept}
    if not result.problems:
        rules_node.drop(
            "no keep rule: zrepl destroys every snapshot; the manifests keep them all", True
        )
    return None


def _valid_rules(rules: tuple[dict[str, Any], ...], where: Node) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for rule in rules:
        try:
            _RULE.validate_python(rule, by_alias=True, by_name=False)
        except ValidationError as error:
            kind = next(iter(rule), "?")
            where.drop(f"a converted {kind} rule is not valid: {error.errors()[0]['msg']}", True)
            continue
        kept.append(rule)
    return kept
