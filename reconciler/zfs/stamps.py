"""The control loop's cheap listing: snapshots re-listed only where `snapshots_changed` moved.

Owned here: `VersionCache`, which the loop keeps for its lifetime (`loop/controller.py`) and
hands to every pass (`apply/passes.Dependencies`), and its `list_versions(host, scope)`, which
stands in for `ZFS.list_versions` in the first step of a pass's observation
(`zfs/observe.py`). One-shot `reconcile` has no cache and lists every version each time.

Each call makes one stamp listing (`ZFS.list_stamps`: the scope's filesystems with their GUID
and `snapshots_changed`, and their bookmarks) and then one cheap listing of the snapshots of the
filesystems whose snapshots it cannot vouch for (`ZFS.list_snapshots`), none when it can vouch
for all. The snapshots of a filesystem are reused from an earlier listing only when all of
these hold:

- the filesystem has the same GUID and the same stamp as when they were listed; a stamp `-`
  (no snapshot made or destroyed in it since its pool was loaded) vouches only for having no
  snapshots: zfs shows `-` again after an import on a pool without `extensible_dataset`, so
  `-` twice could hide snapshots made in between;
- they were listed at least `settle` seconds (2 s) after a stamp listing had ended that already
  showed this stamp. `snapshots_changed` is in whole seconds (docs/zfs-verified.md §28): a
  change later in the same second as the stamp leaves it unchanged, so only snapshots listed
  once that second is over can be vouched for. Elapsed time is measured here (a monotonic
  clock), never by comparing clocks of two machines;
- they were listed less than `max_age` seconds (1 hour) ago: a backstop against whatever could
  change snapshots without moving the stamp that was not verified (docs/loop.md).

So after a change a filesystem's snapshots are listed in the pass that sees the new stamp and,
unless that listing came `settle` seconds after the stamp was first seen, once more in the next
pass; from then on they are reused until the stamp moves. Bookmarks are listed on every call
(they are few, and creating one does not move the stamp). When the details step
(`ZFS.add_details`) misses a snapshot said to exist, `observe_hosts` calls `forget`.

The cache holds a filesystem's snapshots until a listing of a scope that contains it no longer
shows it, or until they are too old to be vouched for (`max_age`), so it never grows beyond
the filesystems listed within the last hour.

A host whose zfs has no `snapshots_changed` (OpenZFS before 2.2) is listed with
`ZFS.list_versions` from then on. The cache holds names, GUIDs and createtxgs only; every
other field, holds included, comes from the details step of each pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from reconciler.core.scope import ObservationScope
from reconciler.core.state import FilesystemState, HostState, Stamp, Version, sort_versions
from reconciler.zfs.errors import StampsUnsupported
from reconciler.zfs.port import StampedListing

SETTLE_SECONDS = 2.0
MAX_AGE_SECONDS = 3600.0


class StampedHost(Protocol):
    """What the cache needs of a host: the three listings of `ZFS` it chooses from."""

    @property
    def host(self) -> str: ...

    def list_stamps(self, scope: ObservationScope | None = None) -> StampedListing: ...

    def list_snapshots(self, filesystems: Sequence[str]) -> dict[str, tuple[Version, ...]]: ...

    def list_versions(self, scope: ObservationScope | None = None) -> HostState: ...


@dataclass(frozen=True, slots=True)
class _Listed:
    """The snapshots of one filesystem, and when they and its stamp were seen."""

    stamp: Stamp
    stamp_seen: float  # when the first stamp listing that showed `stamp` had ended
    listed: float  # when the snapshot listing of `snapshots` started
    snapshots: tuple[Version, ...]


class VersionCache:
    """The snapshots of each host's filesystems as last listed, with their stamps."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        settle: float = SETTLE_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        self._clock = clock
        self._settle = settle
        self._max_age = max_age
        self._mutex = threading.Lock()
        self._hosts: dict[str, dict[str, _Listed]] = {}
        self._unsupported: set[str] = set()

    def list_versions(self, host: StampedHost, scope: ObservationScope | None = None) -> HostState:
        """What `host.list_versions(scope)` answers, re-listing only the snapshots of the
        filesystems whose stamp does not vouch for the last listing of them."""
        name = host.host
        with self._mutex:
            unsupported = name in self._unsupported
        if unsupported:
            return host.list_versions(scope)
        try:
            stamped = host.list_stamps(scope)
        except StampsUnsupported:
            with self._mutex:
                self._unsupported.add(name)
            return host.list_versions(scope)
        seen = self._clock()
        with self._mutex:
            known = dict(self._hosts.get(name, {}))
        reused = {
            fs: entry.snapshots
            for fs, stamp in stamped.stamps.items()
            if (entry := known.get(fs)) is not None and self._vouches(entry, stamp, seen)
        }
        stale = [fs for fs in stamped.state.filesystems if fs not in reused]
        started = self._clock()
        listed = host.list_snapshots(stale) if stale else {}
        fresh: dict[str, _Listed] = {}
        for fs in stale:
            stamp = stamped.stamps.get(fs)
            if stamp is None:
                continue
            before = known.get(fs)
            first_seen = before.stamp_seen if before is not None and before.stamp == stamp else seen
            fresh[fs] = _Listed(stamp, first_seen, started, listed.get(fs, ()))
        with self._mutex:
            entries = self._hosts.setdefault(name, {})
            for fs, entry in list(entries.items()):
                gone = _within(scope, fs) and fs not in stamped.state.filesystems
                if gone or seen - entry.listed >= self._max_age:  # gone, or of no more use
                    del entries[fs]
            entries.update(fresh)
        filesystems = {}
        for fs, state in stamped.state.filesystems.items():
            snapshots = reused[fs] if fs in reused else listed.get(fs, ())
            filesystems[fs] = FilesystemState(
                name=fs, versions=sort_versions([*snapshots, *state.versions])
            )
        return HostState(host=name, filesystems=filesystems)

    def known(self, host: str) -> set[str]:
        """The filesystems of `host` whose snapshots are kept."""
        with self._mutex:
            return set(self._hosts.get(host, {}))

    def forget(self, host: str, filesystems: Collection[str]) -> None:
        """List the snapshots of these filesystems of `host` again next time."""
        with self._mutex:
            entries = self._hosts.get(host, {})
            for fs in filesystems:
                entries.pop(fs, None)

    def _vouches(self, entry: _Listed, stamp: Stamp, now: float) -> bool:
        if entry.stamp != stamp or now - entry.listed >= self._max_age:
            return False
        if stamp.changed is None:  # no snapshot made or destroyed since the pool was loaded
            return not entry.snapshots
        return entry.listed >= entry.stamp_seen + self._settle


def _within(scope: ObservationScope | None, filesystem: str) -> bool:
    return scope is None or scope.everything or scope.contains(filesystem)
