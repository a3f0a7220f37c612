"""Protection of the newest common snapshot between a source filesystem and one target.

Owned here: `PairProtection`, the part of planning one (source filesystem, target) pair that
keeps replication incremental: the replication cursor bookmark on the source, the holds of the
policy's tag on the newest common snapshot (on both sides, for `resumable`), the releases of
holds it supersedes, and what the source keeps for a target that cannot be observed. Also the
notices and messages these share with the planner. Pure; `core/replication.py` builds on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.builder import PlanBuilder
from reconciler.core.desired import TargetIntent
from reconciler.core.names import cursor_bookmark
from reconciler.core.plan import (
    BookmarkAction,
    DestroyAction,
    HoldAction,
    Notice,
    NoticeKind,
    Reason,
    ReleaseAction,
)
from reconciler.core.source import SourceFilesystem
from reconciler.core.state import Version
from reconciler.manifest.models import Protection


@dataclass(frozen=True, slots=True)
class Side:
    """Common fields of every action this module adds for one (policy, target)."""

    policy: str
    target: str

    def fields(self, **more: Any) -> dict[str, Any]:
        return {"policy": self.policy, "target": self.target, **more}


def keep_for_unobserved_target(
    builder: PlanBuilder, source: SourceFilesystem, target: TargetIntent
) -> None:
    """Keep every source snapshot the unobserved target may still need (guarantee 2)."""
    cursor = _newest_cursor(source, target)
    if cursor is None:
        if target.protection is not Protection.NONE or _has_any_managed(source):
            source.withheld.append(
                f"target {target.name} on {target.host} could not be observed and no "
                "replication cursor bookmark tells what it has"
            )
        return
    source.protected.update(v.name for v in source.replicated_after(cursor))
    for version in source.held:  # its hold stays, so the snapshot stays held
        if target.hold_tag in version.holds:
            source.holds_after.setdefault(version.name, set()).add(target.hold_tag)


def _has_any_managed(source: SourceFilesystem) -> bool:
    return bool(source.managed.names)


def _newest_cursor(source: SourceFilesystem, target: TargetIntent) -> Version | None:
    newest: Version | None = None
    for version in source.bookmarks:
        if source.intent.parse_cursor(target.name, version.name) is not None:
            newest = version
    return newest


class PairProtection:
    """Cursor bookmark and holds for one (source filesystem, target) pair.

    `core/replication.py`'s pair planner inherits this and sets the attributes below before it
    calls `_cursor` and `_holds` with the newest common snapshot the pass leaves behind."""

    b: PlanBuilder
    source: SourceFilesystem
    target: TargetIntent
    side: Side
    target_fs: str
    target_held: list[Version]
    sends: list[int]
    rolled_back: set[str]
    target_releases: list[int]
    pair_releases: list[int]  # this pair's releases in this pass

    def _bookmarked(self, name: str) -> bool:
        snapshot = self.source.snapshot_named(name)
        if snapshot is None:
            return False
        return any(v.guid == snapshot.guid and v.guid != 0 for v in self.source.bookmarks)

    def _protect(self, newest: str | None) -> None:
        """The cursor bookmark and the holds of the newest common snapshot `newest`, then
        the drop of the cursor bookmarks they supersede."""
        self.pair_releases = []
        cursor = self._cursor(newest)
        self._holds(newest)
        if cursor is not None:
            self._drop_stale_cursors(*cursor)

    def _cursor(self, newest: str | None) -> tuple[str | None, tuple[int, ...]] | None:
        """Bookmark the newest replicated snapshot: (the cursor wanted, the bookmark action).

        With protection `none` no cursor is kept. Nothing is dropped while the pair has no
        common snapshot (None): a cursor bookmark may then be the only incremental base
        left."""
        if newest is None:
            return None
        keep = self.target.protection is not Protection.NONE
        wanted = cursor_bookmark(newest, self.target.name) if keep else None
        existing = {v.name for v in self.source.bookmarks}
        deps: tuple[int, ...] = ()
        if wanted is not None and wanted not in existing:
            bookmark_id = self.b.add(
                BookmarkAction,
                **self.side.fields(
                    host=self.source.host,
                    filesystem=self.source.name,
                    snapshot="@" + newest,
                    bookmark="#" + wanted,
                    reason=Reason.REPLICATION_CURSOR,
                    message=f"remember that {self.target.name} has @{newest}, even after the "
                    "snapshot is gone",
                    depends_on=tuple(self.sends[-1:]),
                ),
            )
            deps = (bookmark_id,)
            self.source.destroy_deps.append(bookmark_id)
        return wanted, deps

    def _drop_stale_cursors(self, wanted: str | None, deps: tuple[int, ...]) -> None:
        """Destroy the pair's cursor bookmarks other than `wanted`, after the new cursor
        (`deps`) and after the releases of this pass's holds: until those are released, the
        old cursor names the snapshot they sit on (`core/details.py` details it)."""
        existing = {v.name for v in self.source.bookmarks}
        stale = sorted(
            name
            for name in existing
            if name != wanted and self.source.intent.parse_cursor(self.target.name, name)
        )
        if stale:
            self.b.add(
                DestroyAction,
                **self.side.fields(
                    host=self.source.host,
                    filesystem=self.source.name,
                    versions=tuple("#" + name for name in stale),
                    reason=Reason.CURSOR_SUPERSEDED,
                    message=(
                        f"replication cursor of {self.target.name} moved to #{wanted}"
                        if wanted
                        else f"protection of {self.target.name} is none: no cursor is kept"
                    ),
                    depends_on=(*deps, *self.pair_releases),
                ),
            )

    def _holds(self, newest: str | None) -> None:
        """Resumable protection: our hold sits on the newest common snapshot, on both sides."""
        keep = newest if self.target.protection is Protection.RESUMABLE else None
        tag = self.target.hold_tag
        source_hold = self._hold_side(
            self.source.host, self.source.name, self.source.held, keep, tag
        )
        if keep is not None:
            self.source.holds_after.setdefault(keep, set()).add(tag)
        self._release_side(
            self.source.host,
            self.source.name,
            self.source.held,
            keep,
            tag,
            source_hold,
            self.source.destroy_deps,
        )
        target_hold = self._hold_side(self.target.host, self.target_fs, self.target_held, keep, tag)
        self._release_side(
            self.target.host,
            self.target_fs,
            self.target_held,
            keep,
            tag,
            target_hold,
            self.target_releases,
        )

    def _hold_side(
        self, host: str, filesystem: str, versions: Sequence[Version], keep: str | None, tag: str
    ) -> int | None:
        if keep is None:
            return None
        held = any(v.name == keep and tag in v.holds for v in versions if v.holds)
        if held:
            return None
        return self.b.add(
            HoldAction,
            **self.side.fields(
                host=host,
                filesystem=filesystem,
                snapshot="@" + keep,
                tag=tag,
                reason=Reason.PROTECT_NEWEST_COMMON,
                message=f"hold the newest snapshot common with {self.target.name} so it stays "
                "the incremental base",
                depends_on=tuple(self.sends[-1:]),
            ),
        )

    def _release_side(
        self,
        host: str,
        filesystem: str,
        versions: Sequence[Version],
        keep: str | None,
        tag: str,
        hold_id: int | None,
        into: list[int],
    ) -> None:
        for version in versions:
            if not version.holds or tag not in version.holds or version.name == keep:
                continue
            if version.name in self.rolled_back:
                continue
            if host == self.source.host and filesystem == self.source.name:
                self.source.released.setdefault(version.name, set()).add(tag)
            self.pair_releases.append(
                self.b.add(
                    ReleaseAction,
                    **self.side.fields(
                        host=host,
                        filesystem=filesystem,
                        snapshot="@" + version.name,
                        tag=tag,
                        reason=Reason.HOLD_SUPERSEDED,
                        message=(
                            f"@{keep} is now the newest snapshot common with {self.target.name}"
                            if keep
                            else f"protection of {self.target.name} is "
                            f"{self.target.protection.value}: no hold needed"
                        ),
                        depends_on=(hold_id,) if hold_id is not None else (),
                    ),
                )
            )
            into.append(self.pair_releases[-1])

    def _held_notice(self, host: str, filesystem: str, name: str, tags: Sequence[str]) -> None:
        held_notice(self.b, host, filesystem, name, tags, self.side.policy, self.side.target)


def held_notice(
    builder: PlanBuilder,
    host: str,
    filesystem: str,
    name: str,
    tags: Sequence[str],
    policy: str,
    target: str | None,
) -> None:
    """Tell that a snapshot retention would destroy stays, because others hold it."""
    builder.notice(
        Notice(
            NoticeKind.DESTROYS_WITHHELD,
            host=host,
            message=f"{filesystem}@{name} is held by {', '.join(tags)}; it is not destroyed",
            policy=policy,
            target=target,
            filesystem=filesystem,
        )
    )


def retention_message(reason: Reason, count: int, whose: str) -> str:
    """The human message of a retention destroy batch."""
    what = f"{count} snapshot{'s' if count != 1 else ''}"
    if reason is Reason.RETENTION_GRID_EXPIRED:
        return f"{what} older than every bucket of the retention grid of {whose}"
    if reason is Reason.RETENTION_GRID_BUCKET_FULL:
        return f"{what} in retention grid buckets of {whose} that already keep older ones"
    return f"{what} that no retention rule of {whose} keeps"
