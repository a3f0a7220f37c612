"""`nagios_check` on status reports: the state that each condition gives, the exact line, the
perfdata labels (quoted per the plugin guidelines, whatever the names hold) and the bounds on
the line. Reports are hand-built values, so names the manifests would refuse can be tried."""

from __future__ import annotations

import pytest

from reconciler.core.nagios import (
    MAX_PROBLEMS_SHOWN,
    MAX_TEXT,
    NagiosState,
    nagios_check,
    nagios_unknown,
    perf_label,
    warning_threshold,
)
from reconciler.core.plan import ConflictKind
from reconciler.core.status import (
    Condition,
    HostStatus,
    PolicyStatus,
    ReplicaStatus,
    StatusReport,
    TargetStatus,
)

NOW = 1_800_000_000


def replica(
    condition: Condition, behind: int | None = None, filesystem: str | None = "tank/home"
) -> ReplicaStatus:
    return ReplicaStatus(
        filesystem=filesystem,
        target_filesystem=None if filesystem is None else f"vault/{filesystem}",
        condition=condition,
        conflict=ConflictKind.DIVERGED if condition is Condition.CONFLICT else None,
        lag=behind,
        behind=behind,
    )


def report(
    *replicas: ReplicaStatus,
    max_lag: int | None = 7200,
    policy: str = "home",
    target: str = "offsite",
    hosts: tuple[HostStatus, ...] = (HostStatus("backup", None), HostStatus("nas", None)),
) -> StatusReport:
    targets = (TargetStatus(target, "backup", "vault", tuple(replicas), max_lag),)
    status = PolicyStatus(policy, "nas", None, None, False, None, (), targets, ())
    return StatusReport(NOW, (status,), hosts)


@pytest.mark.parametrize(
    ("replicas", "max_lag", "state"),
    [
        ((replica(Condition.IN_SYNC, 600),), 7200, NagiosState.OK),
        ((replica(Condition.PENDING, 5400),), 7200, NagiosState.OK),  # at the warning line
        ((replica(Condition.PENDING, 5401),), 7200, NagiosState.WARNING),
        ((replica(Condition.NEVER_REPLICATED, 6000),), 7200, NagiosState.WARNING),
        ((replica(Condition.NEVER_REPLICATED, None),), 7200, NagiosState.OK),
        ((replica(Condition.RESUMING, 100),), None, NagiosState.OK),
        ((replica(Condition.WAITING_FOR_PARENT, 100),), None, NagiosState.OK),
        ((replica(Condition.STALE, 7201),), 7200, NagiosState.CRITICAL),
        ((replica(Condition.CONFLICT, 60),), None, NagiosState.CRITICAL),
        ((replica(Condition.SOURCE_UNREACHABLE, None, None),), 7200, NagiosState.CRITICAL),
        ((replica(Condition.TARGET_UNREACHABLE, 600),), 7200, NagiosState.WARNING),
        ((replica(Condition.TARGET_UNREACHABLE, 600),), None, NagiosState.CRITICAL),
        ((replica(Condition.TARGET_UNREACHABLE, None),), 7200, NagiosState.CRITICAL),
        ((replica(Condition.IN_SYNC, 600), replica(Condition.STALE, 9000)), 7200,
         NagiosState.CRITICAL),
    ],
)  # fmt: skip
def test_state_of_each_condition(
    replicas: tuple[ReplicaStatus, ...], max_lag: int | None, state: NagiosState
) -> None:
    assert nagios_check(report(*replicas, max_lag=max_lag)).state is state


def test_warning_threshold_is_three_quarters_of_max_lag() -> None:
    assert [warning_threshold(s) for s in (1, 4, 7200, 86400)] == [0, 3, 5400, 64800]


def test_the_line_of_a_stale_pair() -> None:
    result = nagios_check(
        report(replica(Condition.STALE, 10920), replica(Condition.IN_SYNC, 600, "tank/x"))
    )
    assert result.line == (
        "ZFS-RECONCILER CRITICAL - home/offsite tank/home stale (lag 3h02m, maxLag 2h); "
        "2 replicas: 1 in_sync, 1 stale; worst lag 3h02m (home/offsite tank/home)"
        " | 'lag_home_offsite'=10920s;5400;7200;0 'replicas'=2;;;0"
    )


def test_labels_are_quoted_and_quotes_doubled() -> None:
    assert perf_label("lag_home_offsite") == "'lag_home_offsite'"
    assert perf_label("it's") == "'it''s'"
    assert perf_label("a=b|c\nd") == "'a_b_c_d'"
    result = nagios_check(report(replica(Condition.IN_SYNC, 60), policy="o'dd pol=icy|x"))
    status, perfdata = result.line.split(" | ")  # no other `|` in the line
    assert perfdata == "'lag_o''dd pol_icy_x_offsite'=60s;5400;7200;0 'replicas'=1;;;0"
    assert "o'dd pol=icy/x/offsite tank/home" in status


def test_an_unknown_lag_is_u_and_a_negative_one_is_zero() -> None:
    unknown = nagios_check(report(replica(Condition.SOURCE_UNREACHABLE, None, None)))
    assert unknown.line == (
        "ZFS-RECONCILER CRITICAL - home/offsite * source host nas down; "
        "1 replica: 1 source_unreachable | 'lag_home_offsite'=U;5400;7200;0 'replicas'=1;;;0"
    )
    early = nagios_check(report(replica(Condition.IN_SYNC, -600), max_lag=None))
    assert early.state is NagiosState.OK
    assert "'lag_home_offsite'=0s;;;0" in early.line


def test_an_unreachable_host_no_pair_speaks_for_is_critical() -> None:
    hosts = (HostStatus("backup", "refused\nreally"), HostStatus("nas", None))
    result = nagios_check(report(hosts=hosts))  # no filesystem matched: no pair
    assert result.state is NagiosState.CRITICAL
    assert result.line.startswith(
        "ZFS-RECONCILER CRITICAL - host backup unreachable (refused\\nreally); 0 replicas |"
    )


def test_problems_beyond_the_first_few_are_counted() -> None:
    stale = [replica(Condition.STALE, 9000, f"tank/{n}") for n in range(MAX_PROBLEMS_SHOWN + 4)]
    line = nagios_check(report(*stale)).line
    assert line.count(" stale (lag ") == MAX_PROBLEMS_SHOWN
    assert ", and 4 more; 7 replicas: 7 stale;" in line


def test_the_status_text_is_bounded() -> None:
    long = [replica(Condition.STALE, 9000, "tank/" + "x" * 250 + str(n)) for n in range(3)]
    status, perfdata = nagios_check(report(*long)).line.split(" | ")
    assert len(status) == len("ZFS-RECONCILER CRITICAL - ") + MAX_TEXT
    assert status.endswith("...")
    assert perfdata == "'lag_home_offsite'=9000s;5400;7200;0 'replicas'=3;;;0"


def test_unknown() -> None:
    assert nagios_check(StatusReport(NOW, (), ())).line == (
        "ZFS-RECONCILER UNKNOWN - no policy to check"
    )
    down = (HostStatus("backup", "refused"), HostStatus("nas", "timeout"))
    result = nagios_check(report(replica(Condition.SOURCE_UNREACHABLE, None, None), hosts=down))
    assert result.state is NagiosState.UNKNOWN
    assert result.line == (
        "ZFS-RECONCILER UNKNOWN - no host could be observed: backup (refused); nas (timeout)"
    )
    assert nagios_unknown("a|b\nc").line == "ZFS-RECONCILER UNKNOWN - a/b\\nc"
