"""`reconcile status`: observe as a dry run does and report how current each replica is, as
text, JSON or one Nagios plugin line (with the plugin's exit codes). Called by
`reconciler.cli.main`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from reconciler.manifest.loader import ManifestErrors, Manifests, load_manifests

if TYPE_CHECKING:
    from reconciler.core.nagios import NagiosResult

from reconciler.cli.common import EXIT_ERROR, EXIT_OK, Console, Services, _count, _log, _now

# The pass's modules (planner, executor, driver, lock) are imported by the functions that use
# them, not here: `validate` and `schema`, which CI runs on every pull request, start in about
# half the time without them.


def _status(
    options: argparse.Namespace, manifests: Manifests, console: Console, services: Services
) -> int:
    """Observe as a dry run does, plan, and report how current each replica is. A host that
    cannot be reached is reported as unreachable; nothing is locked or changed."""
    from reconciler.apply.passes import run_pass
    from reconciler.core.status import status_report
    from reconciler.core.status_render import render_status_text, status_to_json

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
