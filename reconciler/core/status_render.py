"""How a status report reads: its JSON document (`status_to_json`, with
`STATUS_FORMAT_VERSION`) and its text tables (`render_status_text`, `format_age`). Pure. The
report itself is `core/status.py`; callers are `reconcile status` (`cli/status.py`), the loop's
`/status` endpoint (`loop/http.py`) and the Nagios line (`core/nagios.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconciler.core.foreign_leftovers import foreign_text, foreign_to_json
from reconciler.core.leftovers import (
    RETIRED_MESSAGE,
    orphan_to_json,
    orphans_text,
)
from reconciler.core.names import iso_time
from reconciler.core.plan import (
    Notice,
    NoticeKind,
)
from reconciler.core.render import JsonObject, JsonValue, notice_to_json
from reconciler.core.status import (
    STATUS_FORMAT_VERSION,
    CommonFrom,
    Condition,
    PolicyStatus,
    ReplicaStatus,
    Snapshot,
    StatusReport,
    TargetStatus,
    format_age,
)
from reconciler.manifest.durations import format_duration

# --- JSON -------------------------------------------------------------------------------------


def _snapshot_json(snapshot: Snapshot | None, now: int) -> JsonValue:
    if snapshot is None:
        return None
    return {"name": snapshot.name, "time": iso_time(snapshot.time), "age": now - snapshot.time}


def _replica_json(replica: ReplicaStatus, now: int) -> JsonObject:
    return {
        "filesystem": replica.filesystem,
        "target_filesystem": replica.target_filesystem,
        "condition": replica.condition.value,
        "conflict": replica.conflict.value if replica.conflict is not None else None,
        "newest_snapshot": _snapshot_json(replica.newest_snapshot, now),
        "newest_common": _snapshot_json(replica.newest_common, now),
        "common_from": replica.common_from.value if replica.common_from is not None else None,
        "lag": replica.lag,
        "behind": replica.behind,
        "pending": replica.pending,
        "pending_sends": replica.pending_sends,
        "message": replica.message,
    }


def _policy_json(policy: PolicyStatus, now: int) -> JsonObject:
    return {
        "name": policy.name,
        "source_host": policy.source_host,
        "source_error": policy.source_error,
        "schedule": policy.schedule,
        "snapshot_due": policy.snapshot_due,
        "newest_snapshot": _snapshot_json(policy.newest_snapshot, now),
        "filesystems": [
            {
                "filesystem": s.filesystem,
                "newest_snapshot": _snapshot_json(s.newest_snapshot, now),
                "pending": s.pending,
            }
            for s in policy.filesystems
        ],
        "targets": [
            {
                "name": t.name,
                "host": t.host,
                "root": t.root,
                "max_lag": t.max_lag,
                "filesystems": [_replica_json(r, now) for r in t.replicas],
            }
            for t in policy.targets
        ],
        "notices": [notice_to_json(n) for n in policy.notices],
    }


def status_to_json(report: StatusReport) -> JsonObject:
    """The report as one JSON-ready object with `format_version`; key order is fixed."""
    counts: JsonObject = {c.value: n for c, n in report.counts().items()}
    return {
        "format_version": STATUS_FORMAT_VERSION,
        "now": iso_time(report.now),
        "ok": report.ok,
        "summary": {**counts, "text": _summary_text(report)},
        "hosts": [
            {"name": h.name, "reachable": h.reachable, "error": h.error} for h in report.hosts
        ],
        "policies": [_policy_json(p, report.now) for p in report.policies],
        "orphans": [orphan_to_json(o) for o in report.orphans],
        "foreign_leftovers": [foreign_to_json(f) for f in report.foreign],
    }


# --- text -------------------------------------------------------------------------------------

_COLUMNS = ("FILESYSTEM", "TARGET", "CONDITION", "NEWEST COMMON", "LAG", "MAX LAG", "PENDING")
_SOURCE_COLUMNS = ("FILESYSTEM", "NEWEST SNAPSHOT", "AGE", "PENDING")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]


def _condition_text(replica: ReplicaStatus) -> str:
    if replica.conflict is not None:
        return f"{replica.condition.value} ({replica.conflict.value})"
    return replica.condition.value


def _replica_row(target: TargetStatus, replica: ReplicaStatus) -> tuple[str, ...]:
    common = replica.newest_common
    common_text = "-" if common is None else common.name
    if replica.common_from is CommonFrom.CURSOR_BOOKMARK:
        common_text += " (cursor)"
    return (
        replica.filesystem or "*",
        target.name,
        _condition_text(replica),
        common_text,
        "-" if replica.lag is None else format_age(replica.lag),
        "-" if target.max_lag is None else format_duration(target.max_lag),
        _pending_text(replica),
    )


def _pending_text(replica: ReplicaStatus) -> str:
    sends = replica.pending_sends
    if not sends:
        return str(replica.pending)
    return f"{replica.pending} ({sends} send{'s' if sends != 1 else ''})"


def _policy_header(policy: PolicyStatus, now: int) -> str:
    parts = [f"policy {policy.name}: source {policy.source_host}"]
    if policy.source_error is not None:
        return f"{parts[0]} unreachable ({policy.source_error})"
    parts.append(policy.schedule or "takes no snapshots")
    if policy.schedule is not None:
        parts.append("snapshot due" if policy.snapshot_due else "no snapshot due")
    newest = policy.newest_snapshot
    if newest is None:
        parts.append("no managed snapshot yet")
    else:
        parts.append(f"newest snapshot {newest.name} ({format_age(now - newest.time)} old)")
    return "; ".join(parts)


def _policy_text(policy: PolicyStatus, now: int) -> list[str]:
    lines = [_policy_header(policy, now)]
    if policy.targets:
        rows = [_replica_row(t, r) for t in policy.targets for r in t.replicas]
        lines += _table(_COLUMNS, rows)
    elif policy.filesystems:
        rows = [
            (
                s.filesystem,
                "-" if s.newest_snapshot is None else s.newest_snapshot.name,
                "-" if s.newest_snapshot is None else format_age(now - s.newest_snapshot.time),
                str(s.pending),
            )
            for s in policy.filesystems
        ]
        lines += _table(_SOURCE_COLUMNS, rows)
    for target in policy.targets:
        for replica in target.replicas:
            if replica.message and replica.condition is not Condition.RETIRED:
                where = f"{replica.filesystem or '*'} -> {target.name}"
                lines.append(f"  ! {where}: {replica.message}")
    lines.extend(f"  {n.kind.value}: {n.message}" for n in policy.notices if _shown(n))
    lines.extend(_retired_lines(policy))
    return [*lines, ""]


def _retired_lines(policy: PolicyStatus) -> list[str]:
    """One line per retired target (every pair retired), instead of one per pair."""
    return [
        f"  target {t.name} is retired: {RETIRED_MESSAGE}"
        for t in policy.targets
        if t.replicas and all(r.condition is Condition.RETIRED for r in t.replicas)
    ]


def _shown(notice: Notice) -> bool:
    """Notices not already told by a row's message."""
    return notice.kind not in {NoticeKind.HOST_UNREACHABLE, NoticeKind.WAITING_FOR_PARENT}


def _summary_text(report: StatusReport) -> str:
    parts = [f"{n} {c.value.replace('_', ' ')}" for c, n in report.counts().items() if n]
    unreachable = [h.name for h in report.hosts if not h.reachable]
    if unreachable:
        parts.append(f"unreachable: {', '.join(unreachable)}")
    if report.orphans:
        parts.append(f"{len(report.orphans)} orphaned (see warning)")
    if report.foreign:
        parts.append(f"{len(report.foreign)} left by older tools (see note)")
    verdict = "OK" if report.ok else "ATTENTION"
    return f"{verdict}: " + (", ".join(parts) if parts else "nothing to report")


def render_status_text(report: StatusReport) -> str:
    """Per policy, a table of its (filesystem, target) pairs; then the hosts and a summary."""
    lines = [f"Status at {iso_time(report.now)}", ""]
    for policy in report.policies:
        lines += _policy_text(policy, report.now)
    lines += orphans_text(report.orphans)
    lines += foreign_text(report.foreign)
    for host in report.hosts:
        state = "reachable" if host.reachable else f"unreachable ({host.error})"
        lines.append(f"host {host.name}: {state}")
    lines += ["", _summary_text(report)]
    return "\n".join(lines) + "\n"
