"""The real zfs driver: the `ZFS` port on a real host, through one command runner.

Owned here: `ZfsDriver` and `PendingSend` (the driver's `SendStream`). It builds argv with
`zfs/commands.py`, runs it through the host's `CommandRunner` (local or ssh) with the host's
`zfsCommand` in front, parses output with `zfs/parse.py`, and turns refusals into typed errors
with `zfs/stderr.py`. The executor is its caller; the CLI creates it via `zfs/connect.py`.

Process count: `observe` runs one `zfs list` for the whole host, plus one `zfs holds` (in
chunks under the argument limit) only when some snapshot has holds; `observe_filesystems`
the same for the filesystems it is given (`zfs list -d 1 fs...`). `send` starts nothing: it
returns a `PendingSend` naming the sender's command; the target's `receive` starts both ends
as one OS pipeline (`zfs/pipeline.py`), so a transfer between hosts never passes through
Python.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.core.plan import ReceiveOptions
from reconciler.core.state import FilesystemState, HostState
from reconciler.zfs import commands, parse
from reconciler.zfs.errors import StreamInterrupted, ZFSError
from reconciler.zfs.pipeline import CANCELLED, ProgressSink, run_pipeline
from reconciler.zfs.port import SendRequest
from reconciler.zfs.runner import CommandRunner, Completed
from reconciler.zfs.stderr import classify, classify_pipeline, missing_datasets


@dataclass(frozen=True, slots=True)
class PendingSend:
    """A `zfs send` not yet started: which host runs it, and how."""

    runner: CommandRunner
    argv: tuple[str, ...]  # the full argv on the sending host, zfsCommand included
    filesystem: str
    estimate: int | None = None


class ZfsDriver:
    """The zfs operations of one real host."""

    def __init__(
        self,
        runner: CommandRunner,
        zfs_command: Sequence[str] = ("zfs",),
        *,
        roots: Sequence[str] = (),
        on_progress: ProgressSink | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.runner = runner
        self.zfs_command = tuple(zfs_command)
        self.roots = tuple(roots)
        self.on_progress = on_progress
        self.cancel = cancel

    @property
    def host(self) -> str:
        return self.runner.host

    # --- running commands ----------------------------------------------------------------

    def _run(
        self, args: Sequence[str], dataset: str, *, missing_is_fine: bool = False
    ) -> Completed:
        """Run zfs; a failure becomes its typed error, except, with `missing_is_fine`, one
        whose stderr only names datasets that do not exist (its stdout has the rest)."""
        argv = (*self.zfs_command, *args)
        done = self.runner.run(argv)
        if done.returncode != 0 and not (
            missing_is_fine and missing_datasets(done.stderr_text) is not None
        ):
            raise classify(self.host, dataset, done.stderr_text, argv)
        return done

    # --- observation -----------------------------------------------------------------------

    def observe(self) -> HostState:
        listed = self._run(commands.list_versions(self.roots), "")
        filesystems = self._with_holds(parse.parse_listing(listed.stdout, self.host))
        return HostState(host=self.host, filesystems=filesystems)

    def observe_filesystems(self, filesystems: Sequence[str]) -> dict[str, FilesystemState]:
        wanted = set(filesystems)
        found: dict[str, FilesystemState] = {}
        for args in commands.list_filesystems(filesystems) if filesystems else ():
            listed = self._run(args, "", missing_is_fine=True)
            states = self._with_holds(parse.parse_listing(listed.stdout, self.host))
            found.update((name, state) for name, state in states.items() if name in wanted)
        return found

    def _with_holds(self, listing: parse.Listing) -> dict[str, FilesystemState]:
        """The listing's filesystems with the tags of their held snapshots (`zfs holds`)."""
        holds: dict[str, frozenset[str]] = {}
        for args in commands.holds(listing.held) if listing.held else ():
            text = self._run(args, "").stdout.decode("utf-8", "replace")
            holds.update(parse.parse_holds(text, self.host))
        return parse.apply_holds(listing, holds)

    # --- changes ---------------------------------------------------------------------------

    def snapshot(self, filesystems: Sequence[str], name: str) -> None:
        full = [f"{fs}@{name}" for fs in filesystems]
        self._run(commands.snapshot(full), filesystems[0] if len(filesystems) == 1 else "")

    def send(self, request: SendRequest) -> PendingSend:
        return PendingSend(
            runner=self.runner,
            argv=(*self.zfs_command, *commands.send(request)),
            filesystem=request.filesystem,
        )

    def receive(self, filesystem: str, stream: object, options: ReceiveOptions) -> None:
        if not isinstance(stream, PendingSend):
            raise TypeError(f"ZfsDriver receives a PendingSend, not {type(stream).__name__}")
        receive_argv = (
            *self.zfs_command,
            *commands.receive(filesystem, options),
        )
        result = run_pipeline(
            stream.runner.wrap(stream.argv),
            self.runner.wrap(receive_argv),
            label=f"{stream.runner.host}:{stream.filesystem} → {self.host}:{filesystem}",
            parse_progress=parse.SendProgressTracker(),
            parse_estimate=parse.parse_send_estimate,
            estimate=stream.estimate,
            on_progress=self.on_progress,
            cancel=self.cancel,
        )
        if result.stopped == CANCELLED:
            raise StreamInterrupted(self.host, filesystem, CANCELLED, receive_argv)
        if not result.ok:
            raise classify_pipeline(
                send_host=stream.runner.host,
                receive_host=self.host,
                dataset=filesystem,
                result=result,
                send_command=stream.argv,
                receive_command=receive_argv,
            )

    def abort_resume(self, filesystem: str) -> None:
        self._run(commands.abort_resume(filesystem), filesystem)

    def hold(self, filesystem: str, snapshot: str, tag: str) -> None:
        self._run(commands.hold(tag, f"{filesystem}@{snapshot}"), f"{filesystem}@{snapshot}")

    def release(self, filesystem: str, snapshot: str, tag: str) -> None:
        self._run(commands.release(tag, f"{filesystem}@{snapshot}"), f"{filesystem}@{snapshot}")

    def bookmark(self, filesystem: str, snapshot: str, bookmark: str) -> None:
        self._run(
            commands.bookmark(f"{filesystem}@{snapshot}", f"{filesystem}#{bookmark}"),
            f"{filesystem}#{bookmark}",
        )

    def destroy(self, filesystem: str, versions: Sequence[str]) -> None:
        snapshots = [v[1:] for v in versions if v.startswith("@")]
        bookmarks = [v[1:] for v in versions if v.startswith("#")]
        unknown = [v for v in versions if v[:1] not in ("@", "#")]
        if unknown:
            raise ZFSError(self.host, filesystem, f"not a version name: {', '.join(unknown)}")
        for args in commands.destroy_snapshots(filesystem, snapshots) if snapshots else ():
            self._run(args, filesystem)
        for mark in bookmarks:
            self._run(commands.destroy_bookmark(f"{filesystem}#{mark}"), f"{filesystem}#{mark}")

    def rollback(self, filesystem: str, snapshot: str, destroy_newer: bool) -> None:
        self._run(commands.rollback(f"{filesystem}@{snapshot}", destroy_newer), filesystem)

    def create(self, filesystem: str, parents: bool = True) -> None:
        self._run(commands.create(filesystem, parents), filesystem)
