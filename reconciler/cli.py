"""The `reconcile` command: parses arguments, wires the shell around the pure core, renders
results and maps outcomes to exit codes (product.md §3).

    reconcile [-f PATH]... [--dry-run [--output text|json|markdown] [--detailed-exitcode]
                                     [--out PATH]]
              [--plan PATH] [--max-destroy N|N%] [--force]
              [--lock-dir PATH] [--lock-wait DURATION] [--audit-log PATH] [--metrics-file PATH]
    reconcile status [-f PATH]... [--output text|json|nagios]
    reconcile validate [-f PATH]...
    reconcile watch [-f PATH]... [--policy NAME]... [--jobs N] [--resync DURATION]
                    [--max-destroy N|N%] [--lock-dir PATH] [--audit-log PATH]
                    [--listen HOST:PORT [--listen-public]]
    reconcile schema

A pass that applies takes the lock of every host its policies touch before it observes them, and
keeps it to the end (guarantee 8, `apply/lock.py`); `--dry-run`, `status`, `validate` and
`schema` change nothing and take no lock.

The pass itself is `apply/passes.py`'s `run_pass`, shared with the control loop and the tests;
this module keeps parsing, rendering and exit codes. The hosts a pass talks to come from a
`connect` function (Host manifest → ZFS port) passed in through `Services`; nothing here
reaches a host any other way. Presentation (`Console`) is kept apart from those services.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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

from reconciler import __version__
from reconciler.manifest.durations import format_duration, parse_duration
from reconciler.manifest.errors import one_line
from reconciler.manifest.loader import ManifestErrors, Manifests, load_manifests
from reconciler.manifest.models import Host

if TYPE_CHECKING:
    from loguru import Logger

    from reconciler.apply.audit import AuditLog
    from reconciler.apply.executor import ApplyReport
    from reconciler.apply.lock import LockHeld, LockSet
    from reconciler.apply.passes import Connect, Dependencies, Locker, PassAudit, PassResult
    from reconciler.core.guard import DestroyLimit
    from reconciler.core.nagios import NagiosResult
    from reconciler.core.plan import Plan
    from reconciler.core.saved_plan import SavedPlan
    from reconciler.loop.controller import Controller
    from reconciler.loop.http import Endpoint, ListenAddress
    from reconciler.loop.textfile import MetricsFile

# The pass's modules (planner, executor, driver, lock) are imported by the functions that use
# them, not here: `validate` and `schema`, which CI runs on every pull request, start in about
# half the time without them.

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES_PENDING = 2
EXIT_USAGE = 2  # argparse's code for a usage error
SUBCOMMANDS = ("validate", "schema", "status", "watch")


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


def main(
    argv: Sequence[str] | None = None,
    console: Console | None = None,
    services: Services | None = None,
) -> int:
    console = console or Console()
    services = services or Services()
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in SUBCOMMANDS else "pass"
    if command != "pass":
        args = args[1:]
    parser = _parser(command)
    options = parser.parse_args(args)
    if command == "pass" and options.detailed_exitcode and not options.dry_run:
        # an applying pass exits 0 or 1 (product.md §3); 2 would read as "changes pending"
        parser.error("--detailed-exitcode applies to --dry-run only")
    if command == "pass" and options.audit_log is not None and options.dry_run:
        parser.error("--audit-log records applied actions: a --dry-run applies none")
    if command == "pass":
        _check_saved_plan_options(parser, options)
    if command == "schema":
        from reconciler.manifest.schema import schema_text

        console.stdout.write(schema_text())
        return EXIT_OK
    if command != "validate":  # validate logs nothing: every error is a line of its own
        _configure_logging(
            options.log_level,
            options.log_format,
            console.stderr,
            _reported(command, options, console),
        )
    if command == "watch":  # loads (and reloads) the manifests itself: an invalid set waits
        _check_listen(parser, options)
        return _watch(options, console, services)
    if command == "status" and options.output == "nagios":  # exits 0-3, whatever happens
        return _status_nagios(options, console, services)
    if command == "pass" and options.metrics_file is not None:
        return _pass_with_metrics(parser, options, console, services)
    manifests = _load(options.file, console)
    if manifests is None:
        return EXIT_ERROR
    if command == "validate":
        count = len(manifests.hosts) + len(manifests.policies)
        console.stdout.write(
            f"{_count(count, 'document')} valid: {_count(len(manifests.hosts), 'host')}, "
            f"{_count(len(manifests.policies), 'policy', 'policies')}\n"
        )
        return EXIT_OK
    if _unknown_policies(options.policy, manifests, console):
        return EXIT_ERROR
    if command == "status":
        return _status(options, manifests, console, services)
    if options.dry_run:
        return _dry_run(options, manifests, console, services)
    return _locked_pass(options, manifests, console, services)


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
        epilog="subcommands: watch, status, validate, schema (run 'reconcile SUBCOMMAND --help')"
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
    if command == "watch":
        _watch_options(parser)
        return parser
    if command == "pass":
        parser.add_argument(
            "--dry-run", action="store_true", help="observe and print the plan; change nothing"
        )
        _saved_plan_options(parser)
    outputs = {"status": ["text", "json", "nagios"], "pass": ["text", "json", "markdown"]}.get(
        command, ["text", "json"]
    )
    parser.add_argument("--output", choices=outputs, default="text")
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
        _guard_options(parser, force=True)
        _lock_options(parser)
        _audit_option(parser)
        parser.add_argument(
            "--metrics-file",
            default=None,
            metavar="PATH",
            help="write the pass's Prometheus metrics to PATH, atomically, for node_exporter's "
            "textfile collector (applying passes only)",
        )
    return parser


def _guard_options(parser: argparse.ArgumentParser, *, force: bool) -> None:
    from reconciler.core.guard import DEFAULT_LIMIT

    parser.add_argument(
        "--max-destroy",
        type=_destroy_limit,
        default=None,
        metavar="N|N%",
        help="withhold a filesystem's destroys when a pass would destroy more than N, or N%% "
        "of the policy's snapshots there, of those earlier passes kept "
        f"(default {str(DEFAULT_LIMIT).replace('%', '%%')}; docs/destroy-guard.md)",
    )
    if force:
        parser.add_argument(
            "--force",
            action="store_true",
            help="no destroy guard in this pass: apply every destroy the plan holds",
        )


def _destroy_limit(text: str) -> DestroyLimit:
    from reconciler.core.guard import parse_limit

    try:
        return parse_limit(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _max_destroy(options: argparse.Namespace) -> DestroyLimit | None:
    """The guard's limit for this pass; None with --force."""
    from reconciler.core.guard import DEFAULT_LIMIT

    if getattr(options, "force", False):
        return None
    return DEFAULT_LIMIT if options.max_destroy is None else options.max_destroy


def _audit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--audit-log",
        default=None,
        metavar="PATH",
        help="append one JSON line per applied action to PATH (docs/audit-log.md)",
    )


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


def _dry_run(
    options: argparse.Namespace, manifests: Manifests, console: Console, services: Services
) -> int:
    """Observe and plan, print the plan; change nothing and take no lock."""
    from reconciler.apply.passes import run_pass
    from reconciler.apply.saved_plan import (
        SavedPlanFileError,
        check_out_path,
        saved_plan_of,
        write_saved_plan,
    )

    out = Path(options.out) if options.out is not None else None
    limit = _max_destroy(options)
    try:
        if out is not None:
            check_out_path(out)  # before observing: a path that cannot be written wastes a pass
        deps = services.dependencies(console)
        now = _now(options, services)
        result = run_pass(manifests, options.policy, now, deps, apply=False, max_destroy=limit)
        _show_plan(result.plan, options.output, console.stdout)
        _show_withheld(result, options.output, console.stdout)
        if out is not None:
            saved = saved_plan_of(result, manifests, options.policy, limit)
            write_saved_plan(out, saved)
    except SavedPlanFileError as error:
        console.stderr.write(one_line(f"error: cannot save the plan: {error}") + "\n")
        return EXIT_ERROR
    return _dry_run_exit(result, options.detailed_exitcode)


def _pass(
    options: argparse.Namespace,
    manifests: Manifests,
    console: Console,
    services: Services,
    lock: Locker,
    audit: AuditLog | None = None,
    on_result: Callable[[PassResult], None] | None = None,
) -> int:
    """Observe, plan, apply and report. A host that cannot be connected or observed gets
    nothing; the other policies proceed, and the exit code is 1."""
    from reconciler.apply.passes import run_pass
    from reconciler.apply.saved_plan import StalePlan, expect

    deps = services.dependencies(console, lock, audit.for_pass if audit is not None else None)
    only, now, check, limit = options.policy, _now(options, services), None, _max_destroy(options)
    if options.plan is not None:
        saved = _read_saved_plan(options.plan, manifests, console)
        if saved is None:
            return EXIT_ERROR
        only, now, check, limit = saved.policies, saved.now, expect(saved), saved.max_destroy
    try:
        with _interruptible(services.cancel):
            result = run_pass(
                manifests, only, now, deps, jobs=options.jobs, max_destroy=limit, check=check
            )
    except StalePlan as stale:
        _refuse_stale(options.plan, stale, console)
        return EXIT_ERROR
    assert result.report is not None
    _show_pass(result.plan, result.report, options.output, console.stdout)
    _show_withheld(result, options.output, console.stdout)
    if on_result is not None:
        on_result(result)
    if audit is not None and audit.failures:
        console.stderr.write(one_line(f"error: audit log: {audit.failures[0]}") + "\n")
        return EXIT_ERROR
    return EXIT_ERROR if result.errors else EXIT_OK


@contextmanager
def _audit_log(path: str | None, manifest_paths: Sequence[str]) -> Iterator[AuditLog | None]:
    """The audit log of `--audit-log PATH`, open while the block runs (None without it).
    Raises AuditError when PATH cannot be one: before anything is observed or applied."""
    if path is None:
        yield None
        return
    from reconciler.apply.audit import AuditLog

    log = AuditLog.open(path, manifest_paths)
    try:
        yield log
    finally:
        log.close()


@contextmanager
def _interruptible(cancel: threading.Event) -> Iterator[None]:
    """While actions run, SIGINT/SIGTERM stop new actions and running transfers (both sides
    of each pipeline are terminated; a cut receive resumes from its token next pass)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        _log().warning("{}: stopping: no new action starts", signal.Signals(signum).name)
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
    elif output == "markdown":
        from reconciler.core.render_markdown import render_markdown

        stream.write(render_markdown(plan))
    else:
        stream.write(render_text(plan))


def _dry_run_exit(result: PassResult, detailed: bool) -> int:
    """1 on a conflict, an unobserved host or destroys the guard withholds (before 2: an error
    beats pending changes)."""
    plan = result.plan
    if _plan_errors(plan) or result.withheld:
        return EXIT_ERROR
    if detailed and plan.actions:
        return EXIT_CHANGES_PENDING
    return EXIT_OK


def _show_withheld(result: PassResult, output: str, stream: TextIO) -> None:
    """In text, every destroy the guard withheld, with its reason (the plan's notices say
    why each group was withheld and how to confirm it; JSON carries those notices)."""
    if output != "text" or not result.withheld:
        return
    from reconciler.core.render import action_text

    stream.write("Withheld by the destroy guard (docs/destroy-guard.md)\n")
    for group in result.withheld:
        for action in group.actions:
            stream.write(f"  {action_text(action)}\n")


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


# --- saved plans (--out, --plan) --------------------------------------------------------------


def _saved_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="with --dry-run: also save the plan, with what it was made from, to PATH",
    )
    parser.add_argument(
        "--plan",
        default=None,
        metavar="PATH",
        help="apply exactly the plan saved by --dry-run --out PATH, or nothing if it is stale",
    )


def _check_saved_plan_options(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    """Usage errors (exit 2): `--out` and `--output markdown` only with `--dry-run`;
    `--plan` only without it, and without `--policy` and `--now` (the saved plan fixes both)."""
    if options.out is not None and not options.dry_run:
        parser.error("--out applies to --dry-run only (apply a saved plan with --plan PATH)")
    if options.output == "markdown" and not options.dry_run:
        parser.error("--output markdown applies to --dry-run only")
    if options.plan is None:
        return
    if options.dry_run:
        parser.error("--plan applies a saved plan and cannot be combined with --dry-run")
    if options.policy is not None or options.now is not None:
        parser.error("--plan takes its policies and time from the saved plan: drop --policy/--now")
    if options.max_destroy is not None or options.force:
        parser.error(
            "--plan applies the saved plan with the destroy guard it was made with: "
            "drop --max-destroy/--force (give them to --dry-run --out)"
        )


def _read_saved_plan(path: str, manifests: Manifests, console: Console) -> SavedPlan | None:
    """The saved plan in `path`, made from these manifests; None (the reason written as one
    line) when it cannot be read or was made from other manifests."""
    from reconciler.apply.saved_plan import (
        SavedPlanFileError,
        StalePlan,
        check_manifests,
        read_saved_plan,
    )

    try:
        saved = read_saved_plan(Path(path))
    except SavedPlanFileError as error:
        console.stderr.write(one_line(f"error: cannot use the saved plan {error}") + "\n")
        return None
    try:
        check_manifests(saved, manifests)
    except StalePlan as stale:
        _refuse_stale(path, stale, console)
        return None
    return saved


def _refuse_stale(path: str, stale: Exception, console: Console) -> None:
    from reconciler.apply.saved_plan import StalePlan

    changes = stale.changes if isinstance(stale, StalePlan) else (str(stale),)
    console.stderr.write(
        one_line(f"error: the saved plan {path} is stale; nothing was applied; make a new one")
        + " with --dry-run --out:\n"
    )
    for change in changes:
        console.stderr.write(f"  {one_line(change)}\n")


# --- status -----------------------------------------------------------------------------------


def _status(
    options: argparse.Namespace, manifests: Manifests, console: Console, services: Services
) -> int:
    """Observe as a dry run does, plan, and report how current each replica is. A host that
    cannot be reached is reported as unreachable; nothing is locked or changed."""
    from reconciler.apply.passes import run_pass
    from reconciler.core.status import render_status_text, status_report, status_to_json

    now = _now(options, services)
    result = run_pass(manifests, options.policy, now, services.dependencies(console), apply=False)
    report = status_report(result.policies, result.observed, result.plan, now)
    if options.output == "json":
        console.stdout.write(json.dumps(status_to_json(report), indent=2, ensure_ascii=False))
        console.stdout.write("\n")
    else:
        console.stdout.write(render_status_text(report))
    return EXIT_OK if report.ok else EXIT_ERROR


def _status_nagios(options: argparse.Namespace, console: Console, services: Services) -> int:
    """`reconcile status --output nagios`: exactly one plugin line on stdout and the plugin's
    exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), whatever goes wrong; details of
    invalid manifests and errors go to stderr (docs/status-and-lock.md)."""
    from reconciler.core.nagios import nagios_unknown

    try:
        result = _nagios_result(options, console, services)
    except Exception as error:  # a monitor must get its line: an internal error is UNKNOWN
        _log().opt(exception=error).error("reconcile status failed")
        result = nagios_unknown(f"internal error: {type(error).__name__}: {error}")
    console.stdout.write(result.line + "\n")
    return int(result.state)


def _nagios_result(
    options: argparse.Namespace, console: Console, services: Services
) -> NagiosResult:
    from reconciler.apply.passes import run_pass
    from reconciler.core.nagios import nagios_check, nagios_unknown
    from reconciler.core.status import status_report

    try:
        manifests = load_manifests(options.file or ["manifests"])
    except ManifestErrors as errors:
        for error in errors.errors:
            console.stderr.write(f"{error}\n")
        first = f": {errors.errors[0]}" if errors.errors else ""
        return nagios_unknown(f"invalid manifests ({_count(len(errors.errors), 'error')}){first}")
    unknown = sorted(set(options.policy or ()) - set(manifests.policies))
    if unknown:
        return nagios_unknown(f"unknown policy: {', '.join(map(repr, unknown))}")
    now = _now(options, services)
    result = run_pass(manifests, options.policy, now, services.dependencies(console), apply=False)
    return nagios_check(status_report(result.policies, result.observed, result.plan, now))


# --- the lock of an applying pass ------------------------------------------------------------


def _lock_options(parser: argparse.ArgumentParser, *, wait: bool = True) -> None:
    parser.add_argument(
        "--lock-dir",
        default=None,
        metavar="PATH",
        help="where the per-host lock files live (default: $ZFS_RECONCILER_LOCK_DIR, "
        "/run/zfs-reconciler, $XDG_RUNTIME_DIR/zfs-reconciler or /tmp/zfs-reconciler-UID)",
    )
    if not wait:
        return
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


def _locked_pass(
    options: argparse.Namespace,
    manifests: Manifests,
    console: Console,
    services: Services,
    on_result: Callable[[PassResult], None] | None = None,
) -> int:
    """The applying pass, holding the lock of every host it touches from before it observes
    them until its last action has finished."""
    from reconciler.apply.audit import AuditError
    from reconciler.apply.lock import Holder, LockError, LockHeld, acquire_locks, default_lock_dir
    from reconciler.apply.lock import lock_aliases as aliases_of

    lock_dir = Path(options.lock_dir) if options.lock_dir else default_lock_dir()
    paths = [str(Path(p).resolve()) for p in options.file or ["manifests"]]
    aliases: dict[str, list[str]] = {}

    def lock(hosts: Sequence[Host]) -> LockSet:
        aliases.update(aliases_of(hosts))
        locks = acquire_locks(
            list(aliases),
            lock_dir,
            options.lock_wait,
            holder=Holder.current(paths, services.clock()),
            on_wait=lambda held: _log().info(
                "waiting up to {} for the lock of {} ({})",
                format_duration(options.lock_wait),
                _hosts_text(aliases[held.key]),
                held.holder.describe() if held.holder is not None else "holder unknown",
            ),
        )
        _log().debug("locked {} in {}", ", ".join(locks.keys), lock_dir)
        return locks

    try:
        with _audit_log(options.audit_log, options.file or ["manifests"]) as audit:
            return _pass(options, manifests, console, services, lock, audit, on_result)
    except AuditError as error:
        console.stderr.write(one_line(f"error: {error}") + "\n")
        return EXIT_ERROR
    except LockHeld as held:
        message = _lock_held_message(held, aliases[held.key], options.lock_wait)
        console.stderr.write(one_line(message.rstrip("\n")) + "\n")
        return EXIT_ERROR
    except LockError as error:
        console.stderr.write(one_line(f"error: {error}") + "\n")
        return EXIT_ERROR


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


# --- the metrics file of a one-shot pass ------------------------------------------------------


def _pass_with_metrics(
    parser: argparse.ArgumentParser,
    options: argparse.Namespace,
    console: Console,
    services: Services,
) -> int:
    """The applying pass with `--metrics-file`: the path is checked before anything is
    loaded or applied; the file is written after the pass, and also when the manifests are
    invalid (`manifests_valid 0`); not when the pass did not run (a lock held)."""
    from reconciler.loop.textfile import MetricsFile, MetricsFileError

    if options.dry_run:
        parser.error("--metrics-file applies to an applying pass, not to --dry-run")
    metrics = MetricsFile(options.metrics_file)
    try:
        metrics.check()
    except MetricsFileError as error:
        console.stderr.write(one_line(f"error: {error}") + "\n")
        return EXIT_ERROR
    metrics.carry_over()
    manifests = _load(options.file, console)
    if manifests is None:
        metrics.invalid()
        return _write_metrics(metrics, console, EXIT_ERROR)
    if _unknown_policies(options.policy, manifests, console):
        return EXIT_ERROR
    began = time.monotonic()

    def record(result: PassResult) -> None:
        metrics.record(manifests, result, services.clock(), time.monotonic() - began)

    code = _locked_pass(options, manifests, console, services, record)
    return _write_metrics(metrics, console, code) if metrics.recorded else code


def _write_metrics(metrics: MetricsFile, console: Console, code: int) -> int:
    from reconciler.loop.textfile import MetricsFileError

    try:
        metrics.write()
    except MetricsFileError as error:
        console.stderr.write(one_line(f"error: {error}") + "\n")
        return EXIT_ERROR
    return code


# --- the control loop -------------------------------------------------------------------------


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="NAME",
        help="reconcile only this policy (repeatable)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=4,
        metavar="N",
        help="passes of non-overlapping policies at once, and actions at once in each (default 4)",
    )
    parser.add_argument(
        "--resync",
        type=_resync,
        default=600,
        metavar="DURATION",
        help="pass every policy at least this often, repairing drift made by hand (default 10m)",
    )
    _guard_options(parser, force=False)
    _lock_options(parser, wait=False)
    _audit_option(parser)
    parser.add_argument(
        "--listen",
        type=_listen,
        default=None,
        metavar="HOST:PORT",
        help="serve /metrics, /status and /healthz over HTTP on this address (off by default; "
        "port 0: any free port)",
    )
    parser.add_argument(
        "--listen-public",
        action="store_true",
        help="allow --listen on an address that is not loopback (the endpoint has no "
        "authentication)",
    )


def _listen(text: str) -> ListenAddress:
    from reconciler.loop.http import parse_listen

    try:
        return parse_listen(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _check_listen(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    listen: ListenAddress | None = options.listen
    if listen is None and options.listen_public:
        parser.error("--listen-public needs --listen HOST:PORT")
    if listen is not None and not listen.loopback and not options.listen_public:
        parser.error(
            f"--listen {listen.host} is not a loopback address; the endpoint has no "
            "authentication: add --listen-public to serve it there anyway"
        )


def _resync(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    if seconds < 1 or seconds > _MAX_RESYNC:
        raise argparse.ArgumentTypeError(f"not a duration from 1s to 365d: {text!r}")
    return seconds


_MAX_RESYNC = 365 * 86400


def _watch(options: argparse.Namespace, console: Console, services: Services) -> int:
    """The control loop, with its audit log open (`--audit-log`) while it runs."""
    from reconciler.apply.audit import AuditError

    try:
        with _audit_log(options.audit_log, options.file or ["manifests"]) as audit:
            return _run_watch(options, console, services, audit)
    except AuditError as error:
        console.stderr.write(one_line(f"error: {error}") + "\n")
        return EXIT_ERROR


def _run_watch(
    options: argparse.Namespace, console: Console, services: Services, audit: AuditLog | None
) -> int:
    """Run the control loop until SIGTERM or SIGINT (exit 0); SIGHUP re-reads the manifests.
    The signal handlers only note the signal and write a byte to a pipe the main thread
    reads: they take no lock, so they cannot deadlock with the thread they interrupt."""
    from reconciler.apply.lock import Holder, default_lock_dir
    from reconciler.loop.clock import SystemClock
    from reconciler.loop.controller import Controller, LoopOptions, LoopServices
    from reconciler.loop.locks import SharedHostLocks

    paths = tuple(options.file or ["manifests"])
    resolved = [str(Path(p).resolve()) for p in paths]
    lock_dir = Path(options.lock_dir) if options.lock_dir else default_lock_dir()
    deps = services.dependencies(console)
    controller = Controller(
        LoopOptions(
            paths=paths,
            policies=frozenset(options.policy) if options.policy else None,
            jobs=options.jobs,
            resync=options.resync,
            max_destroy=_max_destroy(options),
        ),
        LoopServices(
            connect=deps.connect,
            clock=SystemClock(),
            cancel=services.cancel,
            lock=SharedHostLocks(lock_dir, lambda: Holder.current(resolved, services.clock())),
            audit=audit.for_pass if audit is not None else None,
        ),
    )
    endpoint = _endpoint(options.listen, options.resync, controller, services)
    if options.listen is not None and endpoint is None:
        return EXIT_ERROR

    with _signals() as signals:
        _log().info(
            "watching {} (resync every {}, {} at once; locks in {})",
            ", ".join(paths),
            format_duration(options.resync),
            options.jobs,
            lock_dir,
        )
        watcher_stop = threading.Event()
        watching = controller.watch_manifests(watcher_stop)
        controller.start()
        while True:
            received = signals.next()
            if received in (signal.SIGTERM, signal.SIGINT):
                _log().warning(
                    "{}: stopping: no new pass starts; running transfers are cut",
                    signal.Signals(received).name,
                )
                break
            _log().info("SIGHUP: reading the manifests again")
            controller.reload("SIGHUP")
        controller.stop()
        watcher_stop.set()
        controller.join()
        watching.join(1.0)
        if endpoint is not None:
            endpoint.stop()
    _log().info("stopped")
    return EXIT_OK


def _endpoint(
    listen: ListenAddress | None, resync: int, controller: Controller, services: Services
) -> Endpoint | None:
    """The loop's HTTP endpoint, listening (docs/monitoring.md); None when there is none or
    it cannot listen (logged)."""
    if listen is None:
        return None
    from reconciler.loop.http import Endpoint, Sources

    endpoint = Endpoint(
        listen, Sources(controller.state, controller.metrics.registry, services.clock, resync)
    )
    try:
        endpoint.start()
    except OSError as error:
        _log().error("cannot listen on {}: {}", listen.url(), error.strerror or error)
        return None
    _log().info("serving /metrics, /status and /healthz on {}", endpoint.address.url())
    return endpoint


class _SignalPipe:
    """Signals noted by their handlers and handed to the main thread through a pipe (also
    the interpreter's wakeup fd)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.write_end, False)
        self.pending: list[int] = []

    def handler(self, signum: int, _frame: object) -> None:
        self.pending.append(signum)
        with contextlib.suppress(OSError):  # a full pipe: a byte is already waiting
            os.write(self.write_end, b"!")

    def next(self) -> int:
        """Block until a signal arrives; the oldest one not yet handed out."""
        while not self.pending:
            os.read(self.read_end, 64)
        return self.pending.pop(0)

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


@contextmanager
def _signals() -> Iterator[_SignalPipe]:
    pipe = _SignalPipe()
    wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, pipe.handler) for sig in wanted}
    # a signal may be delivered to any thread; the C-level handler then writes to this pipe,
    # which wakes the main thread's read so that the Python-level handler runs there
    previous_fd = signal.set_wakeup_fd(pipe.write_end, warn_on_full_buffer=False)
    try:
        yield pipe
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        pipe.close()
