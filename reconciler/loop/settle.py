"""The status a pass leaves behind: `reconcile status`'s report, moved on by what was applied.

Owned here: `settled_status` (a pass's `PassResult` → the `StatusReport` of its policies after
its actions). Called by the control loop after every pass (for `/status` and the metrics) and
by the CLI's `--metrics-file`. Pure: no I/O, no clock, no logging.

`core/status.status_report` reads the hosts as they were observed at the start of a pass, with
the plan made for that state: every replica the pass was about to bring up to date reads
`pending`, and its lag is as old as the previous pass. Observing again after each pass would
cost a listing per host; instead the report is moved on by the pass's own results, and nothing
is decided again:

- a replica's newest common snapshot becomes the last snapshot a succeeded send delivered to it
  (its lag is counted from that snapshot's time: from its name, or for a foreign snapshot
  replicated by `include`, its `creation` on the source);
- a snapshot the pass took becomes the newest snapshot of its filesystems and of the policy,
  and the policy's snapshot is no longer due;
- `pending` and `pending_sends` count the planned actions that did not succeed;
- a replica whose every planned action succeeded is `in_sync` when it read `pending`,
  `resuming` or `never_replicated`; any other condition (a conflict, a host not observed, a
  child waiting for its parent) stays as observed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from reconciler.apply.executor import ActionResult
from reconciler.apply.passes import PassResult
from reconciler.core.desired import PolicyIntent
from reconciler.core.plan import Action, SendAction, SnapshotAction
from reconciler.core.state import Observed, VersionKind
from reconciler.core.status import (
    Condition,
    PolicyStatus,
    ReplicaStatus,
    Snapshot,
    SourceStatus,
    StatusReport,
    TargetStatus,
    status_report,
)

SETTLED_BY_SUCCESS = frozenset({Condition.PENDING, Condition.RESUMING, Condition.NEVER_REPLICATED})


def settled_status(result: PassResult) -> StatusReport:
    """The status report of the pass's policies after its actions (a dry run's: as observed)."""
    report = status_report(result.policies, result.observed, result.plan, result.plan.now)
    if result.report is None:
        return report
    results = {r.action_id: r for r in result.report.results}
    intents = {i.name: i for i in result.policies}
    policies = tuple(
        _Pass(intents[status.name], result.observed, results, report.now).policy(
            status, [a for a in result.plan.actions if a.policy == status.name]
        )
        for status in report.policies
    )
    return replace(report, policies=policies)


@dataclass(frozen=True)
class _Pass:
    """One policy's part of a pass: what it planned for, saw and got."""

    intent: PolicyIntent
    observed: Observed
    results: Mapping[int, ActionResult]
    now: int

    def policy(self, status: PolicyStatus, actions: Sequence[Action]) -> PolicyStatus:
        taken = self._taken(actions)
        sources = tuple(self._source(s, actions, taken) for s in status.filesystems)
        targets = tuple(
            replace(t, replicas=tuple(self._replica(r, t, actions, taken) for r in t.replicas))
            for t in status.targets
        )
        newest = [s.newest_snapshot for s in sources if s.newest_snapshot is not None]
        return replace(
            status,
            snapshot_due=False if taken else status.snapshot_due,
            newest_snapshot=max(newest, key=lambda s: (s.time, s.name)) if newest else None,
            filesystems=sources,
            targets=targets,
        )

    def succeeded(self, action: Action) -> bool:
        found = self.results.get(action.id)
        return found is not None and found.succeeded

    def _taken(self, actions: Sequence[Action]) -> dict[str, Snapshot]:
        """Filesystem → the snapshot the pass took of it."""
        taken: dict[str, Snapshot] = {}
        for action in actions:
            if isinstance(action, SnapshotAction) and self.succeeded(action):
                when = self.intent.snapshot_time(action.name)
                if when is not None:
                    taken.update((fs, Snapshot(action.name, when)) for fs in action.filesystems)
        return taken

    def _source(
        self, source: SourceStatus, actions: Sequence[Action], taken: Mapping[str, Snapshot]
    ) -> SourceStatus:
        own = [a for a in actions if a.target is None and source.filesystem in _filesystems(a)]
        return replace(
            source,
            newest_snapshot=taken.get(source.filesystem, source.newest_snapshot),
            pending=sum(1 for a in own if not self.succeeded(a)),
        )

    def _replica(
        self,
        replica: ReplicaStatus,
        target: TargetStatus,
        actions: Sequence[Action],
        taken: Mapping[str, Snapshot],
    ) -> ReplicaStatus:
        if replica.filesystem is None:
            return replica
        ends = {
            (self.intent.source_host, replica.filesystem),
            (target.host, replica.target_filesystem),
        }
        pair = [
            a
            for a in actions
            if a.target == target.name and any((a.host, fs) in ends for fs in _filesystems(a))
        ]
        if not pair:
            return replica
        failed = [a for a in pair if not self.succeeded(a)]
        sent = [a for a in pair if isinstance(a, SendAction) and self.succeeded(a)]
        common = replica.newest_common
        if sent:
            delivered = self._snapshot(replica.filesystem, sent[-1].to_snapshot.removeprefix("@"))
            common = delivered if delivered is not None else common
        condition = replica.condition
        if not failed and condition in SETTLED_BY_SUCCESS:
            condition = Condition.IN_SYNC
        return replace(
            replica,
            condition=condition,
            newest_snapshot=taken.get(replica.filesystem, replica.newest_snapshot),
            newest_common=common,
            lag=self.now - common.time if common is not None else None,
            pending=len(failed),
            pending_sends=sum(1 for a in failed if isinstance(a, SendAction)),
            message="" if condition is Condition.IN_SYNC else replica.message,
        )

    def _snapshot(self, filesystem: str, name: str) -> Snapshot | None:
        """A snapshot of the source by name, with its time: in its name, else its creation."""
        when = self.intent.snapshot_time(name)
        if when is not None:
            return Snapshot(name, when)
        state = self.observed.host(self.intent.source_host).filesystem(filesystem)
        versions = state.versions if state is not None else ()
        found = [v for v in versions if v.kind is VersionKind.SNAPSHOT and v.name == name]
        return Snapshot(name, found[0].creation) if found else None


def _filesystems(action: Action) -> tuple[str, ...]:
    if isinstance(action, SnapshotAction):
        return action.filesystems
    found: str | None = getattr(action, "filesystem", None)
    return () if found is None else (found,)
