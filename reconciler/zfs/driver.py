"""The real zfs driver: the `ZFS` port on a real host, through one command runner.

Owned here: `ZfsDriver` and `PendingSend` (the driver's `SendStream`). It builds argv with
`zfs/commands.py`, runs it through the host's `CommandRunner` (local or ssh) with the host's
`zfsCommand` in front, parses output with `zfs/parse.py`, and turns refusals into typed errors
with `zfs/stderr.py`. The executor is its caller; the CLI creates it via `zfs/connect.py`.

Process count: `observe(scope)` runs one `zfs list -r` of the scope's subtrees and, when the
scope names single filesystems outside them, one `zfs list -d 1` of those (each in chunks
under the argument limit), plus one `zfs holds` only when some snapshot has holds; without a
scope, one `zfs list` of the whole host. A pass observes in two steps instead:
`list_versions(scope)` is the same listing with only `name,guid,createtxg` (which zfs answers
without reading each version's properties), and `add_details` one `zfs list` naming every
filesystem of it and the snapshots the pass needs in detail (`core/details.py`) with all the
observe columns, plus the `zfs holds` of those that have holds: three processes in all.
The control loop observes through `zfs/stamps.py` instead: `list_stamps(scope)` lists the
filesystems with their `snapshots_changed` and bookmarks only (`-t filesystem,volume,bookmark`),
and `list_snapshots` the cheap snapshot rows of only the filesystems whose stamp moved (`-t
snapshot -d 1 FS...`). `observe_filesystems` lists the filesystems it is
given (`zfs list -d 1 fs...`) and their holds. `send` starts nothing: it
returns a `PendingSend` naming the sender's command; the target's `receive` starts both ends
as one OS pipeline (`zfs/pipeline.py`), so a transfer between hosts never passes through
Python.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.plan import ReceiveOptions
from reconciler.core.scope import ObservationScope
from reconciler.core.state import FilesystemState, HostState, Version
from reconciler.zfs import commands, parse
from reconciler.zfs.errors import (
    CommandTimedOut,
    DatasetExists,
    DatasetNotFound,
    StampsUnsupported,
    StreamInterrupted,
    ZFSError,
)
from reconciler.zfs.pipeline import CANCELLED, ProgressSink, run_pipeline
from reconciler.zfs.port import HookRun, SendRequest, StampedListing
from reconciler.zfs.runner import CommandRunner, Completed
from reconciler.zfs.stderr import (
    classify,
    classify_pipeline,
    missing_datasets,
    significant_lines,
)


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
        self._programs = True  # channel programs allowed, until zfs says they are not

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

    def observe(self, scope: ObservationScope | None = None) -> HostState:
        listing = self._scoped(scope, commands.LIST_COLUMNS, parse.parse_listing)
        return HostState(host=self.host, filesystems=self._with_holds(listing))

    def list_versions(self, scope: ObservationScope | None = None) -> HostState:
        listing = self._scoped(scope, commands.NAME_COLUMNS, parse.parse_names)
        return HostState(host=self.host, filesystems=listing.filesystems)

    def list_stamps(self, scope: ObservationScope | None = None) -> StampedListing:
        try:
            listing = self._scoped(
                scope, commands.STAMP_COLUMNS, parse.parse_stamps, commands.STAMP_TYPES
            )
        except ZFSError as error:
            if "bad property list: invalid property" in error.detail:  # zfs before 2.2
                raise StampsUnsupported(
                    self.host, "", error.detail.strip().splitlines()[0], error.command
                ) from error
            raise
        return StampedListing(
            HostState(host=self.host, filesystems=listing.filesystems), listing.stamps
        )

    def list_snapshots(self, filesystems: Sequence[str]) -> dict[str, tuple[Version, ...]]:
        wanted = set(filesystems)
        found: dict[str, tuple[Version, ...]] = {}
        for args in commands.list_filesystems(
            filesystems, columns=commands.NAME_COLUMNS, types=commands.SNAPSHOT_TYPES
        ):
            listed = self._run(args, "", missing_is_fine=True)
            for name, state in parse.parse_names(listed.stdout, self.host).filesystems.items():
                if name in wanted and state.versions:
                    found[name] = state.versions
        return found

    def _scoped(
        self,
        scope: ObservationScope | None,
        columns: Sequence[str],
        parser: Callable[[bytes, str], parse.Listing],
        types: str = commands.LIST_TYPES,
    ) -> parse.Listing:
        """The scope's versions of `types` with `columns`, read by `parser`: one `zfs list
        -r` of its subtrees (one that does not exist is empty) and the single filesystems
        alone (`zfs list -d 1`); without a scope, the whole host."""
        if scope is None or scope.everything:
            listed = self._run(commands.list_versions(self.roots, columns, types), "")
            return parser(listed.stdout, self.host)
        listings: list[parse.Listing] = []
        if scope.subtrees:
            args = commands.list_versions(scope.subtrees, columns, types)
            listings.append(parser(self._run(args, "", missing_is_fine=True).stdout, self.host))
        if scope.filesystems:
            listings.append(self._list_alone(scope.filesystems, columns, parser, types))
        return parse.merged(listings)

    def add_details(self, state: HostState, snapshots: Collection[str]) -> HostState:
        names = parse.Listing(dict(state.filesystems))
        if not names.filesystems:
            return state
        asked = sorted(s for s in snapshots if s.partition("@")[0] in names.filesystems)
        parser = parse.ListingParser(self.host)  # one listing, however many calls it took
        for args in commands.list_details(list(names.filesystems), asked):
            parser.feed(self._run(args, "", missing_is_fine=True).stdout)
        details = parse.with_details(names, parser.finish(), asked)
        return HostState(host=self.host, filesystems=self._with_holds(details))

    def observe_filesystems(self, filesystems: Sequence[str]) -> dict[str, FilesystemState]:
        if not filesystems:
            return {}
        return self._with_holds(self._list_alone(filesystems))

    def _list_alone(
        self,
        filesystems: Sequence[str],
        columns: Sequence[str] = commands.LIST_COLUMNS,
        parser: Callable[[bytes, str], parse.Listing] = parse.parse_listing,
        types: str = commands.LIST_TYPES,
    ) -> parse.Listing:
        """Those of `filesystems` that exist with their versions (`zfs list -d 1`, in as
        many calls as the argument budget needs), without the children that listing adds."""
        wanted = set(filesystems)
        listings = []
        for args in commands.list_filesystems(filesystems, columns=columns, types=types):
            listed = self._run(args, "", missing_is_fine=True)
            listings.append(parser(listed.stdout, self.host).only(wanted))
        return parse.merged(listings)

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

    def receive(self, filesystem: str, stream: object, options: ReceiveOptions) -> int | None:
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
            shown_as=(
                f"{stream.runner.host}: {shlex.join(stream.argv)}",
                f"{self.host}: {shlex.join(receive_argv)}",
            ),
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
        return result.bytes_done

    def abort_resume(self, filesystem: str) -> None:
        self._run(commands.abort_resume(filesystem), filesystem)

    def hold(self, filesystem: str, snapshot: str, tag: str) -> None:
        self._run(commands.hold(tag, f"{filesystem}@{snapshot}"), f"{filesystem}@{snapshot}")

    def release(self, filesystem: str, snapshot: str, tag: str) -> None:
        self._run(commands.release(tag, f"{filesystem}@{snapshot}"), f"{filesystem}@{snapshot}")

    def hold_many(
        self, tag: str, snapshots: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        return self._each(commands.hold_many, tag, snapshots, self.hold)

    def release_many(
        self, tag: str, snapshots: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        return self._each(commands.release_many, tag, snapshots, self.release)

    def _each(
        self,
        build: Callable[[str, Sequence[str]], list[tuple[str, ...]]],
        tag: str,
        snapshots: Sequence[tuple[str, str]],
        alone: Callable[[str, str, str], None],
    ) -> dict[tuple[str, str], ZFSError]:
        """Run a hold or release of many snapshots (`build` gives the calls) and attribute
        each refusal to its snapshot by the name zfs gives it. When zfs says something that
        names no snapshot of the call (permission denied, ...), each snapshot of that call
        is tried `alone`, so each gets its own error."""
        by_name = {f"{fs}@{snap}": (fs, snap) for fs, snap in snapshots}
        failed: dict[tuple[str, str], ZFSError] = {}
        for args in build(tag, list(by_name)):
            argv = (*self.zfs_command, *args)
            done = self.runner.run(argv)
            if done.returncode == 0:
                continue
            members = [by_name[name] for name in args[2:]]
            refusals = _refusals(done.stderr_text, by_name)
            if refusals:
                for member, text in refusals.items():
                    failed[member] = classify(self.host, f"{member[0]}@{member[1]}", text, argv)
                continue
            for fs, snap in members:
                try:
                    alone(fs, snap, tag)
                except ZFSError as error:
                    failed[(fs, snap)] = error
        return failed

    def bookmark_many(
        self, bookmarks: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str], ZFSError]:
        """One channel program per pool makes them all (`commands.BOOKMARK_PROGRAM`); where
        channel programs are refused (not root) or fail as a whole, one `zfs bookmark` each."""
        failed: dict[tuple[str, str], ZFSError] = {}
        by_pool: dict[str, list[tuple[str, str, str]]] = {}
        for item in dict.fromkeys(bookmarks):
            by_pool.setdefault(item[0].split("/", 1)[0], []).append(item)
        for pool, items in by_pool.items():
            left = self._bookmarks_by_program(pool, items, failed) if self._programs else items
            for fs, snap, mark in left:
                try:
                    self.bookmark(fs, snap, mark)
                except ZFSError as error:
                    failed[(fs, mark)] = error
        return failed

    def _bookmarks_by_program(
        self,
        pool: str,
        items: list[tuple[str, str, str]],
        failed: dict[tuple[str, str], ZFSError],
    ) -> list[tuple[str, str, str]]:
        """Make the bookmarks of one pool by channel program, recording refusals in
        `failed`; returns those it could not settle (a program that failed as a whole, and
        every one after it)."""
        by_mark = {f"{fs}#{mark}": (fs, snap, mark) for fs, snap, mark in items}
        pairs = [(f"{fs}@{snap}", full) for full, (fs, snap, _) in by_mark.items()]
        settled: set[str] = set()
        for args in commands.bookmark_program(pool, pairs):
            answered = self._bookmark_program(args, by_mark)
            if answered is None:
                break
            failed.update(answered)
            settled.update(args[5::2])
        return [item for full, item in by_mark.items() if full not in settled]

    def _bookmark_program(
        self, args: tuple[str, ...], items: Mapping[str, tuple[str, str, str]]
    ) -> dict[tuple[str, str], ZFSError] | None:
        """Run one bookmark program: each refused bookmark → its error; None when the
        program failed as a whole or its answer cannot be read (then nothing is known)."""
        argv = (*self.zfs_command, *args)
        done = self.runner.run(argv, input=commands.BOOKMARK_PROGRAM)
        if done.returncode != 0:
            if "must be run as root" in done.stderr_text:
                self._programs = False  # not for this host: zfs bookmark from now on
            return None
        wanted = set(args[5::2])
        answer = parse.parse_program_answer(done.stdout, wanted)
        if answer is None:
            return None
        failed: dict[tuple[str, str], ZFSError] = {}
        for full, code in answer.items():
            if code:
                fs, _, mark = items[full]
                failed[(fs, mark)] = _bookmark_error(self.host, full, code, argv)
        return failed

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

    # --- hooks -------------------------------------------------------------------------------

    def run_hook(self, command: Sequence[str], env: Mapping[str, str], timeout: int) -> HookRun:
        """`env NAME=VALUE... COMMAND...` through the host's runner: the same argv, quoted the
        same way, locally and over ssh (ssh does not pass a local environment on)."""
        argv = ["env", *(f"{name}={value}" for name, value in sorted(env.items())), *command]
        started = time.monotonic()
        try:
            done = self.runner.run(argv, timeout=timeout)
        except CommandTimedOut:  # killed at its timeout: no stderr to tell
            return HookRun(None, "", time.monotonic() - started)
        except ZFSError as error:  # could not start (or ssh could not reach the host)
            return HookRun(None, error.detail, time.monotonic() - started)
        return HookRun(done.returncode, done.stderr_text, time.monotonic() - started)


_REFUSED = re.compile(
    r"^cannot (?:hold snapshot|release hold from snapshot) '(?P<snapshot>[^']+)': "
)


_MISSING_FILESYSTEM = re.compile(r"^cannot open '(?P<filesystem>[^'@#]+)': dataset does not exist$")


def _refusals(stderr: str, by_name: Mapping[str, tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Each snapshot a hold or release refused → what zfs said of it; empty when some line
    of stderr names no snapshot of the call (then no line can be trusted to be the only one)."""
    found: dict[tuple[str, str], list[str]] = {}
    for line in significant_lines(stderr):
        match = _REFUSED.match(line)
        if match is not None and match["snapshot"] in by_name:
            found.setdefault(by_name[match["snapshot"]], []).append(line)
            continue
        missing = _MISSING_FILESYSTEM.match(line)  # zfs could not open the filesystem
        members = [m for m in by_name.values() if missing and m[0] == missing["filesystem"]]
        if not members:
            return {}
        for member in members:
            found.setdefault(member, []).append(line)
    return {member: "\n".join(lines) for member, lines in found.items()}


def _bookmark_error(host: str, bookmark: str, code: int, argv: Sequence[str]) -> ZFSError:
    """The error a refused zfs.sync.bookmark stands for, worded like `zfs bookmark`'s."""
    if code == errno.EEXIST:
        return DatasetExists(
            host, bookmark, f"cannot create bookmark '{bookmark}': bookmark exists"
        )
    why = os.strerror(code) if 0 < code < 256 else f"error {code}"
    detail = f"cannot create bookmark '{bookmark}': {why} (zfs program)"
    if code == errno.ENOENT:
        return DatasetNotFound(host, bookmark, detail, tuple(argv))
    return ZFSError(host, bookmark, detail, tuple(argv))
