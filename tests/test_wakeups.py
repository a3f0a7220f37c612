"""Table tests for `core/wakeups.py`: when a policy's next snapshot is due, and which policies
may run at once. Each due time is also checked against the planner's own rule
(`schedule.is_due`): not due one second before, due at it."""

from __future__ import annotations

import calendar
from typing import Any

import pytest

from reconciler.core.desired import PolicyIntent, intents
from reconciler.core.names import snapshot_name
from reconciler.core.schedule import is_due
from reconciler.core.state import FilesystemState, HostState, Version, VersionKind
from reconciler.core.wakeups import next_snapshot_due, policies_overlap
from reconciler.manifest.loader import parse_manifests
from tests.test_cli import HOSTS

T0 = calendar.timegm((2026, 12, 4, 10, 7, 0, 0, 0, 0))
MIN, HOUR = 60, 3600


def _policy(
    name: str,
    snapshots: str,
    filesystems: str = "{'tank/a<': true}",
    extra: str = "",
    host: str = "nas",
) -> str:
    return f"""
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: {name}}}
spec:
  source: {{host: {host}, filesystems: {filesystems}}}
  snapshots: {snapshots}
{extra}"""


def _intent(snapshots: str, **kwargs: Any) -> PolicyIntent:
    manifests = parse_manifests([("m.yaml", HOSTS + _policy("p", snapshots, **kwargs))])
    return intents(manifests)[0]


def _host(**filesystems: list[int]) -> HostState:
    """Filesystems (a, a_b for tank/a/b) with managed snapshots (prefix zr_) at the times."""
    states = {}
    for key, times in filesystems.items():
        name = "tank/" + key.replace("_", "/")
        versions = tuple(
            Version(
                VersionKind.SNAPSHOT, snapshot_name("zr_", t), guid=t, createtxg=i + 1, creation=t
            )
            for i, t in enumerate(times)
        )
        states[name] = FilesystemState(name, versions)
    return HostState("nas", states)


INTERVAL = "{prefix: zr_, interval: 15m}"
CRON = "{prefix: zr_, cron: '0 * * * *'}"  # on the hour


@pytest.mark.parametrize(
    ("snapshots", "host", "now", "expected"),
    [
        pytest.param(INTERVAL, _host(a=[]), T0, T0, id="no managed snapshot: due now"),
        pytest.param(INTERVAL, _host(a=[T0 - 5 * MIN]), T0, T0 + 10 * MIN, id="interval"),
        pytest.param(INTERVAL, _host(a=[T0 - 20 * MIN]), T0, T0, id="interval overdue: now"),
        pytest.param(
            INTERVAL,
            _host(a=[T0 - 5 * MIN], a_b=[T0 - 10 * MIN]),
            T0,
            T0 + 5 * MIN,
            id="the filesystem due first decides",
        ),
        pytest.param(CRON, _host(a=[T0 - 7 * MIN]), T0, T0 + 53 * MIN, id="cron: next hour"),
        pytest.param(CRON, _host(a=[T0 - 2 * HOUR]), T0, T0, id="cron missed: now"),
    ],
)
def test_next_snapshot_due(snapshots: str, host: HostState, now: int, expected: int) -> None:
    intent = _intent(snapshots, filesystems="{'tank/a<': true}")
    due = next_snapshot_due(intent, host, now)
    assert due == expected
    # the planner's own rule agrees: due at that time, and not a second before (unless now)
    assert _due_any(intent, host, due)
    if due > now:
        assert not _due_any(intent, host, due - 1)


def _due_any(intent: PolicyIntent, host: HostState, at: int) -> bool:
    return any(
        is_due(
            intent.managed(tuple(v.name for v in state.versions)).newest,
            at,
            interval=intent.interval,
            cron=intent.cron,
        )
        for state in host.filesystems.values()
    )


def test_a_snapshot_just_taken_moves_the_due_time() -> None:
    intent = _intent(INTERVAL)
    host = _host(a=[T0 - 20 * MIN])
    assert next_snapshot_due(intent, host, T0) == T0
    assert next_snapshot_due(intent, host, T0, taken_at=T0) == T0 + 15 * MIN


@pytest.mark.parametrize(
    ("snapshots", "host"),
    [
        pytest.param("{prefix: zr_}", _host(a=[T0]), id="no schedule"),
        pytest.param(INTERVAL, HostState("nas", error="ssh: connection refused"), id="unobserved"),
        pytest.param(INTERVAL, _host(c=[T0]), id="no filesystem selected"),
    ],
)
def test_no_snapshot_wakeup(snapshots: str, host: HostState) -> None:
    assert next_snapshot_due(_intent(snapshots), host, T0) is None


def _two(
    first: str, second: str, *, target: str = "", second_target: str = "", second_host: str = "nas"
) -> tuple[PolicyIntent, PolicyIntent]:
    text = (
        HOSTS
        + _policy("a", "{prefix: za_}", first, target)
        + _policy("b", "{prefix: zb_}", second, second_target, host=second_host)
    )
    found = intents(parse_manifests([("m.yaml", text)]))
    return found[0], found[1]


def _targets(root: str) -> str:
    return f"  replication:\n    - {{name: t, host: backup, root: {root}}}\n"


@pytest.mark.parametrize(
    ("first", "second", "targets", "expected"),
    [
        pytest.param(
            "{'tank/a<': true}", "{'tank/b<': true}", ("", ""), False, id="disjoint sources"
        ),
        pytest.param("{'tank<': true}", "{'tank/b': true}", ("", ""), True, id="nested sources"),
        pytest.param(
            "{'tank<': true, 'tank/b<': false}",
            "{'tank/b<': true}",
            ("", ""),
            False,
            id="excluded subtree",
        ),
        pytest.param(
            "{'tank/a<': true}",
            "{'tank/b<': true}",
            (_targets("vault/x"), _targets("vault/x")),
            False,
            id="one target root, disjoint names below it",
        ),
    ],
)
def test_policies_overlap(
    first: str, second: str, targets: tuple[str, str], expected: bool
) -> None:
    a, b = _two(first, second, target=targets[0], second_target=targets[1])
    assert policies_overlap(a, b) is expected
    assert policies_overlap(b, a) is expected


def test_a_source_inside_another_policys_replicas_overlaps() -> None:
    a, b = _two(
        "{'tank/a<': true}",
        "{'vault/x/tank/a/b<': true}",
        target=_targets("vault/x"),
        second_host="backup",
    )
    assert policies_overlap(a, b) and policies_overlap(b, a)
    c, d = _two(
        "{'tank/a<': true}",
        "{'vault/x/tank/c<': true}",
        target=_targets("vault/x"),
        second_host="backup",
    )
    assert not policies_overlap(c, d)


def test_two_names_of_one_machine_overlap() -> None:
    a, b = _two("{'tank/a<': true}", "{'tank/a<': true}", second_host="backup")
    assert not policies_overlap(a, b)
    assert policies_overlap(a, b, {"nas": "machine-1", "backup": "machine-1"})
    assert not policies_overlap(a, b, {"nas": "machine-1", "backup": "machine-2"})
