"""Semantic validation: the checks that need more than one field or more than one document.

Owns `validate_manifests`, run by `reconciler.manifest.loader.load_manifests` once every
document has passed model validation. It returns `Problem`s that name the document (kind and
name) and the field path inside it; the loader turns them into `FILE:LINE:COLUMN` errors.
Pure: no YAML, no I/O.

Semantic validation uses the pure filter module `reconciler.manifest.filters` (matching and
overlap of `tank/home<` filters), which the planner in `core` uses as well.
`models.py` stays free of it.

Checks, in this order: filesystem filter patterns; references to unknown hosts; target names
unique within a policy; two policies owning the same snapshots (same source host, same prefix,
overlapping filters); two targets receiving into the same filesystem; a target replicating a
filesystem into the policy's own source set.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.manifest.filters import FilesystemFilter, filter_problems, filters_may_overlap
from reconciler.manifest.models import Policy, TargetSpec

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """A semantic error in the document `kind`/`name`, at `path` (YAML keys and indices)."""

    kind: str
    name: str
    path: FieldPath
    message: str
    at_key: bool = False  # point at the mapping key rather than at its value


@dataclass(frozen=True, slots=True)
class _Target:
    policy: Policy
    index: int
    spec: TargetSpec
    filter: FilesystemFilter

    @property
    def label(self) -> str:
        return f"target {self.spec.name!r} of policy {self.policy.metadata.name!r}"

    def problem(self, field: str, message: str) -> Problem:
        path: FieldPath = ("spec", "replication", self.index, field)
        return Problem("Policy", self.policy.metadata.name, path, message)


def validate_manifests(
    hosts: Collection[str],
    policies: Sequence[Policy],
    unchecked_hosts: Collection[str] = (),
) -> list[Problem]:
    """Every semantic problem; `policies` in document order (later ones get the blame).

    `hosts` are the names of the valid Host documents; references to a name in
    `unchecked_hosts` (a Host document that failed validation, reported on its own) are not
    reported again.
    """
    problems: list[Problem] = []
    filters: dict[str, FilesystemFilter] = {}
    for policy in policies:
        pattern_problems = _pattern_problems(policy)
        problems += pattern_problems
        if not pattern_problems:
            filters[policy.metadata.name] = FilesystemFilter.from_mapping(
                policy.spec.source.filesystems
            )
        problems += _host_problems(policy, set(hosts), set(unchecked_hosts))
        problems += _target_name_problems(policy)
    checked = [policy for policy in policies if policy.metadata.name in filters]
    problems += _prefix_overlaps(checked, filters)
    targets = [
        _Target(policy, index, spec, filters[policy.metadata.name])
        for policy in checked
        for index, spec in enumerate(policy.spec.replication)
    ]
    problems += _receive_collisions(targets)
    problems += _self_replication(targets)
    return problems


def _pattern_problems(policy: Policy) -> list[Problem]:
    return [
        Problem("Policy", policy.metadata.name, path, message, at_key=True)
        for path, message in pattern_problems(policy.spec.source.filesystems)
    ]


def pattern_problems(filesystems: Mapping[Any, object]) -> list[tuple[FieldPath, str]]:
    """(field path, message) for every invalid pattern of a `source.filesystems` mapping.

    Only the patterns are checked (the values are the models' business), so the loader can
    also run this on a Policy document that failed model validation.
    """
    patterns = {key: True for key in filesystems if isinstance(key, str)}
    return [
        (
            ("spec", "source", "filesystems", pattern),
            f"invalid filesystem pattern {pattern!r}: {message}",
        )
        for pattern, message in filter_problems(patterns)
    ]


def _host_problems(policy: Policy, known: set[str], unchecked: set[str]) -> Iterator[Problem]:
    references: list[tuple[FieldPath, str]] = [
        (("spec", "source", "host"), policy.spec.source.host)
    ]
    references += [
        (("spec", "replication", index, "host"), target.host)
        for index, target in enumerate(policy.spec.replication)
    ]
    for path, host in references:
        if host not in known and host not in unchecked:
            listed = ", ".join(sorted(known)) or "none"
            message = f"unknown host {host!r}: no Host document has that name (hosts: {listed})"
            yield Problem("Policy", policy.metadata.name, path, message)


def _target_name_problems(policy: Policy) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for index, target in enumerate(policy.spec.replication):
        if target.name in first:
            message = (
                f"duplicate target name {target.name!r} "
                f"(also spec.replication[{first[target.name]}].name)"
            )
            yield Problem(
                "Policy", policy.metadata.name, ("spec", "replication", index, "name"), message
            )
        first.setdefault(target.name, index)


def _prefix_overlaps(
    policies: Sequence[Policy], filters: dict[str, FilesystemFilter]
) -> Iterator[Problem]:
    """Two policies with one prefix on one host must not select a common filesystem."""
    for later_index, later in enumerate(policies):
        for earlier in policies[:later_index]:
            same_host = earlier.spec.source.host == later.spec.source.host
            prefix = later.spec.snapshots.prefix
            if not same_host or earlier.spec.snapshots.prefix != prefix:
                continue
            name, other = later.metadata.name, earlier.metadata.name
            witness = filters_may_overlap(filters[other], filters[name])
            if witness is None:
                continue
            message = (
                f"policies {other!r} and {name!r} both select {later.spec.source.host}:{witness} "
                f"with snapshot prefix {prefix!r}, so both would own the same snapshots; "
                "use different prefixes or disjoint filesystems"
            )
            yield Problem("Policy", name, ("spec", "source", "filesystems"), message)


def shifted(filter_: FilesystemFilter, root: str) -> FilesystemFilter:
    """The filter of the names `<root>/<name>` for every `name` that `filter_` includes."""
    patterns = {_shift(pattern, root): include for pattern, include in filter_.patterns}
    patterns[root] = False  # `<` would otherwise include the root itself, which is no `root/x`
    return FilesystemFilter(patterns=tuple(sorted(patterns.items())))


def _shift(pattern: str, root: str) -> str:
    return root + pattern if pattern == "<" else f"{root}/{pattern}"


def _collision(a: _Target, b: _Target) -> str | None:
    """A filesystem both targets would receive into (same host), or None.

    `<root_a>/x == <root_b>/y` needs one root to be the other or to lie below it: with
    `root_b = root_a/p`, x must be `p/y`, so the witness is a name in both A's filter and B's
    filter shifted by p.
    """
    if a.spec.host != b.spec.host:
        return None
    root_a, root_b = a.spec.root, b.spec.root
    if root_a == root_b:
        witness = filters_may_overlap(a.filter, b.filter)
        return None if witness is None else f"{root_a}/{witness}"
    if root_b.startswith(root_a + "/"):
        witness = filters_may_overlap(a.filter, shifted(b.filter, root_b[len(root_a) + 1 :]))
        return None if witness is None else f"{root_a}/{witness}"
    if root_a.startswith(root_b + "/"):
        witness = filters_may_overlap(b.filter, shifted(a.filter, root_a[len(root_b) + 1 :]))
        return None if witness is None else f"{root_b}/{witness}"
    return None


def _receive_collisions(targets: Sequence[_Target]) -> Iterator[Problem]:
    for later_index, later in enumerate(targets):
        for earlier in targets[:later_index]:
            path = _collision(earlier, later)
            if path is None:
                continue
            message = (
                f"{later.label} and {earlier.label} would both receive into "
                f"{later.spec.host}:{path}; use another root or disjoint filesystems"
            )
            yield later.problem("root", message)


def _self_replication(targets: Sequence[_Target]) -> Iterator[Problem]:
    """A target on the source host must not receive into the policy's own source set."""
    for target in targets:
        source = target.policy.spec.source
        if target.spec.host != source.host:
            continue
        witness = filters_may_overlap(target.filter, shifted(target.filter, target.spec.root))
        if witness is None:
            continue
        original = witness[len(target.spec.root) + 1 :]
        message = (
            f"{target.label} would receive {source.host}:{original} as {witness}, which "
            "this policy's source filesystems select again (replication into itself); "
            "choose a root outside the source filesystems or exclude it"
        )
        yield target.problem("root", message)
