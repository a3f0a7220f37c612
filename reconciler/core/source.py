"""One source filesystem while the planner works on it: its versions, indexes built once (and
only when asked for), and what its targets ask it to keep.

Owned here: `SourceFilesystem`, created by `core/planner.py` once per selected filesystem and
pass, read and annotated by `core/replication.py` for each target, then used for the source
retention batch. Pure.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from reconciler.core.desired import PolicyIntent
from reconciler.core.retention import Managed, RetentionMemo
from reconciler.core.state import FilesystemState, Version, VersionKind

PENDING_TXG = 1 << 62  # the createtxg given to the snapshot a pass plans: newer than any


def snapshot_names(snapshots: Sequence[Version]) -> tuple[str, ...]:
    return tuple([v.name for v in snapshots])


class SourceFilesystem:
    """A source filesystem, the snapshot this pass adds to it, and the protections its targets
    ask for (`protected`, `withheld`, `destroy_deps`, `holds_after`, `released`)."""

    def __init__(
        self,
        intent: PolicyIntent,
        state: FilesystemState,
        *,
        pending: Version | None = None,
        snapshot_action: int | None = None,
        retention: RetentionMemo | None = None,
    ) -> None:
        self.intent = intent
        self.host = intent.source_host
        self.name = state.name
        self.state = state
        self.pending = pending
        self.snapshot_action = snapshot_action if pending is not None else None
        self.retention = retention or RetentionMemo()
        self.versions = state.versions if pending is None else (*state.versions, pending)
        kind = VersionKind.SNAPSHOT
        self.snapshots = [v for v in self.versions if v.kind is kind]
        self.bookmarks = [v for v in self.versions if v.kind is not kind]
        self.txgs = [v.createtxg for v in self.snapshots]
        self.protected: set[str] = set()  # snapshots no destroy may touch in this pass
        self.withheld: list[str] = []  # why no destroy at all may run in this pass
        self.destroy_deps: list[int] = []  # actions the source destroys wait for
        self.holds_after: dict[str, set[str]] = {}  # hold tags kept or added in this pass
        self.released: dict[str, set[str]] = {}  # hold tags released in this pass
        self._managed: Managed | None = None
        self._held: list[Version] | None = None
        self._guids: dict[int, Version] = {}  # GUID → version, filled from the newest back
        self._unindexed = len(self.versions)  # versions[:_unindexed] are not in _guids yet

    @property
    def managed(self) -> Managed:
        """The managed snapshots, oldest first."""
        if self._managed is None:
            self._managed = self.intent.managed(snapshot_names(self.snapshots))
        return self._managed

    @property
    def held(self) -> list[Version]:
        """The snapshots that carry holds."""
        if self._held is None:
            self._held = [v for v in self.snapshots if v.holds]
        return self._held

    def snapshot_named(self, name: str) -> Version | None:
        for version in reversed(self.snapshots):  # what the planner asks for is recent
            if version.name == name:
                return version
        return None

    def after(self, base: Version | None) -> list[Version]:
        """Every snapshot newer than `base` (all of them for None), in createtxg order."""
        if base is None:
            return list(self.snapshots)
        return self.snapshots[bisect_right(self.txgs, base.createtxg) :]

    def replicated_after(self, base: Version | None) -> list[Version]:
        """The snapshots newer than `base` that a target may want (managed or included)."""
        replicated = self.intent.is_replicated
        return [v for v in self.after(base) if replicated(v.name)]

    def written_between(self, after_txg: int, upto_txg: int) -> int:
        """Sum of `written` of the snapshots with after_txg < createtxg <= upto_txg."""
        low = bisect_right(self.txgs, after_txg)
        high = bisect_right(self.txgs, upto_txg)
        return sum(v.written for v in self.snapshots[low:high])

    def version_with_guid(self, guid: int) -> Version | None:
        """The snapshot (or else bookmark) with this GUID.

        The index grows from the newest version back, only as far as asked: the common base of
        a target is usually among the newest versions, so most passes touch only a few."""
        guids = self._guids
        found = guids.get(guid)
        if found is not None and found.kind is VersionKind.SNAPSHOT:
            return found
        versions = self.versions
        index = self._unindexed
        while index:
            index -= 1
            version = versions[index]
            known = guids.get(version.guid)
            if known is None or (
                known.kind is VersionKind.BOOKMARK and version.kind is VersionKind.SNAPSHOT
            ):
                guids[version.guid] = version
            if version.guid == guid and version.kind is VersionKind.SNAPSHOT:
                self._unindexed = index
                return version
        self._unindexed = 0
        return guids.get(guid)
