"""Plan rendering: the versioned JSON document and the human text view.

Owned here: `plan_to_json` and `dump_plan_json` (the machine form, carrying `format_version`),
`render_text` and `summary_line` (the human form), and `format_bytes`. Called by the CLI
(`--dry-run --output json|text`) and by the pass report. Pure: no I/O, no clock, no logging.

The text view is rendered from the JSON document itself, so the two cannot drift. Key order in
the JSON is fixed by the field tables below (not by dataclass declaration order), and
`tests/test_render.py` checks that the tables cover every field of every plan type. The format
is documented for users in `docs/plan-format.md`: change both together. The inverse of
`plan_to_json` is `core/plan_decode.py`'s `plan_from_json` (saved plans); the Markdown view is
`core/render_markdown.py`'s, rendered from the same document with the helpers below.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import TypeAlias

from reconciler.core.names import iso_time
from reconciler.core.plan import (
    FORMAT_VERSION,
    Action,
    ActionKind,
    Conflict,
    DestroyAction,
    Hook,
    Notice,
    Plan,
    ReceiveOptions,
    RollbackAction,
    SendAction,
    SendOptions,
    SnapshotAction,
    UnobservedHost,
)

JsonValue: TypeAlias = "str | int | bool | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"

# --- JSON layout: every object's keys, in output order ------------------------------------

ACTION_COMMON_FIELDS: tuple[str, ...] = (
    "id",
    "kind",
    "host",
    "policy",
    "target",
    "reason",
    "message",
    "depends_on",
)
_FS = "filesystem"
ACTION_FIELDS: Mapping[ActionKind, tuple[str, ...]] = {
    ActionKind.SNAPSHOT: ("filesystems", "name", "hooks"),
    ActionKind.CREATE_PARENT: (_FS,),
    ActionKind.ABORT_RESUME: (_FS,),
    ActionKind.ROLLBACK: (_FS, "snapshot", "destroys"),
    ActionKind.SEND: (
        _FS,
        "target_host",
        "target_filesystem",
        "mode",
        "from_version",
        "to_snapshot",
        "delivers",
        "resume_token",
        "estimated_bytes",
        "send_options",
        "receive_options",
    ),
    ActionKind.BOOKMARK: (_FS, "snapshot", "bookmark"),
    ActionKind.HOLD: (_FS, "snapshot", "tag"),
    ActionKind.RELEASE: (_FS, "snapshot", "tag"),
    ActionKind.DESTROY: (_FS, "versions"),
}
NESTED_FIELDS: Mapping[type, tuple[str, ...]] = {
    SendOptions: ("raw", "compressed", "large_blocks", "embedded_data", "properties"),
    ReceiveOptions: ("override", "inherit", "force"),
    Hook: ("when", "command", "timeout", "skip_on_failure"),
}
CONFLICT_FIELDS: tuple[str, ...] = (
    "kind",
    "policy",
    "target",
    "host",
    _FS,
    "target_host",
    "target_filesystem",
    "message",
    "source_only",
    "target_only",
)
NOTICE_FIELDS: tuple[str, ...] = ("kind", "host", "policy", "target", _FS, "message")
UNOBSERVED_HOST_FIELDS: tuple[str, ...] = ("host", "error")

# summary key, singular noun, plural noun (summary line order; "sends" also shows bytes)
_SUMMARY_WORDS: tuple[tuple[str, str, str], ...] = (
    ("snapshots", "snapshot", "snapshots"),
    ("sends", "send", "sends"),
    ("destroys", "destroy", "destroys"),
    ("rollbacks", "rollback", "rollbacks"),
    ("holds", "hold", "holds"),
    ("releases", "release", "releases"),
    ("bookmarks", "bookmark", "bookmarks"),
    ("create_parents", "parent to create", "parents to create"),
    ("abort_resumes", "partial receive to abort", "partial receives to abort"),
    ("conflicts", "conflict", "conflicts"),
)
# action kind → summary key counting one per action (snapshots, sends, destroys are special)
_COUNTED_PER_ACTION: Mapping[ActionKind, str] = {
    ActionKind.ROLLBACK: "rollbacks",
    ActionKind.HOLD: "holds",
    ActionKind.RELEASE: "releases",
    ActionKind.BOOKMARK: "bookmarks",
    ActionKind.CREATE_PARENT: "create_parents",
    ActionKind.ABORT_RESUME: "abort_resumes",
}

_BYTE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(n: int) -> str:
    """Binary units with one decimal: "512 B", "3.0 KiB", "1.2 GiB" (rounded half up)."""
    if n < 0:
        raise ValueError(f"byte count must not be negative: {n}")
    if n < 1024:
        return f"{n} B"
    for power, unit in enumerate(_BYTE_UNITS, start=1):
        base = 1024**power
        tenths = (n * 10 + base // 2) // base
        if tenths < 10240 or unit == _BYTE_UNITS[-1]:
            return f"{tenths // 10}.{tenths % 10} {unit}"
    raise AssertionError("unreachable")


def format_iso_time(epoch: int) -> str:
    """ISO 8601 UTC with a Z suffix, e.g. "2026-11-26T04:15:00Z"."""
    return iso_time(epoch)


# --- JSON -----------------------------------------------------------------------------------


def _encode(value: object) -> JsonValue:
    if isinstance(value, Enum):
        return _encode(value.value)
    if value is None or isinstance(value, str | int):  # bool is an int
        return value
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    nested = NESTED_FIELDS.get(type(value))
    if nested is not None:
        return _encode_fields(value, nested)
    raise TypeError(f"cannot encode {type(value).__name__} in a plan document")


def _encode_fields(obj: object, names: Iterable[str]) -> JsonObject:
    return {name: _encode(getattr(obj, name)) for name in names}


def action_to_json(action: object) -> JsonObject:
    """One action as a JSON object: id, kind, the common fields, then the kind's own fields."""
    kind = getattr(action, "kind", None)
    if not isinstance(kind, ActionKind):
        raise TypeError(f"not a plan action: {type(action).__name__}")
    return _encode_fields(action, ACTION_COMMON_FIELDS + ACTION_FIELDS[kind])


def conflict_to_json(conflict: Conflict) -> JsonObject:
    return _encode_fields(conflict, CONFLICT_FIELDS)


def notice_to_json(notice: Notice) -> JsonObject:
    return _encode_fields(notice, NOTICE_FIELDS)


def unobserved_host_to_json(unobserved: UnobservedHost) -> JsonObject:
    return _encode_fields(unobserved, UNOBSERVED_HOST_FIELDS)


def _summary(plan: Plan) -> dict[str, int]:
    counts = {key: 0 for key, _, _ in _SUMMARY_WORDS}
    counts["estimated_bytes"] = 0
    for action in plan.actions:
        if isinstance(action, SnapshotAction):
            counts["snapshots"] += len(action.filesystems)
        elif isinstance(action, SendAction):
            counts["sends"] += 1
            counts["estimated_bytes"] += action.estimated_bytes
        elif isinstance(action, DestroyAction):
            counts["destroys"] += len(action.versions)
        else:
            counts[_COUNTED_PER_ACTION[action.kind]] += 1
            if isinstance(action, RollbackAction):
                counts["destroys"] += len(action.destroys)
    counts["conflicts"] = len(plan.conflicts)
    return counts


def _summary_json(plan: Plan) -> JsonObject:
    counts = _summary(plan)
    summary: JsonObject = {"actions": len(plan.actions)}
    summary.update({key: counts[key] for key, _, _ in _SUMMARY_WORDS[:2]})
    summary["estimated_bytes"] = counts["estimated_bytes"]
    summary.update({key: counts[key] for key, _, _ in _SUMMARY_WORDS[2:]})
    summary["notices"] = len(plan.notices)
    summary["text"] = _summary_text(
        counts, has_actions=bool(plan.actions), unobserved=len(plan.unobserved_hosts)
    )
    return summary


def _plan_document(plan: Plan) -> JsonObject:
    return {
        "format_version": FORMAT_VERSION,
        "now": format_iso_time(plan.now),
        "summary": _summary_json(plan),
        "actions": [action_to_json(action) for action in plan.actions],
        "conflicts": [conflict_to_json(conflict) for conflict in plan.conflicts],
        "notices": [notice_to_json(notice) for notice in plan.notices],
        "unobserved_hosts": [unobserved_host_to_json(u) for u in plan.unobserved_hosts],
    }


def plan_to_json(plan: Plan) -> dict[str, object]:
    """The plan as a JSON-ready object (see docs/plan-format.md); a pure function of the plan."""
    document: dict[str, object] = dict(_plan_document(plan))
    return document


def dump_plan_json(plan: Plan) -> str:
    """The plan document as indented JSON text, byte for byte the same for equal plans."""
    return json.dumps(_plan_document(plan), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


# --- summary line ---------------------------------------------------------------------------


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _summary_text(counts: Mapping[str, int], *, has_actions: bool, unobserved: int = 0) -> str:
    parts: list[str] = []
    for key, singular, plural in _SUMMARY_WORDS:
        n = counts[key]
        if n == 0:
            continue
        part = _count(n, singular, plural)
        if key == "sends":
            part += f" ({format_bytes(counts['estimated_bytes'])} est.)"
        parts.append(part)
    if unobserved:
        parts.append(_count(unobserved, "host not observed", "hosts not observed"))
    if not has_actions:
        return ", ".join(["No changes", *parts]) + "."
    return ", ".join(parts)


def summary_line(plan: Plan) -> str:
    """E.g. "3 snapshots, 2 sends (1.2 GiB est.), 5 destroys"; "No changes." for an empty plan;
    "..., 1 host not observed" when a host could not be observed."""
    return _summary_text(
        _summary(plan), has_actions=bool(plan.actions), unobserved=len(plan.unobserved_hosts)
    )


# --- text view (read back from the JSON document) -------------------------------------------

_SYMBOLS: Mapping[str, str] = {
    ActionKind.SNAPSHOT: "+",
    ActionKind.CREATE_PARENT: "*",
    ActionKind.ABORT_RESUME: "x",
    ActionKind.ROLLBACK: "~",
    ActionKind.SEND: ">",
    ActionKind.BOOKMARK: "#",
    ActionKind.HOLD: "=",
    ActionKind.RELEASE: "^",
    ActionKind.DESTROY: "-",
}
_LABEL_WIDTH = len("create parent")
_SOURCE_KINDS = frozenset({ActionKind.SNAPSHOT, ActionKind.SEND, ActionKind.BOOKMARK})


def _obj(value: JsonValue) -> JsonObject:
    if not isinstance(value, dict):
        raise TypeError("expected a JSON object")
    return value


def _objs(value: JsonValue) -> list[JsonObject]:
    if not isinstance(value, list):
        raise TypeError("expected a JSON list")
    return [_obj(item) for item in value]


def _str(obj: JsonObject, key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise TypeError(f"expected a string at {key!r}")
    return value


def _opt_str(obj: JsonObject, key: str) -> str | None:
    return None if obj.get(key) is None else _str(obj, key)


def _int(obj: JsonObject, key: str) -> int:
    value = obj[key]
    if not isinstance(value, int):
        raise TypeError(f"expected an integer at {key!r}")
    return value


def _strs(obj: JsonObject, key: str) -> list[str]:
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"expected a list of strings at {key!r}")
    return [str(item) for item in value]


def _at(name: str) -> str:
    return name if name.startswith(("@", "#")) else "@" + name


def _send_details(action: JsonObject) -> str:
    from_version = _opt_str(action, "from_version")
    versions = _str(action, "to_snapshot")
    if from_version is not None:
        versions = f"{from_version} -> {versions}"
    where = f"{_str(action, 'target_host')}:{_str(action, 'target_filesystem')}"
    delivered = _count(len(_strs(action, "delivers")), "snapshot", "snapshots")
    size = format_bytes(_int(action, "estimated_bytes"))
    return f"{versions} to {where} ({_str(action, 'mode')}, {delivered}, {size} est.)"


def _details(action: JsonObject) -> str:
    match _str(action, "kind"):
        case ActionKind.SNAPSHOT:
            return _at(_str(action, "name")) + _hooks_text(action)
        case ActionKind.ROLLBACK:
            destroys = _strs(action, "destroys")
            to = f"to {_str(action, 'snapshot')}"
            return f"{to}, destroying {', '.join(destroys)}" if destroys else to
        case ActionKind.SEND:
            return _send_details(action)
        case ActionKind.BOOKMARK:
            return f"{_str(action, 'snapshot')} -> {_str(action, 'bookmark')}"
        case ActionKind.HOLD | ActionKind.RELEASE:
            return f"{_str(action, 'snapshot')} tag {_str(action, 'tag')}"
        case ActionKind.DESTROY:
            return ", ".join(_strs(action, "versions"))
        case _:
            return ""


def _hooks_text(action: JsonObject) -> str:
    """` (pre hook: db-freeze --all; post hook: db-thaw)`; empty without hooks."""
    hooks = _objs(action.get("hooks", []))
    if not hooks:
        return ""
    shown = [f"{_str(h, 'when')} hook: {shlex.join(_strs(h, 'command'))}" for h in hooks]
    return f" ({'; '.join(shown)})"


def _action_line(action: JsonObject) -> str:
    kind = _str(action, "kind")
    label = kind.replace("_", " ")
    head = f"{_SYMBOLS[kind]} {label:<{_LABEL_WIDTH}} {_details(action)}".rstrip()
    message = _str(action, "message")
    return f"{head}: {message}" if message else head


def _source_hosts(actions: Sequence[JsonObject], conflicts: Sequence[JsonObject]) -> set[str]:
    """The hosts of a policy's source side: those of its snapshots, sends, bookmarks (always
    replication cursors on the source), untargeted actions and conflicts. Every action done on
    a target host carries that target's name."""
    hosts = {_str(c, "host") for c in conflicts}
    for action in actions:
        if _str(action, "kind") in _SOURCE_KINDS or action.get("target") is None:
            hosts.add(_str(action, "host"))
    return hosts


def _group_filesystems(action: JsonObject) -> list[str]:
    if _str(action, "kind") == ActionKind.SNAPSHOT:
        return _strs(action, "filesystems")
    return [_str(action, "filesystem")]


GroupKey: TypeAlias = tuple[bool, str, tuple[str, ...], str]  # (target side, host, path, label)


def _policy_groups(
    actions: Sequence[JsonObject], conflicts: Sequence[JsonObject]
) -> list[tuple[str, list[JsonObject]]]:
    """(label, actions) per filesystem: the source side first, then "host:filesystem" groups;
    each side ordered by host and path; actions keep their plan order."""
    sources = _source_hosts(actions, conflicts)
    groups: dict[GroupKey, list[JsonObject]] = {}
    for action in actions:
        host = _str(action, "host")
        target_side = host not in sources
        for filesystem in _group_filesystems(action):
            label = f"{host}:{filesystem}" if target_side else filesystem
            key = (target_side, host, tuple(filesystem.split("/")), label)
            groups.setdefault(key, []).append(action)
    return [(key[3], groups[key]) for key in sorted(groups)]


def _by_policy(objects: Iterable[JsonObject]) -> dict[str, list[JsonObject]]:
    result: dict[str, list[JsonObject]] = {}
    for obj in objects:
        result.setdefault(_str(obj, "policy"), []).append(obj)
    return result


def _actions_text(actions: list[JsonObject], conflicts: list[JsonObject]) -> list[str]:
    lines: list[str] = []
    actions_by_policy = _by_policy(actions)
    conflicts_by_policy = _by_policy(conflicts)
    for policy in sorted(actions_by_policy):
        lines.append(f"policy {policy}")
        policy_conflicts = conflicts_by_policy.get(policy, [])
        for label, group in _policy_groups(actions_by_policy[policy], policy_conflicts):
            lines.append(f"  {label}")
            lines.extend(f"    {_action_line(action)}" for action in group)
        lines.append("")
    return lines


def _context(obj: JsonObject) -> str:
    parts = [f"{key} {obj[key]}" for key in ("policy", "target") if obj.get(key) is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _conflicts_text(conflicts: list[JsonObject]) -> list[str]:
    if not conflicts:
        return []
    lines = ["Conflicts"]
    for c in conflicts:
        where = (
            f"{_str(c, 'filesystem')} -> {_str(c, 'target_host')}:{_str(c, 'target_filesystem')}"
        )
        lines.append(f"  ! {_str(c, 'kind')}: {where}{_context(c)}: {_str(c, 'message')}")
        for side in ("source", "target"):
            versions = _strs(c, f"{side}_only")
            lines.append(f"      only on {side}: {', '.join(versions) if versions else '(none)'}")
    lines.append("")
    return lines


def _notices_text(notices: list[JsonObject]) -> list[str]:
    if not notices:
        return []
    lines = ["Notices"]
    for n in notices:
        filesystem = _opt_str(n, "filesystem")
        where = _str(n, "host") + (f":{filesystem}" if filesystem is not None else "")
        lines.append(f"  {_str(n, 'kind')}: {where}{_context(n)}: {_str(n, 'message')}")
    lines.append("")
    return lines


def render_document_text(document: JsonObject) -> str:
    """The text view of a plan document (the output of `plan_to_json`)."""
    actions = _objs(document["actions"])
    conflicts = _objs(document["conflicts"])
    lines = [f"Plan for {_str(document, 'now')}", ""]
    lines += _actions_text(actions, conflicts)
    lines += _conflicts_text(conflicts)
    lines += _notices_text(_objs(document["notices"]))
    lines.append(_str(_obj(document["summary"]), "text"))
    return "\n".join(lines) + "\n"


def render_text(plan: Plan) -> str:
    """The human view: by policy, then filesystem; conflicts; notices; the summary line."""
    return render_document_text(_plan_document(plan))


def action_text(action: Action) -> str:
    """One action on one line, with its id and where it runs: `[7] nas:tank/home - destroy
    @a, @b: message` (the filesystem is left out for a snapshot of several)."""
    document = action_to_json(action)
    filesystem = _opt_str(document, "filesystem")
    where = _str(document, "host") + (f":{filesystem}" if filesystem is not None else "")
    return f"[{action.id}] {where} {_action_line(document)}"
