"""The mutable state of one in-memory ZFS host, and the small rules every verb shares.

Owned here: `HostData` (filesystems, the pool-wide txg counter, the seeded GUID source, the
test clock and fault hooks) and the records it holds (`FsRecord`, `SnapRecord`, `MarkRecord`,
`PartialReceive`). Used by `zfs.py` (the port), `send.py`, `receive.py` and `destroy.py` of
this subpackage; nothing outside `reconciler/zfs/model/` touches these records.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.core.state import FilesystemKind
from reconciler.zfs.errors import DatasetNotFound, HostUnreachable, ZFSError
from reconciler.zfs.model.stream import StreamSnapshot, encode_token

BASE_EPOCH = 1_700_000_000  # creation time of txg 0 when the test sets no clock
EMPTY_CONTENT = "empty"
E = TypeVar("E", bound=ZFSError)
_NAME_CHAR = re.compile(r"[A-Za-z0-9_.: -]")  # zfs_namecheck valid_char: alnum, _ - . : space


@dataclass(eq=False)
class SnapRecord:
    name: str
    guid: int
    createtxg: int
    creation: int
    written: int  # bytes since the previous snapshot
    referenced: int
    content: str
    holds: set[str] = field(default_factory=set)


@dataclass(eq=False)
class MarkRecord:
    name: str
    guid: int
    createtxg: int
    creation: int
    referenced: int  # zfs lists a bookmark's `referenced` (its snapshot's); written is `-`


@dataclass(eq=False)
class PartialReceive:
    """What an interrupted `zfs receive -s` left behind (the `receive_resume_token` state)."""

    snapshot: StreamSnapshot  # what completing the receive creates
    sender_filesystem: str
    from_guid: int | None
    raw: bool
    bytes_received: int
    new_filesystem: bool  # the filesystem exists only because of this receive
    origin: str | None  # the target snapshot the partial state is cloned from (pinned)
    force: bool  # `-F`: completing rolls the target back to the from-snapshot first
    properties: tuple[tuple[str, str], ...]

    @property
    def token(self) -> str:
        return encode_token(
            to_guid=self.snapshot.guid,
            to_name=f"{self.sender_filesystem}@{self.snapshot.name}",
            from_guid=self.from_guid,
            bytes_received=self.bytes_received,
            raw=self.raw,
        )


@dataclass(eq=False)
class FsRecord:
    name: str
    kind: FilesystemKind = FilesystemKind.FILESYSTEM
    snapshots: list[SnapRecord] = field(default_factory=list)  # createtxg order
    bookmarks: dict[str, MarkRecord] = field(default_factory=dict)
    written: int = 0  # bytes written since the newest snapshot
    referenced: int = 0
    content: str = EMPTY_CONTENT
    local_props: dict[str, str] = field(default_factory=dict)
    received_props: dict[str, str] = field(default_factory=dict)
    encrypted: bool = False
    key_loaded: bool = True
    partial: PartialReceive | None = None
    guid: int = 0  # the filesystem's own (`HostData.new_filesystem_guid`)
    snapshots_changed: int | None = None  # as zfs: the second of the last snapshot change

    def snapshot(self, name: str) -> SnapRecord | None:
        return next((s for s in self.snapshots if s.name == name), None)

    def snapshot_by_guid(self, guid: int) -> SnapRecord | None:
        return next((s for s in self.snapshots if s.guid == guid), None)

    def newest(self) -> SnapRecord | None:
        return self.snapshots[-1] if self.snapshots else None

    def pinned(self) -> str | None:
        """The snapshot a partial incremental receive is cloned from (cannot be destroyed)."""
        return self.partial.origin if self.partial is not None else None


def parent_of(name: str) -> str:
    return name.rpartition("/")[0]


class HostData:
    """One host: its filesystems by name, one txg counter, GUIDs from a seeded generator."""

    def __init__(self, host: str, seed: int) -> None:
        self.host = host
        self.filesystems: dict[str, FsRecord] = {}
        self.pools: set[str] = set()
        self.txg = 1
        self.rng = random.Random(f"{seed}:{host}")  # host in the seed: no GUID shared by chance
        # filesystems' GUIDs from their own generator: snapshot GUIDs stay what they were
        self.filesystem_rng = random.Random(f"{seed}:{host}:filesystems")
        self.clock: int | None = None
        self.interrupt_after: int | None = None
        self.unreachable: str | None = None
        self._writes = 0

    def next_txg(self) -> int:
        self.txg += 1
        return self.txg

    def new_guid(self) -> int:
        return self.rng.getrandbits(64) or 1

    def new_filesystem_guid(self) -> int:
        return self.filesystem_rng.getrandbits(64) or 1

    def creation(self, txg: int) -> int:
        return self.clock if self.clock is not None else BASE_EPOCH + txg

    def snapshots_changed(self, fs: FsRecord) -> None:
        """`fs`'s snapshots were just created, destroyed or received: its stamp moves to the
        current second (the test's clock, else the txg's time), as `snapshots_changed` does;
        two changes within one second leave it the same."""
        fs.snapshots_changed = self.creation(self.txg)

    def new_content(self, previous: str, nbytes: int) -> str:
        self._writes += 1
        seed = f"{previous}|{self.host}|{self._writes}|{nbytes}".encode()
        return hashlib.sha256(seed).hexdigest()[:16]

    def check_reachable(self) -> None:
        if self.unreachable is not None:
            raise HostUnreachable(self.host, "-", self.unreachable)

    def error(self, cls: type[E], dataset: str, detail: str) -> E:
        return cls(self.host, dataset, detail)

    def filesystem(self, name: str) -> FsRecord:
        record = self.filesystems.get(name)
        if record is None:
            raise self.error(DatasetNotFound, name, f"cannot open '{name}': dataset does not exist")
        return record

    def snapshot(self, filesystem: str, name: str) -> tuple[FsRecord, SnapRecord]:
        record = self.filesystem(filesystem)
        snap = record.snapshot(name)
        if snap is None:
            full = f"{filesystem}@{name}"
            raise self.error(DatasetNotFound, full, f"cannot open '{full}': dataset does not exist")
        return record, snap

    def check_name(self, name: str, verb: str | None = None) -> None:
        """zfs_namecheck: ZFSError "<verb>: invalid character 'c' in name" (OpenZFS 2.3 wording
        for `zfs create` and `zfs snapshot`; `verb` defaults to "cannot use 'name'")."""
        bad = next((c for c in name if c != "/" and not _NAME_CHAR.fullmatch(c)), None)
        if bad is None and all(name.split("/")):
            return
        problem = f"invalid character '{bad}' in name" if bad else "empty component in name"
        prefix = verb if verb is not None else f"cannot use '{name}'"
        raise self.error(ZFSError, name, f"{prefix}: {problem}")
