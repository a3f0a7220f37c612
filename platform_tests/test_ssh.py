"""`reconcile` processes over ssh against the guest's real sshd, and the per-host lock.

Both hosts of these manifests are the guest reached with `transport: ssh` (its sshd through
qemu's forwarded port), and `reconcile` runs as a process of its own with the default connect,
exactly as a user runs it: every zfs command goes through ssh, and a transfer is `zfs send`
over one ssh connection piped into `zfs receive` over another, through this machine.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from platform_tests.conftest import Roots
from platform_tests.harness.vm import Guest
from platform_tests.scenario import REPO, Outcome, Scenario

LOCKED = "another reconciler holds the lock"
# Shell metacharacters cannot be in a dataset name (ZFS takes letters, digits, space and
# `_ . : -`), so they travel in the zfsCommand: `env` sets the variable and runs zfs, and a
# remote shell that split or expanded any of it would run something else and fail.
ZFS_COMMAND = ["env", 'ZR_NOTE=it\'s "quoted": $HOME; `false` | exit 3 & *', "zfs"]


def policy(
    filesystem: str,
    *,
    include: Sequence[str] = (),
    initial: str = "mostRecent",
    protection: str = "resumable",
) -> Any:
    """Policy `data`: the filesystem and below, every 15m, replicated to `dst` under `{dst}`."""
    snapshots: dict[str, Any] = {"prefix": "zr_", "interval": "15m", "include": list(include)}
    target = {"name": "backup", "host": "dst", "root": "{dst}", "initialReplication": initial}
    target["protection"] = protection
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": {
            "source": {"host": "src", "filesystems": {f"{filesystem}<": True}},
            "snapshots": snapshots,
            "replication": [target],
        },
    }


@pytest.fixture
def s(guest: Guest, roots: Roots, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(guest, roots.src, roots.dst, tmp_path)
    scenario.ssh_hosts(guest.ssh_destination(), ZFS_COMMAND)
    yield scenario
    scenario.close_ssh()
    scenario.cleanup()


def test_ssh_transport_replicates_names_with_spaces_and_converges(s: Scenario) -> None:
    top = f"{s.src}/over ssh: v1.0"
    child = f"{top}/ -leading double  and trailing "
    s.create(top, nbytes=512 << 10)
    s.create(child, nbytes=512 << 10)
    s.snapshot(top, "manual snap")
    s.policy(policy(top, include=["^manual "], initial="all"))
    s.at(0)
    first = s.run_process()
    assert first.code == 0, first.stderr
    assert set(first.statuses()) == {"ok"}, first.stdout
    assert len(first.of_kind("send")) == 3  # "manual snap" in full, -I to the pass's own; child
    found = s.all_guids(top, child, s.target(top), s.target(child))
    assert list(found[s.target(top)]) == ["manual snap", "zr_20261126T000000Z"]
    assert list(found[s.target(child)]) == ["zr_20261126T000000Z"]
    for filesystem in (top, child):
        target = found[s.target(filesystem)]
        assert target == {name: found[filesystem].get(name) for name in target}
    steady = s.run_process("--dry-run", "--detailed-exitcode")
    assert (steady.code, steady.kinds(), steady.conflicts()) == (0, [], []), steady.stdout


def _start(s: Scenario, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        s.command(*args),
        cwd=REPO,
        env=s.process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> Outcome:
    stdout, stderr = process.communicate(timeout=300)
    return Outcome(process.returncode, stdout, stderr)


def _holder(s: Scenario) -> dict[str, object]:
    """The record in the pass's lock file ({} while nobody holds it)."""
    for path in (s.directory / "locks").glob("*.lock"):
        try:
            return dict(json.loads(path.read_text()))
        except ValueError:  # empty, or being written
            continue
    return {}


def _replicating(s: Scenario) -> str:
    """`{src}/data` with 8 MiB, so that the first pass's send takes seconds."""
    data = f"{s.src}/data"
    s.create(data, nbytes=8 << 20)
    s.policy(policy(data, protection="incremental"))  # no holds: fewer commands per pass
    s.at(0)
    return data


def test_two_reconcilers_at_once_one_applies_the_other_is_refused_naming_it(s: Scenario) -> None:
    data = _replicating(s)
    pair = [_start(s), _start(s)]  # at the same moment
    while all(p.poll() is None for p in pair):
        time.sleep(0.05)
    loser = next(p for p in pair if p.poll() is not None)
    winner = next(p for p in pair if p is not loser)
    assert winner.poll() is None  # refused while the other pass was still at work
    refused, applied = _finish(loser), _finish(winner)
    assert applied.code == 0, applied.stderr
    assert "send" in applied.kinds()
    assert refused.code == 1
    assert LOCKED in refused.stderr and f"(pid {winner.pid} on " in refused.stderr, refused.stderr
    assert refused.stdout == ""
    assert list(s.guids("dst", s.target(data))) == ["zr_20261126T000000Z"]


def test_lock_wait_makes_the_second_reconciler_wait_then_find_nothing_to_do(s: Scenario) -> None:
    data = _replicating(s)
    first = _start(s)
    deadline = time.monotonic() + 60
    while _holder(s).get("pid") != first.pid:  # the first holds the lock: start the second
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = _start(s, "--lock-wait", "5m")
    applied, waited = _finish(first), _finish(second)
    assert applied.code == 0, applied.stderr
    assert "send" in applied.kinds()
    assert waited.code == 0, waited.stderr
    waiting = f"waiting up to 5m for the lock of hosts 'dst', 'src' (pid {first.pid} on "
    assert waiting in waited.stderr, waited.stderr
    assert (waited.kinds(), waited.conflicts()) == ([], [])  # it saw the first one's work
    assert list(s.guids("dst", s.target(data))) == ["zr_20261126T000000Z"]
