"""One reconcile pass as a service: connect, observe, plan and, unless it is a dry run, apply.

Owned here: `run_pass` (manifests, selection, now, dependencies → `PassResult`),
`Dependencies` (what a pass needs from the outside world: how to reach a host, the cancel
flag, the lock of a host) and `hosts_of`. Called by the CLI
(one pass, `--dry-run`, `status`), by the control loop (one pass per policy) and by the tests,
so that all three run the same pass. Nothing here renders anything or picks an exit code:
callers do; results are values.

A host that cannot be connected or observed is unobserved like one whose listing fails
(`HostState.error`): the planner gives it nothing (guarantee 5) and names it in the plan.
With a lock, the locks of every host the pass touches are taken before it observes them and
kept until every action has finished (guarantee 8).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from reconciler.apply.executor import ActionResult, ApplyReport, EventSink, execute
from reconciler.core.desired import PolicyIntent, intents
from reconciler.core.details import needed_details
from reconciler.core.guard import DEFAULT_LIMIT, DestroyLimit, GuardedDestroys, guard_plan
from reconciler.core.plan import Plan
from reconciler.core.planner import plan_intents
from reconciler.core.scope import observation_scopes
from reconciler.core.state import Observed
from reconciler.manifest.confirm import confirmation_hint, confirmed_policies
from reconciler.manifest.models import Host, Manifests
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.observe import observe_hosts
from reconciler.zfs.port import ZFS
from reconciler.zfs.stamps import VersionCache

Connect = Callable[[Host], ZFS]
# (selected policies, what was observed, the plan made now) → the plan to carry out; raises
# to apply nothing (a saved plan that is stale, `apply/saved_plan.py`)
PlanCheck = Callable[[Sequence[PolicyIntent], Observed, Plan], Plan]
# the Host manifests a pass touches → a context that holds their locks (raises if it cannot)
Locker = Callable[[Sequence[Host]], AbstractContextManager[Any]]
# the manifests and plan of a pass about to apply → the sink of its results (the audit log's)
PassAudit = Callable[[Manifests, Plan], EventSink]


@dataclass(frozen=True)
class Dependencies:
    """What a pass needs from outside: `connect` turns a Host manifest into a ZFS port (the
    real driver or a test's model); once `cancel` is set no further action starts and running
    transfers are stopped by their driver; `lock`, when given, holds the hosts' locks around an
    applying pass; `on_result` sees each action's result as it finishes; `versions`, the
    control loop's, lets a pass skip listing the snapshots of filesystems whose
    `snapshots_changed` did not move (`zfs/stamps.py`); `audit`, given the manifests and plan
    of each applying pass, returns the sink that records its results (`apply/audit.py`)."""

    connect: Connect
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: Locker | None = None
    on_result: EventSink | None = None
    versions: VersionCache | None = None  # the loop's: snapshots of unchanged filesystems
    audit: PassAudit | None = None


@dataclass(frozen=True)
class PassResult:
    """What one pass saw, planned and did. `report` is None for a dry run. `plan` is what the
    pass carries out: the planned actions less those the destroy guard withheld (`withheld`)."""

    policies: tuple[PolicyIntent, ...]
    observed: Observed
    plan: Plan
    report: ApplyReport | None = None
    withheld: tuple[GuardedDestroys, ...] = ()

    @property
    def applied(self) -> bool:
        return self.report is not None

    @property
    def errors(self) -> tuple[str, ...]:
        """Why the pass is not clean, one line each: a host not observed, a conflict, a
        failed action. Empty when every action succeeded and nothing is in conflict."""
        lines = [f"host {u.host} not observed: {u.error}" for u in self.plan.unobserved_hosts]
        lines += [
            f"conflict on {c.target_host}:{c.target_filesystem} ({c.policy}): {c.message}"
            for c in self.plan.conflicts
        ]
        lines += [group.message for group in self.withheld]
        if self.report is not None:
            lines += [f"action {r.action_id} failed: {r.message}" for r in self.report.failed]
        return tuple(lines)


def hosts_of(policies: Sequence[PolicyIntent]) -> list[str]:
    """The hosts the policies touch: their sources and targets, by name."""
    return sorted({i.source_host for i in policies} | {t.host for i in policies for t in i.targets})


def _observe(
    manifests: Manifests,
    policies: Sequence[PolicyIntent],
    connect: Connect,
    now: int,
    versions: VersionCache | None = None,
) -> tuple[dict[str, ZFS], Observed]:
    """Connect to and observe every host the policies touch, each within what the policies
    touch there (`core.scope`), with the details of the snapshots a plan at `now` reads
    (`core.details`): (the hosts reached, what was observed). Each host that could not be
    observed is logged as an error."""
    hosts: dict[str, ZFS] = {}
    failures: dict[str, str] = {}
    scopes = observation_scopes(policies)
    for name in hosts_of(policies):
        try:
            hosts[name] = connect(manifests.hosts[name])
        except ZFSError as error:
            failures[name] = str(error)
    observed = observe_hosts(
        hosts, failures, scopes, lambda seen: needed_details(policies, seen, now), versions
    )
    for name, state in observed.hosts.items():
        if state.error is not None:
            logger.error("host {} could not be observed: {}", name, state.error)
    return hosts, observed


def run_pass(
    manifests: Manifests,
    only: Collection[str] | None,
    now: int,
    deps: Dependencies,
    *,
    apply: bool = True,
    jobs: int = 1,
    max_destroy: DestroyLimit | None = DEFAULT_LIMIT,
    check: PlanCheck | None = None,
) -> PassResult:
    """Observe the hosts of the selected policies (`only`; None: all), plan at `now`, hold
    back what the destroy guard refuses (`max_destroy`; None: no guard, as `--force`), and
    unless `apply` is false carry the plan out, `jobs` independent filesystems at a time.
    With `check`, the plan carried out (and returned) is the one `check` returns once it has
    seen what was observed and planned, still under the locks; what `check` raises is raised
    and nothing is applied. Raises what `deps.lock` raises when a lock cannot be had (nothing
    was observed then)."""
    selected = intents(manifests, only)
    held = _locks(manifests, selected, deps) if apply else nullcontext()
    with held:
        hosts, observed = _observe(manifests, selected, deps.connect, now, deps.versions)
        planned = plan_intents(selected, observed, now)
        verdict = guard_plan(
            planned,
            selected,
            observed,
            max_destroy,
            confirmed_policies(manifests),
            {i.name: confirmation_hint(manifests.policies[i.name]) for i in selected},
        )
        plan = verdict.plan
        if check is not None:
            plan = check(selected, observed, plan)
        if not apply:
            return PassResult(selected, observed, plan, withheld=verdict.withheld)
        sink = _sink(deps, manifests, plan)
        report = execute(plan, hosts, on_event=sink, jobs=jobs, cancel=deps.cancel)
    return PassResult(selected, observed, plan, report, verdict.withheld)


def _sink(deps: Dependencies, manifests: Manifests, plan: Plan) -> EventSink | None:
    """`deps.on_result` and the audit's sink of this pass, as one."""
    sinks = [deps.on_result, deps.audit(manifests, plan) if deps.audit is not None else None]
    present = [sink for sink in sinks if sink is not None]
    if len(present) < 2:
        return present[0] if present else None

    def each(result: ActionResult) -> None:
        for sink in present:
            sink(result)

    return each


def _locks(
    manifests: Manifests, selected: Sequence[PolicyIntent], deps: Dependencies
) -> AbstractContextManager[Any]:
    if deps.lock is None:
        return nullcontext()
    return deps.lock([manifests.hosts[name] for name in hosts_of(selected)])
