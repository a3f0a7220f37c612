"""The control loop (`reconcile watch`) driven with a fake clock, in-memory ZFS hosts and a
manifest directory edited through the real file system and seen by watchfiles."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.lock import LockHeld, acquire_locks
from reconciler.apply.passes import Dependencies, run_pass
from reconciler.core.names import snapshot_name
from reconciler.core.plan import SendAction, SendMode
from reconciler.loop.state import Outcome, state_to_json
from reconciler.manifest.loader import load_manifests
from tests.loop_harness import HOSTS, MINUTE, START, LoopHarness, policy

HOME = policy("home", "{'tank/home<': true}")


MakeLoop = Callable[..., LoopHarness]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[MakeLoop]:
    """Makes loops on a manifest directory holding one file, m.yaml; closes them after."""
    made: list[LoopHarness] = []

    def make(text: str = HOSTS + HOME, **kwargs: Any) -> LoopHarness:
        made.append(LoopHarness(tmp_path / "manifests", text, **kwargs))
        return made[-1]

    yield make
    for loop in made:
        loop.close()


def test_a_new_loop_passes_every_policy_at_once_and_waits_for_the_next_snapshot(
    harness: MakeLoop,
) -> None:
    loop = harness()
    loop.start()
    loop.wait_passes("home", 1)
    first = snapshot_name("zr_home_", START)
    assert loop.snapshots("nas", "tank/home") == [first]
    assert loop.snapshots("backup", "vault/nas/tank/home/alice") == [first]
    home = loop.policy("home")
    assert home.condition is not None and home.condition.ready
    assert home.last_pass is not None and home.last_pass.outcome is Outcome.OK
    assert home.next_wakeup is not None
    assert (home.next_wakeup.at, home.next_wakeup.reasons) == (
        START + 15 * MINUTE,
        ("snapshot due",),
    )
    document = state_to_json(loop.state())
    assert document["policies"]["home"]["next_wakeup"]["at"] == "2026-12-04T10:15:00.000Z"
    assert document["manifests_valid"] is True


def test_a_due_snapshot_is_taken_on_time_and_retention_destroys_on_time(
    harness: MakeLoop,
) -> None:
    loop = harness(HOSTS + policy("home", "{'tank/home<': true}", keep="{lastN: 2}"))
    loop.start()
    loop.wait_passes("home", 1)
    loop.advance(15 * MINUTE - 1)
    loop.idle()
    assert loop.snapshots("nas", "tank/home") == [snapshot_name("zr_home_", START)]
    loop.advance(1)
    loop.wait_passes("home", 2)
    assert loop.snapshots("nas", "tank/home")[-1] == snapshot_name("zr_home_", START + 15 * MINUTE)
    loop.advance(15 * MINUTE)
    loop.wait_passes("home", 3)
    # lastN: 2 on the source: the first snapshot went in the pass that took the third
    assert loop.snapshots("nas", "tank/home") == [
        snapshot_name("zr_home_", START + 15 * MINUTE),
        snapshot_name("zr_home_", START + 30 * MINUTE),
    ]
    assert len(loop.snapshots("backup", "vault/nas/tank/home")) == 3  # the target keeps 5


def test_a_valid_edit_is_applied_at_once_and_logged_as_a_change(
    harness: MakeLoop,
) -> None:
    loop = harness()
    loop.start()
    loop.wait_passes("home", 1)
    generation = loop.state().generation
    loop.write("m.yaml", HOSTS + policy("home", "{'tank/home<': true}", interval="5m"))
    loop.wait_passes("home", 2)
    assert loop.state().generation != generation
    assert any("policy home: spec.snapshots.interval: '15m' -> '5m'" in m for m in loop.messages)
    edits = [m for m in loop.messages if m.startswith("edit of ")]
    assert edits and all(".tmp" not in m and "m.yaml" in m for m in edits), edits
    started = [m for m in loop.messages if m.startswith("policy home: pass 2 starts: ")]
    assert started == [
        f"policy home: pass 2 starts: manifests changed (generation {loop.state().generation})"
    ]
    wakeup = loop.policy("home").next_wakeup
    assert wakeup is not None and wakeup.at == START + 5 * MINUTE


def test_an_invalid_edit_applies_nothing_and_a_fix_applies(harness: MakeLoop) -> None:
    loop = harness()
    loop.start()
    loop.wait_passes("home", 1)
    generation = loop.state().generation
    broken = HOSTS + policy("home", "{'tank/home<': true}", interval="5 minutes")
    path = loop.write("m.yaml", broken)
    loop.wait_for(lambda: not loop.state().manifests_valid, why="the invalid edit")
    state = loop.state()
    assert state.generation == generation
    assert len(state.manifest_errors) == 1
    line = broken.splitlines().index("  snapshots: {prefix: zr_home_, interval: 5 minutes}") + 1
    assert state.manifest_errors[0].startswith(f"{path}:{line}:")
    assert "spec.snapshots.interval" in state.manifest_errors[0]
    loop.idle()
    assert loop.finished("home") == 1  # nothing passed
    loop.advance(15 * MINUTE)  # the last valid state keeps running
    loop.wait_passes("home", 2)
    loop.write("m.yaml", HOSTS + policy("home", "{'tank/home<': true}", interval="5m"))
    loop.wait_passes("home", 3)
    state = loop.state()
    assert state.manifests_valid and state.manifest_errors == () and state.generation != generation


def test_a_file_added_and_removed(harness: MakeLoop) -> None:
    loop = harness()
    loop.start()
    loop.wait_passes("home", 1)
    loop.write("db.yaml", policy("db", "{'tank/db': true}", target=False))
    loop.wait_passes("db", 1)
    assert loop.snapshots("nas", "tank/db") == [snapshot_name("zr_db_", START)]
    assert loop.finished("home") == 1  # only the policy that changed passed
    (loop.directory / "db.yaml").unlink()
    loop.wait_for(lambda: "db" not in loop.state().policies, why="db to leave")
    loop.advance(15 * MINUTE)
    loop.wait_passes("home", 2)
    loop.idle()
    assert loop.snapshots("nas", "tank/db") == [snapshot_name("zr_db_", START)]


def test_a_configmap_style_symlink_swap_is_applied(tmp_path: Path) -> None:
    mount = tmp_path / "manifests"
    mount.mkdir()

    def publish(version: str, text: str) -> None:
        data = mount / f"..{version}"
        data.mkdir()
        (data / "m.yaml").write_text(text)
        link = mount / "..data_tmp"
        os.symlink(data.name, link)
        os.replace(link, mount / "..data")
        if not (mount / "m.yaml").is_symlink():
            os.symlink("..data/m.yaml", mount / "m.yaml")

    publish("2026_12_04_10_00_00.1", HOSTS + HOME)
    loop = LoopHarness(mount, HOSTS + HOME)
    (mount / "m.yaml").unlink()  # the harness wrote a plain file: make it the ConfigMap's link
    os.symlink("..data/m.yaml", mount / "m.yaml")
    try:
        loop.start()
        loop.wait_passes("home", 1)
        publish(
            "2026_12_04_10_05_00.2", HOSTS + policy("home", "{'tank/home<': true}", interval="5m")
        )
        loop.wait_passes("home", 2)
        wakeup = loop.policy("home").next_wakeup
        assert wakeup is not None and wakeup.at == START + 5 * MINUTE
    finally:
        loop.close()


def test_a_transient_failure_backs_off_then_succeeds(harness: MakeLoop) -> None:
    loop = harness()
    loop.models["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    loop.start()
    loop.wait_passes("home", 1)
    home = loop.policy("home")
    assert home.last_pass is not None and home.last_pass.outcome is Outcome.TRANSIENT
    assert home.condition is not None and home.condition.reason == "HostUnreachable"
    assert home.failures == 1 and home.error is not None and "backup" in home.error
    # the source's snapshot was taken all the same (guarantee 5 only spares the target)
    assert loop.snapshots("nas", "tank/home") == [snapshot_name("zr_home_", START)]
    wakeup = home.next_wakeup
    assert wakeup is not None and START + 2.5 <= wakeup.at <= START + 5
    assert wakeup.reasons == ("retry 1 after a transient error",)
    loop.advance(wakeup.at - loop.clock.time())
    loop.wait_passes("home", 2)
    second = loop.policy("home")
    assert second.failures == 2
    assert second.next_wakeup is not None and second.next_wakeup.at - loop.clock.time() >= 5
    loop.models["backup"].set_unreachable(None)
    loop.advance(second.next_wakeup.at - loop.clock.time())
    loop.wait_passes("home", 3)
    third = loop.policy("home")
    assert third.condition is not None and third.condition.ready and third.failures == 0
    assert loop.snapshots("backup", "vault/nas/tank/home") == [snapshot_name("zr_home_", START)]


def test_a_permanent_failure_waits_for_an_edit(harness: MakeLoop) -> None:
    loop = harness()
    loop.start()
    loop.wait_passes("home", 1)
    # someone writes to the replica and snapshots it: it diverged; rollback is not allowed
    loop.models["backup"].write("vault/nas/tank/home", 4096)
    loop.models["backup"].snapshot(["vault/nas/tank/home"], "by-hand")
    loop.advance(15 * MINUTE)
    loop.wait_passes("home", 2)
    home = loop.policy("home")
    assert home.last_pass is not None and home.last_pass.outcome is Outcome.PERMANENT
    assert home.condition is not None and home.condition.reason == "Conflict"
    assert home.failures == 0
    wakeup = home.next_wakeup
    assert wakeup is not None and wakeup.at == START + 30 * MINUTE  # the schedule, no retry
    loop.advance(60)
    loop.idle()
    assert loop.finished("home") == 2
    allow = "      receive: {allowRollback: true}\n"
    loop.write("m.yaml", HOSTS + policy("home", "{'tank/home<': true}", extra=allow))
    loop.wait_passes("home", 3)
    fixed = loop.policy("home")
    assert fixed.condition is not None and fixed.condition.ready
    assert "by-hand" not in loop.snapshots("backup", "vault/nas/tank/home")


def test_a_slow_send_of_one_policy_does_not_delay_another_policys_snapshot(
    harness: MakeLoop,
) -> None:
    scratch = policy("scratch", "{'tank/scratch': true}", interval="1m", target=False)
    loop = harness(HOSTS + HOME + scratch)
    gate = loop.gate("backup")
    loop.start()
    assert gate.entered.wait(10), "the send of home never started"
    loop.wait_passes("scratch", 1)
    for minute in (1, 2, 3):
        loop.advance(MINUTE)
        loop.wait_passes("scratch", 1 + minute)
    assert loop.snapshots("nas", "tank/scratch")[-1] == snapshot_name(
        "zr_scratch_", START + 3 * MINUTE
    )
    assert loop.policy("home").running
    gate.gate.set()
    loop.wait_passes("home", 1)
    assert loop.policy("home").condition.ready  # type: ignore[union-attr]


def test_overlapping_policies_never_run_at_once(harness: MakeLoop) -> None:
    # monthly also snapshots tank/home (another prefix): it must wait for home's slow send
    monthly = policy("monthly", "{'tank/home': true}", interval="1m", target=False)
    loop = harness(HOSTS + HOME + monthly)
    gate = loop.gate("backup")
    loop.start()
    assert gate.entered.wait(10)
    loop.advance(MINUTE)
    loop.idle(0.3)
    assert loop.finished("monthly") == 0 and not loop.policy("monthly").running
    gate.gate.set()
    loop.wait_passes("home", 1)
    loop.wait_passes("monthly", 1)


def test_stop_mid_send_exits_cleanly_and_a_new_loop_resumes(harness: MakeLoop) -> None:
    loop = harness()
    loop.models["nas"].write("tank/home/alice", 8 << 20)
    gate = loop.gate("backup")
    loop.start()
    assert gate.entered.wait(10)
    loop.stop()  # as SIGTERM does: cancel, wait for the workers
    home = loop.policy("home")
    assert home.last_pass is not None and home.last_pass.outcome is Outcome.CANCELLED
    manifests = load_manifests([str(loop.directory)])
    preview = run_pass(
        manifests,
        None,
        int(loop.clock.time()),
        Dependencies(connect=lambda host: loop.models[host.metadata.name]),
        apply=False,
    )
    resumes = [
        a for a in preview.plan.actions if isinstance(a, SendAction) and a.mode is SendMode.RESUME
    ]
    assert resumes, "the cut receive left no token to resume from"
    gate.gate.set()
    loop.restart()
    loop.wait_passes("home", 2)
    assert loop.policy("home").condition.ready  # type: ignore[union-attr]
    assert loop.snapshots("backup", "vault/nas/tank/home/alice") == [
        snapshot_name("zr_home_", START)
    ]


def test_drift_made_by_hand_is_repaired_at_the_next_resync(harness: MakeLoop) -> None:
    loop = harness(HOSTS + policy("home", "{'tank/home<': true}", interval="1h"), resync=600)
    loop.start()
    loop.wait_passes("home", 1)
    first = snapshot_name("zr_home_", START)
    wakeup = loop.policy("home").next_wakeup
    assert wakeup is not None and (wakeup.at, wakeup.reasons) == (START + 600, ("periodic resync",))
    # by hand: the holds that protect the common snapshot released on both sides
    tag = "zr_home_:home:offsite"
    loop.models["nas"].release("tank/home", first, tag)
    loop.models["backup"].release("vault/nas/tank/home/alice", first, tag)
    loop.advance(599)
    loop.idle()
    assert loop.finished("home") == 1
    loop.advance(1)
    loop.wait_passes("home", 2)
    source = loop.models["nas"].observe().filesystems["tank/home"]
    replica = loop.models["backup"].observe().filesystems["vault/nas/tank/home/alice"]
    assert tag in source.snapshots[0].holds and tag in replica.snapshots[0].holds
    assert loop.policy("home").last_pass.why == ("periodic resync",)  # type: ignore[union-attr]


def test_an_unreachable_target_never_delays_the_sources_snapshots(harness: MakeLoop) -> None:
    loop = harness(HOSTS + policy("home", "{'tank/home<': true}", interval="1m"))
    loop.models["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    loop.start()
    loop.wait_passes("home", 1)
    for minute in range(1, 7):
        loop.advance(MINUTE)
        loop.wait_for(
            lambda m=minute: (
                snapshot_name("zr_home_", START + m * MINUTE) in loop.snapshots("nas", "tank/home")
            ),
            why=f"the snapshot of minute {minute}",
        )
    # the snapshot is taken before its pass ends: wait for the pass to schedule what is next
    loop.wait_for(
        lambda: not loop.policy("home").running and loop.policy("home").next_wakeup is not None,
        why="the pass of minute 6 to end",
    )
    home = loop.policy("home")
    # the backoff has grown past the interval (5 s doubling: 160 s after 6 failures)...
    assert home.failures >= 6
    # ...and still the next wake-up is the next snapshot, a minute away
    assert home.next_wakeup is not None and "snapshot due" in home.next_wakeup.reasons
    loop.models["backup"].set_unreachable(None)
    loop.advance(MINUTE)
    loop.wait_for(lambda: bool(loop.policy("home").condition.ready), why="catch-up")  # type: ignore[union-attr]
    assert loop.snapshots("backup", "vault/nas/tank/home")[-1] == snapshot_name(
        "zr_home_", START + 7 * MINUTE
    )


def test_the_loop_keeps_no_per_snapshot_memo_across_passes(harness: MakeLoop) -> None:
    """The generation's intents (kept until the next edit) are never asked about snapshots:
    their memos would otherwise keep every snapshot name ever observed (a leak found by
    `make bench`)."""
    loop = harness(HOSTS + policy("home", "{'tank/home<': true}", keep="{lastN: 1}"))
    loop.start()
    for count in range(1, 4):
        loop.wait_passes("home", count)
        loop.advance(15 * MINUTE)
    current = loop.controller._current
    assert current is not None
    intent = current.intents["home"]
    assert (intent._times, intent._managed, intent._replicated) == ({}, {}, {})


def test_the_loop_holds_the_host_locks_only_while_a_pass_runs(
    harness: MakeLoop, tmp_path: Path
) -> None:
    locks = tmp_path / "locks"
    loop = harness(lock_dir=locks)
    gate = loop.gate("backup")
    loop.start()
    assert gate.entered.wait(10)
    assert loop.locks is not None and loop.locks.keys == {"local"}
    with pytest.raises(LockHeld):  # a one-shot reconcile now would wait or exit 1
        acquire_locks(["local"], locks, 0)
    gate.gate.set()
    loop.wait_passes("home", 1)
    loop.wait_for(lambda: loop.locks is not None and not loop.locks.keys, why="the release")
    acquire_locks(["local"], locks, 0).release()  # between passes: free for a one-shot pass
