"""What every `reconcile` subcommand shares: the exit codes, `Console` (where output goes),
`Services` (how a command reaches the outside world: hosts, clock, cancel flag), logging set-up,
loading the manifests and the time of a pass. Used by the other modules of `reconciler.cli`."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.manifest.errors import one_line
from reconciler.manifest.loader import ManifestErrors, Manifests, load_manifests

if TYPE_CHECKING:
    from loguru import Logger

    from reconciler.apply.passes import Connect, Dependencies, Locker, PassAudit


# The pass's modules (planner, executor, driver, lock) are imported by the functions that use
# them, not here: `validate` and `schema`, which CI runs on every pull request, start in about
# half the time without them.

EXIT_OK = 0


EXIT_ERROR = 1


EXIT_CHANGES_PENDING = 2


EXIT_USAGE = 2  # argparse's code for a usage error


@dataclass(frozen=True)
class Console:
    """Presentation: where results (stdout) and errors, logs and progress (stderr) go."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)


@dataclass(frozen=True)
class Services:
    """What a command needs from the outside world, apart from presentation (tests pass
    their own): `connect` turns a Host manifest into a ZFS port, None meaning the real driver
    (local or ssh, `zfs/connect.py`); `clock` gives the time of a pass; once `cancel` is set
    (SIGINT/SIGTERM), no new action starts and running transfers are stopped."""

    connect: Connect | None = None
    clock: Callable[[], float] = time.time
    cancel: threading.Event = field(default_factory=threading.Event)

    def dependencies(
        self, console: Console, lock: Locker | None = None, audit: PassAudit | None = None
    ) -> Dependencies:
        """The pass's dependencies; the real driver reports transfer progress on the
        console's stderr when it is a terminal."""
        from reconciler.apply.passes import Dependencies

        connect = self.connect
        if connect is None:
            from reconciler.apply.progress import ProgressReporter
            from reconciler.zfs.connect import connect as connect_host

            terminal = console.stderr if _is_terminal(console.stderr) else None
            connect = partial(
                connect_host, on_progress=ProgressReporter(terminal), cancel=self.cancel
            )
        return Dependencies(connect=connect, cancel=self.cancel, lock=lock, audit=audit)


def _log() -> Logger:
    """loguru's logger, imported on first use: `validate` and `schema`, which CI and
    pre-commit hooks run on every change, log nothing and start faster without it."""
    from loguru import logger

    return logger


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _reported(command: str, options: argparse.Namespace, console: Console) -> bool:
    """Whether the action results are printed as a text report on a terminal: then the log
    leaves out the INFO line of each (docs/logging.md: no line twice on one screen)."""
    return (
        command == "pass"
        and not options.dry_run
        and options.output == "text"
        and _is_terminal(console.stdout)
    )


def _configure_logging(level: str, log_format: str, stream: TextIO, reported: bool = False) -> None:
    """One sink on `stream`. With `reported`, the executor's INFO line per action result
    counts as DEBUG: shown with --log-level DEBUG or TRACE only (failures, WARNING, stay)."""
    logger = _log()
    logger.remove()
    hide = reported and logger.level(level).no > logger.level("DEBUG").no
    keep = _not_reported if hide else None
    if log_format == "json":
        logger.add(stream, level=level, serialize=True, filter=keep)
    else:
        logger.add(
            stream,
            level=level,
            format="{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level} {message}",
            colorize=False,
            filter=keep,
        )


def _not_reported(record: Any) -> bool:
    """Every log record but the INFO line of an action result (`apply/executor.py`)."""
    return not (record["extra"].get("action_result") and record["level"].name == "INFO")


def _load(paths: list[str] | None, console: Console) -> Manifests | None:
    try:
        return load_manifests(paths or ["manifests"])
    except ManifestErrors as errors:
        for error in errors.errors:
            console.stderr.write(f"{error}\n")  # one line each: ManifestError escapes
        console.stderr.write(f"{len(errors.errors)} error(s); nothing was applied\n")
        return None


def _unknown_policies(names: list[str] | None, manifests: Manifests, console: Console) -> bool:
    unknown = sorted(set(names or ()) - set(manifests.policies))
    if unknown:
        console.stderr.write(one_line(f"unknown policy: {', '.join(map(repr, unknown))}") + "\n")
    return bool(unknown)


def _now(options: argparse.Namespace, services: Services) -> int:
    return options.now if options.now is not None else int(services.clock())
