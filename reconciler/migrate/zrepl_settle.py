"""The last step of a conversion: leave out whatever the manifest loader would refuse.

Owns `Made` (a policy the converter built, with the job it came from) and `settle`, which checks
every document with the manifest models and the semantic checks (`validate_manifests`: two
policies owning the same snapshots, two targets receiving into one filesystem, a target inside
its own source set, ...) and leaves out the target, or else the policy, that a problem names,
with a `not converted` finding at its job, until nothing is refused. The converter's parts are
careful, so this rarely acts; it is what guarantees that `reconcile import` writes only
manifests that `reconcile validate` accepts. Called by `zrepl.py`. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.manifest.models import Host, Policy
from reconciler.manifest.validate import Problem, validate_manifests
from reconciler.migrate.report import document
from reconciler.migrate.zrepl_read import Node


@dataclass(slots=True)
class Made:
    name: str
    spec: dict[str, Any]
    job: Node


def settle(hosts: dict[str, dict[str, Any]], policies: list[Made]) -> list[dict[str, Any]]:
    """The documents that validate, and nothing else (each one left out is reported)."""
    host_documents = [document("Host", name, spec) for name, spec in hosts.items()]
    valid_hosts = [doc for doc in host_documents if _model_error(Host, doc) is None]
    names = {doc["metadata"]["name"] for doc in valid_hosts}
    kept = [made for made in policies if _checked(made)]
    rounds = len(kept) + sum(len(made.spec.get("replication", [])) for made in kept) + 1
    for _ in range(rounds):  # each round leaves out at least one target or policy
        problems = validate_manifests(names, [_model(made) for made in kept])
        if not problems:
            break
        kept = _leave_out(kept, problems)
    return valid_hosts + [_policy(made) for made in kept]


def _leave_out(kept: list[Made], problems: list[Problem]) -> list[Made]:
    """`kept` without the targets, or else the policies, that `problems` name."""
    by_name = {made.name: made for made in kept}
    dropped: set[str] = set()
    targets: dict[str, set[int]] = {}
    for problem in problems:
        made = by_name.get(problem.name)
        if made is None or made.name in dropped:
            continue
        path = problem.path
        if len(path) > 2 and path[:2] == ("spec", "replication") and isinstance(path[2], int):
            targets.setdefault(made.name, set()).add(path[2])
            made.job.drop(f"a target is left out: {problem.message}", True)
        else:
            dropped.add(made.name)
            made.job.drop(f"the policy is left out: {problem.message}", True)
    for name, indices in targets.items():
        replication = by_name[name].spec.get("replication", [])
        kept_targets = [t for i, t in enumerate(replication) if i not in indices]
        if kept_targets:
            by_name[name].spec["replication"] = kept_targets
        else:
            by_name[name].spec.pop("replication", None)
    return [made for made in kept if made.name not in dropped]


def _model(made: Made) -> Policy:
    return Policy.model_validate(_policy(made), by_alias=True, by_name=False)


def _policy(made: Made) -> dict[str, Any]:
    return document("Policy", made.name, made.spec)


def _checked(made: Made) -> bool:
    error = _model_error(Policy, _policy(made))
    if error is None:
        return True
    made.job.drop(f"the policy is left out: {error}", True)
    return False


def _model_error(model: type[Host] | type[Policy], doc: dict[str, Any]) -> str | None:
    try:
        model.model_validate(doc, by_alias=True, by_name=False)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return None
