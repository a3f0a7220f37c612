"""The ZFS port: the operations the executor and observers need from one host.

Two implementations: the in-memory model (`zfs/model/`, for unit tests) and the real driver
(the next layer, running `zfs` through a command runner). The same contract tests run against
both. Every operation either succeeds or raises a `reconciler.zfs.errors.ZFSError` subclass.

Names: `filesystem` is a full dataset name (`tank/home`); `snapshot` and `bookmark` are short
names without sigil (`zr_20261126T041500Z`); `version` is a short name with its sigil
(`@snap` or `#mark`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.core.plan import ReceiveOptions, SendOptions
from reconciler.core.scope import ObservationScope
from reconciler.core.state import FilesystemState, HostState, Stamp, Version
from reconciler.zfs.errors import ZFSError


@dataclass(frozen=True, slots=True)
class SendRequest:
    """What to send: a full stream, an incremental (`-i` / `-I`), or a resume (`-t`)."""

    filesystem: str
    to_snapshot: str | None  # short name; None only when resuming from a token
    from_version: str | None = None  # "@snap" or "#mark"; None for a full stream
    intermediates: bool = False  # -I instead of -i
    resume_token: str | None = None
    options: SendOptions = field(default_factory=SendOptions)


@dataclass(frozen=True, slots=True)
class StampedListing:
    """`ZFS.list_stamps`: every filesystem of a scope with its bookmarks only (as
    `list_versions` shows them), and each filesystem's `Stamp`."""

    state: HostState
    stamps: Mapping[str, Stamp]


@dataclass(frozen=True, slots=True)
class HookRun:
    """`ZFS.run_hook`: how a hook command ended. `returncode` None: it was stopped at its
    timeout (or could not start, `stderr` says why)."""

    returncode: int | None
    stderr: str = ""
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0


class SendStream(Protocol):
    """An opaque stream produced by `ZFS.send` and consumed by `ZFS.receive` of another host."""


class ZFS(Protocol):
    """The zfs operations of one host."""

    @property
    def host(self) -> str: ...

    def observe(self, scope: ObservationScope | None = None) -> HostState:
        """Every filesystem and volume in `scope` (None: the whole host) with its snapshots
        and bookmarks."""
        ...

    def list_versions(self, scope: ObservationScope | None = None) -> HostState:
        """`observe(scope)` cheaply: every filesystem and version by name, GUID and createtxg
        only. Everything else (a filesystem's kind, `written`, resume token and encryption; a
        version's creation, written, referenced and holds) keeps its default until
        `add_details`."""
        ...

    def list_stamps(self, scope: ObservationScope | None = None) -> StampedListing:
        """`list_versions(scope)` without the snapshots, with each filesystem's GUID and
        `snapshots_changed`. Raises `StampsUnsupported` where zfs has no such property."""
        ...

    def list_snapshots(self, filesystems: Sequence[str]) -> dict[str, tuple[Version, ...]]:
        """The snapshots of each of `filesystems` as `list_versions` shows them, by filesystem;
        one without snapshots, or gone, is absent."""
        ...

    def add_details(self, state: HostState, snapshots: Collection[str]) -> HostState:
        """`state` (from `list_versions`) with every filesystem's own properties and the
        details of the snapshots named in `snapshots` (full names, `fs@snap`), as `observe`
        shows them. A filesystem or a named snapshot that no longer exists is left out;
        versions not named keep what `list_versions` said."""
        ...

    def observe_filesystems(self, filesystems: Sequence[str]) -> dict[str, FilesystemState]:
        """Those of `filesystems` that exist, each as `observe()` would show it; the others
        are left out. For the executor's checks after a refused action: it lists only these
        filesystems, not the whole host."""
        ...

    def snapshot(self, filesystems: Sequence[str], name: str) -> None:
        """One atomic `zfs snapshot fs1@name fs2@name ...` (one createtxg)."""
        ...

    def send(self, request: SendRequest) -> SendStream: ...

    def receive(self, filesystem: str, stream: SendStream, options: ReceiveOptions) -> int | None:
        """`zfs receive -s -u [-F] [-o P=V] [-x P] filesystem` from a stream of another host;
        the bytes the stream carried, when they were measured (None otherwise)."""
        ...

    def abort_resume(self, filesystem: str) -> None:
        """`zfs receive -A filesystem`."""
        ...

    def hold(self, filesystem: str, snapshot: str, tag: str) -> None: ...

    def release(self, filesystem: str, snapshot: str, tag: str) -> None: ...

    def hold_many(
        self, tag: str, snapshots: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        """`hold` of each (filesystem, snapshot) with one tag, in as few zfs calls as the
        argument limit allows. Returns the ones that failed, each with the error `hold` would
        have raised for it alone; the others are held. One refusal does not stop the rest."""
        ...

    def release_many(
        self, tag: str, snapshots: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        """`release` of each (filesystem, snapshot), like `hold_many`."""
        ...

    def bookmark(self, filesystem: str, snapshot: str, bookmark: str) -> None: ...

    def bookmark_many(
        self, bookmarks: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        """`bookmark` of each (filesystem, snapshot, bookmark), in as few zfs calls as it
        can. Returns the (filesystem, bookmark) pairs that failed, each with the error
        `bookmark` would have raised for it alone; the others are made."""
        ...

    def destroy(self, filesystem: str, versions: Sequence[str]) -> None:
        """Destroy `@snap` / `#mark` versions of one filesystem; snapshots all-or-nothing."""
        ...

    def rollback(self, filesystem: str, snapshot: str, destroy_newer: bool) -> None:
        """`zfs rollback [-r] filesystem@snapshot`."""
        ...

    def create(self, filesystem: str, parents: bool = True) -> None:
        """`zfs create [-p] filesystem`."""
        ...

    def run_hook(self, command: Sequence[str], env: Mapping[str, str], timeout: int) -> HookRun:
        """Run a snapshot hook's argv on the host with `env` added to its environment, stopped
        after `timeout` seconds. Never raises for the command's own failure."""
        ...
