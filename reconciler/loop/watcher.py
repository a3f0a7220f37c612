"""Seeing manifest edits: the `-f` paths watched with watchfiles, bursts debounced into one call.

Owns `watch_paths` (what to watch for the `-f` paths) and `ManifestWatcher`, whose blocking
`run()` the control loop (`reconcile watch`) starts in a thread; each batch of events that can
change what the loader reads ends in one `on_change(paths)` call, and the loop then reloads the
manifests and compares generations (`reconciler.manifest.changes`), so a reload of unchanged
manifests costs nothing but the read.

What is watched (`watch_paths`), every directory non-recursively (one watchfiles `watch()`
takes one `recursive` flag for all its paths, and a recursive watch of a file's parent could be
a whole home directory):
- a **directory** argument: the directory and every subdirectory the loader walks (the same
  rules as `loader.manifest_files`: names starting with `.` skipped, symbolic links to
  directories not followed). Any event in them counts; the loader decides what it reads.
- a **file** argument: its **parent** directory, never the file itself. Editors save by writing
  a temporary file and renaming it over the original: the original inode disappears, and a
  watch on it would go blind after the first save. Only events on the file's own name count
  (a temporary name does not: its rename onto the file does), and on the names its symbolic
  links pass through. A file that is a symbolic link into another directory has that
  directory watched as well, so an edit of the link's target is seen.
- a path that does **not exist** (yet): its nearest existing ancestor directory, with a
  warning; creating the path (or a directory on the way to it) is an event there, and the
  watch is then re-armed on the new directories. A watched directory that is deleted is the
  same: the warning, its nearest ancestor watched, and its re-creation seen and reported.

Re-arming: after each batch (and every `RESCAN_SECONDS` when idle) the directories are listed
again; when the list or any directory's inode changed (a new subdirectory, a path that
appeared, a directory deleted and re-created), the watch is closed and opened on the new list,
and the batch is reported only once the new watch is running (at its first return, at most
`rust_timeout` = 250 ms later), so an edit in between is never lost: the reload that follows
the call reads it. A re-arm found by the idle rescan, with no event to explain it, reports the
`-f` paths themselves.

**Kubernetes ConfigMaps.** A ConfigMap volume is a directory holding
`..2026_12_04_10_00_00.123/` (the real files), `..data -> ..2026_…` and `a.yaml -> ..data/a.yaml`.
An update writes a new timestamped directory, creates the link `..data_tmp` and renames it over
`..data`, then deletes the old directory: `a.yaml` itself never changes. The rename is an event
on `..data` in the mounted directory: for a directory argument every event there counts (no
watchfiles `DefaultFilter`, whose name filters were not written for this; `watch_filter=None`),
and for a file argument `..data` is a directory its link passes through. The timestamped
directories start with `.`: the loader never reads them directly, so they are not watched.

**Debounce.** watchfiles waits `step_ms` = 50 ms between checks; once an event arrives, it
keeps collecting until a check finds nothing new, and at most `debounce_ms` = 400 ms. A single
write reaches `on_change` about 50–110 ms after it (one or two steps); a burst whose events
come less than 50 ms apart (20 quick writes, an editor's write and rename, a ConfigMap swap)
is one call listing every path, or a few when it lasts longer than 400 ms. The product target
is p95 < 1 s from a write to the start of the reconcile pass.

Errors: nothing in the thread ends it but `stop`. An exception from watchfiles (a directory
deleted while the watch was being armed, the inotify watch limit) is logged and the watch
re-armed after a backoff (0.1 s doubling to 5 s); an exception from `on_change` is logged and
watching goes on. `force_polling=True` polls instead of inotify (file systems without it, such
as some network mounts; `None` lets watchfiles decide: `WATCHFILES_FORCE_POLLING`, WSL):
changes are then seen within about `POLL_DELAY_MS` more, but notify's poller compares
modification times in whole seconds, so an edit in the same second as the change before it can
go unseen until the next edit.
Not seen: an in-place edit of the target of a symbolic link that sits inside a directory
argument and points out of it (the link's own directory is watched, not the target's).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from watchfiles import Change, watch

__all__ = ["DEFAULT_PATHS", "Anchor", "ManifestWatcher", "Plan", "make_plan", "watch_paths"]

DEFAULT_PATHS = ("manifests",)
"""What is watched when no `-f` path is given, as the loader reads."""

RUST_TIMEOUT_MS = 250
"""How long one wait inside watchfiles lasts when nothing happens: the longest delay of a
report held back for a re-arm."""

RESCAN_SECONDS = 5.0
"""How often, when idle, the directories are listed again (a safety net for missed events)."""

POLL_DELAY_MS = 200
"""The polling interval with `force_polling`."""

MAX_LINKS = 40
"""Symbolic links followed from a file argument (the kernel's own limit)."""

RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Anchor:
    """A path whose events count: any event on it (and, for `below`, on anything under it);
    a directory above it being added or deleted (not merely modified: a polling watch reports
    every directory whose contents changed as modified)."""

    path: Path
    below: bool

    def matches(self, change: Change, event: Path) -> bool:
        if event == self.path or (self.below and event.is_relative_to(self.path)):
            return True
        return change != Change.modified and self.path.is_relative_to(event)


@dataclass(frozen=True, slots=True)
class Plan:
    """One arming of the watch: the directories (with their identity), the anchors that
    decide which events count, and the `-f` paths that do not exist."""

    directories: tuple[tuple[Path, int, int], ...]
    """(directory, st_dev, st_ino), watched non-recursively, one per inode."""
    aliases: tuple[tuple[Path, Path], ...]
    """(watched, also) for a directory reached under two names: events come under the first."""
    anchors: tuple[Anchor, ...]
    missing: tuple[Path, ...]

    @property
    def paths(self) -> list[Path]:
        return [directory for directory, _, _ in self.directories]

    def relevant(self, change: Change, event: str) -> bool:
        return any(
            anchor.matches(change, name)
            for name in self._spellings(Path(event))
            for anchor in self.anchors
        )

    def _spellings(self, event: Path) -> Iterator[Path]:
        yield event
        for watched, also in self.aliases:
            if event.is_relative_to(watched):
                yield also / event.relative_to(watched)


def watch_paths(paths: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """What to watch for the `-f` paths: (trees, directories). Trees are the existing directory
    arguments, watched with every subdirectory the loader walks; directories are watched
    alone: parents of file arguments (and of their link targets), nearest existing ancestors
    of missing paths. All absolute, symbolic links kept as given, in order, without repeats."""
    trees: list[Path] = []
    directories: list[Path] = []
    for given in _arguments(paths):
        if given.is_dir():
            trees.append(given)
        elif os.path.lexists(given):
            directories += [path.parent for path in _link_chain(given) if path.parent.is_dir()]
        else:
            directories.append(_nearest_directory(given))
    return _unique(trees), _unique(directories)


def _arguments(paths: Sequence[str]) -> list[Path]:
    """The `-f` paths as absolute paths (`..` folded, links kept); an empty one is skipped."""
    if any(str(path) == "" for path in paths):
        logger.warning("an empty -f path names no manifest: not watched")
    return [Path(os.path.abspath(path)) for path in paths or DEFAULT_PATHS if str(path) != ""]


def _link_chain(path: Path) -> list[Path]:
    """`path`, each path its symbolic links lead to, and its real path."""
    chain = [path]
    for _ in range(MAX_LINKS):
        try:
            target = os.readlink(chain[-1])
        except (OSError, ValueError):
            break
        chain.append(Path(os.path.normpath(chain[-1].parent / target)))
    chain.append(Path(os.path.realpath(path)))
    return _unique(chain)


def _nearest_directory(path: Path) -> Path:
    return next((parent for parent in path.parents if parent.is_dir()), Path(path.anchor))


def _tree(root: Path) -> list[Path]:
    """`root` and the subdirectories the loader walks (not `.`-named, links not followed)."""
    found: list[Path] = []
    for directory, subdirectories, _ in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        found.append(Path(directory))
    return found


def _unique(paths: Iterable[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def make_plan(paths: Sequence[str]) -> Plan:
    """The plan for the `-f` paths as the file system is now."""
    trees, flat = watch_paths(paths)
    directories: list[tuple[Path, int, int]] = []
    aliases: list[tuple[Path, Path]] = []
    seen: dict[tuple[int, int], Path] = {}
    for directory in [*(d for tree in trees for d in _tree(tree)), *flat]:
        try:
            status = os.stat(directory)
        except OSError:
            continue  # gone since it was listed: the next plan sees what replaced it
        if not stat.S_ISDIR(status.st_mode):
            continue
        key = (status.st_dev, status.st_ino)
        if key in seen:
            if seen[key] != directory:
                aliases.append((seen[key], directory))
            continue
        seen[key] = directory
        directories.append((directory, *key))
    return Plan(tuple(directories), tuple(aliases), *_anchors(paths))


def _anchors(paths: Sequence[str]) -> tuple[tuple[Anchor, ...], tuple[Path, ...]]:
    anchors: list[Anchor] = []
    missing: list[Path] = []
    for given in _arguments(paths):
        if given.is_dir():
            anchors.append(Anchor(given, below=True))
        elif os.path.lexists(given):
            anchors += [Anchor(path, below=False) for path in _link_chain(given)]
        else:
            anchors.append(Anchor(given, below=True))  # a file or a directory, once it exists
            missing.append(given)
    return tuple(anchors), tuple(missing)


class ManifestWatcher:
    """Watches the `-f` paths and calls `on_change(changed paths)` once per batch of events
    that can change what the loader reads (see the module docstring)."""

    def __init__(
        self,
        paths: Sequence[str],
        on_change: Callable[[frozenset[str]], None],
        stop: threading.Event,
        *,
        step_ms: int = 50,
        debounce_ms: int = 400,
        force_polling: bool | None = None,
    ) -> None:
        self._paths = list(paths)
        self._on_change = on_change
        self._stop = stop
        self._step_ms = step_ms
        self._debounce_ms = debounce_ms
        self._force_polling = force_polling
        self._pending: set[str] = set()
        self._warned: tuple[Path, ...] = ()
        self.watching = threading.Event()
        """Set once a watch is running (at its first return, within `RUST_TIMEOUT_MS`): edits
        from then on are seen. Readiness for a probe, and for tests."""

    def run(self) -> None:
        """Watch until `stop` is set (returns within about `step_ms` of it); meant for a thread."""
        delay = RETRY_FIRST_SECONDS
        while not self._stop.is_set():
            try:
                armed = self._watch(self._plan())
            except FileNotFoundError as error:  # a directory deleted while the watch was armed
                logger.warning("a watched directory went away, watching again: {}", error)
                armed = False
            except Exception as error:  # never let the thread die: log, wait, arm again
                logger.opt(exception=error).error("watching manifests failed: {}", error)
                armed = False
            if armed:
                delay = RETRY_FIRST_SECONDS
            elif not self._stop.is_set():
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _plan(self) -> Plan:
        plan = make_plan(self._paths)
        if plan.missing != self._warned:
            for path in plan.missing:
                where = _nearest_directory(path)
                logger.warning("manifest path {} does not exist: watching {} for it", path, where)
        self._warned = plan.missing
        return plan

    def _watch(self, plan: Plan) -> bool:
        """Watch `plan`'s directories until they change (then False when the watch never got
        going, True otherwise) or `stop` is set."""
        batches = watch(
            *plan.paths,
            watch_filter=None,
            recursive=False,
            stop_event=self._stop,
            step=self._step_ms,
            debounce=self._debounce_ms,
            rust_timeout=RUST_TIMEOUT_MS,
            yield_on_timeout=True,
            force_polling=self._force_polling,
            poll_delay_ms=POLL_DELAY_MS,
            ignore_permission_denied=True,
        )
        armed = False
        idle = 0.0
        try:
            for batch in batches:
                armed = True
                self.watching.set()
                self._flush()  # held back until this watch was running
                idle = 0.0 if batch else idle + RUST_TIMEOUT_MS / 1000
                if not batch and idle < RESCAN_SECONDS:
                    continue
                idle = 0.0
                following = self._plan()
                changed = {
                    path
                    for change, path in batch
                    if plan.relevant(change, path) or following.relevant(change, path)
                }
                if following.directories != plan.directories:
                    self._pending |= changed or {str(path) for path in _arguments(self._paths)}
                    return True
                self._report(changed)
                plan = following
        finally:
            batches.close()
        return armed

    def _flush(self) -> None:
        pending, self._pending = self._pending, set()
        self._report(pending)

    def _report(self, changed: set[str]) -> None:
        if not changed:
            return
        try:
            self._on_change(frozenset(changed))
        except Exception as error:
            logger.opt(exception=error).error("handling a manifest change failed: {}", error)
