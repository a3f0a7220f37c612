"""The one-owner rule for adopted names: no two policies may own the same snapshot names.

Owns `adoption_clashes`, called by `validate.py` with the policies that are valid on their own.
A policy owns the names of its own `prefix` and of each `adopt` entry's prefix; adopted schemes
differ in form, so names are compared by prefix alone, cautiously, on each source host:

- the **same prefix** owned by two policies, one of them through `adopt`, clashes when their
  filters may select a common filesystem (found for all policies at once by `first_overlaps`,
  in O(N log N)); two policies with the same own prefix are `validate.py`'s own rule;
- **different prefixes where one starts with the other** (`zrepl_` and `zrepl_hourly_`), one
  of them adopted, clash whatever the filesystems: a snapshot of one may be named like the
  other's, and comparing every such pair's filters could take quadratic time on hostile input.
  Each adopt entry finds its first such partner through a sorted list and a dictionary of the
  prefixes of its own prefix, so the check stays O(N log N) for N prefixes.

Each adopt entry is reported once, at `spec.snapshots.adopt[i].prefix`, naming the first policy
it clashes with.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from reconciler.manifest.filters import FilesystemFilter, filters_may_overlap, first_overlaps
from reconciler.manifest.models import Policy

Clash = tuple[str, tuple[str | int, ...], str]  # (policy, field path, message)


@dataclass(frozen=True, slots=True)
class _Owned:
    policy: int  # index into the host's policies
    prefix: str
    adopt: int | None  # index of the adopt entry; None for the policy's own prefix


def adoption_clashes(
    policies: Sequence[Policy], filters: Mapping[str, FilesystemFilter]
) -> Iterator[Clash]:
    by_host: dict[str, list[Policy]] = {}
    for policy in policies:
        by_host.setdefault(policy.spec.source.host, []).append(policy)
    for members in by_host.values():
        if any(p.spec.snapshots.adopt for p in members):
            yield from _host_clashes(members, filters)


def _host_clashes(
    members: Sequence[Policy], filters: Mapping[str, FilesystemFilter]
) -> Iterator[Clash]:
    owned: list[_Owned] = []
    for index, policy in enumerate(members):
        owned.append(_Owned(index, policy.spec.snapshots.prefix, None))
        owned += (_Owned(index, e.prefix, i) for i, e in enumerate(policy.spec.snapshots.adopt))
    owners: dict[str, list[_Owned]] = {}
    for entry in owned:
        owners.setdefault(entry.prefix, []).append(entry)
    reported: set[tuple[int, int]] = set()
    for entry, other in _same_prefix(members, owners, filters):
        if _key(entry) not in reported:
            reported.add(_key(entry))
            yield _clash(members, entry, other, filters, same=True)
    line = sorted(owners)
    for entry in owned:
        if entry.adopt is None or _key(entry) in reported:
            continue
        partner = _nested_partner(entry, owners, line)
        if partner is not None:
            reported.add(_key(entry))
            yield _clash(members, entry, partner, filters, same=False)


def _same_prefix(
    members: Sequence[Policy],
    owners: Mapping[str, list[_Owned]],
    filters: Mapping[str, FilesystemFilter],
) -> Iterator[tuple[_Owned, _Owned]]:
    """(adopt entry, the policy it clashes with) for prefixes owned by several policies.

    For each later member, `first_overlaps` gives the first earlier member whose filter
    overlaps; when neither of the two adopts the prefix, both own it as their own prefix, which
    `validate.py` reports. The adopting side of the pair is the one reported."""
    for entries in owners.values():
        by_policy: dict[int, _Owned] = {}
        for e in entries:  # one entry per policy: its adopt entry when it has one
            if e.policy not in by_policy or by_policy[e.policy].adopt is None:
                by_policy[e.policy] = e
        unique = sorted(by_policy.values(), key=lambda e: e.policy)
        if len(unique) < 2 or all(e.adopt is None for e in unique):
            continue
        found = first_overlaps([filters[members[e.policy].metadata.name] for e in unique])
        for later, earlier in zip(unique, found, strict=True):
            if earlier is None:
                continue
            partner = unique[earlier]
            if later.adopt is not None:
                yield later, partner
            elif partner.adopt is not None:
                yield partner, later


def _nested_partner(
    entry: _Owned, owners: Mapping[str, list[_Owned]], line: Sequence[str]
) -> _Owned | None:
    """Another policy's entry whose prefix starts `entry`'s or is started by it (not equal)."""
    prefix = entry.prefix
    for length in range(1, len(prefix)):
        for other in owners.get(prefix[:length], ()):
            if other.policy != entry.policy:
                return other
    start = bisect_left(line, prefix)
    for text in line[start:]:
        if not text.startswith(prefix):
            break
        if text == prefix:
            continue
        for other in owners[text]:
            if other.policy != entry.policy:
                return other
    return None


def _clash(
    members: Sequence[Policy],
    entry: _Owned,
    other: _Owned,
    filters: Mapping[str, FilesystemFilter],
    *,
    same: bool,
) -> Clash:
    policy, partner = members[entry.policy], members[other.policy]
    host = policy.spec.source.host
    if same:
        witness = filters_may_overlap(filters[partner.metadata.name], filters[policy.metadata.name])
        where = f"both select {host}:{witness}"
        fix = "adopt names no other policy owns, or select disjoint filesystems"
    else:
        where = f"on {host}, whatever the filesystems"
        fix = "policies of one host share a prefix only as equal prefixes on disjoint filesystems"
    how = "adopts" if other.adopt is not None else "owns"
    message = (
        f"policy {partner.metadata.name!r} {how} snapshots named {other.prefix!r}..., which "
        f"adopting {entry.prefix!r} may also match ({where}): {fix}"
    )
    path: tuple[str | int, ...] = ("spec", "snapshots", "adopt", entry.adopt or 0, "prefix")
    return policy.metadata.name, path, message


def _key(entry: _Owned) -> tuple[int, int]:
    return entry.policy, -1 if entry.adopt is None else entry.adopt
