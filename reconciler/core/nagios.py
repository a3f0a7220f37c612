"""The status report as a Nagios/Icinga plugin result: one line and a state (the exit code).

Owned here: `NagiosState` (OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3), `NagiosResult`, the pure
`nagios_check()` that judges a `StatusReport`, `nagios_unknown()` for what could not be judged,
and the perfdata formatting (`perf_label`). Called by the CLI's `reconcile status --output
nagios`. Pure: no I/O, no clock, no logging. docs/status-and-lock.md ("Monitoring with
Nagios/Icinga") is the user's description of the line and of each state.

The line follows the plugin guidelines (https://nagios-plugins.org/doc/guidelines.html):

    ZFS-RECONCILER CRITICAL - home/offsite tank/home stale (lag 3h02m, maxLag 2h);
    2 replicas: 1 in_sync, 1 stale; worst lag 3h02m (home/offsite tank/home)
    | 'lag_home_offsite'=10920s;5400;7200;0 'replicas'=2;;;0

(one line in fact). The text before `|` never contains `|` or a line break; perfdata labels are
always quoted, with a single quote doubled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from reconciler.core.status import (
    Condition,
    PolicyStatus,
    ReplicaStatus,
    StatusReport,
    TargetStatus,
    beyond_max_lag,
    format_age,
)
from reconciler.manifest.durations import format_duration
from reconciler.manifest.errors import one_line

PLUGIN = "ZFS-RECONCILER"
MAX_PROBLEMS_SHOWN = 3
"""Problems named in the line; the rest are counted ("and 4 more")."""
MAX_DETAIL = 80
"""Characters of a host's error quoted in the line."""
MAX_TEXT = 600
"""Characters of the status text (before `|`): old NRPE versions pass on 1 KiB of output."""


class NagiosState(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True, slots=True)
class NagiosResult:
    state: NagiosState
    text: str  # the status text, before any `|`
    perfdata: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        """The plugin's one line of output, without the final newline."""
        text = _clean(self.text)
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 3] + "..."
        head = f"{PLUGIN} {self.state.name} - {text}"
        return f"{head} | {' '.join(self.perfdata)}" if self.perfdata else head


@dataclass(frozen=True, slots=True)
class _Problem:
    state: NagiosState
    text: str


def warning_threshold(max_lag: int) -> int:
    """WARNING beyond three quarters of maxLag (CRITICAL beyond maxLag itself)."""
    return max_lag * 3 // 4


def nagios_unknown(reason: str) -> NagiosResult:
    """What a monitor sees when nothing could be judged (invalid manifests, internal error)."""
    return NagiosResult(NagiosState.UNKNOWN, reason)


def nagios_check(report: StatusReport) -> NagiosResult:
    """The worst state over every pair and every host, the problems that decide it, a
    summary, and perfdata: the worst lag per (policy, target) with its thresholds."""
    if not report.policies:
        return nagios_unknown("no policy to check")
    if report.hosts and not any(host.reachable for host in report.hosts):
        down = "; ".join(f"{h.name} ({_short(h.error or '')})" for h in report.hosts)
        return nagios_unknown(f"no host could be observed: {down}")
    problems = sorted(_problems(report), key=lambda p: -p.state)
    state = problems[0].state if problems else NagiosState.OK
    parts = [_problems_text(problems)] if problems else []
    parts += [_counts_text(report), *_worst_text(report)]
    return NagiosResult(state, "; ".join(parts), _perfdata(report))


def _problems(report: StatusReport) -> Iterator[_Problem]:
    for policy in report.policies:
        for target in policy.targets:
            for replica in target.replicas:
                problem = _replica_problem(policy, target, replica)
                if problem is not None:
                    yield problem
    spoken_for = _hosts_with_rows(report.policies)
    for host in report.hosts:
        if not host.reachable and host.name not in spoken_for:
            text = f"host {host.name} unreachable ({_short(host.error or '')})"
            yield _Problem(NagiosState.CRITICAL, text)


def _hosts_with_rows(policies: Sequence[PolicyStatus]) -> set[str]:
    """Hosts whose unreachability some pair already reports (and judges)."""
    hosts: set[str] = set()
    for policy in policies:
        for target in policy.targets:
            if target.replicas:
                hosts |= {policy.source_host, target.host}
    return hosts


def _replica_problem(
    policy: PolicyStatus, target: TargetStatus, replica: ReplicaStatus
) -> _Problem | None:
    where = f"{policy.name}/{target.name} {replica.filesystem or '*'}"
    condition = replica.condition
    if condition is Condition.STALE:
        return _Problem(NagiosState.CRITICAL, f"{where} stale ({_lag_text(target, replica)})")
    if condition is Condition.CONFLICT:
        kind = f" ({replica.conflict.value})" if replica.conflict is not None else ""
        return _Problem(NagiosState.CRITICAL, f"{where} conflict{kind}")
    if condition is Condition.SOURCE_UNREACHABLE:
        return _Problem(NagiosState.CRITICAL, f"{where} source host {policy.source_host} down")
    if condition is Condition.TARGET_UNREACHABLE:
        # within maxLag by the cursor bookmark: the promise still holds, for now
        within = target.max_lag is not None and replica.behind is not None
        state = NagiosState.WARNING if within else NagiosState.CRITICAL
        return _Problem(state, f"{where} target host {target.host} down")
    if target.max_lag is not None and beyond_max_lag(
        replica.behind, warning_threshold(target.max_lag)
    ):
        return _Problem(NagiosState.WARNING, f"{where} lagging ({_lag_text(target, replica)})")
    return None


def _lag_text(target: TargetStatus, replica: ReplicaStatus) -> str:
    lag = "lag ?" if replica.behind is None else f"lag {format_age(replica.behind)}"
    if target.max_lag is None:
        return lag
    return f"{lag}, maxLag {format_duration(target.max_lag)}"


def _problems_text(problems: Sequence[_Problem]) -> str:
    shown = ", ".join(p.text for p in problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return f"{shown}, and {more} more" if more > 0 else shown


def _counts_text(report: StatusReport) -> str:
    counts = [f"{n} {c.value}" for c, n in report.counts().items() if n]
    total = len(report.replicas)
    noun = "replica" if total == 1 else "replicas"
    return f"{total} {noun}: {', '.join(counts)}" if counts else f"0 {noun}"


def _worst_text(report: StatusReport) -> list[str]:
    rows = [
        (replica.behind, policy.name, target.name, replica.filesystem or "*")
        for policy in report.policies
        for target in policy.targets
        for replica in target.replicas
        if replica.behind is not None
    ]
    if not rows:
        return []
    behind, policy, target, filesystem = max(rows, key=lambda row: row[0])  # the first
    return [f"worst lag {format_age(behind)} ({policy}/{target} {filesystem})"]


# --- perfdata ---------------------------------------------------------------------------------


def perf_label(label: str) -> str:
    """A perfdata label, always quoted: a single quote doubled; `=`, `|` and characters that
    would break the line replaced (they cannot be escaped)."""
    text = "".join("_" if ch in "=|" or not ch.isprintable() else ch for ch in label)
    return "'" + text.replace("'", "''") + "'"


def _perfdata(report: StatusReport) -> tuple[str, ...]:
    lags = [
        _lag_perfdata(policy, target) for policy in report.policies for target in policy.targets
    ]
    return (*lags, f"{perf_label('replicas')}={len(report.replicas)};;;0")


def _lag_perfdata(policy: PolicyStatus, target: TargetStatus) -> str:
    """`'lag_POLICY_TARGET'=WORSTs;WARN;CRIT;0`; `U` when no pair's lag is known. A lag
    before `now` (a `--now` in the past) counts as 0."""
    known = [r.behind for r in target.replicas if r.behind is not None]
    value = f"{max(0, *known)}s" if known else "U"
    warn = crit = ""
    if target.max_lag is not None:
        warn, crit = str(warning_threshold(target.max_lag)), str(target.max_lag)
    return f"{perf_label(f'lag_{policy.name}_{target.name}')}={value};{warn};{crit};0"


# --- text -------------------------------------------------------------------------------------


def _short(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def _clean(text: str) -> str:
    """One line with no `|` (which would start the perfdata)."""
    return one_line(text).replace("|", "/")
