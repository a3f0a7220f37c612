"""The one-shot pass: `reconcile --dry-run` and `reconcile`, with the lock of every host it
touches, a saved plan (`--out`, `--plan`), the audit log, the metrics file, and the text and
JSON reports with their exit codes (product.md §3). The pass itself is `apply/passes.run_pass`.
Called by `reconciler.cli.main`."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from reconciler.manifest.durations import format_duration
from reconciler.manifest.errors import one_line
from reconciler.manifest.loader import Manifests
from reconciler.manifest.models import Host

if TYPE_CHECKING:
    from reconciler.apply.audit import AuditLog
    from reconciler.apply.executor import ApplyReport
    from reconciler.apply.lock import LockHeld, LockSet
    from reconciler.apply.passes import Locker, PassResult
    from reconciler.core.plan import Plan
    from reconciler.core.saved_plan import SavedPlan
    from reconciler.loop.textfile import MetricsFile

from reconciler.cli.common import (
    EXIT_CHANGES_PENDING,
    EXIT_ERROR,
    EXIT_OK,
    Console,
    Services,
    _count,
    _load,
    _log,
    _now,
    _unknown_policies,
)
from reconciler.cli.options import _max_destroy

# The pass's modules (planner, executor, driver, lock) are imported by the functions that use
# them, not here: `validate` and `schema`, which CI runs on every pull request, start in about
# half the time without them.


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
                    "bytes": r.bytes,  # what a send's stream carried; null when not measured
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
