"""The command line of each subcommand: argparse parsers (no abbreviations; a usage error is one
line, exit 2) and the value types of their options (times, durations, limits, addresses).
Called by `reconciler.cli.main`."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from reconciler import __version__
from reconciler.manifest.durations import parse_duration
from reconciler.manifest.errors import one_line

if TYPE_CHECKING:
    from reconciler.core.guard import DestroyLimit
    from reconciler.loop.http import ListenAddress

from reconciler.cli.common import EXIT_USAGE


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
        epilog="subcommands: watch, status, validate, schema, import, permissions, serve "
        "(run 'reconcile SUBCOMMAND --help')"
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
    if command == "permissions":
        from reconciler.cli.permissions import permissions_options

        permissions_options(parser)
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
