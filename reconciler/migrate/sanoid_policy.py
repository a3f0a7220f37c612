"""What one sanoid dataset section becomes in a Policy: schedule, retention and hooks.

Owns `PolicyParts` (the `snapshots` and `retention` parts of a policy spec that a section's
effective settings imply, plus the findings about them) and `policy_parts`. Called by
`reconciler.migrate.sanoid`, which groups sections whose parts are equal into one policy. Pure
but for reading the time zone (through `name_schemes.load_zone`, done by the caller).

The mapping (docs/migrating-sanoid.md):
- schedule: the shortest period with a count above 0 (`frequently` is `frequent_period`
  minutes); shorter than a day: `interval`; a day or longer: a `cron` built from sanoid's
  preferred times, turned from the sanoid host's local time into UTC;
- retention of our own new snapshots: one grid over the own prefix, a bucket per period
  (`48x1h | 90x1d | 6x31d`);
- retention of sanoid's adopted `autosnap_*_<period>` snapshots: per period, the newest COUNT
  (`lastN`) and every one younger than COUNT × period plus a day (a `keep=all` grid), which is
  what sanoid keeps (it prunes a snapshot of a period only when it is older than COUNT × period
  and more than COUNT of that period exist), with a day's margin for the zone and clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from reconciler.migrate.report import Finding, Outcome
from reconciler.migrate.sanoid_settings import DatasetSection

ADOPTED_PREFIX = "autosnap_"
MAX_COUNT = 10_000
MARGIN_MINUTES = 24 * 60
# period, its length in minutes for pruning (sanoid: monthly 31d, yearly 365.25d), grid bucket
PERIODS: tuple[tuple[str, int, str], ...] = (
    ("hourly", 60, "1h"),
    ("daily", 1440, "1d"),
    ("weekly", 10080, "1w"),
    ("monthly", 31 * 1440, "31d"),
    ("yearly", 525_960, "366d"),
)
_MONITOR = re.compile(r"^monitor|_warn$|_crit$")
_PREFERRED = {
    "daily": ("daily_hour", "daily_min"),
    "weekly": ("weekly_wday", "weekly_hour", "weekly_min"),
    "monthly": ("monthly_mday", "monthly_hour", "monthly_min"),
    "yearly": ("yearly_mon", "yearly_mday", "yearly_hour", "yearly_min"),
}
_ALL_PREFERRED = ("hourly_min", *(k for keys in _PREFERRED.values() for k in keys))


@dataclass(frozen=True, slots=True)
class PolicyParts:
    """`snapshots` (without prefix and adopt) and `retention` of one section's policy."""

    schedule: dict[str, Any]
    hooks: list[dict[str, Any]]
    retention: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)

    def key(self) -> str:
        return repr((sorted(self.schedule.items()), self.hooks, self.retention))


@dataclass(slots=True)
class _Notes:
    file: str
    section: DatasetSection
    found: list[Finding] = field(default_factory=list)

    def add(
        self, key: str | None, why: str, *, dropped: bool = False, retention: bool = False
    ) -> None:
        if key is None:
            path, line, column = f"[{self.section.name}]", self.section.line, 1
        else:
            path, line, column = self.section.where(key)
            if self.section.settings[key].origin is None:
                path = f"[{self.section.name}].{key}"
        outcome = Outcome.NOT_CONVERTED if dropped else Outcome.NOTE
        self.found.append(Finding(self.file, line, column, path, outcome, why, retention))


def policy_parts(file: str, section: DatasetSection, prefix: str, zone: tzinfo) -> PolicyParts:
    """The policy parts of `section`; findings for what differs or is not converted."""
    notes = _Notes(file, section)
    counts = _counts(section, notes)
    frequent = None
    if counts is not None and counts["frequently"]:
        frequent = _number(section, "frequent_period", notes, 1, 1440, retention=True)
        counts = counts if frequent is not None else None
    lengths = _lengths(frequent)
    schedule: dict[str, Any] = {}
    if section.flag("autosnap") and counts is not None:
        schedule = _schedule(section, counts, lengths, zone, notes)
    retention = _retention(section, counts, lengths, prefix, bool(schedule), notes)
    hooks = _hooks(section, notes) if schedule else []
    _unused(section, notes, hooks=bool(hooks), frequent=counts is not None and frequent is None)
    _unconverted(section, notes)
    return PolicyParts(schedule, hooks, retention, notes.found)


def _lengths(frequent: int | None) -> list[tuple[str, int, str]]:
    """(period, minutes, grid bucket) of each period, shortest first."""
    lengths = list(PERIODS)
    if frequent is not None:
        lengths.append(("frequently", frequent, f"{frequent}m"))
    return sorted(lengths, key=lambda entry: entry[1])


_UNREAD = (
    ": this section's schedule and retention are not converted (the policy takes no "
    "snapshots and destroys none)"
)


def _number(
    section: DatasetSection, key: str, notes: _Notes, low: int, high: int, *, retention: bool
) -> int | None:
    """The whole number `key` holds, or None and a finding (`retention`: it decides that)."""
    text = section.text(key).strip()
    if text.isascii() and text.isdigit() and low <= int(text) <= high:
        return int(text)
    why = f"{text[:40]!r} is not a whole number from {low} to {high}"
    why += _UNREAD if retention else ": the schedule is an interval instead"
    notes.add(key, why, dropped=True, retention=retention)
    return None


def _counts(section: DatasetSection, notes: _Notes) -> dict[str, int] | None:
    """The count of each period, or None when one cannot be read (then nothing is pruned)."""
    counts: dict[str, int] = {}
    for period in ("frequently", *(p for p, _, _ in PERIODS)):
        text = section.text(period).strip()
        count = 0 if text == "" else _number(section, period, notes, 0, MAX_COUNT, retention=True)
        if count is None:
            return None
        counts[period] = count
    return counts


def _schedule(
    section: DatasetSection,
    counts: dict[str, int],
    lengths: list[tuple[str, int, str]],
    zone: tzinfo,
    notes: _Notes,
) -> dict[str, Any]:
    taken = [(period, minutes, bucket) for period, minutes, bucket in lengths if counts.get(period)]
    if not taken:
        notes.add("autosnap", "every period's count is 0: sanoid takes no snapshots; no schedule")
        return {}
    period, _, bucket = taken[0]
    if period in _PREFERRED:
        cron = _cron(section, period, zone, notes)
        if cron is not None:
            return {"cron": cron}
    _preferred_unused(section, notes, used=())
    why = f"every {bucket} (the {period} period) counted from the newest snapshot"
    if period == "hourly":
        why += ", not at minute hourly_min of each hour"
    notes.add(None, f"schedule: interval {bucket}: {why}")
    return {"interval": bucket}


def _cron(section: DatasetSection, period: str, zone: tzinfo, notes: _Notes) -> str | None:
    keys = _PREFERRED[period]
    bounds = {"_wday": (0, 7), "_mday": (1, 28), "_mon": (1, 12), "_hour": (0, 23), "_min": (0, 59)}
    values: dict[str, int] = {}
    for key in keys:
        low, high = next(b for suffix, b in bounds.items() if key.endswith(suffix))
        value = _number(section, key, notes, low, high, retention=False)
        if value is None:
            return None
        values[key.rpartition("_")[2]] = value
    minute, hour, shift, dst = _in_utc(values["hour"], values["min"], zone)
    day = {"daily": "* * *", "weekly": f"* * {(values.get('wday', 0) + shift) % 7}"}.get(period)
    if day is None:
        mday = values["mday"] + shift
        if not 1 <= mday <= 28:
            notes.add(
                None,
                f"sanoid's preferred {period} day falls on day {mday} in UTC, "
                "which a cron cannot say for every month: the schedule is an interval",
            )
            return None
        day = f"{mday} * *" if period == "monthly" else f"{mday} {values['mon']} *"
    cron = f"{minute} {hour} {day}"
    why = f"schedule: cron {cron!r} (UTC), sanoid's preferred {period} time"
    why += " in the sanoid host's time zone" + (
        " (its daylight saving time shifts it by an hour for part of the year)" if dst else ""
    )
    notes.add(None, why)
    _preferred_unused(section, notes, used=keys)
    return cron


def _in_utc(hour: int, minute: int, zone: tzinfo) -> tuple[int, int, int, bool]:
    """Local hour:minute in `zone` as UTC (minute, hour, day shift), and whether DST moves it."""
    winter = datetime(2026, 1, 15, tzinfo=zone).utcoffset()
    summer = datetime(2026, 7, 15, tzinfo=zone).utcoffset()
    offset = int(winter.total_seconds() // 60) if winter is not None else 0
    total = hour * 60 + minute - offset
    shift, within = divmod(total, 1440)
    return within % 60, within // 60, shift, winter != summer


def _preferred_unused(section: DatasetSection, notes: _Notes, used: tuple[str, ...]) -> None:
    for key in _ALL_PREFERRED:
        if key not in used and section.settings[key].origin is not None:
            notes.add(
                key,
                "not used by the schedule: own snapshots are taken on the policy's "
                "schedule, and the grid keeps one per bucket, not the one taken at this time",
            )


def _retention(
    section: DatasetSection,
    counts: dict[str, int] | None,
    lengths: list[tuple[str, int, str]],
    prefix: str,
    own: bool,
    notes: _Notes,
) -> dict[str, Any] | None:
    if not section.flag("autoprune") or counts is None:
        return None
    rules: list[dict[str, Any]] = []
    buckets = [f"{counts[p]}x{bucket}" for p, _, bucket in lengths if counts.get(p)]
    if own and buckets:
        rules.append({"grid": " | ".join(buckets), "match": f"^{re.escape(prefix)}"})
    for period, minutes, _ in lengths:
        if counts.get(period):
            match = f"^{ADOPTED_PREFIX}.*_{period}$"
            age = counts[period] * minutes + MARGIN_MINUTES
            span = f"{age // 60}h" if age % 60 == 0 else f"{age}m"
            rules.append({"lastN": counts[period], "match": match})
            rules.append({"grid": f"1x{span}(keep=all)", "match": match})
    if not rules:
        notes.add(
            "autoprune",
            "every count is 0: sanoid would destroy every autosnap_ snapshot "
            "of this dataset; the policy keeps them all (no retention)",
        )
        return None
    return {"keep": rules}


def _hooks(section: DatasetSection, notes: _Notes) -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = []
    scripts = [section.text(k) for k in ("pre_snapshot_script", "post_snapshot_script")]
    timeout = _timeout(section, notes) if any(scripts) else "30s"
    for key, when in (("pre_snapshot_script", "pre"), ("post_snapshot_script", "post")):
        script = section.text(key)
        if not script:
            continue
        hook: dict[str, Any] = {"when": when, "command": ["sh", "-c", script], "timeout": timeout}
        if when == "pre":
            hook["onFailure"] = "skip" if section.flag("no_inconsistent_snapshot") else "snapshot"
        hooks.append(hook)
        notes.add(
            key,
            "a hook run once per snapshot of the whole policy, not once per dataset; "
            "it gets ZR_SNAPSHOT and ZR_FILESYSTEMS (docs/hooks.md), not sanoid's "
            "SANOID_TARGET, SANOID_SNAPNAME(S) and SANOID_TYPES",
        )
    if len(hooks) == 2 and not section.flag("force_post_snapshot_script"):
        notes.add(
            "post_snapshot_script",
            "runs even when the pre hook failed (sanoid skips it "
            "then unless force_post_snapshot_script is set)",
        )
    return hooks


def _timeout(section: DatasetSection, notes: _Notes) -> str:
    text = section.text("script_timeout").strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 3600:
        return f"{int(text)}s"
    notes.add("script_timeout", f"{text[:40]!r}: a hook's timeout is 1s to 1h; 1h is used")
    return "1h"


def _unconverted(section: DatasetSection, notes: _Notes) -> None:
    for key, setting in section.settings.items():
        if setting.origin is None:
            continue
        if _MONITOR.search(key) or key.startswith("capacity_"):
            notes.add(
                key,
                "monitoring is not part of a manifest: use `reconcile status --output nagios`",
                dropped=True,
            )
        elif key == "pruning_script":
            notes.add(key, "no hook runs after a destroy", dropped=True)
        elif key == "prune_defer" and setting.value.strip() not in ("", "0"):
            notes.add(
                key,
                "pruning is never deferred until the pool fills: snapshots sanoid "
                "would keep longer are destroyed on schedule",
                dropped=True,
                retention=True,
            )


_SCRIPT_KEYS = (
    "pre_snapshot_script", "post_snapshot_script", "script_timeout",
    "no_inconsistent_snapshot", "force_post_snapshot_script",
)  # fmt: skip


def _unused(section: DatasetSection, notes: _Notes, *, hooks: bool, frequent: bool) -> None:
    """Notes for keys that are set but change nothing here (nor in sanoid)."""
    if not hooks:
        for key in _SCRIPT_KEYS:
            if section.settings[key].origin is not None and section.text(key):
                notes.add(key, "no snapshot is taken here (or no script is set): no hook")
    if frequent and section.settings["frequent_period"].origin is not None:
        notes.add("frequent_period", "frequently is 0: not used")
