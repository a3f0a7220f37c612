"""Why a saved plan is stale: readable lines computed with deepdiff. Pure.

Owned here: `manifests_changed` (the manifests' generation differs), `fingerprint_changes`
(what changed in the observed state the plan depends on, `core/fingerprint.py`),
`plan_changes` (how the plan made now differs from the saved one) and `capped`. Called by
`apply/saved_plan.py` before it applies a saved plan (`reconcile --plan PATH`); an empty
result means the plan is still good.

Each line names where (`host:filesystem`) and what, e.g.
`backup:vault/nas/tank/home: snapshot @zr_20261126T120000Z created since the plan was made`.
Plans are compared on what they would do: `now`, actions (without `estimated_bytes`: an
estimate moves whenever a source is written to), conflicts and the names of the hosts not
observed. Notices and the errors of unobserved hosts are not compared: they only explain, and
an error's text changes from one attempt to the next.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepdiff import DeepDiff

from reconciler.core.fingerprint import Fingerprint
from reconciler.core.plan import Plan
from reconciler.core.render import plan_to_json

MAX_LINES = 20
MAX_VALUE_TEXT = 60
_ADDED = ("dictionary_item_added", "iterable_item_added")
_REMOVED = ("dictionary_item_removed", "iterable_item_removed")
_SINCE = "since the plan was made"
_WITH_PLAN = " with the plan (a malformed fingerprint?)"


def manifests_changed(saved_generation: str, generation: str) -> tuple[str, ...]:
    if saved_generation == generation:
        return ()
    return (f"the manifests changed {_SINCE} (generation {saved_generation}, now {generation})",)


def capped(lines: Iterable[str], limit: int = MAX_LINES) -> tuple[str, ...]:
    """At most `limit` lines; a last `... and N more` when some are left out."""
    every = list(lines)
    if len(every) <= limit:
        return tuple(every)
    return (*every[:limit], f"... and {len(every) - limit} more")


# --- the observed state -----------------------------------------------------------------------


def fingerprint_changes(saved: Fingerprint, current: Fingerprint) -> tuple[str, ...]:
    """What differs between the saved fingerprint and the current one, one line each, in host
    and filesystem order. Hosts whose observability changed are one line each (their
    filesystems are not listed)."""
    if saved == current:
        return ()
    before, after = _differing(saved, current)
    diff = DeepDiff(before, after, ignore_order=True, view="tree", threshold_to_diff_deeper=0)
    lines: dict[str, None] = {}  # ordered and without repeats
    for report, levels in diff.items():
        for level in levels:
            path = level.path(output_format="list")
            lines[_fingerprint_line(report, path, level.t1, level.t2)] = None
    return tuple(sorted(lines)) or (f"the observed state differs from the one saved{_WITH_PLAN}",)


def _differing(saved: Fingerprint, current: Fingerprint) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of both fingerprints that differ: DeepDiff then reads only those (a pool can
    hold many filesystems and versions). A host whose observability changed is kept alone."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for host in sorted(saved.keys() | current.keys()):
        old: Any = saved.get(host)
        new: Any = current.get(host)
        if old == new:
            continue
        if not isinstance(old, dict) or not isinstance(new, dict):
            before[host], after[host] = old, new
            if old is None:
                del before[host]
            if new is None:
                del after[host]
            continue
        if old.get("observed") != new.get("observed") or not _both_dicts(old, new):
            before[host] = {"observed": old.get("observed")}
            after[host] = {"observed": new.get("observed")}
            continue
        old_fs, new_fs = old["filesystems"], new["filesystems"]
        names = {n for n in old_fs.keys() | new_fs.keys() if old_fs.get(n) != new_fs.get(n)}
        before[host] = {"filesystems": {n: old_fs[n] for n in names if n in old_fs}}
        after[host] = {"filesystems": {n: new_fs[n] for n in names if n in new_fs}}
    return before, after


def _both_dicts(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return isinstance(old.get("filesystems"), dict) and isinstance(new.get("filesystems"), dict)


def _fingerprint_line(report: str, path: list[Any], old: Any, new: Any) -> str:
    host = str(path[0]) if path else "?"
    if len(path) == 1:
        return f"host {host}: {'added' if report in _ADDED else 'removed'} {_SINCE}"
    if path[1] == "observed":
        if new is True:
            return f"host {host} can be observed now; it could not when the plan was made"
        return f"host {host} cannot be observed now; it could when the plan was made"
    if len(path) < 3:
        return f"host {host}: {_dotted(path[1:])} changed {_SINCE}"
    where = f"{host}:{path[2]}"
    rest = path[3:]
    if not rest:
        what = "created" if report in _ADDED else "destroyed"
        return f"{where}: filesystem {what} {_SINCE}"
    if rest[0] == "versions" and len(rest) >= 2:
        return f"{where}: {_version_line(report, rest[1], rest[2:], old, new)}"
    return f"{where}: {_property_line(rest, old, new)}"


def _version_line(report: str, version: str, rest: list[Any], old: Any, new: Any) -> str:
    noun = "bookmark" if version.startswith("#") else "snapshot"
    if not rest:
        what = "created" if report in _ADDED else "destroyed"
        return f"{noun} {version} {what} {_SINCE}"
    if rest[0] == "holds":
        if report in _ADDED:
            return f"hold {_short(new)} placed on {version} {_SINCE}"
        if report in _REMOVED:
            return f"hold {_short(old)} on {version} released {_SINCE}"
        return f"holds on {version} changed {_SINCE}"
    return f"{noun} {version} was destroyed and made again {_SINCE} (another {rest[0]})"


def _property_line(rest: list[Any], old: Any, new: Any) -> str:
    key = rest[0]
    if key == "resume_token":
        if old is None:
            return f"a partial receive appeared {_SINCE}"
        if new is None:
            return f"the partial receive was resumed or aborted {_SINCE}"
        return f"the partial receive moved on {_SINCE} (another resume token)"
    if key == "modified":
        if new is True:
            return f"written to {_SINCE}"
        return f"no longer written to since its newest snapshot ({_SINCE}, e.g. a rollback)"
    return f"{_dotted(rest)} changed {_SINCE}: {_short(old)} -> {_short(new)}"


# --- the plan -------------------------------------------------------------------------------


def plan_changes(saved: Plan, current: Plan) -> tuple[str, ...]:
    """How the plan made now differs from the saved one, one line each (empty: the same)."""
    before, after = _comparable(saved), _comparable(current)
    if before == after:
        return ()
    diff = DeepDiff(before, after, ignore_order=False, view="tree", threshold_to_diff_deeper=0)
    lines: dict[str, None] = {}
    for report, levels in diff.items():
        for level in levels:
            path = level.path(output_format="list")
            lines[_plan_line(report, path, level.t1, level.t2, before, after)] = None
    return tuple(lines) or ("the plan made now differs from the saved one",)


def _comparable(plan: Plan) -> dict[str, Any]:
    document = plan_to_json(plan)
    actions: list[Any] = []
    for action in document["actions"]:  # type: ignore[attr-defined]
        actions.append({k: v for k, v in action.items() if k != "estimated_bytes"})
    hosts = [u["host"] for u in document["unobserved_hosts"]]  # type: ignore[attr-defined]
    return {
        "now": document["now"],
        "actions": actions,
        "conflicts": document["conflicts"],
        "unobserved_hosts": hosts,
    }


def _plan_line(
    report: str, path: list[Any], old: Any, new: Any, before: dict[str, Any], after: dict[str, Any]
) -> str:
    section = str(path[0])
    if section in ("actions", "conflicts") and len(path) >= 2:
        index = path[1]
        entry = _at(before[section], index) or _at(after[section], index)
        if section == "actions":
            label = f"action {(entry or {}).get('id', index)} ({_describe(entry)})"
        else:
            label = f"conflict {index + 1} ({_describe(entry)})"
        if len(path) == 2:
            if report in _ADDED:
                return f"the plan made now has {label}; the saved plan does not"
            if report in _REMOVED:
                return f"the saved plan has {label}; the plan made now does not"
        field = _dotted(path[2:])
        return f"{label}: {field} is {_short(old)} in the saved plan, {_short(new)} now"
    if section == "unobserved_hosts":
        saved, now = before["unobserved_hosts"], after["unobserved_hosts"]
        return f"hosts not observed: {_short(saved)} in the saved plan, {_short(now)} now"
    return f"{_dotted(path)} is {_short(old)} in the saved plan, {_short(new)} now"


def _at(items: list[Any], index: Any) -> dict[str, Any] | None:
    if isinstance(index, int) and 0 <= index < len(items) and isinstance(items[index], dict):
        found: dict[str, Any] = items[index]
        return found
    return None


def _describe(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "?"
    kind = str(entry.get("kind", "?")).replace("_", " ")
    host = entry.get("host", "?")
    filesystem = entry.get("filesystem")
    if filesystem is None:
        filesystem = ", ".join(map(str, entry.get("filesystems") or ()))
    return f"{kind} on {host}:{filesystem}"


def _dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    if isinstance(value, list):
        text = ", ".join(repr(v) if not isinstance(v, str) else v for v in value) or "(none)"
    if len(text) > MAX_VALUE_TEXT:
        return text[: MAX_VALUE_TEXT - 3] + "..."
    return text
