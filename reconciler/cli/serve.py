"""`reconcile serve`: the forced command of a confined target (docs/security-serve.md).

    reconcile serve --root DATASET [--root ...] [--allow-rollback] [--append-only]
                    [--log PATH] [--zfs PATH]

sshd runs it for one key (`command="reconcile serve --root vault/nas",restrict ssh-ed25519 ...`
in authorized_keys) with the client's command line in SSH_ORIGINAL_COMMAND. Owned here: the
parser of its options, reading that variable, logging each verdict (one JSON line to `--log`,
else to syslog: sshd gives no terminal) and running the real zfs with the checked arguments
(stdin and stdout passed through: a receive reads its stream from stdin). What is allowed is
decided by the pure `core/serve_check.py`. Called by `reconciler.cli.main`.

A refusal is one line on stderr (the client sees it as the command's error) and exit 126.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from reconciler.cli.common import EXIT_USAGE, Console
from reconciler.core.serve_check import REFUSED_EXIT, Refused, ServeRules, check_command

DEFAULT_ZFS = "/usr/sbin/zfs"
ENV_COMMAND = b"SSH_ORIGINAL_COMMAND"

RunZfs = Callable[[str, Sequence[str]], int]  # (zfs path, arguments after it) → exit status


def serve_parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = parser_class(
        prog="reconcile serve",
        description="Forced command of a confined target: run only the zfs commands the "
        "reconciler sends to a target, below the given roots (docs/security-serve.md).",
    )
    parser.add_argument(
        "--root",
        action="append",
        required=True,
        metavar="DATASET",
        help="the filesystem this key may touch, with everything below it (repeatable)",
    )
    parser.add_argument(
        "--allow-rollback",
        action="store_true",
        help="allow `zfs rollback` and `zfs receive -F` below the roots",
    )
    parser.add_argument(
        "--append-only",
        action="store_true",
        help="no destroy, no rollback, no receive -F: retention runs on the target itself",
    )
    parser.add_argument(
        "--log",
        default=None,
        metavar="PATH",
        help="append one JSON line per request to PATH (default: syslog, facility AUTH)",
    )
    parser.add_argument(
        "--zfs",
        default=DEFAULT_ZFS,
        metavar="PATH",
        help=f"absolute path of the zfs program to run (default {DEFAULT_ZFS})",
    )
    return parser


def run_serve(
    argv: Sequence[str],
    console: Console,
    parser_class: type[argparse.ArgumentParser],
    environ: Mapping[bytes, bytes] | None = None,
    run_zfs: RunZfs | None = None,
) -> int:
    """Check SSH_ORIGINAL_COMMAND and run it, or refuse it; the exit status of either."""
    parser = serve_parser(parser_class)
    options = parser.parse_args(argv)
    if not os.path.isabs(options.zfs):
        parser.error(f"--zfs needs an absolute path, not {options.zfs!r}")
    try:
        rules = ServeRules(tuple(options.root), options.allow_rollback, options.append_only)
    except ValueError as error:
        parser.error(str(error))
        return EXIT_USAGE
    line = (os.environb if environ is None else environ).get(ENV_COMMAND)
    if line is None:
        return _refuse(options, console, Refused("no command: this key only runs zfs"), b"")
    try:
        args = check_command(line, rules)
    except Refused as refused:
        return _refuse(options, console, refused, line)
    _log(options.log, _record("allowed", "", line, ("zfs", *args)))
    return (run_zfs or _exec_zfs)(options.zfs, args)


def _refuse(options: argparse.Namespace, console: Console, refused: Refused, line: bytes) -> int:
    _log(options.log, _record("refused", refused.reason, line, refused.argv))
    reason = refused.reason.replace("\n", "\\n")
    console.stderr.write(f"reconcile serve: refused: {reason}\n")
    return REFUSED_EXIT


def _record(verdict: str, reason: str, line: bytes, argv: Sequence[str]) -> dict[str, object]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdict": verdict,
        "reason": reason,
        "command": line.decode("utf-8", "backslashreplace"),
        "argv": list(argv),
        "client": os.environ.get("SSH_CLIENT", ""),
        "user": _user(),
    }


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def _log(path: str | None, record: Mapping[str, object]) -> None:
    """One JSON line appended to `path` in one write; syslog without a path, or when the file
    cannot be written (the request is still decided: a refusal is never turned into a run)."""
    text = json.dumps(record, ensure_ascii=True, sort_keys=True)
    if path is not None:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(descriptor, (text + "\n").encode())
            finally:
                os.close(descriptor)
            return
        except OSError as error:
            text = f"{text} (log file {path}: {error.strerror})"
    _syslog(text)


def _syslog(text: str) -> None:
    try:
        import syslog

        syslog.openlog("reconcile-serve", syslog.LOG_PID, syslog.LOG_AUTH)
        syslog.syslog(syslog.LOG_NOTICE, text)
    except (ImportError, OSError):  # no syslog at all: stderr is all there is
        sys.stderr.write(f"reconcile serve: {text}\n")


def _exec_zfs(zfs: str, args: Sequence[str]) -> int:
    """Replace this process with zfs (stdin, stdout and stderr stay the client's)."""
    try:
        os.execv(zfs, [zfs, *args])
    except OSError as error:
        sys.stderr.write(f"reconcile serve: cannot run {zfs}: {error.strerror}\n")
    return REFUSED_EXIT
