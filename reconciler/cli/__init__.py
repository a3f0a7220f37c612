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
    reconcile permissions [-f PATH]... [--policy NAME]... [--output text|json] [--user NAME]
    reconcile import zrepl PATH... [--timezone ZONE] [--out DIR]
    reconcile import sanoid PATH [--syncoid 'COMMAND LINE']... [--timezone ZONE] [--prefix P]
                                 [--out DIR]
    reconcile serve --root DATASET... [--allow-rollback] [--append-only] [--log PATH] [--zfs PATH]

A pass that applies takes the lock of every host its policies touch before it observes them, and
keeps it to the end (guarantee 8, `apply/lock.py`); `--dry-run`, `status`, `validate` and
`schema` change nothing and take no lock.

The pass itself is `apply/passes.py`'s `run_pass`, shared with the control loop and the tests;
this package keeps parsing (`options.py`), rendering and exit codes: `main` here dispatches to
`apply.py` (the one-shot pass and `--dry-run`), `status.py`, `watch.py` and `importer.py`;
`common.py` holds what they share. The hosts a pass talks to come from a
`connect` function (Host manifest → ZFS port) passed in through `Services`; nothing here
reaches a host any other way. Presentation (`Console`) is kept apart from those services.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from reconciler.cli.apply import _dry_run, _locked_pass, _pass_with_metrics
from reconciler.cli.common import (
    EXIT_CHANGES_PENDING,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Console,
    Services,
    _configure_logging,
    _count,
    _load,
    _reported,
    _unknown_policies,
)
from reconciler.cli.options import _check_listen, _check_saved_plan_options, _parser
from reconciler.cli.status import _status, _status_nagios
from reconciler.cli.watch import _watch

__all__ = [
    "EXIT_CHANGES_PENDING",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "Console",
    "Services",
    "main",
]

SUBCOMMANDS = ("validate", "schema", "status", "watch", "import", "permissions", "serve")


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
    if command == "import":  # touches no host: converts a file to manifests
        from reconciler.cli.importer import import_parser, run_import
        from reconciler.cli.options import _Parser

        return run_import(import_parser(_Parser).parse_args(args), console)
    if command == "serve":  # the forced command of a confined target (docs/security-serve.md)
        from reconciler.cli.options import _Parser
        from reconciler.cli.serve import run_serve

        return run_serve(args, console, _Parser)
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
    if command == "permissions":  # touches no host: the zfs allow lines of the policies
        from reconciler.cli.permissions import run_permissions

        return run_permissions(options, manifests, console)
    if options.dry_run:
        return _dry_run(options, manifests, console, services)
    return _locked_pass(options, manifests, console, services)
