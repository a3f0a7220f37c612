"""Synthetic observed state for the planner benchmark (`make bench`) and scale tests.

Owned here: `synthetic_observed`, which builds a converged-but-due fleet: one source host
`src` with `filesystems` filesystems under `tank/data`, each with `snapshots` managed snapshots
taken atomically every `interval` seconds (one name and one createtxg per step, distinct GUIDs
per filesystem), the newest at `now - interval` so one snapshot is due; and two target hosts
`dst1`, `dst2` that hold `backup/src/<source path>` with every snapshot except the newest
`replicated_lag` ones (same GUIDs as the source, target-side createtxgs).

Memory matters (the benchmark must stay under 400 MB peak RSS; 2000 x 500 builds about 3M
`Version` values, ~100 bytes each): names, times, createtxgs and sizes are built once per step
and shared; GUIDs are computed, and a target's version reuses the source's GUID object; the
target-side `Version` and `FilesystemState` values are built once and shared by both targets,
since they are equal values. The state has no holds and no bookmarks ("replicated, not yet
protected"); the parents (`tank`, `tank/data`, `backup`, ...) have no versions.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reconciler.core.names import snapshot_name
from reconciler.core.state import (
    FilesystemState,
    HostState,
    Observed,
    Version,
    VersionKind,
)

SOURCE_HOST = "src"
TARGET_HOSTS = ("dst1", "dst2")
SOURCE_ROOT = "tank/data"
TARGET_ROOT = "backup/src"  # a source filesystem F is received as TARGET_ROOT/F

_GUID_MULTIPLIER = 0x9E3779B97F4A7C15  # odd: n -> n * M mod 2**64 is a bijection
_GUID_MASK = (1 << 64) - 1
_SOURCE_TXG_BASE = 1_000
_SOURCE_TXG_STEP = 7
_TARGET_TXG_BASE = 50_000
_TARGET_TXG_STEP = 3
_WRITTEN_UNIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Step:
    """What every filesystem's snapshot of one step shares."""

    name: str
    creation: int
    source_txg: int
    target_txg: int
    written: int


def source_filesystems(filesystems: int) -> tuple[str, ...]:
    """`tank/data/fs0000`, `tank/data/fs0001`, ... (at least four digits)."""
    width = max(4, len(str(max(filesystems - 1, 0))))
    return tuple(f"{SOURCE_ROOT}/fs{i:0{width}d}" for i in range(filesystems))


def target_filesystem(source: str) -> str:
    return f"{TARGET_ROOT}/{source}"


def snapshot_guid(filesystem_index: int, step: int, snapshots: int) -> int:
    """A distinct, non-zero, random-looking 64-bit GUID per (filesystem, step)."""
    return ((filesystem_index * snapshots + step + 1) * _GUID_MULTIPLIER) & _GUID_MASK


def _steps(snapshots: int, now: int, prefix: str, interval: int) -> tuple[_Step, ...]:
    steps = []
    for k in range(snapshots):
        creation = now - interval * (snapshots - k)
        steps.append(
            _Step(
                name=snapshot_name(prefix, creation),
                creation=creation,
                source_txg=_SOURCE_TXG_BASE + _SOURCE_TXG_STEP * k,
                target_txg=_TARGET_TXG_BASE + _TARGET_TXG_STEP * k,
                written=_WRITTEN_UNIT * (1 + k % 7),
            )
        )
    return tuple(steps)


def _source_versions(index: int, steps: tuple[_Step, ...]) -> tuple[Version, ...]:
    kind = VersionKind.SNAPSHOT
    count = len(steps)
    return tuple(
        Version(
            kind=kind,
            name=step.name,
            guid=snapshot_guid(index, k, count),
            createtxg=step.source_txg,
            creation=step.creation,
            written=step.written,
        )
        for k, step in enumerate(steps)
    )


def _received_versions(
    source: tuple[Version, ...], received: tuple[_Step, ...]
) -> tuple[Version, ...]:
    """The first `len(received)` source snapshots as a target holds them: the same GUID (the
    same int object), a target-side createtxg."""
    return tuple(
        Version(
            kind=version.kind,
            name=version.name,
            guid=version.guid,
            createtxg=step.target_txg,
            creation=version.creation,
            written=version.written,
        )
        for version, step in zip(source, received, strict=False)
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Millions of new container objects would trigger repeated full collections (half the
    build time); none of them can form a cycle, so the collector waits until we are done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def synthetic_observed(
    filesystems: int = 2000,
    snapshots: int = 500,
    *,
    now: int,
    prefix: str = "zr_",
    interval: int = 900,
    replicated_lag: int = 2,
) -> Observed:
    """The observed state of `src`, `dst1` and `dst2` described in the module docstring."""
    if filesystems < 0 or snapshots < 1 or interval < 1:
        raise ValueError("need filesystems >= 0, snapshots >= 1 and interval >= 1")
    if not 0 <= replicated_lag <= snapshots:
        raise ValueError("replicated_lag must be between 0 and snapshots")
    steps = _steps(snapshots, now, prefix, interval)
    received = steps[: snapshots - replicated_lag]
    source: dict[str, FilesystemState] = {p: FilesystemState(p) for p in _parents(SOURCE_ROOT)}
    target: dict[str, FilesystemState] = {
        p: FilesystemState(p) for p in _parents(target_filesystem(SOURCE_ROOT))
    }
    with _collector_paused():
        for index, name in enumerate(source_filesystems(filesystems)):
            versions = _source_versions(index, steps)
            source[name] = FilesystemState(name, versions)
            copy = target_filesystem(name)
            target[copy] = FilesystemState(copy, _received_versions(versions, received))
    hosts = {SOURCE_HOST: HostState(SOURCE_HOST, source)}
    for host in TARGET_HOSTS:
        hosts[host] = HostState(host, dict(target))  # own mapping, shared frozen values
    return Observed(hosts)
