"""`reconcile status` with `maxLag`, and `reconcile status --output nagios`, end to end: the
exit codes (status 1 when a pair is stale; the plugin's 0/1/2/3) and the exact plugin line,
with hosts served by the in-memory ZFS model (tests/test_cli.py's `Fleet`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reconciler.cli import EXIT_ERROR, EXIT_OK, Console, Services, main
from reconciler.manifest.models import Host
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.port import ZFS
from tests.test_cli import MANIFESTS, NOW, Fleet

WITH_MAX_LAG = MANIFESTS + "      maxLag: 2h\n"
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Applying passes lock in a temporary directory, never in /run."""
    monkeypatch.setenv("ZFS_RECONCILER_LOCK_DIR", str(tmp_path / "locks"))


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifests.yaml"
    path.write_text(WITH_MAX_LAG)
    return path


@pytest.fixture
def replicated(fleet: Fleet, manifest: Path) -> Fleet:
    """Both filesystems replicated once, at NOW (12:00)."""
    code, out, _ = fleet.run("-f", str(manifest), "--now", NOW)
    assert code == EXIT_OK, out
    return fleet


def nagios(fleet: Fleet, manifest: Path, *extra: str) -> tuple[int, str]:
    code, out, _ = fleet.run("status", "-f", str(manifest), "--output", "nagios", *extra)
    assert out.endswith("\n") and out.count("\n") == 1, out  # exactly one line
    return code, out.rstrip("\n")


def test_status_exits_one_when_a_pair_is_beyond_max_lag(replicated: Fleet, manifest: Path) -> None:
    code, out, _ = replicated.run("status", "-f", str(manifest), "--now", "2026-11-26T13:59:00Z")
    assert code == EXIT_OK, out  # 1h59m: within 2h (a snapshot is due: pending)
    argv = ["status", "-f", str(manifest), "--now", "2026-11-26T14:00:01Z", "--output", "json"]
    code, out, _ = replicated.run(*argv)
    assert code == EXIT_ERROR
    document = json.loads(out)
    assert document["ok"] is False and document["summary"]["stale"] == 2
    target = document["policies"][0]["targets"][0]
    assert target["max_lag"] == 7200
    assert [(r["condition"], r["lag"]) for r in target["filesystems"]] == [("stale", 7201)] * 2
    code, out, _ = replicated.run("status", "-f", str(manifest), "--now", "2026-11-26T14:00:01Z")
    assert code == EXIT_ERROR
    assert "  ! tank/home -> offsite: lag 2h00m, beyond maxLag 2h" in out.splitlines()
    assert out.splitlines()[-1] == "ATTENTION: 2 stale"


def test_nagios_ok(replicated: Fleet, manifest: Path) -> None:
    assert nagios(replicated, manifest, "--now", "2026-11-26T12:05:00Z") == (
        OK,
        "ZFS-RECONCILER OK - 2 replicas: 2 in_sync; worst lag 5m (home/offsite tank/home)"
        " | 'lag_home_offsite'=300s;5400;7200;0 'replicas'=2;;;0",
    )


def test_nagios_warning_beyond_three_quarters_of_max_lag(replicated: Fleet, manifest: Path) -> None:
    assert nagios(replicated, manifest, "--now", "2026-11-26T13:40:00Z") == (
        WARNING,
        "ZFS-RECONCILER WARNING - home/offsite tank/home lagging (lag 1h40m, maxLag 2h), "
        "home/offsite tank/home/alice lagging (lag 1h40m, maxLag 2h); 2 replicas: 2 pending; "
        "worst lag 1h40m (home/offsite tank/home)"
        " | 'lag_home_offsite'=6000s;5400;7200;0 'replicas'=2;;;0",
    )


def test_nagios_critical_beyond_max_lag(replicated: Fleet, manifest: Path) -> None:
    assert nagios(replicated, manifest, "--now", "2026-11-26T15:00:00Z") == (
        CRITICAL,
        "ZFS-RECONCILER CRITICAL - home/offsite tank/home stale (lag 3h00m, maxLag 2h), "
        "home/offsite tank/home/alice stale (lag 3h00m, maxLag 2h); 2 replicas: 2 stale; "
        "worst lag 3h00m (home/offsite tank/home)"
        " | 'lag_home_offsite'=10800s;5400;7200;0 'replicas'=2;;;0",
    )


def test_nagios_critical_on_a_conflict_without_max_lag(fleet: Fleet, tmp_path: Path) -> None:
    manifest = tmp_path / "plain.yaml"
    manifest.write_text(MANIFESTS)
    assert fleet.run("-f", str(manifest), "--now", NOW)[0] == EXIT_OK
    backup = fleet.hosts["backup"]
    backup.write("vault/nas/tank/home", 4096)
    backup.snapshot(["vault/nas/tank/home"], "local-change")
    code, line = nagios(fleet, manifest, "--now", "2026-11-26T12:30:00Z")
    assert code == CRITICAL
    assert line.startswith(
        "ZFS-RECONCILER CRITICAL - home/offsite tank/home conflict (diverged); "
        "2 replicas: 1 pending, 1 conflict; worst lag 30m"
    )
    assert line.endswith(" | 'lag_home_offsite'=1800s;;;0 'replicas'=2;;;0")


def test_nagios_unreachable_target_within_max_lag_warns(replicated: Fleet, manifest: Path) -> None:
    replicated.hosts["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    code, line = nagios(replicated, manifest, "--now", "2026-11-26T12:10:00Z")
    assert code == WARNING
    assert line.startswith(
        "ZFS-RECONCILER WARNING - home/offsite tank/home target host backup down"
    )
    assert "'lag_home_offsite'=600s;5400;7200;0" in line  # from the cursor bookmarks
    code, line = nagios(replicated, manifest, "--now", "2026-11-26T14:10:00Z")
    assert code == CRITICAL
    assert "home/offsite tank/home stale (lag 2h10m, maxLag 2h)" in line


def test_nagios_unknown_on_invalid_manifests(fleet: Fleet, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(WITH_MAX_LAG.replace("maxLag: 2h", "maxLag: 2x"))
    code, out, err = fleet.run("status", "-f", str(bad), "--output", "nagios")
    assert code == UNKNOWN
    first = (
        f"{bad}:23:15: spec.replication[0].maxLag: unknown unit 'x' in duration '2x'"
        " (use s, m, h, d or w)"
    )
    assert out == f"ZFS-RECONCILER UNKNOWN - invalid manifests (1 error): {first}\n"
    assert first in err  # the details, as `validate` prints them
    # without --output nagios, an invalid manifest is exit 1 as before
    assert fleet.run("status", "-f", str(bad))[0] == EXIT_ERROR


def test_nagios_unknown_on_an_unknown_policy(fleet: Fleet, manifest: Path) -> None:
    assert nagios(fleet, manifest, "--policy", "nope") == (
        UNKNOWN,
        "ZFS-RECONCILER UNKNOWN - unknown policy: 'nope'",
    )


def test_nagios_unknown_when_no_host_can_be_observed(fleet: Fleet, manifest: Path) -> None:
    def connect(host: Host) -> ZFS:
        raise ZFSError(host.metadata.name, "", "no route to host|\nreally")

    out, err = io.StringIO(), io.StringIO()
    argv = ["status", "-f", str(manifest), "--output", "nagios", "--now", NOW]
    assert main(argv, Console(out, err), Services(connect=connect)) == UNKNOWN
    assert out.getvalue() == (
        "ZFS-RECONCILER UNKNOWN - no host could be observed: "
        "backup (backup: no route to host/\\nreally); nas (nas: no route to host/\\nreally)\n"
    )


def test_nagios_unknown_on_an_internal_error(fleet: Fleet, manifest: Path) -> None:
    def connect(host: Host) -> ZFS:
        raise RuntimeError("boom")

    out, err = io.StringIO(), io.StringIO()
    argv = ["status", "-f", str(manifest), "--output", "nagios", "--now", NOW]
    assert main(argv, Console(out, err), Services(connect=connect)) == UNKNOWN
    assert out.getvalue() == "ZFS-RECONCILER UNKNOWN - internal error: RuntimeError: boom\n"
    assert "Traceback" in err.getvalue()  # logged for whoever reads stderr


def test_an_unknown_output_is_a_usage_error(fleet: Fleet, manifest: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        fleet.run("status", "-f", str(manifest), "--output", "nagio")
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        fleet.run("--dry-run", "-f", str(manifest), "--output", "nagios")
    assert caught.value.code == 2  # status only
