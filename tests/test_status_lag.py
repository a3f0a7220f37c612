"""The stale rule of `reconcile status` (a target's `maxLag`): one row per case says the
condition and how far behind the pair is (`behind`); then the JSON and text renderings and the
exit verdict. States are hand-built in the notation of tests/notation.py."""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.core.desired import intents
from reconciler.core.planner import plan_intents
from reconciler.core.status import (
    HEALTHY,
    CommonFrom,
    Condition,
    StatusReport,
    beyond_max_lag,
    status_report,
)
from reconciler.core.status_render import render_status_text, status_to_json
from reconciler.manifest.loader import parse_manifests
from tests.notation import observed_from
from tests.test_cli import HOSTS

NOW = calendar.timegm((2026, 11, 26, 12, 0, 0, 0, 0, 0))
TAG = "zr_:home:offsite"
POLICY = """\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home<": true}}
  snapshots: {prefix: zr_, interval: 15m, include: ["^manual-"]}
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      protection: PROTECTION
"""
# a converged pair whose newest common snapshot is 10 minutes (600 s) old at NOW
SRC_1150 = f"zr_20261126T115000Z[{TAG}] #zr_20261126T115000Z_offsite=zr_20261126T115000Z"
DST_1150 = f"zr_20261126T115000Z[{TAG}]"
IN_SYNC = {"nas": {"tank/home": SRC_1150}, "backup": {"vault/nas/tank/home": DST_1150}}
TARGET_DOWN = {"nas": {"tank/home": SRC_1150}, "backup": {"unreachable": "Connection refused"}}
NEVER = {"nas": {"tank/home": "zr_20261126T115000Z"}, "backup": {"vault/nas/tank": ""}}


def report_for(
    hosts: dict[str, Any],
    max_lag: str | None,
    now: int = NOW,
    protection: str = "resumable",
) -> StatusReport:
    text = HOSTS + POLICY.replace("PROTECTION", protection)
    if max_lag is not None:
        text += f"      maxLag: {max_lag}\n"
    selected = intents(parse_manifests([("test.yaml", text)]))
    observed = observed_from(hosts)
    return status_report(selected, observed, plan_intents(selected, observed, now), now)


@dataclass(frozen=True)
class Case:
    name: str
    hosts: dict[str, Any]
    max_lag: str | None
    condition: Condition
    behind: int | None
    now: int = NOW
    protection: str = "resumable"
    message: str = ""


CASES = [
    Case(
        "no maxLag: no threshold",
        IN_SYNC,
        None,
        Condition.PENDING,  # a snapshot is due
        600 + 86400 * 30,
        now=NOW + 86400 * 30,
    ),
    Case("lag just below maxLag", IN_SYNC, "601s", Condition.IN_SYNC, 600),
    Case("lag at maxLag is not beyond it", IN_SYNC, "600s", Condition.IN_SYNC, 600),
    Case(
        "lag just beyond maxLag",
        IN_SYNC,
        "599s",
        Condition.STALE,
        600,
        message="lag 10m, beyond maxLag 599s",
    ),
    Case(
        "pending and beyond maxLag is stale",
        {
            "nas": {"tank/home": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {"vault/nas/tank/home": DST_1150},
        },
        "5m",
        Condition.STALE,
        600,
    ),
    Case(
        "a conflict stays a conflict",
        {
            "nas": {"tank/home": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {"vault/nas/tank/home": DST_1150 + " local-test~"},
        },
        "1m",
        Condition.CONFLICT,
        600,
    ),
    Case(
        "no common base stays a conflict",
        {
            "nas": {"tank/home": "zr_20261126T115000Z"},
            "backup": {"vault/nas/tank/home": "zr_20261126T114500Z'"},
        },
        "1m",
        Condition.CONFLICT,
        600,
    ),
    Case(
        "an interrupted receive beyond maxLag is stale",
        {
            "nas": {"tank/home": SRC_1150 + " zr_20261126T115500Z"},
            "backup": {
                "vault/nas/tank/home": {
                    "versions": DST_1150,
                    "resume": {"to": "zr_20261126T115500Z", "from": "zr_20261126T115000Z"},
                }
            },
        },
        "5m",
        Condition.STALE,
        600,
    ),
    Case(
        "unreachable target within maxLag by its cursor bookmark",
        TARGET_DOWN,
        "601s",
        Condition.TARGET_UNREACHABLE,
        600,
    ),
    Case(
        "unreachable target beyond maxLag by its cursor bookmark is stale",
        TARGET_DOWN,
        "599s",
        Condition.STALE,
        600,
        message="lag 10m (from the source's cursor bookmark), beyond maxLag 599s; target host "
        "backup could not be observed (Connection refused)",
    ),
    Case(
        "unreachable target without a cursor bookmark: the lag is unknown",
        {"nas": {"tank/home": "zr_20261126T115000Z"}, "backup": {"unreachable": "refused"}},
        "1s",
        Condition.TARGET_UNREACHABLE,
        None,
        protection="none",
    ),
    Case(
        "never replicated, oldest snapshot within maxLag",
        NEVER,
        "601s",
        Condition.NEVER_REPLICATED,
        600,
    ),
    Case(
        "never replicated, oldest snapshot beyond maxLag",
        NEVER,
        "599s",
        Condition.STALE,
        600,
        message="never replicated: its oldest snapshot is 10m old, beyond maxLag 599s",
    ),
    Case(
        "never replicated: the oldest replicated snapshot counts",
        {
            "nas": {"tank/home": "zr_20261126T100000Z zr_20261126T115000Z"},
            "backup": {"vault/nas/tank": ""},
        },
        "1h",
        Condition.STALE,
        7200,
    ),
    Case(
        "never replicated: a foreign snapshot that is not replicated does not count",
        {"nas": {"tank/home": "other"}, "backup": {"vault/nas/tank": ""}},
        "1s",
        Condition.NEVER_REPLICATED,
        None,
    ),
    Case(
        "never replicated: an included foreign snapshot counts by its creation",
        {"nas": {"tank/home": "manual-1"}, "backup": {"vault/nas/tank": ""}},
        "1d",
        Condition.STALE,
        NOW - 2001,  # notation: creation is the createtxg (host nas's start at 2000 + 1)
    ),
    Case(
        "a source that cannot be observed says nothing about lag",
        {"nas": {"unreachable": "refused"}, "backup": {}},
        "1s",
        Condition.SOURCE_UNREACHABLE,
        None,
    ),
    Case(
        "a --now before the common snapshot is not stale",
        IN_SYNC,
        "1s",
        Condition.IN_SYNC,
        -600,
        now=NOW - 1200,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_stale_rule(case: Case) -> None:
    report = report_for(case.hosts, case.max_lag, case.now, case.protection)
    (replica,) = report.replicas
    assert replica.condition is case.condition, replica.message
    assert replica.behind == case.behind
    assert case.message in replica.message
    assert report.ok is (case.condition in HEALTHY)


def test_stale_is_not_healthy() -> None:
    assert Condition.STALE not in HEALTHY
    report = report_for(IN_SYNC, "5m")
    assert report.ok is False
    assert report.counts()[Condition.STALE] == 1


def test_stale_from_the_cursor_bookmark_keeps_its_origin() -> None:
    (replica,) = report_for(TARGET_DOWN, "1m").replicas
    assert replica.condition is Condition.STALE
    assert replica.common_from is CommonFrom.CURSOR_BOOKMARK
    assert replica.lag == replica.behind == 600


def test_a_waiting_child_beyond_max_lag_is_stale() -> None:
    report = report_for(
        {
            "nas": {"tank/home": "manual", "tank/home/alice": "zr_20261126T114500Z"},
            "backup": {"vault/nas/tank": ""},
        },
        "5m",
    )
    conditions = {r.filesystem: (r.condition, r.behind) for r in report.replicas}
    assert conditions == {
        "tank/home": (Condition.NEVER_REPLICATED, None),  # nothing it replicates yet
        "tank/home/alice": (Condition.STALE, 900),
    }


@pytest.mark.parametrize(
    ("behind", "max_lag", "beyond"),
    [(None, 60, False), (61, None, False), (60, 60, False), (61, 60, True), (-5, 1, False)],
)
def test_beyond_max_lag(behind: int | None, max_lag: int | None, beyond: bool) -> None:
    assert beyond_max_lag(behind, max_lag) is beyond


def test_json_carries_max_lag_and_behind() -> None:
    document = status_to_json(report_for(IN_SYNC, "2h"))
    assert json.loads(json.dumps(document)) == document
    target = document["policies"][0]["targets"][0]  # type: ignore[index]
    assert target["max_lag"] == 7200
    (row,) = target["filesystems"]
    assert (row["condition"], row["lag"], row["behind"]) == ("in_sync", 600, 600)
    assert document["summary"]["stale"] == 0  # type: ignore[index]
    unlimited = status_to_json(report_for(IN_SYNC, None))
    assert unlimited["policies"][0]["targets"][0]["max_lag"] is None  # type: ignore[index]
    stale = status_to_json(report_for(IN_SYNC, "5m"))
    assert stale["ok"] is False
    assert stale["summary"]["stale"] == 1  # type: ignore[index]
    assert stale["summary"]["text"] == "ATTENTION: 1 stale"  # type: ignore[index]


def test_text_shows_the_threshold_and_why_a_pair_is_stale() -> None:
    lines = render_status_text(report_for(IN_SYNC, "5m")).splitlines()
    header = next(line for line in lines if "FILESYSTEM" in line)
    assert "  LAG  MAX LAG  PENDING" in header
    (row,) = [line.split() for line in lines if line.startswith("  tank/")]
    assert row == ["tank/home", "offsite", "stale", "zr_20261126T115000Z", "10m", "5m", "0"]
    assert "  ! tank/home -> offsite: lag 10m, beyond maxLag 5m" in lines
    assert lines[-1] == "ATTENTION: 1 stale"
    (row,) = [
        line.split()
        for line in render_status_text(report_for(IN_SYNC, None)).splitlines()
        if line.startswith("  tank/")
    ]
    assert row[4:6] == ["10m", "-"]
