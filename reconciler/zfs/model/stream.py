"""Send streams and resume tokens of the in-memory ZFS model.

Owned here: `ModelStream` (what `ModelZFS.send` returns and `ModelZFS.receive` consumes),
`StreamSnapshot` (one snapshot a stream delivers), and the model's `receive_resume_token`
codec (`encode_token` / `decode_token`). Used inside `reconciler/zfs/model/` only; tests read
a stream's fields to check what a send would carry.

A model token looks like a real one (`1-<checksum>-<length>-<hex payload>`) and carries what
`zfs send -nv -t` would print: toguid, fromguid, toname, bytes, rawok.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from reconciler.core.state import FilesystemKind, ResumeToken
from reconciler.zfs.token import ResumeTokenCorrupt, resume_token_from_fields

TOKEN_VERSION = 1


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """One snapshot in a stream, as it was on the sender."""

    name: str  # short name
    guid: int
    createtxg: int  # on the sender (the receiver gives it its own)
    creation: int  # kept by the receiver, as zfs does
    referenced: int  # all data of the snapshot
    content: str  # fingerprint of the data
    payload: int  # bytes in the stream; the receiver's `written` of this snapshot


@dataclass(frozen=True, slots=True)
class ModelStream:
    """`zfs send` output: one or more snapshot substreams from one filesystem of one host."""

    source_host: str
    filesystem: str
    snapshots: tuple[StreamSnapshot, ...]  # oldest first
    from_guid: int | None  # None for a full stream
    raw: bool  # a raw stream of an encrypted filesystem (plain streams of unencrypted data: False)
    kind: FilesystemKind = FilesystemKind.FILESYSTEM
    properties: tuple[tuple[str, str], ...] = ()  # with `send -p`
    resume_offset: int = 0  # bytes of the first snapshot already received (`send -t`)
    resuming: bool = False

    @property
    def size(self) -> int:
        return sum(s.payload for s in self.snapshots) - self.resume_offset

    @property
    def to_snapshot(self) -> StreamSnapshot:
        return self.snapshots[-1]


def encode_token(
    *,
    to_guid: int,
    to_name: str,
    from_guid: int | None,
    bytes_received: int,
    raw: bool,
) -> str:
    payload: dict[str, object] = {
        "toguid": to_guid,
        "toname": to_name,
        "bytes": bytes_received,
        "object": 1,
        "offset": bytes_received,
    }
    if from_guid is not None:
        payload["fromguid"] = from_guid
    if raw:
        payload["rawok"] = True
    packed = json.dumps(payload, sort_keys=True).encode()
    compressed = zlib.compress(packed, 9)
    checksum = zlib.adler32(compressed)
    return f"{TOKEN_VERSION}-{checksum:x}-{len(packed):x}-{compressed.hex()}"


def decode_token(token: str) -> ResumeToken | None:
    """The decoded token, or None when it is not a token this model made (corrupt)."""
    parts = token.split("-", 3)
    if len(parts) != 4 or parts[0] != str(TOKEN_VERSION):
        return None
    try:
        compressed = bytes.fromhex(parts[3])
        if zlib.adler32(compressed) != int(parts[1], 16):
            return None
        packed = zlib.decompress(compressed)
        payload = json.loads(packed)
    except (ValueError, zlib.error):
        return None
    if len(packed) != int(parts[2], 16) or not isinstance(payload, dict):
        return None
    return _token_from_payload(token, payload)


def _token_from_payload(token: str, payload: dict[str, object]) -> ResumeToken | None:
    try:
        return resume_token_from_fields(token, payload)
    except ResumeTokenCorrupt:
        return None
