"""`zfs send` in the in-memory ZFS model: a `SendRequest` → a `ModelStream`, or a typed error.

Owned here: `build_stream`, called by `ModelZFS.send`. The rules mirror OpenZFS 2.3
(`zfs_main.c` zfs_do_send, `libzfs_sendrecv.c`; wording checked on 2.3.2, docs/zfs-verified.md):
the to-snapshot must exist; an incremental base must exist and be older (createtxg), worded
one way for `-i` (snapshot or bookmark base) and another for `-I`; a bookmark may be the base
of `-i`, never of `-I`;
`-I` delivers every snapshot after the base up to the to-snapshot, foreign ones included;
`-t` resumes only while the token's snapshots (by GUID) still exist; a plain send of an
encrypted filesystem needs its key loaded, and cannot carry properties (`-p`) without `-w`.
"""

from __future__ import annotations

from reconciler.zfs.errors import DatasetNotFound, ResumeTokenStale, ZFSError
from reconciler.zfs.model.data import FsRecord, HostData, MarkRecord, SnapRecord
from reconciler.zfs.model.stream import ModelStream, StreamSnapshot, decode_token
from reconciler.zfs.port import SendRequest

Base = SnapRecord | MarkRecord


def build_stream(data: HostData, request: SendRequest) -> ModelStream:
    if request.resume_token is not None:
        return _resume_stream(data, request.resume_token, request)
    if request.to_snapshot is None:
        raise data.error(ZFSError, request.filesystem, "missing snapshot argument")
    fs, to = data.snapshot(request.filesystem, request.to_snapshot)
    label = f"{fs.name}@{to.name}"
    base = _base(data, fs, request, label)
    if base is not None and base.createtxg >= to.createtxg:
        raise data.error(ZFSError, label, _not_earlier(fs, base, to, request.intermediates))
    _check_keys(data, fs, request.options.raw, request.options.properties, label)
    return ModelStream(
        source_host=data.host,
        filesystem=fs.name,
        snapshots=_delivered(fs, base, to, request.intermediates),
        from_guid=None if base is None else base.guid,
        raw=request.options.raw and fs.encrypted,
        kind=fs.kind,
        properties=_properties(fs) if request.options.properties else (),
    )


def _base(data: HostData, fs: FsRecord, request: SendRequest, label: str) -> Base | None:
    version = request.from_version
    if version is None:
        return None
    name = version[1:]
    if version.startswith("#"):
        if request.intermediates:
            raise data.error(
                ZFSError, label, "Error: multiple snapshots cannot be sent from a bookmark."
            )
        mark = fs.bookmarks.get(name)
        if mark is not None:
            return mark
    elif version.startswith("@"):
        return data.snapshot(fs.name, name)[1]  # "cannot open 'fs@base': dataset does not exist"
    else:
        raise data.error(ZFSError, label, f"invalid incremental source '{version}'")
    raise data.error(
        DatasetNotFound,
        f"{fs.name}{version}",
        f"warning: cannot send '{label}': incremental source ({fs.name}{version}) does not exist",
    )


def _not_earlier(fs: FsRecord, base: Base, to: SnapRecord, intermediates: bool) -> str:
    label = f"{fs.name}@{to.name}"
    if not intermediates:  # a bookmark base too (`send -nvP` says "Invalid cross-device link")
        return f"warning: cannot send '{label}': not an earlier snapshot from the same fs"
    # `-I`: zfs words a newer base as missing (it looks for it among the older snapshots)
    why = "is not earlier than it" if base is to else "does not exist"
    return f"WARNING: could not send {label}:\nincremental source ({fs.name}@{base.name}) {why}"


def _delivered(
    fs: FsRecord, base: Base | None, to: SnapRecord, intermediates: bool
) -> tuple[StreamSnapshot, ...]:
    if base is None:
        return (_stream_snapshot(to, to.referenced),)
    between = [s for s in fs.snapshots if base.createtxg < s.createtxg <= to.createtxg]
    if intermediates:
        return tuple(_stream_snapshot(s, s.written) for s in between)
    return (_stream_snapshot(to, sum(s.written for s in between)),)


def _stream_snapshot(snap: SnapRecord, payload: int) -> StreamSnapshot:
    return StreamSnapshot(
        name=snap.name,
        guid=snap.guid,
        createtxg=snap.createtxg,
        creation=snap.creation,
        referenced=snap.referenced,
        content=snap.content,
        payload=payload,
    )


def _properties(fs: FsRecord) -> tuple[tuple[str, str], ...]:
    """What `send -p` carries: the properties set locally or received on the filesystem."""
    return tuple(sorted({**fs.received_props, **fs.local_props}.items()))


def _check_keys(data: HostData, fs: FsRecord, raw: bool, properties: bool, label: str) -> None:
    if not fs.encrypted or raw:
        return
    if not fs.key_loaded:
        raise data.error(
            ZFSError, label, f"warning: cannot send '{label}': dataset key must be loaded"
        )
    if properties:
        raise data.error(
            ZFSError,
            label,
            f"cannot send {label}: encrypted dataset {fs.name} may not be sent "
            f"with properties without the raw flag\nwarning: cannot send '{label}': backup failed",
        )


def _resume_stream(data: HostData, token: str, request: SendRequest) -> ModelStream:
    decoded = decode_token(token)
    if decoded is None:
        raise data.error(
            ResumeTokenStale, "-", "cannot resume send: resume token is corrupt (invalid format)"
        )
    fs_name, _, snap_name = decoded.to_name.partition("@")
    fs = data.filesystems.get(fs_name)
    to = None if fs is None else fs.snapshot_by_guid(decoded.to_guid)
    if fs is None or to is None:
        same_name = fs is not None and fs.snapshot(snap_name) is not None
        why = "is no longer the same snapshot used in" if same_name else "used in the"
        gone = "the initial send" if same_name else "initial send no longer exists"
        raise data.error(
            ResumeTokenStale,
            decoded.to_name,
            f"cannot resume send: '{decoded.to_name}' {why} {gone}",
        )
    base = _base_by_guid(fs, decoded.from_guid)
    if decoded.from_guid is not None and base is None:
        raise data.error(
            ResumeTokenStale,
            decoded.to_name,
            f"cannot resume send: incremental source {decoded.from_guid:#x} no longer exists",
        )
    label = f"{fs.name}@{to.name}"
    _check_keys(data, fs, decoded.raw or request.options.raw, False, label)
    (snapshot,) = _delivered(fs, base, to, intermediates=False)
    return ModelStream(
        source_host=data.host,
        filesystem=fs.name,
        snapshots=(snapshot,),
        from_guid=decoded.from_guid,
        raw=decoded.raw and fs.encrypted,
        kind=fs.kind,
        resume_offset=decoded.bytes_received,
        resuming=True,
    )


def _base_by_guid(fs: FsRecord, guid: int | None) -> Base | None:
    if guid is None:
        return None
    snap = fs.snapshot_by_guid(guid)
    if snap is not None:
        return snap
    return next((m for m in fs.bookmarks.values() if m.guid == guid), None)
