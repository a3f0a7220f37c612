"""When the control loop must next look at a policy, and which policies may run at once.

Owned here: `next_snapshot_due` (the time a policy's next scheduled snapshot falls due, from
what a pass observed) and `policies_overlap` (whether two policies can touch one filesystem,
so that the loop never runs their passes at the same time). Called by the control loop
(`reconciler.loop`); pure: the time is passed in.

Retention needs no wake-up of its own: the grid is anchored at the youngest snapshot, never at
the wall clock (`retention.py`), and lastN and regex rules do not look at time, so what the
rules keep changes only when a snapshot is added: by this policy's schedule (a pass then runs
anyway), or by replication or by hand (seen at the next periodic resync).
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.desired import PolicyIntent, source_filesystems
from reconciler.core.state import HostState, VersionKind
from reconciler.manifest.filters import FilesystemFilter, filters_may_overlap, shifted


def next_snapshot_due(
    intent: PolicyIntent, source: HostState, now: int, *, taken_at: int | None = None
) -> int | None:
    """The earliest time at which the policy's schedule wants a new snapshot of one of its
    filesystems on the observed `source` host (`now` when one is due already); None when the
    policy takes no snapshots, its source was not observed or it selects no filesystem.

    `taken_at`: the pass that observed `source` then took the policy's snapshot of every
    selected filesystem at that time (the observation predates it)."""
    if (intent.interval is None and intent.cron is None) or not source.reachable:
        return None
    names = source_filesystems(intent, list(source.filesystems))
    if not names:
        return None
    due: list[int] = []
    for name in names:
        newest = _newest_managed(intent, source, name)
        if taken_at is not None:
            newest = taken_at if newest is None else max(newest, taken_at)
        due.append(_due_after(intent, newest, now))
    return max(now, min(due))


def _newest_managed(intent: PolicyIntent, source: HostState, filesystem: str) -> int | None:
    state = source.filesystems[filesystem]
    names = tuple(v.name for v in state.versions if v.kind is VersionKind.SNAPSHOT)
    return intent.managed(names).newest


def _due_after(intent: PolicyIntent, newest: int | None, now: int) -> int:
    """When the schedule wants the snapshot after one taken at `newest` (the schedule's rule,
    `schedule.is_due`, solved for the time)."""
    if newest is None:
        return now
    times: list[int] = []
    if intent.interval is not None:
        times.append(newest + intent.interval)
    if intent.cron is not None:
        fire = intent.cron.next_fire(newest)
        if fire is not None:
            times.append(fire)
    return min(times) if times else _NEVER


_NEVER = 1 << 62  # a cron schedule without a fire time in its search window


def footprint(intent: PolicyIntent) -> tuple[tuple[str, FilesystemFilter], ...]:
    """(host, filter of the filesystems the policy may touch there): its source filesystems,
    and on each target host the same names below the target's root."""
    places = [(intent.source_host, intent.filter)]
    places += [(t.host, shifted(intent.filter, t.root)) for t in intent.targets]
    return tuple(places)


def policies_overlap(
    a: PolicyIntent, b: PolicyIntent, machine: Mapping[str, str] | None = None
) -> bool:
    """Whether some filesystem of some host can be touched by both policies (as a source or
    as a replica); decided from the manifests alone, so it holds whatever exists. `machine`
    maps host names to what identifies the machine (two Host manifests may name one)."""
    same = machine or {}
    return any(
        same.get(host_a, host_a) == same.get(host_b, host_b)
        and filters_may_overlap(filter_a, filter_b) is not None
        for host_a, filter_a in footprint(a)
        for host_b, filter_b in footprint(b)
    )
