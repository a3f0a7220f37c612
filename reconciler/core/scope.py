"""What a pass must observe on each host: the observation scope of a set of policies.

Owned here: `ObservationScope` (the subtrees and single filesystems of one host a pass lists)
and `observation_scopes` (policies → each host's scope). Pure: no I/O. The shell hands each
host its scope (`ZFS.observe(scope)`), so a pass lists what its policies touch and nothing
else: other datasets of the host are none of its business, and there can be many.

A policy touches, on its source host, what its filter can include: each subtree pattern that
includes (`tank/home<: true` → the subtree `tank/home`) and each exact pattern that includes
(`tank/db: true` → that one filesystem with its versions); the pool-level `<: true` makes the
whole host its scope. On each target host it touches the target root's subtree: every
filesystem it receives, and the parents it may have to create, lie in it. A filesystem
outside the scope is never observed, so no plan can name it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler.core.desired import PolicyIntent
from reconciler.manifest.filters import SUBTREE


@dataclass(frozen=True, slots=True)
class ObservationScope:
    """The part of one host a pass lists. `subtrees`: filesystems listed with every
    descendant; `filesystems`: listed alone (their own versions, not their children's);
    `everything`: the whole host. Normalised: no subtree lies in another, no single
    filesystem lies in a subtree, both sorted."""

    subtrees: tuple[str, ...] = ()
    filesystems: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def of(cls, subtrees: Iterable[str], filesystems: Iterable[str] = ()) -> ObservationScope:
        """The normalised scope of these subtrees and single filesystems; an empty subtree
        name ('') is the whole host."""
        roots = set(subtrees)
        if "" in roots:
            return cls(everything=True)
        kept: list[str] = []
        for root in sorted(roots):  # a parent sorts before its children ("a" < "a/b")
            if not _in_any(root, kept):
                kept.append(root)
        singles = sorted({fs for fs in filesystems if not _in_any(fs, kept)})
        return cls(subtrees=tuple(kept), filesystems=tuple(singles))

    def union(self, other: ObservationScope) -> ObservationScope:
        if self.everything or other.everything:
            return ObservationScope(everything=True)
        return ObservationScope.of(
            (*self.subtrees, *other.subtrees), (*self.filesystems, *other.filesystems)
        )

    def contains(self, filesystem: str) -> bool:
        """Whether `filesystem` (a filesystem or volume name) is in the scope."""
        if self.everything or filesystem in self.filesystems:
            return True
        return _in_any(filesystem, self.subtrees)


def observation_scopes(policies: Sequence[PolicyIntent]) -> dict[str, ObservationScope]:
    """Each host the policies touch → what a pass of them must list there."""
    subtrees: dict[str, set[str]] = {}
    singles: dict[str, set[str]] = {}
    for policy in policies:
        host_subtrees = subtrees.setdefault(policy.source_host, set())
        host_singles = singles.setdefault(policy.source_host, set())
        for pattern, include in policy.filter.patterns:
            if not include:
                continue
            if pattern.endswith(SUBTREE):
                host_subtrees.add(pattern[: -len(SUBTREE)])
            else:
                host_singles.add(pattern)
        for target in policy.targets:
            subtrees.setdefault(target.host, set()).add(target.root)
            singles.setdefault(target.host, set())
    return {
        host: ObservationScope.of(subtrees[host], singles.get(host, ()))
        for host in sorted(subtrees)
    }


def _in_any(name: str, roots: Sequence[str]) -> bool:
    cut = len(name)
    while cut > 0:  # the name and each of its parents, looked up in the sorted roots
        if _bisect_has(roots, name[:cut]):
            return True
        cut = name.rfind("/", 0, cut)
    return False


def _bisect_has(items: Sequence[str], value: str) -> bool:
    index = bisect_left(items, value)
    return index < len(items) and items[index] == value
