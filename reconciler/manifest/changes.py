"""What changed between two generations of the manifests: pure functions over `Manifests`.

Owns the canonical form of a manifest set (`normalized`), its short content hash
(`generation`), the list of differences between two sets (`changes`, computed with
`deepdiff.DeepDiff`, one `Change` per difference) and the policies a difference forces the
control loop to reconcile again (`affected_policies`). Called by the control loop
(`reconciler.loop`) after each reload, to skip a pass when nothing changed, to log what did,
and to know which policies to reconcile first.

The comparison is on **effective values**: every model is dumped by alias in JSON mode with
its defaults, so `port: 22` written out and an omitted port are the same manifest, and so are
`interval: 60m` and `interval: 1h` (durations, grids and crons dump as their canonical text).
File names, document order, formatting and comments do not take part.

Documents added or removed are one `Change` each; inside a document present on both sides,
DeepDiff finds the differences. Lists compare in order (the order of retention rules matters):
a list of strings by a diff of its items (`spec.zfsCommand[0]: removed`), a list of mappings
(rules, targets) position by position, so a target removed from the front shows as the ones
after it changing into its place and the last one removed. A mapping whose keys mostly differ
(`filesystems` rewritten) is one change of the whole mapping. Values in change lines are
repr()s cut to `MAX_VALUE_TEXT` characters, so a large value never floods a log line; the
`Change` keeps them whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from deepdiff import DeepDiff
from pydantic import BaseModel

from reconciler.manifest.models import Manifests, Policy
from reconciler.manifest.yamldoc import format_path

__all__ = ["Change", "affected_policies", "changes", "generation", "normalized"]

Kind = Literal["host", "policy"]
What = Literal["added", "removed", "changed"]

MAX_VALUE_TEXT = 80
"""Longest repr() of a value in a change line; longer ones end in an ellipsis."""

GENERATION_LENGTH = 12
"""Hex digits of sha256 in a generation."""

_REPORTS: Mapping[str, What] = {
    "dictionary_item_added": "added",
    "iterable_item_added": "added",
    "dictionary_item_removed": "removed",
    "iterable_item_removed": "removed",
    "values_changed": "changed",
    "type_changes": "changed",
}


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: a document added or removed, or one value inside a document.

    `path` is relative to the document (`spec.retention.keep[0].grid`), empty when the whole
    document was added or removed; `before` and `after` are the JSON values (None when absent).
    """

    kind: Kind
    name: str
    what: What
    path: str = ""
    before: Any = None
    after: Any = None

    def __str__(self) -> str:
        subject = f"{self.kind} {self.name}"
        where = f"{subject}: {self.path}" if self.path else subject
        if self.what == "changed":
            return f"{where}: {short(self.before)} -> {short(self.after)}"
        return f"{where}: {self.what}"


def short(value: Any) -> str:
    """repr() of `value`, cut to `MAX_VALUE_TEXT` characters with an ellipsis."""
    text = repr(value)
    return text if len(text) <= MAX_VALUE_TEXT else text[: MAX_VALUE_TEXT - 1] + "…"


def normalized(manifests: Manifests) -> dict[str, Any]:
    """The JSON-able canonical form: `"host NAME"` / `"policy NAME"` → the document's effective
    values (dumped by alias, defaults included), in sorted key order."""
    documents = {f"host {name}": _dump(host) for name, host in manifests.hosts.items()}
    documents |= {f"policy {name}": _dump(policy) for name, policy in manifests.policies.items()}
    return dict(sorted(documents.items()))


def generation(manifests: Manifests) -> str:
    """A short hash of `normalized(manifests)`: equal manifests give equal generations, whatever
    their files, order, formatting and comments."""
    text = json.dumps(
        normalized(manifests), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:GENERATION_LENGTH]


def changes(old: Manifests | None, new: Manifests) -> tuple[Change, ...]:
    """Every difference from `old` to `new` (all of `new` added when `old` is None), sorted by
    kind, name and path."""
    before = normalized(old) if old is not None else {}
    after = normalized(new)
    found = [_whole(key, "removed", before[key]) for key in before.keys() - after.keys()]
    found += [_whole(key, "added", after[key]) for key in after.keys() - before.keys()]
    for key in before.keys() & after.keys():
        found += _inside(key, before[key], after[key])
    return tuple(sorted(found, key=_order))


def affected_policies(old: Manifests | None, new: Manifests) -> frozenset[str]:
    """Names of the policies of `new` to reconcile after the change: those added or changed,
    and those whose source or target Host changed (or appeared). Removed policies are not
    here: `changes` reports them."""
    if old is None:
        return frozenset(new.policies)
    hosts = _changed(old.hosts, new.hosts)
    policies = _changed(old.policies, new.policies)
    return frozenset(
        name
        for name, policy in new.policies.items()
        if name in policies or not hosts.isdisjoint(_hosts_of(policy))
    )


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def _whole(key: str, what: What, document: Any) -> Change:
    kind, name = _split(key)
    if what == "added":
        return Change(kind, name, what, after=document)
    return Change(kind, name, what, before=document)


def _inside(key: str, before: Any, after: Any) -> list[Change]:
    """The differences inside one document, by DeepDiff (lists compared in order)."""
    kind, name = _split(key)
    diff = DeepDiff(before, after, ignore_order=False, view="tree")
    unknown = sorted(report for report in diff if report not in _REPORTS)
    if unknown:  # cannot happen for JSON values; never drop a difference silently
        raise ValueError(f"unexpected deepdiff reports: {', '.join(unknown)}")
    found: list[Change] = []
    for report, levels in diff.items():
        what = _REPORTS[report]
        for level in levels:
            parts = level.path(output_format="list")
            path = format_path(parts) if parts else ""
            old = None if what == "added" else level.t1
            new = None if what == "removed" else level.t2
            found.append(Change(kind, name, what, path, old, new))
    return found


def _split(key: str) -> tuple[Kind, str]:
    kind, _, name = key.partition(" ")
    return ("host" if kind == "host" else "policy"), name


def _order(change: Change) -> tuple[str, str, str, str]:
    return (change.kind, change.name, _path_key(change.path), change.what)


def _path_key(path: str) -> str:
    """Index numbers zero-padded so that `[10]` sorts after `[2]`."""
    parts = path.replace("]", "[").split("[")
    return "[".join(part.zfill(10) if part.isdigit() else part for part in parts)


def _changed(old: Mapping[str, BaseModel], new: Mapping[str, BaseModel]) -> frozenset[str]:
    """Names present in `new` whose document is new or differs from `old`'s."""
    return frozenset(
        name for name, model in new.items() if name not in old or _dump(old[name]) != _dump(model)
    )


def _hosts_of(policy: Policy) -> Iterable[str]:
    yield policy.spec.source.host
    for target in policy.spec.replication:
        yield target.host
