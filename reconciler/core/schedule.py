"""When a policy's next snapshot is due: `interval` or `cron`, against the newest one.

Owns the single decision "take a snapshot now?". Called by the planner (and by the watch loop
to time its wake-ups, through `CronSchedule.next_fire`) with the time of the newest MANAGED
snapshot of the policy on the filesystem and the pass's `now`. Pure: `now` is passed in.
"""

from __future__ import annotations

from reconciler.manifest.cron import CronSchedule


def is_due(
    newest_managed: int | None,
    now: int,
    *,
    interval: int | None,
    cron: CronSchedule | None,
) -> bool:
    """Whether a snapshot is due at `now`.

    - neither `interval` nor `cron`: never (the policy takes no snapshots itself);
    - no managed snapshot yet: due;
    - `interval` (seconds): due when the newest managed snapshot is at least that old;
    - `cron`: due when a fire time t exists with newest_managed < t <= now.
    When both are given, either one makes it due.
    """
    if interval is None and cron is None:
        return False
    if newest_managed is None:
        return True
    if interval is not None and newest_managed <= now - interval:
        return True
    if cron is not None:
        fired = cron.previous_fire(now)
        return fired is not None and fired > newest_managed
    return False
