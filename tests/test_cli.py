"""The `reconcile` command end to end: arguments, output contract and exit codes (product.md
§3), with hosts served by the in-memory ZFS model through `Services.connect`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.apply.lock import LockHeld, acquire_locks, lock_file_name, lock_key
from reconciler.cli import EXIT_CHANGES_PENDING, EXIT_ERROR, EXIT_OK, Console, Services, main
from reconciler.manifest.models import Host
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS
from tests.test_lock import held_by_another_process

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-26T12:00:00Z"
HOSTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: backup}
spec: {transport: local}
"""
MANIFESTS = (
    HOSTS
    + """\
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
)


class Fleet:
    """Model hosts by name, and a Console whose output the test reads."""

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
        code = main(list(argv), Console(out, err), Services(connect=self.connect))
        return code, out.getvalue(), err.getvalue()


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
    assert code == EXIT_ERROR and "unknown policy: 'nope'" in err
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--policy", "home", "--now", NOW)
    assert code == EXIT_OK and "policy home" in out


def test_an_unreachable_target_gets_nothing_and_the_pass_goes_on(
    fleet: Fleet, manifest: Path
) -> None:
    fleet.hosts["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    code, out, _ = fleet.run("-f", str(manifest), "--now", NOW)
    assert code == EXIT_ERROR
    assert "host_unreachable: backup" in out
    assert fleet.hosts["nas"].observe().filesystems["tank/home"].snapshots  # snapshot taken
    assert out.splitlines()[-1] == (
        "1 action done, 0 failed, 0 conflicts, 1 host not observed: "
        "backup (ssh: connect to host backup: Connection refused)"
    )


# --- a host that could not be observed is an error for the exit code, in every mode ----------

ATTIC = """---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: attic}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: media}
spec:
  source: {host: attic, filesystems: {"pool/media<": true}}
  snapshots: {prefix: zr_, interval: 1d}
  replication:
    - name: offsite
      host: backup
      root: vault/attic
"""
ATTIC_DOWN = "ssh: connect to host attic: No route to host"


@pytest.fixture
def two_policies(tmp_path: Path) -> Path:
    """Policy home (nas → backup, both reachable) and policy media on host attic."""
    path = tmp_path / "two.yaml"
    path.write_text(MANIFESTS + ATTIC)
    return path


@pytest.fixture
def attic_down(fleet: Fleet) -> Fleet:
    """The fleet with host attic, whose every zfs call fails."""
    attic = ModelZFS("attic", seed=3)
    attic.create_pool("pool")
    attic.create("pool/media")
    attic.set_unreachable(ATTIC_DOWN)
    fleet.hosts["attic"] = attic
    return fleet


@pytest.mark.parametrize("down", ["nas", "backup"], ids=["source", "target"])
@pytest.mark.parametrize(
    "flags", [(), ("--detailed-exitcode",)], ids=["dry_run", "detailed_exitcode"]
)
def test_a_dry_run_with_an_unobservable_host_exits_one_and_names_it(
    fleet: Fleet, manifest: Path, down: str, flags: tuple[str, ...]
) -> None:
    fleet.hosts[down].set_unreachable(f"ssh: connect to host {down}: Connection refused")
    code, out, err = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW, *flags)
    assert code == EXIT_ERROR, out  # 1 beats 2 (changes pending on the other host)
    assert f"host_unreachable: {down} " in out
    assert out.splitlines()[-1].endswith("1 host not observed" + ("." if down == "nas" else ""))
    assert f"host {down} could not be observed" in err  # logged too
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW, "--output", "json")
    assert code == EXIT_ERROR
    assert json.loads(out)["unobserved_hosts"] == [
        {"host": down, "error": f"ssh: connect to host {down}: Connection refused"}
    ]


def test_a_dry_run_of_reachable_hosts_lists_no_unobserved_host(
    fleet: Fleet, manifest: Path
) -> None:
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW, "--output", "json")
    assert code == EXIT_OK
    assert json.loads(out)["unobserved_hosts"] == []


def test_a_pass_applies_the_reachable_policy_and_exits_one_for_the_unobservable_host(
    attic_down: Fleet, two_policies: Path
) -> None:
    code, out, _ = attic_down.run("-f", str(two_policies), "--now", NOW)
    assert code == EXIT_ERROR, out
    received = attic_down.hosts["backup"].observe().filesystems
    assert received["vault/nas/tank/home/alice"].snapshots[-1].name == "zr_20261126T120000Z"
    assert "host_unreachable: attic (policy media): source host attic could not be observed" in out
    assert out.splitlines()[-1].endswith(
        f"0 failed, 0 conflicts, 1 host not observed: attic ({ATTIC_DOWN})"
    )
    code, out, _ = attic_down.run("-f", str(two_policies), "--now", NOW, "--output", "json")
    assert code == EXIT_ERROR
    document = json.loads(out)
    assert document["plan"]["unobserved_hosts"] == [{"host": "attic", "error": ATTIC_DOWN}]
    assert document["results"] == []  # home has converged; media does nothing
    attic_down.hosts["attic"].set_unreachable(None)
    assert attic_down.run("-f", str(two_policies), "--now", NOW)[0] == EXIT_OK


def test_a_host_that_cannot_be_connected_is_unobserved_and_the_others_proceed(
    fleet: Fleet, two_policies: Path
) -> None:
    def connect(host: Host) -> ZFS:
        if host.metadata.name == "attic":
            raise ZFSError("attic", "", "no route to host")
        return fleet.connect(host)

    out, err = io.StringIO(), io.StringIO()
    argv = ["-f", str(two_policies), "--now", NOW, "--output", "json"]
    assert main(argv, Console(out, err), Services(connect=connect)) == EXIT_ERROR
    document = json.loads(out.getvalue())
    assert document["plan"]["unobserved_hosts"] == [
        {"host": "attic", "error": "attic: no route to host"}
    ]
    assert {r["status"] for r in document["results"]} == {"ok"}
    assert fleet.hosts["nas"].observe().filesystems["tank/home"].snapshots  # home went on


def test_status_with_an_unobservable_source_exits_one_and_names_it(
    attic_down: Fleet, two_policies: Path
) -> None:
    assert attic_down.run("-f", str(two_policies), "--now", NOW, "--policy", "home")[0] == EXIT_OK
    code, out, _ = attic_down.run("status", "-f", str(two_policies), "--now", NOW)
    assert code == EXIT_ERROR
    assert f"host attic: unreachable ({ATTIC_DOWN})" in out
    code, out, _ = attic_down.run(
        "status", "-f", str(two_policies), "--now", NOW, "--policy", "home"
    )
    assert code == EXIT_OK, out  # attic is not touched by policy home


def test_a_host_whose_zfs_cannot_run_is_reported_by_name(tmp_path: Path) -> None:
    text = (
        "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Host\nmetadata: {name: nas}\n"
        "spec: {zfsCommand: [/nonexistent/zfs]}\n---\n"
        "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Policy\nmetadata: {name: home}\n"
        "spec:\n  source: {host: nas, filesystems: {'tank/home<': true}}\n"
        "  snapshots: {prefix: zr_, interval: 15m}\n"
        "  retention: {keep: [{lastN: 3}]}\n"
    )
    (tmp_path / "m.yaml").write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--dry-run", "-f", str(tmp_path)], Console(out, err))
    assert code == EXIT_ERROR
    assert "host_unreachable: nas" in out.getvalue()
    assert "cannot run '/nonexistent/zfs'" in out.getvalue()
    code = main(["status", "-f", str(tmp_path)], Console(out, err))
    assert code == EXIT_ERROR


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
    assert all(isinstance(r["seconds"], float) and r["seconds"] >= 0 for r in document["results"])
    for line in err.splitlines():
        json.loads(line)


# --- status and the one-reconciler-per-host lock ---------------------------------------------


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every pass in this module locks in its own temporary directory, never in /run."""
    lock_dir = tmp_path / "locks"
    monkeypatch.setenv("ZFS_RECONCILER_LOCK_DIR", str(lock_dir))
    return lock_dir


def test_status_before_and_after_a_pass(fleet: Fleet, manifest: Path) -> None:
    code, out, _ = fleet.run("status", "-f", str(manifest), "--now", NOW)
    assert code == EXIT_OK, out
    rows = [line.split() for line in out.splitlines() if line.startswith("  tank/")]
    assert [row[:3] for row in rows] == [
        ["tank/home", "offsite", "never_replicated"],
        ["tank/home/alice", "offsite", "never_replicated"],
    ]
    assert "snapshot due" in out and "no managed snapshot yet" in out
    assert fleet.run("-f", str(manifest), "--now", NOW)[0] == EXIT_OK
    code, out, _ = fleet.run("status", "-f", str(manifest), "--now", "2026-11-26T12:05:00Z")
    assert code == EXIT_OK, out
    rows = [line.split() for line in out.splitlines() if line.startswith("  tank/")]
    assert [row[:5] for row in rows] == [
        ["tank/home", "offsite", "in_sync", "zr_20261126T120000Z", "5m"],
        ["tank/home/alice", "offsite", "in_sync", "zr_20261126T120000Z", "5m"],
    ]
    assert out.splitlines()[-1] == "OK: 2 in sync"


def test_status_changes_nothing(fleet: Fleet, manifest: Path) -> None:
    before = {name: host.observe() for name, host in fleet.hosts.items()}
    assert fleet.run("status", "-f", str(manifest), "--now", NOW)[0] == EXIT_OK
    assert {name: host.observe() for name, host in fleet.hosts.items()} == before


def test_status_json_is_one_document(fleet: Fleet, manifest: Path) -> None:
    fleet.run("-f", str(manifest), "--now", NOW)
    code, out, _ = fleet.run(
        "status", "-f", str(manifest), "--now", "2026-11-26T12:20:00Z", "--output", "json"
    )
    assert code == EXIT_OK
    document = json.loads(out)
    assert document["format_version"] == 1 and document["ok"] is True
    policy = document["policies"][0]
    assert policy["snapshot_due"] is True  # 20 minutes after the last one, every 15m
    rows = policy["targets"][0]["filesystems"]
    assert [(r["filesystem"], r["condition"], r["lag"]) for r in rows] == [
        ("tank/home", "pending", 1200),
        ("tank/home/alice", "pending", 1200),
    ]


def test_status_with_an_unreachable_target_exits_one(fleet: Fleet, manifest: Path) -> None:
    fleet.run("-f", str(manifest), "--now", NOW)
    fleet.hosts["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    code, out, _ = fleet.run("status", "-f", str(manifest), "--now", NOW, "--output", "json")
    assert code == EXIT_ERROR
    document = json.loads(out)
    assert document["ok"] is False
    assert {h["name"]: h["reachable"] for h in document["hosts"]} == {"backup": False, "nas": True}
    rows = document["policies"][0]["targets"][0]["filesystems"]
    assert {r["condition"] for r in rows} == {"target_unreachable"}
    assert {r["common_from"] for r in rows} == {"cursor_bookmark"}  # what the source knows
    code, out, _ = fleet.run("status", "-f", str(manifest), "--now", NOW)
    assert code == EXIT_ERROR
    assert "target_unreachable" in out and "ATTENTION" in out.splitlines()[-1]


def test_status_reports_a_conflict_and_exits_one(fleet: Fleet, manifest: Path) -> None:
    fleet.run("-f", str(manifest), "--now", NOW)
    backup = fleet.hosts["backup"]
    backup.write("vault/nas/tank/home", 4096)
    backup.snapshot(["vault/nas/tank/home"], "local-change")
    code, out, _ = fleet.run("status", "-f", str(manifest), "--now", "2026-11-26T12:30:00Z")
    assert code == EXIT_ERROR
    assert "conflict (diverged)" in out


def test_status_of_a_host_that_cannot_be_connected_is_unreachable(
    fleet: Fleet, manifest: Path
) -> None:
    def connect(host: Host) -> ZFS:
        if host.metadata.name == "nas":
            raise ZFSError("nas", "", "no route to host")
        return fleet.connect(host)

    out, err = io.StringIO(), io.StringIO()
    argv = ["status", "-f", str(manifest), "--now", NOW]
    assert main(argv, Console(out, err), Services(connect=connect)) == EXIT_ERROR
    assert "source_unreachable" in out.getvalue()
    assert "host nas: unreachable (nas: no route to host)" in out.getvalue()
    assert "host backup: reachable" in out.getvalue()


def test_status_takes_no_pass_options(fleet: Fleet, manifest: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        fleet.run("status", "-f", str(manifest), "--lock-wait", "5m")
    assert caught.value.code == 2


def test_detailed_exitcode_is_refused_on_an_applying_pass(
    fleet: Fleet, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        fleet.run("-f", str(manifest), "--detailed-exitcode")
    assert caught.value.code == 2
    assert "--detailed-exitcode applies to --dry-run only" in capsys.readouterr().err
    assert fleet.run("-f", str(manifest), "--dry-run", "--detailed-exitcode")[0] == 2


def test_a_pass_holds_the_lock_of_its_hosts_while_it_observes(
    fleet: Fleet, manifest: Path, tmp_path: Path
) -> None:
    lock_dir = tmp_path / "pass-locks"
    seen: list[LockHeld] = []

    def connect(host: Host) -> ZFS:
        with pytest.raises(LockHeld) as caught:
            acquire_locks([lock_key(host)], lock_dir, 0)
        seen.append(caught.value)
        return fleet.connect(host)

    out, err = io.StringIO(), io.StringIO()
    argv = ["-f", str(manifest), "--now", NOW, "--lock-dir", str(lock_dir)]
    assert main(argv, Console(out, err), Services(connect=connect)) == EXIT_OK
    assert [h.holder.pid if h.holder else None for h in seen] == [os.getpid(), os.getpid()]
    assert seen[0].holder is not None and seen[0].holder.manifests == (str(manifest),)
    with acquire_locks(["local"], lock_dir, 0):  # given back when the pass ended
        pass


def test_a_second_reconciler_exits_with_a_clear_message(
    fleet: Fleet, manifest: Path, _lock_dir: Path
) -> None:
    lock_dir = _lock_dir  # also the default: status and --dry-run would find the lock there
    before = {name: host.observe() for name, host in fleet.hosts.items()}
    with held_by_another_process(lock_dir, "local") as first:
        code, out, err = fleet.run("-f", str(manifest), "--now", NOW, "--lock-dir", str(lock_dir))
        assert code == EXIT_ERROR and out == ""
        assert err.startswith("error: another reconciler holds the lock for hosts 'backup', 'nas' ")
        assert f"(pid {first.pid} on " in err and "manifests: /srv/manifests)" in err
        assert str(lock_dir / lock_file_name("local")) in err
        assert err.rstrip().endswith("retry later or pass --lock-wait 5m")
        assert {name: host.observe() for name, host in fleet.hosts.items()} == before
        dry = fleet.run("--dry-run", "-f", str(manifest), "--now", NOW)
        assert dry[0] == EXIT_OK and "> send" in dry[1]
        assert fleet.run("status", "-f", str(manifest), "--now", NOW)[0] == EXIT_OK
        code, _, err = fleet.run(
            "-f", str(manifest), "--now", NOW, "--lock-dir", str(lock_dir), "--lock-wait", "1s"
        )
        assert code == EXIT_ERROR and "gave up after --lock-wait 1s" in err
    code, _, _ = fleet.run("-f", str(manifest), "--now", NOW, "--lock-dir", str(lock_dir))
    assert code == EXIT_OK


def test_with_lock_wait_a_pass_runs_once_the_other_ends(
    fleet: Fleet, manifest: Path, tmp_path: Path
) -> None:
    lock_dir = tmp_path / "shared"
    with held_by_another_process(lock_dir, "local", hold_seconds=0.3) as first:
        code, out, err = fleet.run(
            "-f", str(manifest), "--now", NOW, "--lock-dir", str(lock_dir), "--lock-wait", "30s"
        )
    assert code == EXIT_OK, err
    assert "0 failed" in out
    assert "waiting up to 30s for the lock of hosts 'backup', 'nas' (pid " in err
    assert f"(pid {first.pid} on " in err


def test_the_command_in_another_process_is_refused_too(manifest: Path, tmp_path: Path) -> None:
    lock_dir = tmp_path / "shared"
    with held_by_another_process(lock_dir, "local") as first:
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", "-f", str(manifest), "--lock-dir", str(lock_dir)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    assert result.returncode == EXIT_ERROR
    assert f"another reconciler holds the lock for hosts 'backup', 'nas' (pid {first.pid} " in (
        result.stderr
    )


@pytest.mark.parametrize("value", ["5", "1h30m", "-1s", "soon"])
def test_lock_wait_takes_a_duration(fleet: Fleet, manifest: Path, value: str) -> None:
    with pytest.raises(SystemExit) as caught:
        fleet.run("-f", str(manifest), "--lock-wait", value)
    assert caught.value.code == 2


def test_an_unusable_lock_dir_applies_nothing(fleet: Fleet, manifest: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    before = fleet.hosts["nas"].observe()
    code, _, err = fleet.run("-f", str(manifest), "--now", NOW, "--lock-dir", str(blocker / "x"))
    assert code == EXIT_ERROR
    assert err.startswith(f"error: cannot create the lock directory {blocker / 'x'}")
    assert fleet.hosts["nas"].observe() == before


def test_the_lock_dir_defaults_to_the_environment(
    fleet: Fleet, manifest: Path, _lock_dir: Path
) -> None:
    assert fleet.run("-f", str(manifest), "--now", NOW)[0] == EXIT_OK
    assert (_lock_dir / lock_file_name("local")).exists()


@pytest.mark.parametrize("value", ["0", "0s", "2m"])
def test_lock_wait_accepts_zero_and_durations(fleet: Fleet, manifest: Path, value: str) -> None:
    assert fleet.run("-f", str(manifest), "--now", NOW, "--lock-wait", value)[0] == EXIT_OK


@pytest.mark.parametrize("command", [["validate", "-f", "manifests"], ["schema"]])
def test_validate_and_schema_import_neither_the_pass_nor_the_logger(command: list[str]) -> None:
    """They run on every commit (CI, pre-commit hooks): what they do not use, they do not
    import (docs/benchmarks.md, validation start-up)."""
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        f"code = main({command!r})\n"
        "heavy = ['loguru', 'reconciler.apply.passes', 'reconciler.core.planner', "
        "'reconciler.zfs.driver', 'reconciler.loop.controller']\n"
        "print(code, [name for name in heavy if name in sys.modules], file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.stderr.strip().splitlines()[-1] == "0 []", done.stderr
