"""The in-memory ZFS: a deterministic implementation of the `ZFS` port for one host.

Owned here: `ModelZFS`, used by unit tests (the executor's, the loop's, the CLI's) in place of
real hosts, and kept honest by the contract suite (`tests/contract/zfs_contract.py`), which
runs the same checks against real OpenZFS in the platform tests. docs/model.md lists which
OpenZFS behaviour each rule mirrors and what the model leaves out.

Determinism: GUIDs come from `random.Random` seeded with (seed, host); one txg counter per host
grows on every change (one `snapshot` call = one txg for all its snapshots); `creation` is the
test's `clock` when set, else derived from the txg.

Besides the port, test-setup helpers (not part of the port): `create_pool`, `create_volume`,
`create_encrypted`, `load_key` / `unload_key`, `write`, `set_property` / `get_property`,
`fingerprint`, `interrupt_next_receive`, `set_unreachable`, and the `clock` and
`stamps_supported` attributes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Concatenate, ParamSpec, TypeVar

from reconciler.core.plan import ReceiveOptions
from reconciler.core.scope import ObservationScope
from reconciler.core.state import (
    FilesystemKind,
    FilesystemState,
    HostState,
    Stamp,
    Version,
    VersionKind,
    bare,
    completed,
    short_names_by_filesystem,
    sort_versions,
)
from reconciler.zfs.errors import (
    DatasetExists,
    DatasetNotFound,
    HoldNotFound,
    StampsUnsupported,
    ZFSError,
)
from reconciler.zfs.model import receive as model_receive
from reconciler.zfs.model.data import FsRecord, HostData, MarkRecord, SnapRecord, parent_of
from reconciler.zfs.model.destroy import destroy_versions, rollback
from reconciler.zfs.model.send import build_stream
from reconciler.zfs.model.stream import ModelStream, decode_token
from reconciler.zfs.port import HookRun, SendRequest, SendStream, StampedListing

HookRunner = Callable[[tuple[str, ...], dict[str, str]], tuple[int | None, str]]

P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[ModelZFS, P], R]) -> Callable[Concatenate[ModelZFS, P], R]:
    """One port call at a time per host, as the executor may run actions in parallel."""

    @functools.wraps(method)
    def call(self: ModelZFS, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return call


class ModelZFS:
    """One host's pools, filesystems, snapshots, bookmarks and holds, in memory."""

    def __init__(self, host: str, *, seed: int = 0) -> None:
        self._data = HostData(host, seed)
        self._lock = threading.RLock()
        self.stamps_supported = True  # False: zfs before 2.2, without `snapshots_changed`
        # what runs a hook here: (argv, env) → (exit status or None for a timeout, stderr);
        # None: no command exists on this host (as a shell's 127)
        self.hook_runner: HookRunner | None = None
        self.hooks_run: list[tuple[tuple[str, ...], dict[str, str]]] = []

    # -- test setup (not part of the port) ------------------------------------------------

    @property
    def clock(self) -> int | None:
        """UNIX seconds stamped as `creation` on new snapshots; None derives it from the txg."""
        return self._data.clock

    @clock.setter
    def clock(self, value: int | None) -> None:
        self._data.clock = value

    def create_pool(self, name: str) -> None:
        self._data.check_name(name)
        if "/" in name or name in self._data.pools:
            raise self._data.error(ZFSError, name, f"cannot create '{name}': pool already exists")
        self._data.pools.add(name)
        self._data.filesystems[name] = FsRecord(name=name, guid=self._data.new_filesystem_guid())
        self._data.next_txg()

    def create_volume(self, name: str) -> None:
        self.create(name, parents=False)
        self._data.filesystems[name].kind = FilesystemKind.VOLUME

    def create_encrypted(self, name: str) -> None:
        """A new filesystem that is its own encryption root, its key loaded."""
        self.create(name, parents=False)
        self._data.filesystems[name].encrypted = True

    def load_key(self, filesystem: str) -> None:
        self._data.filesystem(filesystem).key_loaded = True

    def unload_key(self, filesystem: str) -> None:
        self._data.filesystem(filesystem).key_loaded = False

    @_locked
    def write(self, filesystem: str, nbytes: int) -> None:
        """Modify the filesystem's data: `written` grows by nbytes and its content changes."""
        if nbytes <= 0:
            raise ValueError("write at least one byte")
        fs = self._data.filesystem(filesystem)
        fs.written += nbytes
        fs.referenced += nbytes
        fs.content = self._data.new_content(fs.content, nbytes)
        self._data.next_txg()

    def set_property(self, filesystem: str, name: str, value: str) -> None:
        self._data.filesystem(filesystem).local_props[name] = value
        self._data.next_txg()

    def get_property(self, filesystem: str, name: str) -> tuple[str, str] | None:
        """(value, source) with source `local`, `received` or `inherited from <fs>`; None if
        the property is set nowhere (user properties) — defaults of native ones are not kept."""
        fs = self._data.filesystem(filesystem)
        if name in fs.local_props:
            return fs.local_props[name], "local"
        if name in fs.received_props:
            return fs.received_props[name], "received"
        ancestor = parent_of(filesystem)
        while ancestor:
            record = self._data.filesystems[ancestor]
            value = record.local_props.get(name, record.received_props.get(name))
            if value is not None:
                return value, f"inherited from {ancestor}"
            ancestor = parent_of(ancestor)
        return None

    def fingerprint(self, dataset: str) -> str:
        """A fingerprint of the data in `fs` or `fs@snap`: equal data, equal fingerprints."""
        filesystem, _, snapshot = dataset.partition("@")
        if not snapshot:
            return self._data.filesystem(filesystem).content
        return self._data.snapshot(filesystem, snapshot)[1].content

    def interrupt_next_receive(self, after_bytes: int) -> None:
        """The next receive on this host breaks after `after_bytes` of its stream (one shot;
        a stream no longer than that completes normally)."""
        self._data.interrupt_after = after_bytes

    def set_unreachable(
        self, reason: str | None = "ssh: connect to host: Connection refused"
    ) -> None:
        """Every port call raises HostUnreachable until called again with None."""
        self._data.unreachable = reason

    # -- the port ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._data.host

    @_locked
    def observe(self, scope: ObservationScope | None = None) -> HostState:
        self._data.check_reachable()
        return HostState(
            host=self.host,
            filesystems={
                name: _filesystem_state(fs)
                for name, fs in sorted(self._data.filesystems.items())
                if scope is None or scope.contains(name)
            },
        )

    def list_versions(self, scope: ObservationScope | None = None) -> HostState:
        observed = self.observe(scope)
        return HostState(
            host=self.host, filesystems={n: bare(s) for n, s in observed.filesystems.items()}
        )

    @_locked
    def list_stamps(self, scope: ObservationScope | None = None) -> StampedListing:
        data = self._data
        data.check_reachable()
        if not self.stamps_supported:
            raise data.error(
                StampsUnsupported,
                "",
                "bad property list: invalid property 'snapshots_changed'",
            )
        listed = self.list_versions(scope)
        return StampedListing(
            state=HostState(
                host=self.host,
                filesystems={
                    name: replace(state, versions=state.bookmarks)
                    for name, state in listed.filesystems.items()
                },
            ),
            stamps={
                name: Stamp(data.filesystems[name].guid, data.filesystems[name].snapshots_changed)
                for name in listed.filesystems
            },
        )

    @_locked
    def list_snapshots(self, filesystems: Sequence[str]) -> dict[str, tuple[Version, ...]]:
        self._data.check_reachable()
        known = self._data.filesystems
        found = {
            fs: bare(_filesystem_state(known[fs])).snapshots for fs in filesystems if fs in known
        }
        return {fs: snapshots for fs, snapshots in found.items() if snapshots}

    @_locked
    def add_details(self, state: HostState, snapshots: Collection[str]) -> HostState:
        self._data.check_reachable()
        asked = short_names_by_filesystem(snapshots)
        known = self._data.filesystems
        return HostState(
            host=self.host,
            filesystems={
                name: completed(listed, _filesystem_state(known[name]), asked.get(name, set()))
                for name, listed in state.filesystems.items()
                if name in known
            },
        )

    @_locked
    def observe_filesystems(self, filesystems: Sequence[str]) -> dict[str, FilesystemState]:
        self._data.check_reachable()
        known = self._data.filesystems
        return {
            fs: _filesystem_state(known[fs]) for fs in dict.fromkeys(filesystems) if fs in known
        }

    @_locked
    def snapshot(self, filesystems: Sequence[str], name: str) -> None:
        data = self._data
        data.check_reachable()
        first = filesystems[0] if filesystems else ""
        data.check_name(name, f"cannot create snapshot '{first}@{name}'")
        targets = [data.filesystem(fs) for fs in dict.fromkeys(filesystems)]
        existing = [fs for fs in targets if fs.snapshot(name) is not None]
        if existing:
            full = f"{existing[0].name}@{name}"
            lines = [
                f"cannot create snapshot '{fs.name}@{name}': dataset already exists"
                for fs in existing
            ]
            if len(filesystems) > 1:  # zfs adds this line whenever it was asked for several
                lines.append("no snapshots were created")
            raise data.error(DatasetExists, full, "\n".join(lines))
        txg = data.next_txg()
        for fs in targets:
            fs.snapshots.append(_new_snapshot(data, fs, name, txg))
            fs.written = 0
            data.snapshots_changed(fs)

    @_locked
    def send(self, request: SendRequest) -> SendStream:
        self._data.check_reachable()
        return build_stream(self._data, request)

    @_locked
    def receive(self, filesystem: str, stream: SendStream, options: ReceiveOptions) -> int:
        self._data.check_reachable()
        if not isinstance(stream, ModelStream):
            raise TypeError(f"ModelZFS receives ModelStream, not {type(stream).__name__}")
        model_receive.receive(self._data, filesystem, stream, options)
        return stream.size

    @_locked
    def abort_resume(self, filesystem: str) -> None:
        self._data.check_reachable()
        model_receive.abort_resume(self._data, filesystem)

    @_locked
    def hold(self, filesystem: str, snapshot: str, tag: str) -> None:
        data = self._data
        data.check_reachable()
        full = f"{filesystem}@{snapshot}"
        snap = self._existing_snapshot(filesystem, snapshot, f"cannot hold snapshot '{full}'")
        if tag in snap.holds:
            raise data.error(
                DatasetExists,
                full,
                f"cannot hold snapshot '{full}': tag already exists on this dataset",
            )
        snap.holds.add(tag)
        data.next_txg()

    @_locked
    def release(self, filesystem: str, snapshot: str, tag: str) -> None:
        data = self._data
        data.check_reachable()
        full = f"{filesystem}@{snapshot}"
        verb = f"cannot release hold from snapshot '{full}'"
        snap = self._existing_snapshot(filesystem, snapshot, verb)
        if tag not in snap.holds:
            raise data.error(HoldNotFound, full, f"{verb}: no such tag on this dataset")
        snap.holds.discard(tag)
        data.next_txg()

    def hold_many(
        self, tag: str, snapshots: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        """Each snapshot in turn, going on after a refusal, as `zfs hold` does."""
        return _each(self.hold, tag, snapshots)

    def release_many(
        self, tag: str, snapshots: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        return _each(self.release, tag, snapshots)

    def bookmark_many(
        self, bookmarks: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        failed: dict[tuple[str, str], ZFSError] = {}
        for filesystem, snapshot, bookmark in dict.fromkeys(bookmarks):
            try:
                self.bookmark(filesystem, snapshot, bookmark)
            except ZFSError as error:
                failed[(filesystem, bookmark)] = error
        return failed

    @_locked
    def bookmark(self, filesystem: str, snapshot: str, bookmark: str) -> None:
        data = self._data
        data.check_reachable()
        full = f"{filesystem}#{bookmark}"
        verb = f"cannot create bookmark '{full}'"
        _, snap = data.snapshot(filesystem, snapshot)  # "cannot open 'fs@snap': ..."
        try:
            data.check_name(bookmark)
        except ZFSError as invalid:
            raise data.error(ZFSError, full, f"{verb}: invalid argument") from invalid
        fs = data.filesystems[filesystem]
        if bookmark in fs.bookmarks:
            raise data.error(DatasetExists, full, f"{verb}: bookmark exists")
        fs.bookmarks[bookmark] = MarkRecord(
            bookmark, snap.guid, snap.createtxg, snap.creation, snap.referenced
        )
        data.next_txg()

    @_locked
    def destroy(self, filesystem: str, versions: Sequence[str]) -> None:
        self._data.check_reachable()
        destroy_versions(self._data, filesystem, versions)

    @_locked
    def rollback(self, filesystem: str, snapshot: str, destroy_newer: bool) -> None:
        self._data.check_reachable()
        rollback(self._data, filesystem, snapshot, destroy_newer)

    def run_hook(self, command: Sequence[str], env: Mapping[str, str], timeout: int) -> HookRun:
        """The test's `hook_runner` plays the command (outside the model's lock, so that it
        may change this host, as a real command may)."""
        self.hooks_run.append((tuple(command), dict(env)))
        if self._data.unreachable is not None:
            return HookRun(None, f"ssh: connect to host {self.host}: unreachable")
        if self.hook_runner is None:
            return HookRun(127, f"env: '{command[0]}': No such file or directory")
        returncode, stderr = self.hook_runner(tuple(command), dict(env))
        return HookRun(returncode, stderr if returncode is not None else "")

    @_locked
    def create(self, filesystem: str, parents: bool = True) -> None:
        data = self._data
        data.check_reachable()
        data.check_name(filesystem, f"cannot create '{filesystem}'")
        pool = filesystem.partition("/")[0]
        if pool not in data.pools:
            raise data.error(
                DatasetNotFound, filesystem, f"cannot create '{filesystem}': no such pool '{pool}'"
            )
        if filesystem in data.filesystems:
            if parents:
                return  # `zfs create -p` of an existing filesystem succeeds
            raise data.error(
                DatasetExists, filesystem, f"cannot create '{filesystem}': dataset already exists"
            )
        parent = parent_of(filesystem)
        if parent not in data.filesystems:
            if not parents:
                raise data.error(
                    DatasetNotFound,
                    filesystem,
                    f"cannot create '{filesystem}': parent does not exist",
                )
            self.create(parent, parents=True)
        self._add_filesystem(filesystem)

    # -- helpers ----------------------------------------------------------------------------

    def _add_filesystem(self, name: str) -> None:
        data = self._data
        parent = data.filesystems[parent_of(name)]
        if parent.kind is FilesystemKind.VOLUME:
            raise data.error(ZFSError, name, f"cannot create '{name}': parent is not a filesystem")
        data.filesystems[name] = FsRecord(
            name=name,
            guid=data.new_filesystem_guid(),
            encrypted=parent.encrypted,
            key_loaded=parent.key_loaded,
        )
        data.next_txg()

    def _existing_snapshot(self, filesystem: str, snapshot: str, verb: str) -> SnapRecord:
        """The snapshot for hold/release: a missing filesystem is "cannot open 'fs'", a missing
        snapshot "<verb>: dataset does not exist" (OpenZFS 2.3 wording)."""
        snap = self._data.filesystem(filesystem).snapshot(snapshot)
        if snap is None:
            full = f"{filesystem}@{snapshot}"
            raise self._data.error(DatasetNotFound, full, f"{verb}: dataset does not exist")
        return snap


def _new_snapshot(data: HostData, fs: FsRecord, name: str, txg: int) -> SnapRecord:
    return SnapRecord(
        name=name,
        guid=data.new_guid(),
        createtxg=txg,
        creation=data.creation(txg),
        written=fs.written,
        referenced=fs.referenced,
        content=fs.content,
    )


def _filesystem_state(fs: FsRecord) -> FilesystemState:
    versions = [
        Version(
            kind=VersionKind.SNAPSHOT,
            name=s.name,
            guid=s.guid,
            createtxg=s.createtxg,
            creation=s.creation,
            written=s.written,
            referenced=s.referenced,
            holds=frozenset(s.holds),
        )
        for s in fs.snapshots
    ]
    versions.extend(
        Version(VersionKind.BOOKMARK, m.name, m.guid, m.createtxg, m.creation, 0, m.referenced)
        for m in fs.bookmarks.values()
    )
    token = None if fs.partial is None else decode_token(fs.partial.token)
    return FilesystemState(
        name=fs.name,
        versions=sort_versions(versions),
        kind=fs.kind,
        written=fs.written,
        resume_token=token,
        encrypted=fs.encrypted,
    )


def _each(
    operation: Callable[[str, str, str], None], tag: str, snapshots: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], ZFSError]:
    failed: dict[tuple[str, str], ZFSError] = {}
    for filesystem, snapshot in dict.fromkeys(snapshots):
        try:
            operation(filesystem, snapshot, tag)
        except ZFSError as error:
            failed[(filesystem, snapshot)] = error
    return failed
