"""`status_report` on hand-built observed states (tests/notation.py): one row per case says the
condition, newest common snapshot, lag and pending work it must report; then the JSON and text
renderings and the exit verdict (`StatusReport.ok`)."""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler.core.desired import intents
from reconciler.core.plan import ConflictKind
from reconciler.core.planner import plan_intents
from reconciler.core.status import (
    STATUS_FORMAT_VERSION,
    CommonFrom,
    Condition,
    StatusReport,
    format_age,
    status_report,
)
from reconciler.core.status_render import render_status_text, status_to_json
from reconciler.manifest.loader import parse_manifests
from tests.notation import guid_of, observed_from
from tests.test_cli import HOSTS

NOW = calendar.timegm((2026, 11, 26, 12, 0, 0, 0, 0, 0))
TAG = "zr_:home:offsite"
MANIFESTS = (
    HOSTS
    + """\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home<": true}}
  snapshots: {prefix: zr_SCHEDULE}
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      protection: resumable
      initialReplication: mostRecent
"""
)
# the newest common snapshot of a converged pair, as both sides carry it
SRC_1150 = f"zr_20261126T115000Z[{TAG}] #zr_20261126T115000Z_offsite=zr_20261126T115000Z"
DST_1150 = f"zr_20261126T115000Z[{TAG}]"


def report_for(
    hosts: dict[str, Any], now: int = NOW, schedule: str = ", interval: 15m"
) -> StatusReport:
    manifests = parse_manifests([("test.yaml", MANIFESTS.replace("SCHEDULE", schedule))])
    selected = intents(manifests)
    observed = observed_from(hosts)
    return status_report(selected, observed, plan_intents(selected, observed, now), now)


@dataclass(frozen=True)
class Case:
    name: str
    hosts: dict[str, Any]
    condition: Condition
    common: str | None = None
    lag: int | None = None
    pending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    now: int = NOW
    schedule: str = ", interval: 15m"


CASES = [
    Case(
        "in_sync",
        {"nas": {"tank/home": SRC_1150}, "backup": {"vault/nas/tank/home": DST_1150}},
        Condition.IN_SYNC,
        common="zr_20261126T115000Z",
        lag=600,
    ),
    Case(
        "a newer source snapshot is pending",
        {
            "nas": {"tank/home": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {"vault/nas/tank/home": DST_1150},
        },
        Condition.PENDING,
        common="zr_20261126T115000Z",
        lag=600,
        pending=True,
        extra={"pending_sends": 1},
    ),
    Case(
        "a due snapshot makes the pair pending",
        {"nas": {"tank/home": SRC_1150}, "backup": {"vault/nas/tank/home": DST_1150}},
        Condition.PENDING,
        common="zr_20261126T115000Z",
        lag=1200,
        pending=True,
        now=NOW + 600,
    ),
    Case(
        "the target filesystem does not exist",
        {"nas": {"tank/home": "zr_20261126T115000Z"}, "backup": {"vault/nas/tank": ""}},
        Condition.NEVER_REPLICATED,
        pending=True,
    ),
    Case(
        "nothing to replicate yet",
        {"nas": {"tank/home": "manual"}, "backup": {"vault/nas/tank": ""}},
        Condition.NEVER_REPLICATED,
        schedule="",
    ),
    Case(
        "diverged target",
        {
            "nas": {"tank/home": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {"vault/nas/tank/home": DST_1150 + " local-test~"},
        },
        Condition.CONFLICT,
        common="zr_20261126T115000Z",
        lag=600,
        extra={"conflict": ConflictKind.DIVERGED},
    ),
    Case(
        "no common base",
        {
            "nas": {"tank/home": "zr_20261126T115000Z"},
            "backup": {"vault/nas/tank/home": "zr_20261126T114500Z'"},
        },
        Condition.CONFLICT,
        extra={"conflict": ConflictKind.NO_COMMON_BASE},
    ),
    Case(
        "an interrupted receive resumes",
        {
            "nas": {"tank/home": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {
                "vault/nas/tank/home": {
                    "versions": DST_1150,
                    "resume": {"to": "zr_20261126T115500Z", "from": "zr_20261126T115000Z"},
                }
            },
        },
        Condition.RESUMING,
        common="zr_20261126T115000Z",
        lag=600,
        pending=True,
    ),
    Case(
        "the target host cannot be observed: the cursor bookmark tells",
        {"nas": {"tank/home": SRC_1150}, "backup": {"unreachable": "Connection refused"}},
        Condition.TARGET_UNREACHABLE,
        common="zr_20261126T115000Z",
        lag=600,
        extra={"common_from": CommonFrom.CURSOR_BOOKMARK},
    ),
    Case(
        "the source host cannot be observed",
        {"nas": {"unreachable": "zfs: command not found"}, "backup": {}},
        Condition.SOURCE_UNREACHABLE,
        extra={"filesystem": None, "message": "source host nas could not be observed"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_status_of_one_pair(case: Case) -> None:
    report = report_for(case.hosts, case.now, case.schedule)
    (replica,) = report.replicas
    assert replica.condition is case.condition
    assert (replica.newest_common.name if replica.newest_common else None) == case.common
    assert replica.lag == case.lag
    assert (replica.pending > 0) is case.pending
    for name, expected in case.extra.items():
        value = getattr(replica, name)
        if name == "message":
            assert expected in value
        else:
            assert value == expected


def test_waiting_for_parent_is_told_for_the_child_only() -> None:
    report = report_for(
        {
            "nas": {"tank/home": "manual", "tank/home/alice": "zr_20261126T114500Z"},
            "backup": {"vault/nas/tank": ""},
        },
        schedule="",
    )
    conditions = {r.filesystem: r.condition for r in report.replicas}
    assert conditions == {
        "tank/home": Condition.NEVER_REPLICATED,
        "tank/home/alice": Condition.WAITING_FOR_PARENT,
    }
    assert report.ok


def test_lag_of_a_foreign_common_snapshot_comes_from_its_creation() -> None:
    report = report_for(
        {
            "nas": {"tank/home": "manual zr_20261126T115500Z"},
            "backup": {"vault/nas/tank/home": "manual"},
        }
    )
    (replica,) = report.replicas
    assert replica.newest_common is not None and replica.newest_common.name == "manual"
    creation = 1001  # notation: creation is the createtxg (the first of host "backup", 1000 + 1)
    assert replica.newest_common.time == creation
    assert replica.lag == NOW - creation


def test_the_common_snapshot_is_found_by_guid_not_by_name() -> None:
    # the target's newest snapshot has the source's newest name but another GUID
    report = report_for(
        {
            "nas": {"tank/home": "zr_20261126T114500Z zr_20261126T115000Z"},
            "backup": {"vault/nas/tank/home": "zr_20261126T114500Z zr_20261126T115000Z'"},
        }
    )
    (replica,) = report.replicas
    assert guid_of("zr_20261126T115000Z'") != guid_of("zr_20261126T115000Z")
    assert replica.newest_common is not None
    assert replica.newest_common.name == "zr_20261126T114500Z"


def test_policy_level_schedule_and_newest_snapshot() -> None:
    hosts = {"nas": {"tank/home": SRC_1150}, "backup": {"vault/nas/tank/home": DST_1150}}
    quiet = report_for(hosts).policies[0]
    assert quiet.schedule == "every 15m"
    assert quiet.snapshot_due is False
    assert quiet.newest_snapshot is not None and quiet.newest_snapshot.name.endswith("115000Z")
    due = report_for(hosts, now=NOW + 900).policies[0]
    assert due.snapshot_due is True
    assert due.filesystems[0].pending == 1  # the snapshot action
    unscheduled = report_for(hosts, schedule="").policies[0]
    assert unscheduled.schedule is None and unscheduled.snapshot_due is False
    unreachable = report_for({"nas": {"unreachable": "x"}, "backup": {}}).policies[0]
    assert unreachable.snapshot_due is None and unreachable.source_error == "x"


@pytest.mark.parametrize(
    ("hosts", "ok"),
    [
        ({"nas": {"tank/home": SRC_1150}, "backup": {"vault/nas/tank/home": DST_1150}}, True),
        ({"nas": {"tank/home": "zr_20261126T115000Z"}, "backup": {"vault/nas/tank": ""}}, True),
        ({"nas": {"tank/home": SRC_1150}, "backup": {"unreachable": "refused"}}, False),
        ({"nas": {"unreachable": "refused"}, "backup": {}}, False),
        (
            {
                "nas": {"tank/home": "zr_20261126T115000Z"},
                "backup": {"vault/nas/tank/home": "other"},
            },
            False,
        ),
    ],
    ids=["in_sync", "never_replicated", "target_unreachable", "source_unreachable", "conflict"],
)
def test_ok_only_without_conflict_and_with_every_host_reachable(
    hosts: dict[str, Any], ok: bool
) -> None:
    assert report_for(hosts).ok is ok


def test_json_document() -> None:
    report = report_for(
        {
            "nas": {"tank/home": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {"vault/nas/tank/home": DST_1150},
        }
    )
    document = status_to_json(report)
    assert list(document)[:3] == ["format_version", "now", "ok"]
    assert document["format_version"] == STATUS_FORMAT_VERSION
    assert document["now"] == "2026-11-26T12:00:00Z"
    assert json.loads(json.dumps(document)) == document
    policy = document["policies"][0]  # type: ignore[index]
    row = policy["targets"][0]["filesystems"][0]
    assert row["condition"] == "pending"
    assert row["newest_common"] == {
        "name": "zr_20261126T115000Z",
        "time": "2026-11-26T11:50:00Z",
        "age": 600,
    }
    assert row["newest_snapshot"]["name"] == "zr_20261126T115500Z"
    assert row["lag"] == 600 and row["pending_sends"] == 1
    assert document["summary"]["pending"] == 1  # type: ignore[index]


def test_text_is_a_table_per_policy_with_a_verdict() -> None:
    report = report_for(
        {
            "nas": {"tank/home": SRC_1150, "tank/home/alice": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {
                "vault/nas/tank/home": DST_1150,
                "vault/nas/tank/home/alice": DST_1150 + " local~",
            },
        }
    )
    text = render_status_text(report)
    lines = text.splitlines()
    assert lines[0] == "Status at 2026-11-26T12:00:00Z"
    header = next(line for line in lines if "FILESYSTEM" in line)
    assert header.split() == [
        "FILESYSTEM",
        "TARGET",
        "CONDITION",
        "NEWEST",
        "COMMON",
        "LAG",
        "MAX",
        "LAG",
        "PENDING",
    ]
    rows = [line.split() for line in lines if line.startswith("  tank/")]
    assert rows[0][:5] == ["tank/home", "offsite", "in_sync", "zr_20261126T115000Z", "10m"]
    assert rows[1][:4] == ["tank/home/alice", "offsite", "conflict", "(diverged)"]
    assert any(line.startswith("  ! tank/home/alice -> offsite: ") for line in lines)
    assert lines[-1] == "ATTENTION: 1 in sync, 1 conflict"
    assert text == render_status_text(report)  # deterministic


def test_text_of_an_unreachable_target_marks_the_cursor_and_the_host() -> None:
    report = report_for(
        {"nas": {"tank/home": SRC_1150}, "backup": {"unreachable": "Connection refused"}}
    )
    text = render_status_text(report)
    assert "zr_20261126T115000Z (cursor)" in text
    assert "host backup: unreachable (Connection refused)" in text
    assert text.splitlines()[-1] == "ATTENTION: 1 target unreachable, unreachable: backup"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h00m"), (3660 * 2, "2h02m"),
     (86400 * 3 + 3600 * 4, "3d04h"), (-900, "-15m")],
)  # fmt: skip
def test_format_age(seconds: int, text: str) -> None:
    assert format_age(seconds) == text
