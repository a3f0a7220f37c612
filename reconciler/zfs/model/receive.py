"""`zfs receive -s -u` in the in-memory ZFS model: a `ModelStream` lands on a filesystem.

Owned here: `receive` and `abort_resume`, called by `ModelZFS`. The checks mirror OpenZFS 2.3
(`libzfs_sendrecv.c` zfs_receive_one, `dmu_recv.c` recv_begin_check_existing_impl), in their
order, and were run on 2.3.2 (docs/zfs-verified.md): a full stream needs a missing filesystem
(its parent present) or `-F` on one without snapshots; an incremental needs its from-snapshot
(by GUID) on the target and no change since it, and a raw one needs it to be the newest; a
partial receive blocks every other receive; a snapshot already there (same GUID) is consumed
and ignored; a filesystem-only `-o` property on a volume is refused. A `-I` stream is a package
of substreams received one by one, so a break keeps those already complete. Received snapshots
keep the sender's GUID and creation time and get the target's own createtxg.

`-F` rolls back at the *end* of a substream: a held snapshot after the base fails the receive
("dataset is busy") once the whole stream is in, and the partial state stays (a token), as a
break would leave it. A resume re-checks the target: without `-F`, a target changed since the
partial state began is refused, and so is a full stream into an existing filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from reconciler.core.plan import FILESYSTEM_ONLY_PROPERTIES, ReceiveOptions
from reconciler.core.state import FilesystemKind
from reconciler.zfs.errors import (
    DatasetExists,
    DatasetNotFound,
    ModifiedSinceSnapshot,
    ReceiveRefused,
    StreamInterrupted,
)
from reconciler.zfs.model.data import FsRecord, HostData, PartialReceive, SnapRecord, parent_of
from reconciler.zfs.model.stream import ModelStream, StreamSnapshot

# `zfs_prop.c` properties of ZFS_TYPE_FILESYSTEM only: `recv -o` of one onto a volume stream
# fails ("does not apply to datasets of this type"); `-x` of one only warns.
# the properties real zfs refuses on a volume (verified list, docs/zfs-verified.md §25)
FILESYSTEM_ONLY = FILESYSTEM_ONLY_PROPERTIES
NEW_FS = "cannot receive new filesystem stream"
INCREMENTAL = "cannot receive incremental stream"
RESUME = "cannot receive resume stream"


@dataclass(frozen=True, slots=True)
class _Landing:
    """Where one substream lands, and what completing it does first."""

    fs: FsRecord | None  # None: the receive creates the filesystem
    origin: str | None = None  # the target snapshot it builds on (pinned while partial)
    rollback_to: SnapRecord | None = None  # `-F` incremental: drop the snapshots after it
    skip: bool = False  # the snapshot is already there (same GUID): consumed and ignored


def receive(data: HostData, target: str, stream: ModelStream, options: ReceiveOptions) -> None:
    cut, data.interrupt_after = data.interrupt_after, None
    if cut is not None and cut >= stream.size:
        cut = None
    _check_properties(data, target, stream, options)
    if stream.resuming:
        _receive_resume(data, target, stream, options, cut)
        return
    start = 0
    for index, snap in enumerate(stream.snapshots):
        from_guid = stream.from_guid if index == 0 else stream.snapshots[index - 1].guid
        landing = _check(data, target, stream, snap, from_guid, options)
        if cut is not None and cut < start + snap.payload:
            _interrupt(data, target, stream, snap, from_guid, landing, cut - start)
        if not landing.skip:
            fs = landing.fs if landing.fs is not None else _new_filesystem(data, target, stream)
            if _rollback_blocked(fs, landing.rollback_to):
                partial = _leave_partial(data, fs, stream, snap, from_guid, landing, snap.payload)
                raise data.error(ReceiveRefused, fs.name, f"{_verb(partial)}: dataset is busy")
            _complete(data, fs, landing, snap, stream.properties, options)
        start += snap.payload


def abort_resume(data: HostData, target: str) -> None:
    fs = data.filesystem(target)
    if fs.partial is None:
        raise data.error(
            DatasetNotFound,
            target,
            f"'{target}' does not have any resumable receive state to abort",
        )
    if fs.partial.new_filesystem:
        del data.filesystems[target]
    else:
        fs.partial = None
    data.next_txg()


def _check_properties(
    data: HostData, target: str, stream: ModelStream, options: ReceiveOptions
) -> None:
    if stream.kind is not FilesystemKind.VOLUME:
        return
    wrong = [name for name, _ in options.override if name in FILESYSTEM_ONLY]
    if wrong:
        verb = RESUME if stream.resuming else NEW_FS if stream.from_guid is None else INCREMENTAL
        detail = f"{verb}: property '{wrong[0]}' does not apply to datasets of this type"
        raise data.error(ReceiveRefused, target, detail)


def _check(
    data: HostData,
    target: str,
    stream: ModelStream,
    snap: StreamSnapshot,
    from_guid: int | None,
    options: ReceiveOptions,
) -> _Landing:
    fs = data.filesystems.get(target)
    if from_guid is None:
        return _check_full(data, target, fs, stream, options)
    if fs is None:
        raise data.error(
            DatasetNotFound, target, f"{INCREMENTAL}: destination '{target}' does not exist"
        )
    return _check_incremental(data, fs, stream, snap, from_guid, options)


def _check_full(
    data: HostData, target: str, fs: FsRecord | None, stream: ModelStream, options: ReceiveOptions
) -> _Landing:
    if fs is None:
        _check_new_parent(data, target, stream)
        return _Landing(None)
    if not options.force:
        raise data.error(
            ReceiveRefused,
            target,
            f"{NEW_FS}: destination '{target}' exists\nmust specify -F to overwrite it",
        )
    if fs.snapshots:
        raise data.error(
            ReceiveRefused,
            target,
            f"{NEW_FS}: destination has snapshots (eg. "
            f"{target}@{fs.snapshots[0].name})\nmust destroy them to overwrite it",
        )
    if fs.encrypted or stream.raw:
        raise data.error(
            ReceiveRefused,
            target,
            f"{NEW_FS}: zfs receive -F cannot be used to destroy an "
            "encrypted filesystem or overwrite an unencrypted one with an encrypted one",
        )
    _check_no_partial(data, fs, NEW_FS)
    return _Landing(fs)


def _check_new_parent(data: HostData, target: str, stream: ModelStream) -> None:
    parent_name = parent_of(target)
    if not parent_name:
        raise data.error(
            DatasetNotFound, target, f"{NEW_FS}: destination '{target}' does not exist"
        )
    data.check_name(target)
    parent = data.filesystems.get(parent_name)
    if parent is None:
        raise data.error(
            DatasetNotFound,
            parent_name,
            f"cannot open '{parent_name}': dataset does not exist\n"
            f"{NEW_FS}: unable to restore to destination",
        )
    if parent.kind is FilesystemKind.VOLUME:
        raise data.error(
            ReceiveRefused, target, f"{NEW_FS}: parent '{parent_name}' is not a filesystem"
        )
    if not stream.raw and parent.encrypted and not parent.key_loaded:
        raise data.error(ReceiveRefused, target, f"{NEW_FS}: inherited key must be loaded")


def _check_incremental(
    data: HostData,
    fs: FsRecord,
    stream: ModelStream,
    snap: StreamSnapshot,
    from_guid: int,
    options: ReceiveOptions,
) -> _Landing:
    if stream.raw and not fs.encrypted:
        raise data.error(
            ReceiveRefused,
            fs.name,
            f"{INCREMENTAL}: cannot perform raw receive on top of existing unencrypted dataset",
        )
    _check_no_partial(data, fs, INCREMENTAL)
    if fs.snapshot(snap.name) is not None:
        if fs.snapshot_by_guid(snap.guid) is not None:
            return _Landing(fs, skip=True)
        full = f"{fs.name}@{snap.name}"
        raise data.error(
            DatasetExists, full, f"cannot restore to {full}: destination already exists"
        )
    base = fs.snapshot_by_guid(from_guid)
    if base is None:
        raise data.error(
            ReceiveRefused,
            fs.name,
            f"{INCREMENTAL}: most recent snapshot of {fs.name} does not\nmatch incremental source",
        )
    if not stream.raw and fs.encrypted and not fs.key_loaded:
        raise data.error(ReceiveRefused, fs.name, f"{INCREMENTAL}: inherited key must be loaded")
    if options.force:  # the rollback happens at the end (see _rollback_blocked)
        return _Landing(fs, origin=base.name, rollback_to=base)
    newest = fs.newest()
    if fs.content != base.content or fs.written > 0 or (stream.raw and newest is not base):
        raise data.error(
            ModifiedSinceSnapshot,
            fs.name,
            f"{INCREMENTAL}: destination {fs.name} has been modified\nsince most recent snapshot",
        )
    return _Landing(fs, origin=None if newest is None else newest.name)


def _check_no_partial(data: HostData, fs: FsRecord, verb: str) -> None:
    if fs.partial is not None:
        raise data.error(
            ReceiveRefused,
            fs.name,
            f"{verb}: destination {fs.name} contains "
            'partially-complete state from "zfs receive -s".',
        )


def _later(fs: FsRecord, base: SnapRecord) -> list[SnapRecord]:
    return [s for s in fs.snapshots if s.createtxg > base.createtxg]


def _rollback_blocked(fs: FsRecord, base: SnapRecord | None) -> bool:
    """`-F`: destroying the snapshots after the base fails on a held one (EBUSY)."""
    return base is not None and any(s.holds for s in _later(fs, base))


def _new_filesystem(data: HostData, target: str, stream: ModelStream) -> FsRecord:
    parent = data.filesystems[parent_of(target)]
    record = FsRecord(
        name=target,
        guid=data.new_filesystem_guid(),
        kind=stream.kind,
        encrypted=stream.raw or parent.encrypted,
        key_loaded=not stream.raw and (parent.key_loaded or not parent.encrypted),
    )
    data.filesystems[target] = record
    return record


def _complete(
    data: HostData,
    fs: FsRecord,
    landing: _Landing,
    snap: StreamSnapshot,
    properties: tuple[tuple[str, str], ...],
    options: ReceiveOptions,
) -> None:
    if landing.rollback_to is not None:
        fs.snapshots = [s for s in fs.snapshots if s.createtxg <= landing.rollback_to.createtxg]
    txg = data.next_txg()
    fs.snapshots.append(
        SnapRecord(
            name=snap.name,
            guid=snap.guid,
            createtxg=txg,
            creation=snap.creation,
            written=snap.payload,
            referenced=snap.referenced,
            content=snap.content,
        )
    )
    fs.content, fs.written, fs.referenced = snap.content, 0, snap.referenced
    fs.partial = None
    data.snapshots_changed(fs)
    _apply_properties(fs, properties, options)


def _apply_properties(
    fs: FsRecord, properties: tuple[tuple[str, str], ...], options: ReceiveOptions
) -> None:
    """`-p` values arrive as received; `-x P` keeps P from arriving; `-o P=V` sets P locally."""
    excluded = {name for name in options.inherit if name not in fs.local_props}
    if properties:
        fs.received_props = {k: v for k, v in properties if k not in excluded}
    for name in excluded:
        fs.received_props.pop(name, None)
    fs.local_props.update(options.override)


def _interrupt(
    data: HostData,
    target: str,
    stream: ModelStream,
    snap: StreamSnapshot,
    from_guid: int | None,
    landing: _Landing,
    received: int,
) -> NoReturn:
    if landing.skip:
        raise data.error(StreamInterrupted, target, "cannot receive: failed to read from stream")
    fs = _new_filesystem(data, target, stream) if landing.fs is None else landing.fs
    partial = _leave_partial(data, fs, stream, snap, from_guid, landing, received)
    raise _interrupted(data, fs, partial)


def _leave_partial(
    data: HostData,
    fs: FsRecord,
    stream: ModelStream,
    snap: StreamSnapshot,
    from_guid: int | None,
    landing: _Landing,
    received: int,
) -> PartialReceive:
    """The `receive_resume_token` state `zfs receive -s` leaves when it does not complete."""
    fs.partial = PartialReceive(
        snapshot=snap,
        sender_filesystem=stream.filesystem,
        from_guid=from_guid,
        raw=stream.raw,
        bytes_received=received,
        new_filesystem=landing.fs is None,
        origin=landing.origin,
        force=landing.rollback_to is not None,
        properties=stream.properties,
    )
    _count_partial_bytes(fs)
    data.next_txg()
    return fs.partial


def _count_partial_bytes(fs: FsRecord) -> None:
    """A filesystem that exists only for a partial full receive lists what has arrived as its
    `written` and `referenced`; partial state on an existing filesystem lives in its hidden
    `%recv` child and does not count."""
    if fs.partial is not None and fs.partial.new_filesystem:
        fs.written = fs.referenced = fs.partial.bytes_received


def _verb(partial: PartialReceive) -> str:
    return NEW_FS if partial.from_guid is None else INCREMENTAL


def _interrupted(data: HostData, fs: FsRecord, partial: PartialReceive) -> StreamInterrupted:
    verb = _verb(partial)
    return data.error(
        StreamInterrupted,
        fs.name,
        f"{verb}: checksum mismatch or incomplete stream.\n"
        "Partially received snapshot is saved.\n"
        "A resuming stream can be generated on the sending system by running:\n"
        f"    zfs send -t {partial.token}",
    )


def _receive_resume(
    data: HostData, target: str, stream: ModelStream, options: ReceiveOptions, cut: int | None
) -> None:
    fs = data.filesystems.get(target)
    if fs is None:
        raise data.error(
            DatasetNotFound, target, f"{RESUME}: destination '{target}' does not exist"
        )
    partial = fs.partial
    snap = stream.to_snapshot
    if (
        partial is None
        or partial.snapshot.guid != snap.guid
        or (partial.bytes_received != stream.resume_offset)
    ):
        raise data.error(
            ReceiveRefused,
            target,
            f"{RESUME}: destination {target} has no partially received "
            "state that this stream continues",
        )
    _check_resume_target(data, fs, partial, options)
    if cut is not None:
        partial.bytes_received += cut
        _count_partial_bytes(fs)
        data.next_txg()
        raise _interrupted(data, fs, partial)
    origin = fs.snapshot(partial.origin) if partial.origin else None
    rollback_to = origin if options.force else None
    if _rollback_blocked(fs, rollback_to):  # zfs words EBUSY under a token this way
        raise data.error(
            ReceiveRefused,
            target,
            f"{RESUME}: destination {target} contains "
            'partially-complete state from "zfs receive -s".',
        )
    landing = _Landing(fs, origin=partial.origin, rollback_to=rollback_to)
    _complete(data, fs, landing, partial.snapshot, partial.properties, options)


def _check_resume_target(
    data: HostData, fs: FsRecord, partial: PartialReceive, options: ReceiveOptions
) -> None:
    """What `zfs receive -s` re-checks when the stream is a resume (`send -t`)."""
    if options.force:
        return
    if partial.from_guid is None and not partial.new_filesystem:
        raise data.error(
            ReceiveRefused,
            fs.name,
            f"{RESUME}: Resuming recv on existing destination '{fs.name}'\n"
            "must specify -F to overwrite it",
        )
    origin = fs.snapshot(partial.origin) if partial.origin else None
    if origin is None:  # a new filesystem: nothing else can have changed it
        return
    if partial.force and _later(fs, origin):  # zfs maps this ENOTSUP to the words below
        raise data.error(
            ReceiveRefused,
            fs.name,
            f"{RESUME}: kernel modules must be upgraded to receive this stream.",
        )
    if fs.written > 0 or fs.content != origin.content:
        raise data.error(
            ModifiedSinceSnapshot,
            fs.name,
            f"{RESUME}: destination {fs.name} has been modified\nsince most recent snapshot",
        )
