"""Snapshot hooks (`apply/hooks.py`, docs/hooks.md): validated like every field, carried by the
plan, run around the snapshot on the model (whose `hook_runner` plays the command), and run for
real by the driver through the local runner and through ssh's quoting."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from reconciler.cli import EXIT_ERROR, EXIT_OK
from reconciler.zfs.driver import ZfsDriver
from reconciler.zfs.runner import LocalRunner, SshRunner
from tests.test_cli import HOSTS, NOW, Fleet
from tests.test_runner import AWKWARD, fake_ssh  # noqa: F401 (a fixture)

SNAPSHOT = "zr_20261126T120000Z"


def _policy(hooks: str) -> str:
    return f"""\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: home}}
spec:
  source: {{host: nas, filesystems: {{"tank/home<": true}}}}
  snapshots:
    prefix: zr_
    interval: 1h
    hooks:
{hooks}
"""


FREEZE_THAW = """\
      - {when: pre, command: [db-freeze, --all], timeout: 5s}
      - {when: post, command: [db-thaw]}
"""


def _write(tmp_path: Path, hooks: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(HOSTS + _policy(hooks))
    return path


def _snapshots(fleet: Fleet, filesystem: str = "tank/home") -> list[str]:
    state = fleet.hosts["nas"].observe().filesystems[filesystem]
    return [v.name for v in state.snapshots]


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ("      - {when: post, command: [x], onFailure: skip}", "onFailure applies to pre hooks"),
        ("      - {when: pre, command: [x], timeout: 2h}", "at most 1h"),
        ("      - {when: pre, command: [x], timeout: 0s}", ""),
        ("      - {when: pre, command: []}", ""),
        ("      - {when: pre, command: ['']}", ""),
        ("      - {when: pre, command: [-rf]}", "may not start with '-'"),
        ("      - {when: pre, command: [A=B, x]}", "contain '='"),
        ('      - {when: pre, command: [x, "a\\nb"]}', "newline"),
        ("      - {when: during, command: [x]}", ""),
        ("      - {when: pre, command: [x], onFailure: maybe}", ""),
        ("      - {when: pre, command: [x], shell: true}", ""),
        ("      - {when: pre, command: x}", ""),
        ("\n".join(["      - {when: pre, command: [x]}"] * 17), ""),
    ],
)
def test_a_hook_that_is_not_runnable_is_a_validation_error_at_its_line(
    tmp_path: Path, hooks: str, message: str
) -> None:
    path = _write(tmp_path, hooks + "\n")
    code, out, err = Fleet().run("validate", "-f", str(path))
    assert (code, out) == (EXIT_ERROR, ""), err
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: spec\.snapshots\.hooks", err), err
    assert message in err
    assert "Traceback" not in err


# --- the plan ----------------------------------------------------------------------------------


def test_the_plan_shows_the_hooks_of_each_snapshot(tmp_path: Path) -> None:
    path = _write(tmp_path, FREEZE_THAW)
    fleet = Fleet()
    code, out, _ = fleet.run("--dry-run", "-f", str(path), "--now", NOW, "--output", "json")
    assert code == EXIT_OK
    (snapshot,) = [a for a in json.loads(out)["actions"] if a["kind"] == "snapshot"]
    assert snapshot["hooks"] == [
        {"when": "pre", "command": ["db-freeze", "--all"], "timeout": 5, "skip_on_failure": True},
        {"when": "post", "command": ["db-thaw"], "timeout": 30, "skip_on_failure": False},
    ]
    _, text, _ = fleet.run("--dry-run", "-f", str(path), "--now", NOW)
    assert f"@{SNAPSHOT} (pre hook: db-freeze --all; post hook: db-thaw)" in text
    assert fleet.hosts["nas"].hooks_run == []  # a dry run runs no hook


# --- running them on the model -----------------------------------------------------------------


def test_a_pre_hook_runs_before_the_snapshot_and_its_writes_are_inside_it(tmp_path: Path) -> None:
    fleet = Fleet()
    nas = fleet.hosts["nas"]
    nas.snapshot(["tank/home"], "before")
    order: list[str] = []

    def runner(command: tuple[str, ...], env: dict[str, str]) -> tuple[int | None, str]:
        order.append(f"{env['ZR_HOOK']}:{command[0]}:{_snapshots(fleet)[-1]}")
        if command[0] == "db-freeze":
            nas.write("tank/home", 4096)  # a database flushing its buffers
        return 0, ""

    nas.hook_runner = runner
    code, out, _ = fleet.run("-f", str(_write(tmp_path, FREEZE_THAW)), "--now", NOW)
    assert code == EXIT_OK, out
    # the pre hook ran before the snapshot, the post hook after it
    assert order == ["pre:db-freeze:before", f"post:db-thaw:{SNAPSHOT}"]
    assert nas.fingerprint(f"tank/home@{SNAPSHOT}") != nas.fingerprint("tank/home@before")
    (pre_env, post_env) = [env for _, env in nas.hooks_run]
    assert pre_env == {
        "ZR_HOOK": "pre",
        "ZR_POLICY": "home",
        "ZR_HOST": "nas",
        "ZR_SNAPSHOT": SNAPSHOT,
        "ZR_FILESYSTEMS": "tank/home\ntank/home/alice",
    }
    assert post_env == pre_env | {"ZR_HOOK": "post", "ZR_SNAPSHOT_TAKEN": "yes"}


def test_a_failing_pre_hook_skips_the_snapshot_and_the_post_hook_still_runs(
    tmp_path: Path,
) -> None:
    fleet = Fleet()
    nas = fleet.hosts["nas"]

    def runner(command: tuple[str, ...], env: dict[str, str]) -> tuple[int | None, str]:
        return (3, "database is down\n") if command[0] == "db-freeze" else (0, "")

    nas.hook_runner = runner
    code, out, _ = fleet.run("-f", str(_write(tmp_path, FREEZE_THAW)), "--now", NOW)
    assert code == EXIT_ERROR
    assert _snapshots(fleet) == []
    assert "pre hook `db-freeze --all` failed (exit 3): database is down; snapshot not taken" in out
    assert [env["ZR_SNAPSHOT_TAKEN"] for _, env in nas.hooks_run[1:]] == ["no"]


def test_on_failure_snapshot_takes_it_anyway_and_the_pass_still_reports_the_failure(
    tmp_path: Path,
) -> None:
    fleet = Fleet()
    fleet.hosts["nas"].hook_runner = lambda command, env: (None, "")  # stopped at its timeout
    hooks = "      - {when: pre, command: [db-freeze], timeout: 5s, onFailure: snapshot}\n"
    code, out, _ = fleet.run("-f", str(_write(tmp_path, hooks)), "--now", NOW)
    assert code == EXIT_ERROR
    assert _snapshots(fleet) == [SNAPSHOT]
    assert "pre hook `db-freeze` failed (did not finish within 5s); snapshot taken anyway" in out


def test_a_failing_post_hook_fails_the_action_but_the_snapshot_stays(tmp_path: Path) -> None:
    fleet = Fleet()
    fleet.hosts["nas"].hook_runner = lambda command, env: (
        (1, "thaw failed") if command[0] == "db-thaw" else (0, "")
    )
    code, out, _ = fleet.run("-f", str(_write(tmp_path, FREEZE_THAW)), "--now", NOW)
    assert code == EXIT_ERROR
    assert _snapshots(fleet) == [SNAPSHOT]
    assert "post hook `db-thaw` failed (exit 1): thaw failed" in out
    # the next pass has nothing to do: the snapshot is there, no hook runs again
    runs = len(fleet.hosts["nas"].hooks_run)
    code, out, _ = fleet.run("-f", str(_write(tmp_path, FREEZE_THAW)), "--now", NOW)
    assert code == EXIT_OK and len(fleet.hosts["nas"].hooks_run) == runs


def test_a_missing_hook_program_fails_the_snapshot_it_guards(tmp_path: Path) -> None:
    fleet = Fleet()  # no hook_runner: no program exists on the model's host
    code, out, _ = fleet.run("-f", str(_write(tmp_path, FREEZE_THAW)), "--now", NOW)
    assert code == EXIT_ERROR
    assert _snapshots(fleet) == []
    assert "failed (exit 127)" in out


# --- running them for real ---------------------------------------------------------------------


def test_the_driver_runs_a_hook_with_its_environment_and_reports_its_exit() -> None:
    driver = ZfsDriver(LocalRunner("nas"))
    script = 'printf "%s|%s" "$ZR_POLICY" "$ZR_FILESYSTEMS" >&2; exit 3'
    run = driver.run_hook(
        ["sh", "-c", script], {"ZR_POLICY": "home", "ZR_FILESYSTEMS": "a\nb c"}, 5
    )
    assert (run.returncode, run.stderr) == (3, "home|a\nb c")


def test_the_driver_stops_a_hook_at_its_timeout() -> None:
    started = time.monotonic()
    run = ZfsDriver(LocalRunner("nas")).run_hook(["sleep", "30"], {}, 1)
    assert run.returncode is None and not run.succeeded
    assert run.stderr == ""  # a timeout, told apart from a program that could not start
    assert time.monotonic() - started < 10
    missing = ZfsDriver(LocalRunner("nas")).run_hook(["no-such-hook-program"], {}, 5)
    assert missing.returncode == 127  # env's own "not found"
    quick = ZfsDriver(LocalRunner("nas")).run_hook(["sleep", "0"], {}, 1)
    assert quick.succeeded


def test_a_hook_over_ssh_gets_its_arguments_and_environment_unchanged(
    fake_ssh: tuple[str, ...],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_SSH_LOG", str(tmp_path / "log"))
    runner = SshRunner("nas", "example", program=fake_ssh, control_dir=tmp_path / "cm")
    env = {"ZR_FILESYSTEMS": "tank/with space\ntank/it's $HOME", "ZR_POLICY": "a;b"}
    show = (
        "import json, os, sys; sys.stderr.write(json.dumps("
        "[sys.argv[1:], os.environ['ZR_FILESYSTEMS'], os.environ['ZR_POLICY']]))"
    )
    run = ZfsDriver(runner).run_hook([sys.executable, "-c", show, *AWKWARD], env, 10)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stderr) == [AWKWARD, env["ZR_FILESYSTEMS"], env["ZR_POLICY"]]
