"""The status report: per policy, target and filesystem, how current the replicas are.

Owned here: `Condition`, the frozen report values (`StatusReport`, `PolicyStatus`,
`SourceStatus`, `TargetStatus`, `ReplicaStatus`, `HostStatus`), the pure `status_report()` that
reads them off (intents, observed state, the plan for that state, now), and its two renderings,
`status_to_json()` (carrying `format_version`) and `render_status_text()`. Called by the CLI's
`reconcile status`. Pure: no I/O, no clock, no logging.

Nothing is decided again here: the common snapshot comes from `core/incremental.py`, what is
pending, in conflict or waiting comes from the plan. Conditions of one (filesystem, target)
pair, the first that applies wins: `source_unreachable`, `conflict`, `stale` (the pair is
behind by more than its target's `maxLag`), `target_unreachable`, `resuming`,
`waiting_for_parent`, `never_replicated` (the target filesystem does not exist), `pending` (the
plan has actions for the pair), `in_sync`. docs/status-and-lock.md explains the order.
A target marked `retiring` has its own two, after `source_unreachable`: `retiring` while its
holds or cursor bookmarks remain (or its host cannot be observed), then `retired`
(`core/leftovers.py`). The report also lists the orphans: holds and cursor bookmarks of targets
no manifest declares, with the commands that clean them up (`core/leftovers.find_orphans`),
and what the tools run before the reconciler (zrepl, syncoid) left on the same filesystems
(`core/foreign_leftovers.py`): told, never destroyed, and of no weight in any condition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.core.desired import PolicyIntent, TargetIntent, source_filesystems
from reconciler.core.foreign_leftovers import ForeignLeftover, find_foreign_leftovers
from reconciler.core.incremental import find_common_base
from reconciler.core.leftovers import (
    Orphan,
    find_orphans,
    retirement_leftovers,
    retirement_message,
)
from reconciler.core.plan import (
    Action,
    Conflict,
    ConflictKind,
    Notice,
    NoticeKind,
    Plan,
    SendAction,
    SendMode,
    SnapshotAction,
)
from reconciler.core.state import FilesystemState, HostState, Observed, VersionKind
from reconciler.manifest.durations import format_duration

STATUS_FORMAT_VERSION = 1


class Condition(StrEnum):
    IN_SYNC = "in_sync"
    PENDING = "pending"
    NEVER_REPLICATED = "never_replicated"
    CONFLICT = "conflict"
    SOURCE_UNREACHABLE = "source_unreachable"
    TARGET_UNREACHABLE = "target_unreachable"
    RESUMING = "resuming"
    WAITING_FOR_PARENT = "waiting_for_parent"
    STALE = "stale"
    RETIRING = "retiring"  # a retiring target's holds or cursor bookmarks remain
    RETIRED = "retired"  # none remain: the target can be removed from the manifest


class CommonFrom(StrEnum):
    """Where the newest common snapshot was read: both sides, or the source's cursor bookmark
    while the target cannot be observed."""

    OBSERVED = "observed"
    CURSOR_BOOKMARK = "cursor_bookmark"


HEALTHY = frozenset(
    {
        Condition.IN_SYNC,
        Condition.PENDING,
        Condition.NEVER_REPLICATED,
        Condition.RESUMING,
        Condition.WAITING_FOR_PARENT,
        Condition.RETIRING,
        Condition.RETIRED,
    }
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot by name and the time it stands for (in its name, else its `creation`)."""

    name: str
    time: int


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One (source filesystem, target) pair. `filesystem` is None when the source host could
    not be observed (its filesystems are unknown)."""

    filesystem: str | None
    target_filesystem: str | None
    condition: Condition
    conflict: ConflictKind | None = None
    newest_snapshot: Snapshot | None = None  # newest managed snapshot on the source
    newest_common: Snapshot | None = None
    common_from: CommonFrom | None = None
    lag: int | None = None  # now - newest_common.time
    pending: int = 0  # plan actions for this pair
    pending_sends: int = 0  # of which send steps
    message: str = ""
    # how long the target has lacked what the source has: `lag`; with no common snapshot on
    # an observed target, the age of the oldest source snapshot it replicates (what maxLag
    # is compared with: `behind_since`)
    behind: int | None = None


@dataclass(frozen=True, slots=True)
class TargetStatus:
    name: str
    host: str
    root: str
    replicas: tuple[ReplicaStatus, ...]
    max_lag: int | None = None  # the target's maxLag in seconds; None: no threshold


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source filesystem: its newest managed snapshot and the source-side actions pending
    (the policy's snapshot, its retention destroys)."""

    filesystem: str
    newest_snapshot: Snapshot | None
    pending: int


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    name: str
    source_host: str
    source_error: str | None  # set when the source host could not be observed
    schedule: str | None  # "every 15m", "cron '0 3 * * *'", None: takes no snapshots
    snapshot_due: bool | None  # None: unknown (source not observed)
    newest_snapshot: Snapshot | None
    filesystems: tuple[SourceStatus, ...]
    targets: tuple[TargetStatus, ...]
    notices: tuple[Notice, ...]

    @property
    def replicas(self) -> tuple[ReplicaStatus, ...]:
        return tuple(r for t in self.targets for r in t.replicas)


@dataclass(frozen=True, slots=True)
class HostStatus:
    name: str
    error: str | None

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class StatusReport:
    now: int
    policies: tuple[PolicyStatus, ...]
    hosts: tuple[HostStatus, ...]
    orphans: tuple[Orphan, ...] = ()  # told, but they do not change `ok`
    foreign: tuple[ForeignLeftover, ...] = ()  # left by older tools: told only

    @property
    def replicas(self) -> tuple[ReplicaStatus, ...]:
        return tuple(r for p in self.policies for r in p.replicas)

    @property
    def ok(self) -> bool:
        """No conflict, nothing stale, every host observed: `reconcile status` exits 0."""
        return all(h.reachable for h in self.hosts) and all(
            r.condition in HEALTHY for r in self.replicas
        )

    def counts(self) -> dict[Condition, int]:
        found = Counter(r.condition for r in self.replicas)
        return {condition: found[condition] for condition in Condition}


# --- the report -------------------------------------------------------------------------------


class _PlanIndex:
    """The plan looked up by pair: actions per (policy, target, host, filesystem), conflicts,
    waiting notices and resumed sends."""

    def __init__(self, plan: Plan) -> None:
        self.actions: Counter[tuple[str, str | None, str, str]] = Counter()
        self.resuming: set[tuple[str, str | None, str]] = set()
        self.sends: Counter[tuple[str, str | None, str]] = Counter()
        self.snapshot_due: set[str] = set()
        for action in plan.actions:
            for filesystem in _filesystems(action):
                self.actions[(action.policy, action.target, action.host, filesystem)] += 1
            if isinstance(action, SendAction):
                self.sends[(action.policy, action.target, action.filesystem)] += 1
                if action.mode is SendMode.RESUME:
                    self.resuming.add((action.policy, action.target, action.filesystem))
            if isinstance(action, SnapshotAction):
                self.snapshot_due.add(action.policy)
        self.conflicts = {(c.policy, c.target, c.filesystem): c for c in plan.conflicts}
        self.waiting = {
            (n.policy, n.target, n.filesystem): n
            for n in plan.notices
            if n.kind is NoticeKind.WAITING_FOR_PARENT
        }
        self.notices = plan.notices


def _filesystems(action: Action) -> tuple[str, ...]:
    if isinstance(action, SnapshotAction):
        return action.filesystems
    return (action.filesystem,)


def status_report(
    intents: Sequence[PolicyIntent], observed: Observed, plan: Plan, now: int
) -> StatusReport:
    """The status of every policy in `intents`, read off the observed state and its plan."""
    index = _PlanIndex(plan)
    policies = tuple(_policy(intent, observed, index, now) for intent in intents)
    hosts = tuple(HostStatus(name, observed.hosts[name].error) for name in sorted(observed.hosts))
    orphans = find_orphans(intents, observed)
    foreign = find_foreign_leftovers(intents, observed)
    return StatusReport(now=now, policies=policies, hosts=hosts, orphans=orphans, foreign=foreign)


def _policy(intent: PolicyIntent, observed: Observed, index: _PlanIndex, now: int) -> PolicyStatus:
    source = observed.host(intent.source_host)
    notices = tuple(n for n in index.notices if n.policy == intent.name)
    if not source.reachable:
        targets = tuple(_unobserved_source(intent, target, source) for target in intent.targets)
        return PolicyStatus(
            name=intent.name,
            source_host=intent.source_host,
            source_error=source.error,
            schedule=_schedule(intent),
            snapshot_due=None,
            newest_snapshot=None,
            filesystems=(),
            targets=targets,
            notices=notices,
        )
    states = [source.filesystems[n] for n in source_filesystems(intent, list(source.filesystems))]
    filesystems = tuple(
        SourceStatus(
            state.name,
            _newest_managed(intent, state),
            index.actions[(intent.name, None, intent.source_host, state.name)],
        )
        for state in states
    )
    targets = tuple(
        TargetStatus(
            target.name,
            target.host,
            target.root,
            tuple(
                _replica(intent, target, state, observed.host(target.host), index, now)
                for state in states
            ),
            target.max_lag,
        )
        for target in intent.targets
    )
    newest = [s.newest_snapshot for s in filesystems if s.newest_snapshot is not None]
    return PolicyStatus(
        name=intent.name,
        source_host=intent.source_host,
        source_error=None,
        schedule=_schedule(intent),
        snapshot_due=intent.name in index.snapshot_due,
        newest_snapshot=max(newest, key=lambda s: (s.time, s.name)) if newest else None,
        filesystems=filesystems,
        targets=targets,
        notices=notices,
    )


def _unobserved_source(
    intent: PolicyIntent, target: TargetIntent, source: HostState
) -> TargetStatus:
    replica = ReplicaStatus(
        filesystem=None,
        target_filesystem=None,
        condition=Condition.SOURCE_UNREACHABLE,
        message=f"source host {intent.source_host} could not be observed ({source.error})",
    )
    return TargetStatus(target.name, target.host, target.root, (replica,), target.max_lag)


def _schedule(intent: PolicyIntent) -> str | None:
    if intent.interval is not None:
        return f"every {format_duration(intent.interval)}"
    if intent.cron is not None:
        return f"cron '{intent.cron}'"
    return None


def _newest_managed(intent: PolicyIntent, state: FilesystemState) -> Snapshot | None:
    names = tuple(v.name for v in state.versions if v.kind is VersionKind.SNAPSHOT)
    managed = intent.managed(names)
    if not managed.names:
        return None
    return Snapshot(managed.names[-1], managed.times[-1])


def _replica(
    intent: PolicyIntent,
    target: TargetIntent,
    source: FilesystemState,
    target_host: HostState,
    index: _PlanIndex,
    now: int,
) -> ReplicaStatus:
    target_fs = target.target_filesystem(source.name)
    pair = (intent.name, target.name)
    pending = (
        index.actions[(*pair, intent.source_host, source.name)]
        + index.actions[(*pair, target.host, target_fs)]
    )
    if target.retiring:
        return _retiring_replica(intent, target, source, target_host, pending)
    common, common_from = _newest_common(intent, target, source, target_host)
    lag = now - common.time if common is not None else None
    behind = lag if common is not None else _unreplicated_for(intent, source, target_host, now)
    stale = _stale_message(target, behind, common_from, target_host)
    condition, conflict, message = _condition(
        source.name, target_fs, pair, target_host, index, pending, stale
    )
    return ReplicaStatus(
        filesystem=source.name,
        target_filesystem=target_fs,
        condition=condition,
        conflict=conflict.kind if conflict is not None else None,
        newest_snapshot=_newest_managed(intent, source),
        newest_common=common,
        common_from=common_from,
        lag=lag,
        pending=pending,
        pending_sends=index.sends[(*pair, source.name)],
        message=message,
        behind=behind,
    )


def beyond_max_lag(behind: int | None, max_lag: int | None) -> bool:
    """The stale rule: behind by strictly more than the threshold (at it is still fine)."""
    return behind is not None and max_lag is not None and behind > max_lag


def _unreplicated_for(
    intent: PolicyIntent, source: FilesystemState, target_host: HostState, now: int
) -> int | None:
    """With no common snapshot on an observed target (never replicated, or no common base):
    the age of the oldest source snapshot the policy replicates, i.e. how long data has
    existed that the target lacks. None when the target was not observed or there is none."""
    if not target_host.reachable:
        return None
    oldest: int | None = None
    for version in source.versions:
        if version.kind is VersionKind.SNAPSHOT and intent.is_replicated(version.name):
            when = intent.snapshot_time(version.name)
            time = version.creation if when is None else when
            oldest = time if oldest is None else min(oldest, time)
    return None if oldest is None else now - oldest


def _stale_message(
    target: TargetIntent,
    behind: int | None,
    common_from: CommonFrom | None,
    target_host: HostState,
) -> str | None:
    """Why the pair is stale; None when it is within its target's maxLag (or has none)."""
    if behind is None or target.max_lag is None or not beyond_max_lag(behind, target.max_lag):
        return None
    limit = format_duration(target.max_lag)
    if common_from is None:
        why = f"never replicated: its oldest snapshot is {format_age(behind)} old"
    else:
        why = f"lag {format_age(behind)}"
        if common_from is CommonFrom.CURSOR_BOOKMARK:
            why += " (from the source's cursor bookmark)"
    why += f", beyond maxLag {limit}"
    if not target_host.reachable:
        why += f"; target host {target_host.host} could not be observed ({target_host.error})"
    return why


def _retiring_replica(
    intent: PolicyIntent,
    target: TargetIntent,
    source: FilesystemState,
    target_host: HostState,
    pending: int,
) -> ReplicaStatus:
    """A pair of a retiring target: what of its holds and cursor bookmarks remains."""
    left = retirement_leftovers(intent, target, source, target_host)
    return ReplicaStatus(
        filesystem=source.name,
        target_filesystem=target.target_filesystem(source.name),
        condition=Condition.RETIRED if left.done and not pending else Condition.RETIRING,
        newest_snapshot=_newest_managed(intent, source),
        pending=pending,
        message=retirement_message(left, target, target_host),
    )


def _condition(
    filesystem: str,
    target_fs: str,
    pair: tuple[str, str],
    target_host: HostState,
    index: _PlanIndex,
    pending: int,
    stale: str | None,
) -> tuple[Condition, Conflict | None, str]:
    """The first condition that applies: a conflict needs a human more than the lag it
    causes; a stale pair is stale whatever else it is (pending, resuming, unreachable)."""
    conflict = index.conflicts.get((*pair, filesystem)) if target_host.reachable else None
    if conflict is not None:
        return Condition.CONFLICT, conflict, conflict.message
    if stale is not None:
        return Condition.STALE, None, stale
    if not target_host.reachable:
        why = f"target host {target_host.host} could not be observed ({target_host.error})"
        return Condition.TARGET_UNREACHABLE, None, why
    if (*pair, filesystem) in index.resuming:
        return Condition.RESUMING, None, "an interrupted receive resumes from its token"
    waiting = index.waiting.get((*pair, target_fs))
    if waiting is not None:
        return Condition.WAITING_FOR_PARENT, None, waiting.message
    if target_host.filesystem(target_fs) is None:
        return Condition.NEVER_REPLICATED, None, ""
    return (Condition.PENDING if pending else Condition.IN_SYNC), None, ""


def _newest_common(
    intent: PolicyIntent, target: TargetIntent, source: FilesystemState, target_host: HostState
) -> tuple[Snapshot | None, CommonFrom | None]:
    """The newest common snapshot by GUID and createtxg; the source's newest cursor bookmark
    of this target stands in while the target cannot be observed."""
    if not target_host.reachable:
        cursor = _cursor_snapshot(intent, target, source)
        return (cursor, CommonFrom.CURSOR_BOOKMARK) if cursor is not None else (None, None)
    state = target_host.filesystem(target.target_filesystem(source.name))
    if state is None:
        return None, None
    base = find_common_base(source.versions, state.versions)
    if base is None:
        return None, None
    name = base.target.name
    when = intent.snapshot_time(name)
    return Snapshot(name, base.target.creation if when is None else when), CommonFrom.OBSERVED


def _cursor_snapshot(
    intent: PolicyIntent, target: TargetIntent, source: FilesystemState
) -> Snapshot | None:
    for version in reversed(source.versions):  # createtxg order: the newest cursor first
        if version.kind is not VersionKind.BOOKMARK:
            continue
        name = intent.parse_cursor(target.name, version.name)
        when = intent.snapshot_time(name) if name is not None else None
        if name is not None and when is not None:
            return Snapshot(name, when)
    return None


def format_age(seconds: int) -> str:
    """A short age: "45s", "15m", "2h05m", "3d04h" (negative: in the future, "-15m")."""
    if seconds < 0:
        return "-" + format_age(-seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
