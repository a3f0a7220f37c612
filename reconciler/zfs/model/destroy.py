"""`zfs destroy` of versions and `zfs rollback` in the in-memory ZFS model.

Owned here: `destroy_versions` and `rollback`, called by `ModelZFS`. As OpenZFS 2.3.2 does
(docs/zfs-verified.md): `zfs destroy fs@a,b,c` first refuses the whole batch if a snapshot in
it is the origin of the `%recv` clone of a partial receive (naming that one only, "snapshot has
dependent clones"); else it is one atomic `lzc_destroy_snaps` — held snapshots fail the whole
batch, each named ("it's being held"); names that do not exist are skipped, and only a batch
where none exists fails ("could not find any snapshots to destroy"). The port extends that rule
to bookmarks (which zfs destroys one per command) and to mixed batches: DatasetNotFound only
when none of the named versions exists. Destroying a snapshot adds its `written` to the next
snapshot's (or to the filesystem's). `zfs rollback` refuses while newer snapshots or bookmarks
exist; `-r` destroys them one by one (a held one fails, the others stay destroyed, and the
rollback does not happen).
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.zfs.errors import DatasetNotFound, SnapshotHeld, ZFSError
from reconciler.zfs.model.data import FsRecord, HostData, SnapRecord


def destroy_versions(data: HostData, filesystem: str, versions: Sequence[str]) -> None:
    fs = data.filesystem(filesystem)
    bad = [v for v in versions if not v.startswith(("@", "#"))]
    if bad:
        raise data.error(
            ZFSError, filesystem, f"invalid version '{bad[0]}': expected @snap or #mark"
        )
    names = {v[1:] for v in versions if v.startswith("@")}
    marks = [v[1:] for v in versions if v.startswith("#") and v[1:] in fs.bookmarks]
    found = [s for s in fs.snapshots if s.name in names]
    if not found and not marks:
        raise _none_found(data, fs, versions)
    cloned = next((s for s in found if s.name == fs.pinned()), None)
    if cloned is not None:
        raise _cloned(data, fs, cloned)
    held = [s for s in found if s.holds]
    if held:
        raise _held(data, fs, held, _HELD)
    for snap in found:
        _drop_snapshot(fs, snap)
    for mark in marks:
        del fs.bookmarks[mark]
    data.next_txg()
    if found:
        data.snapshots_changed(fs)


def rollback(data: HostData, filesystem: str, snapshot: str, destroy_newer: bool) -> None:
    fs, target = data.snapshot(filesystem, snapshot)
    label = f"{filesystem}@{snapshot}"
    newer = [s for s in fs.snapshots if s.createtxg > target.createtxg]
    marks = [m for m in fs.bookmarks.values() if m.createtxg > target.createtxg]
    if (newer or marks) and not destroy_newer:
        names = [f"{filesystem}@{s.name}" for s in newer] + [
            f"{filesystem}#{m.name}" for m in marks
        ]
        raise data.error(
            ZFSError,
            label,
            f"cannot rollback to '{label}': more recent snapshots or bookmarks "
            "exist\nuse '-r' to force deletion of the following snapshots and bookmarks:\n"
            + "\n".join(names),
        )
    busy = [s for s in newer if _busy_reason(fs, s) is not None]
    for snap in newer:
        if snap not in busy:
            _drop_snapshot(fs, snap)
    for mark in marks:
        del fs.bookmarks[mark.name]
    data.next_txg()
    if len(busy) < len(newer):
        data.snapshots_changed(fs)
    if busy:
        raise _held(data, fs, busy, _BUSY)
    fs.content, fs.written, fs.referenced = target.content, 0, target.referenced


def _none_found(data: HostData, fs: FsRecord, versions: Sequence[str]) -> DatasetNotFound:
    if any(v.startswith("@") for v in versions):
        names = ",".join(v[1:] for v in versions if v.startswith("@"))
        detail = "could not find any snapshots to destroy; check snapshot names."
        return data.error(DatasetNotFound, f"{fs.name}@{names}", detail)
    full = f"{fs.name}{versions[0]}"
    return data.error(DatasetNotFound, full, f"bookmark '{full}' does not exist.")


_HELD = "cannot destroy snapshot {0}: it's being held. Run 'zfs holds -r {0}' to see holders."
_BUSY = "cannot destroy '{0}': {1}"  # `zfs rollback -r` meeting a busy snapshot


def _busy_reason(fs: FsRecord, snap: SnapRecord) -> str | None:
    if snap.holds:
        return "dataset is busy"
    if snap.name == fs.pinned():
        return "snapshot has dependent clones"
    return None


def _cloned(data: HostData, fs: FsRecord, snap: SnapRecord) -> SnapshotHeld:
    """`zfs destroy` checks for clones before destroying anything, and stops at the first."""
    full = f"{fs.name}@{snap.name}"
    detail = (
        f"cannot destroy '{full}': snapshot has dependent clones\n"
        f"use '-R' to destroy the following datasets:\n{fs.name}/%recv"
    )
    return SnapshotHeld(data.host, full, detail, held=("@" + snap.name,))


def _held(data: HostData, fs: FsRecord, busy: list[SnapRecord], line: str) -> SnapshotHeld:
    lines = [line.format(f"{fs.name}@{s.name}", _busy_reason(fs, s)) for s in busy]
    return SnapshotHeld(
        data.host,
        f"{fs.name}@{','.join(s.name for s in busy)}",
        "\n".join(lines),
        held=tuple("@" + s.name for s in busy),
    )


def _drop_snapshot(fs: FsRecord, snap: SnapRecord) -> None:
    index = fs.snapshots.index(snap)
    if index + 1 < len(fs.snapshots):
        fs.snapshots[index + 1].written += snap.written
    else:
        fs.written += snap.written
    del fs.snapshots[index]
