"""The planner: (manifests, observed state, now) → Plan. Pure and deterministic.

Owned here: `plan()` and the source side of each policy — which filesystems it selects, whether
its schedule is due (one atomic snapshot call per policy and host, at most one per pass), and
the source retention batch, which runs after the sends, bookmarks and releases it depends on.
The target side of each (filesystem, target) pair is `core/replication.py`, or
`core/retirement.py` for a target marked `retiring`.

Policies are planned in name order, filesystems in name order (parents before children),
targets in name order; action ids follow that order, so the same inputs give the same plan.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from reconciler.core.builder import PlanBuilder
from reconciler.core.desired import PolicyIntent, intents, source_filesystems
from reconciler.core.names import iso_time, snapshot_name
from reconciler.core.plan import (
    DestroyAction,
    Notice,
    NoticeKind,
    Plan,
    Reason,
    SnapshotAction,
    UnobservedHost,
)
from reconciler.core.protection import held_notice, retention_message
from reconciler.core.replication import plan_target, unreachable_target_notice
from reconciler.core.retention import RetentionMemo
from reconciler.core.retirement import plan_retirement
from reconciler.core.schedule import is_due
from reconciler.core.source import PENDING_TXG, SourceFilesystem
from reconciler.core.state import FilesystemState, HostState, Observed, Version, VersionKind
from reconciler.manifest.models import Manifests


def plan(
    manifests: Manifests, observed: Observed, now: int, policies: Collection[str] | None = None
) -> Plan:
    """The plan that converges the observed hosts towards the manifests at time `now`."""
    return plan_intents(intents(manifests, policies), observed, now)


def plan_intents(policies: Sequence[PolicyIntent], observed: Observed, now: int) -> Plan:
    builder = PlanBuilder()
    for intent in policies:
        _plan_policy(builder, intent, observed, now)
    return replace(builder.build(now), unobserved_hosts=_unobserved_hosts(policies, observed))


def _unobserved_hosts(
    policies: Sequence[PolicyIntent], observed: Observed
) -> tuple[UnobservedHost, ...]:
    """Every host the policies touch, as source or target, that could not be observed, by
    name: each is also named by a `host_unreachable` notice of every policy it serves."""
    names = {i.source_host for i in policies} | {t.host for i in policies for t in i.targets}
    unobserved: list[UnobservedHost] = []
    for name in sorted(names):
        error = observed.host(name).error
        if error is not None:
            unobserved.append(UnobservedHost(host=name, error=error))
    return tuple(unobserved)


def _plan_policy(builder: PlanBuilder, intent: PolicyIntent, observed: Observed, now: int) -> None:
    host = observed.host(intent.source_host)
    if not host.reachable:
        builder.notice(
            Notice(
                NoticeKind.HOST_UNREACHABLE,
                host=intent.source_host,
                message=f"source host {intent.source_host} could not be observed ({host.error}); "
                f"policy {intent.name} does nothing in this pass",
                policy=intent.name,
            )
        )
        _unreachable_targets(builder, intent, observed)
        return
    names = source_filesystems(intent, list(host.filesystems))
    if not names:
        builder.notice(
            Notice(
                NoticeKind.SOURCE_FILESYSTEM_MISSING,
                host=intent.source_host,
                message=f"no filesystem on {intent.source_host} matches policy {intent.name}",
                policy=intent.name,
            )
        )
        _unreachable_targets(builder, intent, observed)
        return
    retention = RetentionMemo()
    replicated = frozenset(names)
    for source in _sources(builder, intent, host, names, now, retention):
        for target in intent.targets:
            if target.retiring:
                plan_retirement(builder, source, target, observed.host(target.host))
            else:
                plan_target(builder, source, target, observed.host(target.host), replicated)
        _source_retention(builder, source, retention)


def planned_sources(
    intent: PolicyIntent, host: HostState, now: int, retention: RetentionMemo
) -> list[SourceFilesystem]:
    """The source filesystems `plan` works on for `intent` on its reachable source `host` at
    `now`, each with the snapshot the pass would add (for `core/details.py`)."""
    names = source_filesystems(intent, list(host.filesystems))
    return _sources(PlanBuilder(), intent, host, names, now, retention)


def _sources(
    builder: PlanBuilder,
    intent: PolicyIntent,
    host: HostState,
    names: Sequence[str],
    now: int,
    retention: RetentionMemo,
) -> list[SourceFilesystem]:
    """The selected filesystems as SourceFilesystems; adds the schedule's snapshot action."""
    states = [host.filesystems[name] for name in names]
    newest = [_newest_managed_time(intent, state) for state in states]
    snapshot_id, pending_name = _schedule(builder, intent, states, newest, now)
    sources = []
    for state, state_newest in zip(states, newest, strict=True):
        taken = pending_name is None or _has_snapshot(state, pending_name, state_newest, now)
        sources.append(
            _source_filesystem(
                intent, state, None if taken else pending_name, snapshot_id, now, retention
            )
        )
    return sources


def _unreachable_targets(builder: PlanBuilder, intent: PolicyIntent, observed: Observed) -> None:
    """Name the unobservable target hosts of a policy that plans no filesystem (otherwise
    `plan_target` names them); a target on the source's own host is named by the source's
    notice already."""
    for target in intent.targets:
        state = observed.host(target.host)
        if not state.reachable and target.host != intent.source_host:
            builder.notice(unreachable_target_notice(intent.name, target, state))


def _has_snapshot(state: FilesystemState, name: str, newest: int | None, now: int) -> bool:
    """Whether the managed snapshot named for `now` exists already.

    A managed name encodes its time, so it can only exist when the newest managed snapshot is
    at least as new as `now`; only then are the versions searched."""
    if newest is None or newest < now:
        return False
    return any(v.name == name and v.is_snapshot for v in state.versions)


def _schedule(
    builder: PlanBuilder,
    intent: PolicyIntent,
    states: Sequence[FilesystemState],
    newest: Sequence[int | None],
    now: int,
) -> tuple[int | None, str | None]:
    """One atomic snapshot of every selected filesystem when the schedule is due."""
    if intent.interval is None and intent.cron is None:
        return None, None
    due = [is_due(n, now, interval=intent.interval, cron=intent.cron) for n in newest]
    if not any(due):
        return None, None
    name = snapshot_name(intent.prefix, now)
    filesystems = tuple(
        state.name
        for state, state_newest in zip(states, newest, strict=True)
        if not _has_snapshot(state, name, state_newest, now)
    )
    if not filesystems:
        return None, None
    known = [n for n in newest if n is not None]
    if intent.interval is not None:
        every = f"every {_duration(intent.interval)}"
    else:
        every = f"cron '{intent.cron.text if intent.cron else ''}'"
    since = (
        f"newest managed snapshot is from {iso_time(max(known))}"
        if known
        else ("no managed snapshot yet")
    )
    snapshot_id = builder.add(
        SnapshotAction,
        host=intent.source_host,
        policy=intent.name,
        target=None,
        filesystems=filesystems,
        name=name,
        hooks=intent.hooks,
        reason=Reason.SCHEDULE_DUE,
        message=f"{every}; {since}",
    )
    return snapshot_id, name


def _duration(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _newest_managed_time(intent: PolicyIntent, state: FilesystemState) -> int | None:
    snapshot = VersionKind.SNAPSHOT
    return intent.managed(tuple([v.name for v in state.versions if v.kind is snapshot])).newest


def _source_filesystem(
    intent: PolicyIntent,
    state: FilesystemState,
    pending_name: str | None,
    snapshot_id: int | None,
    now: int,
    retention: RetentionMemo,
) -> SourceFilesystem:
    pending: Version | None = None
    if pending_name is not None:
        newest = state.newest_snapshot()
        pending = Version(
            VersionKind.SNAPSHOT,
            pending_name,
            guid=0,
            createtxg=PENDING_TXG,
            creation=now,
            written=state.written,
            referenced=(newest.referenced if newest else 0) + state.written,
        )
    return SourceFilesystem(
        intent, state, pending=pending, snapshot_action=snapshot_id, retention=retention
    )


def _source_retention(
    builder: PlanBuilder, source: SourceFilesystem, retention: RetentionMemo
) -> None:
    """Destroy the source snapshots no rule keeps, except what replication still needs."""
    intent = source.intent
    if not intent.rules:
        return
    managed = source.managed
    if not managed.names:
        return
    result = retention.evaluate(intent.rules, managed)
    if not result.destroyed:
        return
    if source.withheld:
        builder.notice(
            Notice(
                NoticeKind.DESTROYS_WITHHELD,
                host=source.host,
                message=f"no snapshot of {source.name} is destroyed in this pass: "
                + "; ".join(source.withheld),
                policy=intent.name,
                filesystem=source.name,
            )
        )
        return
    newest_managed = managed.names[-1]
    held = {v.name: v for v in source.held}
    by_reason: dict[Reason, list[str]] = {}
    for name, reason in result.destroyed:
        if name in source.protected or name == newest_managed:
            continue
        version = held.get(name)
        if version is None and name not in source.holds_after:
            by_reason.setdefault(reason, []).append(name)
            continue
        remaining = (set(version.holds if version else ()) - source.released.get(name, set())) | (
            source.holds_after.get(name, set())
        )
        if remaining:
            foreign = sorted(t for t in remaining if not intent.owns_hold(t))
            if foreign:
                held_notice(builder, source.host, source.name, name, foreign, intent.name, None)
            continue
        by_reason.setdefault(reason, []).append(name)
    for reason, names in sorted(by_reason.items()):
        builder.add(
            DestroyAction,
            host=source.host,
            policy=intent.name,
            target=None,
            filesystem=source.name,
            versions=builder.snapshot_refs(names),
            reason=reason,
            message=retention_message(reason, len(names), f"policy {intent.name}"),
            depends_on=tuple(source.destroy_deps),
        )
