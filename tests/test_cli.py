"""The `reconcile` command end to end: arguments, output contract and exit codes (product.md
§3), with hosts served by the in-memory ZFS model through `Runtime.connect`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reconciler.cli import EXIT_CHANGES_PENDING, EXIT_ERROR, EXIT_OK, Runtime, main
from reconciler.manifest.models import Host
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-26T12:00:00Z"
MANIFESTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: backup}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home<": true}}
  snapshots: {prefix: zr_, interval: 15m}
  retention: {keep: [{grid: "1x1h(keep=all) | 24x1h | 14x1d"}]}
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      retention: {keep: [{lastN: 5}]}
"""


class Fleet:
    """Model hosts by name, and a Runtime whose output the test reads."""

    def __init__(self) -> None:
        nas = ModelZFS("nas", seed=1)
        nas.create_pool("tank")
        nas.create("tank/home")
        nas.create("tank/home/alice")
        nas.write("tank/home/alice", 1 << 20)
        backup = ModelZFS("backup", seed=2)
        backup.create_pool("vault")
        self.hosts = {"nas": nas, "backup": backup}

    def connect(self, host: Host) -> ZFS:
        return self.hosts[host.metadata.name]

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), Runtime(connect=self.connect, stdout=out, stderr=err))
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifests.yaml"
    path.write_text(MANIFESTS)
    return path


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


def test_validate_accepts_the_embedded_example(fleet: Fleet) -> None:
    code, out, _ = fleet.run("validate", "-f", str(ROOT / "manifests"))
    assert code == EXIT_OK
    assert "valid" in out


def test_validate_reports_every_error_with_file_line_column(fleet: Fleet) -> None:
    path = ROOT / "tests" / "manifests" / "errors.yaml"
    code, out, err = fleet.run("validate", "-f", str(path))
    assert code == EXIT_ERROR and out == ""
    lines = [line for line in err.splitlines() if line.startswith(str(path))]
    assert len(lines) > 5
    for line in lines:
        _file, row, column, rest = line.split(":", 3)
        assert int(row) > 0 and int(column) > 0 and ": " in rest


def test_schema_prints_the_committed_schema(fleet: Fleet) -> None:
    code, out, _ = fleet.run("schema")
    assert code == EXIT_OK
    assert out == (ROOT / "schemas" / "manifests.schema.json").read_text()


def test_dry_run_changes_nothing_and_reports_pending_changes(fleet: Fleet, manifest: Path) -> None:
    before = {name: host.observe() for name, host in fleet.hosts.items()}
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW, "--detailed-exitcode")
    assert code == EXIT_CHANGES_PENDING
    assert "+ snapshot" in out and "> send" in out
    assert {name: host.observe() for name, host in fleet.hosts.items()} == before


def test_without_detailed_exitcode_pending_changes_exit_zero(fleet: Fleet, manifest: Path) -> None:
    code, _, _ = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW)
    assert code == EXIT_OK


def test_dry_run_json_is_one_document_with_format_version(fleet: Fleet, manifest: Path) -> None:
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW, "--output", "json")
    assert code == EXIT_OK
    document = json.loads(out)
    assert document["format_version"] == 1
    assert document["now"] == NOW
    kinds = [action["kind"] for action in document["actions"]]
    assert kinds.count("snapshot") == 1 and "send" in kinds


def test_a_pass_converges_and_the_next_dry_run_is_in_sync(fleet: Fleet, manifest: Path) -> None:
    code, out, _ = fleet.run("-f", str(manifest), "--now", NOW)
    assert code == EXIT_OK, out
    assert "0 failed" in out
    received = fleet.hosts["backup"].observe().filesystems
    assert received["vault/nas/tank/home/alice"].snapshots[-1].name == "zr_20261126T120000Z"
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW, "--detailed-exitcode")
    assert code == EXIT_OK, out
    assert "No changes." in out


def test_now_names_the_snapshots_it_takes(fleet: Fleet, manifest: Path) -> None:
    code, _, _ = fleet.run("-f", str(manifest), "--now", "2027-03-01T00:00:00Z")
    assert code == EXIT_OK
    names = [v.name for v in fleet.hosts["nas"].observe().filesystems["tank/home"].snapshots]
    assert names == ["zr_20270301T000000Z"]


def test_a_conflict_exits_one_and_leaves_the_target_alone(fleet: Fleet, manifest: Path) -> None:
    assert fleet.run("-f", str(manifest), "--now", NOW)[0] == EXIT_OK
    backup = fleet.hosts["backup"]
    backup.write("vault/nas/tank/home", 4096)
    backup.snapshot(["vault/nas/tank/home"], "local-change")
    before = backup.observe().filesystems["vault/nas/tank/home"]
    code, out, _ = fleet.run("-f", str(manifest), "--now", "2026-11-26T12:30:00Z")
    assert code == EXIT_ERROR
    assert "diverged" in out and "@local-change" in out
    after = backup.observe().filesystems["vault/nas/tank/home"]
    assert [v.name for v in after.snapshots] == [v.name for v in before.snapshots]
    alice = backup.observe().filesystems["vault/nas/tank/home/alice"]
    assert alice.snapshots[-1].name == "zr_20261126T123000Z"  # the others still proceed


def test_an_invalid_manifest_applies_nothing(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(MANIFESTS.replace("interval: 15m", "interval: 15x"))
    before = fleet.hosts["nas"].observe()
    code, out, err = fleet.run("-f", str(path), "--now", NOW)
    assert code == EXIT_ERROR and out == ""
    assert f"{path}:16:38: spec.snapshots.interval: unknown unit" in err
    assert "nothing was applied" in err
    assert fleet.hosts["nas"].observe() == before


def test_policy_limits_the_pass_and_unknown_policies_are_refused(
    fleet: Fleet, manifest: Path
) -> None:
    code, _, err = fleet.run("--dry-run", "-f", str(manifest), "--policy", "nope")
    assert code == EXIT_ERROR and "unknown policy: nope" in err
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--policy", "home", "--now", NOW)
    assert code == EXIT_OK and "policy home" in out


def test_an_unreachable_target_gets_nothing_and_the_pass_goes_on(
    fleet: Fleet, manifest: Path
) -> None:
    fleet.hosts["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    code, out, _ = fleet.run("-f", str(manifest), "--now", NOW)
    assert code == EXIT_OK
    assert "host_unreachable" in out
    assert fleet.hosts["nas"].observe().filesystems["tank/home"].snapshots  # snapshot taken


def test_without_a_zfs_driver_a_pass_stops_with_a_clear_message(manifest: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["-f", str(manifest)], Runtime(stdout=out, stderr=err))
    assert code == EXIT_ERROR
    assert "no zfs driver" in err.getvalue()


def test_json_logs_go_to_stderr_and_stdout_stays_one_document(fleet: Fleet, manifest: Path) -> None:
    code, out, err = fleet.run(
        "-f",
        str(manifest),
        "--now",
        NOW,
        "--output",
        "json",
        "--log-format",
        "json",
        "--log-level",
        "DEBUG",
    )
    assert code == EXIT_OK
    document = json.loads(out)
    assert {"plan", "results"} <= set(document)
    assert all(r["status"] in {"ok", "already_done"} for r in document["results"])
    for line in err.splitlines():
        json.loads(line)
