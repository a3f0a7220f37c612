"""The Prometheus metrics (`loop/metrics.py`, `loop/settle.py`) and `reconcile --metrics-file`
(`loop/textfile.py`): values read back with prometheus-client's own parser, hostile label
values, counters carried from one cron run to the next, and the path checked before anything
is applied. Hosts are the in-memory ZFS model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.apply.executor import ActionStatus
from reconciler.apply.passes import Dependencies, PassResult, run_pass
from reconciler.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from reconciler.core.plan import SendAction
from reconciler.core.status import Condition
from reconciler.loop.metrics import Metrics, PolicyPass, failed_pass, policy_passes
from reconciler.loop.settle import settled_status
from reconciler.manifest.loader import load_manifests
from tests.test_cli import MANIFESTS, NOW, Fleet

NOW_SECONDS = 1796385600  # 2026-11-26T12:00:00Z
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[("zfs_reconciler_" + name, tuple(sorted(labels.items())))]


def one_pass(fleet: Fleet, tmp_path: Path, now: int = NOW_SECONDS) -> PassResult:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS)
    return run_pass(load_manifests([str(path)]), None, now, Dependencies(fleet.connect))


# --- what a pass says ----------------------------------------------------------------------


def test_a_first_pass_settles_every_replica_in_sync_with_no_lag(tmp_path: Path) -> None:
    fleet = Fleet()
    result = one_pass(fleet, tmp_path)
    observed = settled_status(replace(result, report=None))  # as observed: nothing there yet
    assert {r.condition for r in observed.replicas} == {Condition.NEVER_REPLICATED}
    settled = settled_status(result)
    assert {r.condition for r in settled.replicas} == {Condition.IN_SYNC}
    assert {r.lag for r in settled.replicas} == {0}
    assert {r.pending for r in settled.replicas} == {0}
    assert settled.policies[0].snapshot_due is False
    assert settled.policies[0].newest_snapshot is not None


def test_a_failed_send_leaves_its_replica_pending_with_the_old_lag(tmp_path: Path) -> None:
    fleet = Fleet()
    one_pass(fleet, tmp_path)
    result = one_pass(fleet, tmp_path, NOW_SECONDS + 900)
    assert result.report is not None
    sends = {a.id for a in result.plan.actions if isinstance(a, SendAction)}
    failed = tuple(
        replace(r, status=ActionStatus.FAILED) if r.action_id in sends else r
        for r in result.report.results
    )
    settled = settled_status(replace(result, report=replace(result.report, results=failed)))
    assert {r.condition for r in settled.replicas} == {Condition.PENDING}
    assert {r.lag for r in settled.replicas} == {900}
    assert all(r.pending_sends == 1 for r in settled.replicas)


def test_policy_passes_count_actions_bytes_and_managed_snapshots(tmp_path: Path) -> None:
    fleet = Fleet()
    one_pass(fleet, tmp_path)
    result = one_pass(fleet, tmp_path, NOW_SECONDS + 900)
    assert result.report is not None
    sends = {a.id for a in result.plan.actions if isinstance(a, SendAction)}
    with_bytes = tuple(
        replace(r, bytes=1000 + r.action_id) if r.action_id in sends else r
        for r in result.report.results
    )
    result = replace(result, report=replace(result.report, results=with_bytes))
    (passed,) = policy_passes(result, settled_status(result), 5.0, 1.5)
    assert passed.succeeded and passed.conflicts == 0 and passed.unobserved == 0
    assert passed.sent_bytes == {"offsite": sum(1000 + i for i in sends)}
    assert passed.actions[("send", "ok")] == len(sends) == 2
    assert passed.managed == {"nas": 2, "backup": 2}  # as observed: one snapshot per filesystem


# --- the exposition ------------------------------------------------------------------------


HOSTILE = 'tank/a "quoted"\\back\nslash'


def test_hostile_label_values_survive_the_exposition() -> None:
    metrics = Metrics()
    metrics.record(
        PolicyPass(
            policy=HOSTILE,
            ended=10.0,
            seconds=0.2,
            succeeded=True,
            actions={("send", "ok"): 2},
            sent_bytes={"t\n1": 4096},
            conflicts=0,
            unobserved=0,
            managed={'host"x': 3},
        )
    )
    text = generate_latest(metrics.registry).decode()
    assert "\n" + HOSTILE not in text  # escaped, not split over lines
    found = samples(text)
    assert value(found, "sent_bytes_total", policy=HOSTILE, target="t\n1") == 4096
    assert value(found, "actions_total", policy=HOSTILE, kind="send", result="ok") == 2
    assert value(found, "managed_snapshots", policy=HOSTILE, host='host"x') == 3
    assert value(found, "last_success_timestamp_seconds", policy=HOSTILE) == 10.0


def test_counters_accumulate_and_a_failed_pass_keeps_the_last_success() -> None:
    metrics = Metrics()
    ok = PolicyPass("home", 100.0, 0.3, True, actions={("snapshot", "ok"): 1})
    metrics.record(ok)
    metrics.record(replace(ok, ended=200.0, seconds=7.0))
    metrics.record(failed_pass("home", 300.0, 20.0))
    found = samples(generate_latest(metrics.registry).decode())
    assert value(found, "actions_total", policy="home", kind="snapshot", result="ok") == 2
    assert value(found, "last_success_timestamp_seconds", policy="home") == 200.0
    assert value(found, "pass_duration_seconds_count", policy="home") == 3
    assert value(found, "pass_duration_seconds_bucket", policy="home", le="1.0") == 1
    assert value(found, "pass_duration_seconds_bucket", policy="home", le="15.0") == 2
    assert value(found, "pass_duration_seconds_sum", policy="home") == pytest.approx(27.3)


def test_seeding_from_an_exposition_carries_counters_and_successes_over() -> None:
    first = Metrics()
    first.record(PolicyPass(HOSTILE, 100.0, 0.3, True, sent_bytes={"t": 7}))
    text = generate_latest(first.registry).decode()
    second = Metrics()
    second.seed(text)
    second.record(PolicyPass(HOSTILE, 200.0, 2.0, False, sent_bytes={"t": 5}))
    found = samples(generate_latest(second.registry).decode())
    assert value(found, "sent_bytes_total", policy=HOSTILE, target="t") == 12
    assert value(found, "last_success_timestamp_seconds", policy=HOSTILE) == 100.0
    assert value(found, "pass_duration_seconds_count", policy=HOSTILE) == 2


def test_a_policy_gone_from_the_manifests_leaves_no_series() -> None:
    metrics = Metrics()
    metrics.record(PolicyPass("old", 1.0, 0.1, True, actions={("snapshot", "ok"): 1}))
    metrics.record(PolicyPass("home", 1.0, 0.1, True))
    metrics.retain({"home"})
    text = generate_latest(metrics.registry).decode()
    assert 'policy="old"' not in text and 'policy="home"' in text


# --- reconcile --metrics-file ----------------------------------------------------------------


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS)
    return path


def run(fleet: Fleet, manifest: Path, *extra: str, now: str = NOW) -> tuple[int, str, str]:
    lock_dir = str(manifest.parent / "locks")
    return fleet.run("-f", str(manifest), "--now", now, "--lock-dir", lock_dir, *extra)


def test_metrics_file_after_one_shot_passes(tmp_path: Path, manifest: Path) -> None:
    fleet = Fleet()
    prom = tmp_path / "textfile" / "reconcile.prom"
    prom.parent.mkdir()
    assert run(fleet, manifest, "--metrics-file", str(prom))[0] == EXIT_OK
    code, _, err = run(fleet, manifest, "--metrics-file", str(prom), now="2026-11-26T12:15:00Z")
    assert code == EXIT_OK, err
    assert [p.name for p in prom.parent.iterdir()] == ["reconcile.prom"]  # no temporary left
    found = samples(prom.read_text())
    assert value(found, "manifests_valid") == 1
    for fs in ("tank/home", "tank/home/alice"):
        labels = {"policy": "home", "target": "offsite", "filesystem": fs}
        assert value(found, "replication_lag_seconds", **labels) == 0
        assert value(found, "replica_condition", condition="in_sync", **labels) == 1
        assert value(found, "replica_condition", condition="pending", **labels) == 0
    assert value(found, "actions_total", policy="home", kind="snapshot", result="ok") == 2
    assert value(found, "actions_total", policy="home", kind="send", result="ok") == 4
    assert value(found, "managed_snapshots", policy="home", host="nas") == 2  # at its start
    assert value(found, "sent_bytes_total", policy="home", target="offsite") >= 0
    assert value(found, "conflicts", policy="home") == 0
    assert value(found, "pass_duration_seconds_count", policy="home") == 2


def test_a_conflict_and_an_invalid_manifest_show_in_the_metrics_file(
    tmp_path: Path, manifest: Path
) -> None:
    fleet = Fleet()
    prom = tmp_path / "reconcile.prom"
    assert run(fleet, manifest, "--metrics-file", str(prom))[0] == EXIT_OK
    succeeded = value(samples(prom.read_text()), "last_success_timestamp_seconds", policy="home")
    backup = fleet.hosts["backup"]
    backup.write("vault/nas/tank/home", 4096)
    backup.snapshot(["vault/nas/tank/home"], "local-change")
    later = "2026-11-26T12:30:00Z"
    assert run(fleet, manifest, "--metrics-file", str(prom), now=later)[0] == EXIT_ERROR
    found = samples(prom.read_text())
    assert value(found, "conflicts", policy="home") == 1
    labels = {"policy": "home", "target": "offsite", "filesystem": "tank/home"}
    assert value(found, "replica_condition", condition="conflict", **labels) == 1
    assert value(found, "replication_lag_seconds", **labels) == 1800
    assert value(found, "last_success_timestamp_seconds", policy="home") == succeeded
    manifest.write_text(MANIFESTS.replace("interval: 15m", "interval: 15x"))
    code, _, err = run(fleet, manifest, "--metrics-file", str(prom), now=later)
    assert code == EXIT_ERROR and "unknown unit" in err
    found = samples(prom.read_text())
    assert value(found, "manifests_valid") == 0
    assert value(found, "last_success_timestamp_seconds", policy="home") == succeeded


@pytest.mark.parametrize(
    "where",
    ["missing/reconcile.prom", ".", "link.prom", "/dev/null"],
    ids=["no_directory", "a_dir", "link", "device"],
)
def test_a_bad_metrics_path_applies_nothing(tmp_path: Path, manifest: Path, where: str) -> None:
    (tmp_path / "link.prom").symlink_to(manifest)
    fleet = Fleet()
    before = fleet.hosts["nas"].observe()
    code, out, err = run(fleet, manifest, "--metrics-file", str(tmp_path / where))
    assert code == EXIT_ERROR and out == ""
    assert err.count("\n") == 1 and err.startswith("error: --metrics-file ")
    assert fleet.hosts["nas"].observe() == before


def test_a_previous_file_that_is_not_metrics_is_replaced(tmp_path: Path, manifest: Path) -> None:
    fleet = Fleet()
    prom = tmp_path / "reconcile.prom"
    prom.write_text('zfs_reconciler_actions_total{policy="home" 3\n{{{\n')
    code, _, err = run(fleet, manifest, "--metrics-file", str(prom))
    assert code == EXIT_OK
    assert "not the exposition format" in err
    found = samples(prom.read_text())
    assert value(found, "actions_total", policy="home", kind="snapshot", result="ok") == 1


def test_metrics_file_is_refused_with_dry_run(manifest: Path, tmp_path: Path) -> None:
    fleet = Fleet()
    with pytest.raises(SystemExit) as exited:
        run(fleet, manifest, "--dry-run", "--metrics-file", str(tmp_path / "r.prom"))
    assert exited.value.code == EXIT_USAGE


def test_the_bytes_a_send_moved_reach_the_metrics_file(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.test_cli import MANIFESTS, NOW, Fleet

    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS)
    metrics = tmp_path / "m.prom"
    fleet = Fleet()
    argv = ["-f", str(path), "--now", NOW, "--metrics-file", str(metrics)]
    code, _, err = fleet.run(*argv, "--lock-dir", str(tmp_path / "locks"), "--output", "json")
    assert code == 0, err
    sent = {
        sample.labels["target"]: sample.value
        for family in text_string_to_metric_families(metrics.read_text())
        for sample in family.samples
        if sample.name == "zfs_reconciler_sent_bytes_total"
    }
    # the model's streams carry what was written (1 MiB into tank/home/alice) and more
    assert sent["offsite"] >= 1 << 20, sent
