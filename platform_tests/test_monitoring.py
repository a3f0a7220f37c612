"""`reconcile --metrics-file` on real OpenZFS (docs/monitoring.md): the metrics of one-shot
passes, read back with prometheus-client's parser: replication lag and conditions after each
pass, actions counted across runs, managed snapshots per host, and a target gone offline
(lag read from the source's cursor bookmark, the last success kept)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from platform_tests.scenario import Scenario
from platform_tests.test_scenarios import policy, with_history


def metric(path: Path, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == "zfs_reconciler_" + name and sample.labels == labels:
                return sample.value
    return None


def test_metrics_file_tracks_lag_actions_and_an_offline_target(s: Scenario) -> None:
    data = f"{s.src}/data"
    with_history(s, data, [0, 60], day=25)
    s.policy(policy(initial="mostRecent"))
    prom = s.directory / "reconcile.prom"
    replica = {"policy": "data", "target": "backup", "filesystem": data}
    s.at(0)
    first = s.reconcile("--metrics-file", str(prom))
    assert first.code == 0, first.stderr
    assert metric(prom, "replication_lag_seconds", **replica) == 0
    assert metric(prom, "replica_condition", condition="in_sync", **replica) == 1
    assert metric(prom, "managed_snapshots", policy="data", host="src") == 2  # at its start
    assert metric(prom, "managed_snapshots", policy="data", host="dst") == 0
    succeeded = metric(prom, "last_success_timestamp_seconds", policy="data")
    assert succeeded is not None
    s.at(15)
    second = s.reconcile("--metrics-file", str(prom))
    assert second.code == 0, second.stderr
    assert metric(prom, "replication_lag_seconds", **replica) == 0
    assert metric(prom, "actions_total", policy="data", kind="send", result="ok") == 2
    assert metric(prom, "managed_snapshots", policy="data", host="dst") == 1
    assert metric(prom, "pass_duration_seconds_count", policy="data") == 2
    last = metric(prom, "last_success_timestamp_seconds", policy="data")
    s.dst_offline()
    s.at(30)
    offline = s.reconcile("--metrics-file", str(prom))
    assert offline.code == 1
    assert metric(prom, "hosts_unobserved", policy="data") == 1
    assert metric(prom, "replica_condition", condition="target_unreachable", **replica) == 1
    assert metric(prom, "replication_lag_seconds", **replica) == 15 * 60  # the cursor's
    assert metric(prom, "last_success_timestamp_seconds", policy="data") == last
    assert metric(prom, "managed_snapshots", policy="data", host="dst") is None
