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

Speed: O(N log N) for N filter patterns, so a 1 MB set takes a fraction of a second
(docs/benchmarks.md). The two checks between documents do not compare every pair: policies are
grouped by (source host, prefix), targets by host and the topmost of their nested roots, and
`filters.first_overlaps` finds, within a group, each one's first earlier overlapping partner.
So a policy (target) that overlaps several earlier ones is reported once, with the first of
them in document order: n policies that all select the same filesystems give n - 1 problems,
not n(n - 1)/2. One exception to the bound: a target whose root nests with another target's
root on the same host is compared through its policy's filter shifted below its root, which
costs that filter's size once per such target.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.manifest.adoption_check import adoption_clashes
from reconciler.manifest.filters import (
    FilesystemFilter,
    below,
    filter_problems,
    filters_may_overlap,
    first_overlaps,
    shifted,
)
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
    known, unchecked = set(hosts), set(unchecked_hosts)
    listed = _listed(sorted(known))
    for policy in policies:
        pattern_problems = _pattern_problems(policy)
        problems += pattern_problems
        if not pattern_problems:
            patterns = tuple(sorted(policy.spec.source.filesystems.items()))  # checked above
            filters[policy.metadata.name] = FilesystemFilter(patterns=patterns)
        problems += _host_problems(policy, known, unchecked, listed)
        problems += _target_name_problems(policy)
    checked = [policy for policy in policies if policy.metadata.name in filters]
    problems += _prefix_overlaps(checked, filters)
    problems += (
        Problem("Policy", name, path, message)
        for name, path, message in adoption_clashes(checked, filters)
    )
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


_LISTED = 10  # host names an "unknown host" error lists: the message stays short in a fleet


def _listed(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:_LISTED])
    return shown if len(names) <= _LISTED else f"{shown}, and {len(names) - _LISTED} more"


def _host_problems(
    policy: Policy, known: set[str], unchecked: set[str], listed: str
) -> Iterator[Problem]:
    references: list[tuple[FieldPath, str]] = [
        (("spec", "source", "host"), policy.spec.source.host)
    ]
    references += [
        (("spec", "replication", index, "host"), target.host)
        for index, target in enumerate(policy.spec.replication)
    ]
    for path, host in references:
        if host not in known and host not in unchecked:
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
    """Two policies with one prefix on one host must not select a common filesystem.

    Each later policy is reported once, with the first earlier policy it overlaps.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for index, policy in enumerate(policies):
        key = (policy.spec.source.host, policy.spec.snapshots.prefix)
        groups.setdefault(key, []).append(index)
    partner = _first_partners(
        groups.values(), [filters[policy.metadata.name] for policy in policies]
    )
    for later_index, later in enumerate(policies):
        earlier_index = partner[later_index]
        if earlier_index is None:
            continue
        name, other = later.metadata.name, policies[earlier_index].metadata.name
        witness = filters_may_overlap(filters[other], filters[name])
        assert witness is not None  # first_overlaps found them overlapping
        prefix = later.spec.snapshots.prefix
        message = (
            f"policies {other!r} and {name!r} both select {later.spec.source.host}:{witness} "
            f"with snapshot prefix {prefix!r}, so both would own the same snapshots; "
            "use different prefixes or disjoint filesystems"
        )
        yield Problem("Policy", name, ("spec", "source", "filesystems"), message)


def _first_partners(
    groups: Iterable[Sequence[int]], filters: Sequence[FilesystemFilter]
) -> list[int | None]:
    """For each index of `filters`, the first earlier index of its group whose filter overlaps
    its own, or None (`groups`: indices in ascending order)."""
    partner: list[int | None] = [None] * len(filters)
    for members in groups:
        if len(members) < 2:
            continue
        found = first_overlaps([filters[index] for index in members])
        for member, earlier in zip(members, found, strict=True):
            if earlier is not None:
                partner[member] = members[earlier]
    return partner


def _receive_collisions(targets: Sequence[_Target]) -> Iterator[Problem]:
    """Two targets on one host must not receive into the same filesystem.

    Target A receives `x` as `<root_a>/x`, so `<root_a>/x == <root_b>/y` needs one root to be
    the other or to lie below it. Targets are grouped by host and by the topmost root of a
    chain of nested roots; names in different groups never meet. In a group with one root,
    two targets collide when their policies' filters overlap (witness `<root>/<overlap>`); in
    a group with nested roots, when their filters shifted below their roots overlap (the
    names they receive). Each later target is reported once, with the first earlier target it
    collides with.
    """
    roots: dict[str, set[str]] = {}
    for target in targets:
        roots.setdefault(target.spec.host, set()).add(target.spec.root)
    groups: dict[tuple[str, str], list[int]] = {}
    for index, target in enumerate(targets):
        top = _topmost(target.spec.root, roots[target.spec.host])
        groups.setdefault((target.spec.host, top), []).append(index)
    moved: dict[tuple[str, str], FilesystemFilter] = {}  # (policy, root) -> shifted filter
    compared: list[FilesystemFilter] = [target.filter for target in targets]
    for (_, top), members in groups.items():
        if any(targets[index].spec.root != top for index in members):
            for index in members:
                compared[index] = _received(targets[index], moved)
    partner = _first_partners(groups.values(), compared)
    for later_index, later in enumerate(targets):
        earlier_index = partner[later_index]
        if earlier_index is None:
            continue
        earlier = targets[earlier_index]
        path = filters_may_overlap(compared[earlier_index], compared[later_index])
        assert path is not None  # first_overlaps found them overlapping
        if compared[later_index] is later.filter:  # one root: names relative to it
            path = f"{later.spec.root}/{path}"
        message = (
            f"{later.label} and {earlier.label} would both receive into "
            f"{later.spec.host}:{path}; use another root or disjoint filesystems"
        )
        yield later.problem("root", message)


def _topmost(root: str, roots: set[str]) -> str:
    """The highest of `roots` that is `root` or above it."""
    top, cut = root, root.find("/")
    while cut > 0 and top == root:
        if root[:cut] in roots:
            top = root[:cut]
        cut = root.find("/", cut + 1)
    return top


def _received(target: _Target, moved: dict[tuple[str, str], FilesystemFilter]) -> FilesystemFilter:
    """The filter of the names `target` receives into: its policy's, shifted below its root."""
    key = (target.policy.metadata.name, target.spec.root)
    if key not in moved:
        moved[key] = shifted(target.filter, target.spec.root)
    return moved[key]


def _self_replication(targets: Sequence[_Target]) -> Iterator[Problem]:
    """A target on the source host must not receive into the policy's own source set.

    That is a name `x` the filter includes whose copy `<root>/x` it includes too: `x` in both
    the filter and the filter below the root (`filters.below`, which holds only the patterns
    below the root, so the check costs what the filter has there).
    """
    for target in targets:
        source = target.policy.spec.source
        if target.spec.host != source.host:
            continue
        original = filters_may_overlap(below(target.filter, target.spec.root), target.filter)
        if original is None:
            continue
        witness = f"{target.spec.root}/{original}"
        message = (
            f"{target.label} would receive {source.host}:{original} as {witness}, which "
            "this policy's source filesystems select again (replication into itself); "
            "choose a root outside the source filesystems or exclude it"
        )
        yield target.problem("root", message)
