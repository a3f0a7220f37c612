"""Which snapshots a pass must know in detail: pure, from names, GUIDs and createtxgs only.

Owned here: `needed_details(policies, observed, now)` → {host: full snapshot names}. A pass
first lists every version cheaply (name, GUID, createtxg: the listing zfs answers without
reading each snapshot's properties, docs/zfs-verified.md §27), then asks only for the
details (`creation`, `written`, `referenced`, holds) of the snapshots named here, and plans
with those. The planner reads details of these snapshots and no others:

- a source filesystem's newest snapshot (the snapshot a pass adds takes its `referenced`);
- on both sides of a (source filesystem, target) pair, the newest common snapshot and every
  snapshot after it: send estimates sum their `written`, snapshots on the target after the
  common one are a divergence only when `written`, and the holds of the newest common
  snapshot on each side are what protection keeps; without a common snapshot, every
  snapshot of the pair (a full stream, a conflict or a full resync);
- a partial receive's snapshot and everything after it (once the target's resume token is
  known: `needed_details` then asks again, see `apply/passes.py`);
- every snapshot the source's or the target's retention would destroy (their holds decide
  whether it is destroyed, released first, or named in a notice);
- on both sides, the snapshot of each replication cursor bookmark of the pair: a pass drops a
  superseded cursor only after releasing the holds it moved (`core/protection.py`), so a hold
  of ours left behind by a pass that stopped half-way sits on the snapshot of a cursor.
- on the source, the snapshot of every cursor bookmark of the policy, of any target: the holds
  of a target removed from the manifest sit there, and `reconcile status` lists them
  (`core/leftovers.py`); a retiring target's are released (`core/retirement.py`).
- on both sides of a pair, the snapshots of the tools run before the reconciler whose holds
  `reconcile status` lists (`core/foreign_leftovers.py`): the snapshot of each zrepl bookmark's
  GUID (its cursor names the snapshot it last replicated, which carries zrepl's step hold on
  the source and its last-received hold on the target), and syncoid's sync snapshots (few:
  syncoid keeps the newest of each).

Holds of ours elsewhere are not seen: such a hold (left by an older version, or placed by
hand) is released when retention comes to destroy its snapshot, not before (docs/driver.md).
tests/test_details.py checks that a plan made from these details equals the plan made from
every detail.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.core.desired import PolicyIntent, TargetIntent
from reconciler.core.foreign_leftovers import is_syncoid_snapshot, is_zrepl_bookmark
from reconciler.core.incremental import find_common_base
from reconciler.core.planner import planned_sources
from reconciler.core.retention import RetentionMemo
from reconciler.core.source import PENDING_TXG, SourceFilesystem, snapshot_names
from reconciler.core.state import (
    FilesystemState,
    Observed,
    Version,
    VersionKind,
)


def needed_details(
    policies: Sequence[PolicyIntent], observed: Observed, now: int
) -> dict[str, frozenset[str]]:
    """Host → full names (`fs@snap`) of the snapshots whose details the plan reads."""
    needed: dict[str, set[str]] = {}
    for intent in policies:
        host = observed.host(intent.source_host)
        if not host.reachable:
            continue
        retention = RetentionMemo()
        for source in planned_sources(intent, host, now, retention):
            names = needed.setdefault(source.host, set())
            newest = source.state.newest_snapshot()
            if newest is not None:
                names.add(f"{source.name}@{newest.name}")
            _source_retention(source, retention, names)
            _with_guids(source.name, source.snapshots, _any_cursor_guids(source), names)
            foreign = _foreign_guids(source)
            _foreign(source.name, source.versions, foreign, names)
            for target in intent.targets:
                cursors = _cursor_guids(source, target)
                _with_guids(source.name, source.snapshots, cursors, names)
                target_host = observed.host(target.host)
                if not target_host.reachable:
                    continue
                target_fs = target.target_filesystem(source.name)
                state = target_host.filesystem(target_fs)
                on_target = needed.setdefault(target.host, set())
                if state is not None:
                    _with_guids(target_fs, state.versions, cursors, on_target)
                    _foreign(target_fs, state.versions, foreign, on_target)
                _pair(source, target, state, retention, names, on_target)
    return {host: frozenset(names) for host, names in sorted(needed.items()) if names}


def _source_retention(source: SourceFilesystem, retention: RetentionMemo, into: set[str]) -> None:
    if not source.intent.rules or not source.managed.names:
        return
    result = retention.evaluate(source.intent.rules, source.managed)
    into.update(f"{source.name}@{name}" for name, _ in result.destroyed)


def _cursor_guids(source: SourceFilesystem, target: TargetIntent) -> set[int]:
    """The GUIDs of the pair's replication cursor bookmarks."""
    parse = source.intent.parse_cursor
    return {mark.guid for mark in source.bookmarks if parse(target.name, mark.name) is not None}


def _any_cursor_guids(source: SourceFilesystem) -> set[int]:
    """The GUIDs of every cursor bookmark of the policy, of any target, declared or not: a
    removed target's holds sit on its cursor's snapshot (`reconcile status` lists them)."""
    parse = source.intent.parse_any_cursor
    return {mark.guid for mark in source.bookmarks if parse(mark.name) is not None}


def _foreign_guids(source: SourceFilesystem) -> set[int]:
    """The GUIDs of zrepl's bookmarks on the source (cursors, step bookmarks)."""
    return {mark.guid for mark in source.bookmarks if is_zrepl_bookmark(mark.name)}


def _foreign(filesystem: str, versions: Sequence[Version], guids: set[int], into: set[str]) -> None:
    """The snapshots of `versions` with one of zrepl's bookmark `guids`, and syncoid's sync
    snapshots: the holds of the old tools sit there (`core/foreign_leftovers.py`)."""
    _with_guids(filesystem, versions, guids, into)
    snapshot = VersionKind.SNAPSHOT
    into.update(
        f"{filesystem}@{v.name}"
        for v in versions
        if v.kind is snapshot and is_syncoid_snapshot(v.name)
    )


def _with_guids(
    filesystem: str, versions: Sequence[Version], guids: set[int], into: set[str]
) -> None:
    """The snapshots of `versions` (createtxg order) with one of `guids`: searched from the
    newest back, as cursors mark recent snapshots, and only until all are found."""
    left = set(guids)
    snapshot = VersionKind.SNAPSHOT
    for version in reversed(versions):
        if not left:
            return
        if version.kind is snapshot and version.guid in left:
            left.discard(version.guid)
            into.add(f"{filesystem}@{version.name}")


def _pair(
    source: SourceFilesystem,
    target: TargetIntent,
    state: FilesystemState | None,
    retention: RetentionMemo,
    source_names: set[str],
    target_names: set[str],
) -> None:
    """The details one (source filesystem, target) pair reads, on each side."""
    target_versions = state.versions if state is not None else ()
    target_fs = state.name if state is not None else ""
    base = None
    if state is not None:
        base = find_common_base(source.versions, target_versions, source.version_with_guid)
    source_from = base.source.createtxg if base is not None else -1
    target_from = base.target.createtxg if base is not None else -1
    _from_txg(source.name, source.snapshots, source_from, source_names)
    _from_txg(target_fs, target_versions, target_from, target_names)
    bases: list[Version | None] = [base.source if base is not None else None]
    received: tuple[Version, ...] = ()
    token = state.resume_token if state is not None else None
    if token is not None:  # the partial receive's snapshot becomes the base
        resumed = source.version_with_guid(token.to_guid)
        if resumed is not None and resumed.kind is VersionKind.SNAPSHOT:
            source_names.add(f"{source.name}@{resumed.name}")
            _from_txg(source.name, source.snapshots, resumed.createtxg, source_names)
            bases.append(resumed)
            received = (resumed._replace(createtxg=PENDING_TXG),)
    if not target.rules or state is None:
        return
    snapshot = VersionKind.SNAPSHOT
    on_target = snapshot_names([v for v in (*target_versions, *received) if v.kind is snapshot])
    for start in bases:
        candidates = snapshot_names(source.replicated_after(start))
        merged = source.intent.managed(source.intent.managed(on_target).names + candidates)
        result = retention.evaluate(target.rules, merged)
        target_names.update(f"{target_fs}@{name}" for name, _ in result.destroyed)


def _from_txg(filesystem: str, versions: Sequence[Version], txg: int, into: set[str]) -> None:
    """Every snapshot of `versions` (createtxg order) with createtxg ≥ txg."""
    snapshot = VersionKind.SNAPSHOT
    for version in reversed(versions):
        if version.createtxg < txg:
            return
        if version.kind is snapshot:
            into.add(f"{filesystem}@{version.name}")
