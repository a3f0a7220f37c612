"""The `reconcile` command: parses arguments, wires the shell around the pure core, renders
results and maps outcomes to exit codes (product.md §3).

    reconcile [-f PATH]... [--dry-run [--output text|json] [--detailed-exitcode]]
              [--lock-dir PATH] [--lock-wait DURATION]
    reconcile status [-f PATH]... [--output text|json]
    reconcile validate [-f PATH]...
    reconcile schema

A pass that applies takes the lock of every host its policies touch before it observes them, and
keeps it to the end (guarantee 8, `apply/lock.py`); `--dry-run`, `status`, `validate` and
`schema` change nothing and take no lock.

The hosts a pass talks to come from a `connect` function (Host manifest → ZFS port) passed in
through `Runtime`; nothing here reaches a host any other way.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from loguru import logger

from reconciler import __version__
from reconciler.manifest.durations import format_duration, parse_duration
from reconciler.manifest.errors import one_line
from reconciler.manifest.loader import ManifestErrors, Manifests, load_manifests
from reconciler.manifest.models import Host
from reconciler.manifest.schema import schema_text

if TYPE_CHECKING:
    from reconciler.apply.executor import ApplyReport
    from reconciler.apply.lock import LockHeld
    from reconciler.core.desired import PolicyIntent
    from reconciler.core.plan import Plan
    from reconciler.core.state import Observed
    from reconciler.zfs.port import ZFS

# The pass's modules (planner, executor, driver, lock) are imported by the functions that use
# them, not here: `validate` and `schema`, which CI runs on every pull request, start in about
# half the time without them.

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES_PENDING = 2
EXIT_USAGE = 2  # argparse's code for a usage error
SUBCOMMANDS = ("validate", "schema", "status")

Connect = Callable[[Host], "ZFS"]


@dataclass
class Runtime:
    """What the shell needs from the outside world, passed in (tests pass their own).

    `connect` turns a Host manifest into a ZFS port; None means the real driver (local or ssh,
    `zfs/connect.py`), which then reports transfer progress on `stderr` and stops its
    pipelines when `cancel` is set (SIGINT/SIGTERM during an applying pass).
    """

    connect: Connect | None = None
    clock: Callable[[], float] = time.time
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    cancel: threading.Event = field(default_factory=threading.Event)

    def connector(self) -> Connect:
        if self.connect is not None:
            return self.connect
        from reconciler.apply.progress import ProgressReporter
        from reconciler.zfs.connect import connect as connect_host

        terminal = self.stderr if _is_terminal(self.stderr) else None
        return partial(connect_host, on_progress=ProgressReporter(terminal), cancel=self.cancel)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def main(argv: Sequence[str] | None = None, runtime: Runtime | None = None) -> int:
    runtime = runtime or Runtime()
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in SUBCOMMANDS else "pass"
    if command != "pass":
        args = args[1:]
    parser = _parser(command)
    options = parser.parse_args(args)
    if command == "pass" and options.detailed_exitcode and not options.dry_run:
        # an applying pass exits 0 or 1 (product.md §3); 2 would read as "changes pending"
        parser.error("--detailed-exitcode applies to --dry-run only")
    _configure_logging(options.log_level, options.log_format, runtime.stderr)
    if command == "schema":
        runtime.stdout.write(schema_text())
        return EXIT_OK
    manifests = _load(options.file, runtime)
    if manifests is None:
        return EXIT_ERROR
    if command == "validate":
        count = len(manifests.hosts) + len(manifests.policies)
        runtime.stdout.write(
            f"{_count(count, 'document')} valid: {_count(len(manifests.hosts), 'host')}, "
            f"{_count(len(manifests.policies), 'policy', 'policies')}\n"
        )
        return EXIT_OK
    if _unknown_policies(options.policy, manifests, runtime):
        return EXIT_ERROR
    if command == "status":
        return _status(options, manifests, runtime)
    if options.dry_run:
        return _pass(options, manifests, runtime)
    return _locked_pass(options, manifests, runtime)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations (`--out` is not `--output`: an abbreviation would change
    meaning when an option is added), whose usage errors are one line each (exit 2)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        hint = f"see '{self.prog} --help'"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} ({hint})\n")


def _parser(command: str) -> argparse.ArgumentParser:
    prog = "reconcile" if command == "pass" else f"reconcile {command}"
    parser = _Parser(
        prog=prog,
        description="Declarative ZFS snapshots, retention and replication.",
        epilog="subcommands: status, validate, schema (run 'reconcile SUBCOMMAND --help')"
        if command == "pass"
        else None,
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"],
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    if command == "schema":
        return parser
    parser.add_argument(
        "-f",
        "--file",
        action="append",
        default=None,
        metavar="PATH",
        help="manifest file or directory (repeatable; default ./manifests)",
    )
    if command == "validate":
        return parser
    if command == "pass":
        parser.add_argument(
            "--dry-run", action="store_true", help="observe and print the plan; change nothing"
        )
    parser.add_argument("--output", choices=["text", "json"], default="text")
    if command == "pass":
        parser.add_argument(
            "--detailed-exitcode",
            action="store_true",
            help="with --dry-run: 0 in sync, 2 changes pending, 1 error",
        )
    parser.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="NAME",
        help="limit to this policy (repeatable)",
    )
    parser.add_argument(
        "--now",
        type=_timestamp,
        default=None,
        metavar="TIMESTAMP",
        help="plan and act as if it were this time (ISO 8601 UTC)",
    )
    if command == "pass":
        parser.add_argument(
            "--jobs",
            type=_positive,
            default=4,
            metavar="N",
            help="actions on independent filesystems run N at a time (default 4)",
        )
        _lock_options(parser)
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return int(text)


def _timestamp(text: str) -> int:
    """An ISO 8601 time (UTC unless it says otherwise) between 1970 and 9999, as UNIX seconds
    (snapshot names carry it as YYYYMMDDTHHMMSSZ)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = int(moment.timestamp())
        datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError) as error:
        raise argparse.ArgumentTypeError(_NOT_A_TIME.format(text=text)) from error
    if not 0 <= seconds < _YEAR_10000:
        raise argparse.ArgumentTypeError(_NOT_A_TIME.format(text=text))
    return seconds


_NOT_A_TIME = "not an ISO 8601 time from 1970 to 9999: {text!r}"


_YEAR_10000 = 253402300800


def _configure_logging(level: str, log_format: str, stream: TextIO) -> None:
    logger.remove()
    if log_format == "json":
        logger.add(stream, level=level, serialize=True)
    else:
        logger.add(
            stream,
            level=level,
            format="{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level} {message}",
            colorize=False,
        )


def _load(paths: list[str] | None, runtime: Runtime) -> Manifests | None:
    try:
        return load_manifests(paths or ["manifests"])
    except ManifestErrors as errors:
        for error in errors.errors:
            runtime.stderr.write(f"{error}\n")  # one line each: ManifestError escapes
        runtime.stderr.write(f"{len(errors.errors)} error(s); nothing was applied\n")
        return None


def _unknown_policies(names: list[str] | None, manifests: Manifests, runtime: Runtime) -> bool:
    unknown = sorted(set(names or ()) - set(manifests.policies))
    if unknown:
        runtime.stderr.write(one_line(f"unknown policy: {', '.join(map(repr, unknown))}") + "\n")
    return bool(unknown)


def _hosts_of(selected: Sequence[PolicyIntent]) -> list[str]:
    """The hosts the selected policies touch: their sources and targets, by name."""
    return sorted({i.source_host for i in selected} | {t.host for i in selected for t in i.targets})


def _connect(
    names: Sequence[str], manifests: Manifests, runtime: Runtime
) -> tuple[dict[str, ZFS], dict[str, str]]:
    """(the hosts reached, why each of the others could not be)."""
    from reconciler.zfs.errors import ZFSError

    hosts: dict[str, ZFS] = {}
    failures: dict[str, str] = {}
    connect = runtime.connector()
    for name in names:
        try:
            hosts[name] = connect(manifests.hosts[name])
        except ZFSError as error:
            failures[name] = str(error)
    return hosts, failures


def _pass(options: argparse.Namespace, manifests: Manifests, runtime: Runtime) -> int:
    """Observe, plan, then print (dry run) or apply and report. A host that cannot be
    connected or observed gets nothing; the other policies proceed, and the exit code is 1."""
    from reconciler.apply.executor import execute
    from reconciler.core.desired import intents
    from reconciler.core.planner import plan_intents

    selected = intents(manifests, options.policy)
    now = options.now if options.now is not None else int(runtime.clock())
    hosts, observed = _observe(selected, manifests, runtime)
    plan = plan_intents(selected, observed, now)
    if options.dry_run:
        _show_plan(plan, options.output, runtime.stdout)
        return _dry_run_exit(plan, options.detailed_exitcode)
    with _interruptible(runtime.cancel):
        report = execute(plan, hosts, jobs=options.jobs, cancel=runtime.cancel)
    _show_pass(plan, report, options.output, runtime.stdout)
    return EXIT_ERROR if report.failed or _plan_errors(plan) else EXIT_OK


@contextmanager
def _interruptible(cancel: threading.Event) -> Iterator[None]:
    """While actions run, SIGINT/SIGTERM stop new actions and running transfers (both sides
    of each pipeline are terminated; a cut receive resumes from its token next pass)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        logger.warning("{}: stopping: no new action starts", signal.Signals(signum).name)
        cancel.set()

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _show_plan(plan: Plan, output: str, stream: TextIO) -> None:
    from reconciler.core.render import dump_plan_json, render_text

    if output == "json":
        stream.write(dump_plan_json(plan))
    else:
        stream.write(render_text(plan))


def _dry_run_exit(plan: Plan, detailed: bool) -> int:
    """1 on a conflict or an unobserved host (before 2: an error beats pending changes)."""
    if _plan_errors(plan):
        return EXIT_ERROR
    if detailed and plan.actions:
        return EXIT_CHANGES_PENDING
    return EXIT_OK


def _show_pass(plan: Plan, report: ApplyReport, output: str, stream: TextIO) -> None:
    from reconciler.core.render import plan_to_json, render_text

    if output == "json":
        document = {
            "plan": plan_to_json(plan),
            "results": [
                {
                    "id": r.action_id,
                    "status": r.status,
                    "message": r.message,
                    "seconds": round(r.duration, 3),
                }
                for r in report.results
            ],
        }
        stream.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return
    stream.write(render_text(plan))
    for result in report.results:
        took = f"{result.duration:.1f}s"
        stream.write(f"[{result.action_id}] {result.status} in {took}: {result.message}\n")
    failed = len(report.failed)
    stream.write(
        f"{_count(len(report.results) - failed, 'action')} done, {failed} failed, "
        f"{_count(len(plan.conflicts), 'conflict')}{_unobserved_text(plan)}\n"
    )


def _plan_errors(plan: Plan) -> bool:
    """What makes any pass exit 1 whatever is applied: a conflict, or a host that a selected
    policy touches and that could not be observed."""
    return bool(plan.conflicts or plan.unobserved_hosts)


def _unobserved_text(plan: Plan) -> str:
    """The end of the pass's last line: `, 1 host not observed: backup (why)`; empty when
    every host was observed."""
    if not plan.unobserved_hosts:
        return ""
    hosts = plan.unobserved_hosts
    which = "; ".join(f"{u.host} ({u.error})" for u in hosts)
    return f", {len(hosts)} host{'' if len(hosts) == 1 else 's'} not observed: {which}"


def _observe(
    selected: Sequence[PolicyIntent], manifests: Manifests, runtime: Runtime
) -> tuple[dict[str, ZFS], Observed]:
    """Connect to and observe every host the selected policies touch: (the hosts connected,
    what was observed). A host that cannot be connected is unobserved like one whose listing
    fails (`HostState.error`), for a pass and for status alike; each is logged as an error."""
    from reconciler.zfs.observe import observe_hosts

    hosts, failures = _connect(_hosts_of(selected), manifests, runtime)
    observed = observe_hosts(hosts, failures)
    for name, state in observed.hosts.items():
        if state.error is not None:
            logger.error("host {} could not be observed: {}", name, state.error)
    return hosts, observed


# --- status -----------------------------------------------------------------------------------


def _status(options: argparse.Namespace, manifests: Manifests, runtime: Runtime) -> int:
    """Observe as a dry run does, plan, and report how current each replica is. A host that
    cannot be reached is reported as unreachable; nothing is locked or changed."""
    from reconciler.core.desired import intents
    from reconciler.core.planner import plan_intents
    from reconciler.core.status import render_status_text, status_report, status_to_json

    selected = intents(manifests, options.policy)
    now = options.now if options.now is not None else int(runtime.clock())
    _hosts, observed = _observe(selected, manifests, runtime)
    report = status_report(selected, observed, plan_intents(selected, observed, now), now)
    if options.output == "json":
        runtime.stdout.write(json.dumps(status_to_json(report), indent=2, ensure_ascii=False))
        runtime.stdout.write("\n")
    else:
        runtime.stdout.write(render_status_text(report))
    return EXIT_OK if report.ok else EXIT_ERROR


# --- the lock of an applying pass ------------------------------------------------------------


def _lock_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-dir",
        default=None,
        metavar="PATH",
        help="where the per-host lock files live (default: $ZFS_RECONCILER_LOCK_DIR, "
        "/run/zfs-reconciler, $XDG_RUNTIME_DIR/zfs-reconciler or /tmp/zfs-reconciler-UID)",
    )
    parser.add_argument(
        "--lock-wait",
        type=_lock_wait,
        default=0,
        metavar="DURATION",
        help="wait this long (e.g. 30s, 5m) for another reconciler to finish with a host; "
        "default 0: exit at once",
    )


def _lock_wait(text: str) -> int:
    """A duration such as `30s` or `5m`; `0` (or `0s`...) does not wait."""
    if re.fullmatch(r"0+[smhdw]?", text):
        return 0
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _locked_pass(options: argparse.Namespace, manifests: Manifests, runtime: Runtime) -> int:
    """The applying pass, holding the lock of every host it touches from before it observes
    them until it has reported."""
    from reconciler.apply.lock import (
        Holder,
        LockError,
        LockHeld,
        acquire_locks,
        default_lock_dir,
        lock_key,
    )
    from reconciler.core.desired import intents

    aliases: dict[str, list[str]] = {}
    for name in _hosts_of(intents(manifests, options.policy)):
        aliases.setdefault(lock_key(manifests.hosts[name]), []).append(name)
    lock_dir = Path(options.lock_dir) if options.lock_dir else default_lock_dir()
    paths = [str(Path(p).resolve()) for p in options.file or ["manifests"]]
    try:
        locks = acquire_locks(
            list(aliases),
            lock_dir,
            options.lock_wait,
            holder=Holder.current(paths, runtime.clock()),
            on_wait=lambda held: logger.info(
                "waiting up to {} for the lock of {} ({})",
                format_duration(options.lock_wait),
                _hosts_text(aliases[held.key]),
                held.holder.describe() if held.holder is not None else "holder unknown",
            ),
        )
    except LockHeld as held:
        message = _lock_held_message(held, aliases[held.key], options.lock_wait)
        runtime.stderr.write(one_line(message.rstrip("\n")) + "\n")
        return EXIT_ERROR
    except LockError as error:
        runtime.stderr.write(one_line(f"error: {error}") + "\n")
        return EXIT_ERROR
    with locks:
        logger.debug("locked {} in {}", ", ".join(locks.keys), lock_dir)
        return _pass(options, manifests, runtime)


def _hosts_text(hosts: Sequence[str]) -> str:
    names = ", ".join(f"'{name}'" for name in hosts)
    return f"host {names}" if len(hosts) == 1 else f"hosts {names}"


def _lock_held_message(held: LockHeld, hosts: Sequence[str], waited: int) -> str:
    which = _hosts_text(hosts)
    who = held.holder.describe() if held.holder is not None else "holder unknown"
    advice = (
        f"gave up after --lock-wait {format_duration(waited)}; retry later or wait longer"
        if waited
        else "retry later or pass --lock-wait 5m"
    )
    return f"error: another reconciler holds the lock for {which} ({who}): {held.path}; {advice}\n"
