"""What zrepl and syncoid leave on real pools: `reconcile status` lists each with the command
that cleans it up, a pass leaves every one of them in place, and the printed commands remove
them (docs/migrating-leftovers.md, `reconciler/core/foreign_leftovers.py`).

The zrepl history is built with plain zfs commands, named as zrepl names things (no zrepl is
installed); the syncoid history is made by the real syncoid (Debian's `sanoid` package, which
`make vm-setup` installs on the host: the guest runs the host's userland). A missing syncoid
fails the test: it is a prerequisite of the platform tests, not an option.
"""

from __future__ import annotations

import shlex
from typing import Any

from platform_tests.scenario import Scenario

ZREPL_1, ZREPL_2 = "zrepl_20261125_100000_000", "zrepl_20261125_110000_000"
STEP_HOLD, LAST_RECEIVED = "zrepl_STEP_J_push", "zrepl_last_received_J_push"


def policy() -> dict[str, Any]:
    """Policy `data` on `{src}/data` (prefix `zr_`), one target `backup` under `{dst}`."""
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": {
            "source": {"host": "src", "filesystems": {"{src}/data<": True}},
            "snapshots": {"prefix": "zr_", "interval": "15m"},
            "replication": [
                {
                    "name": "backup",
                    "host": "dst",
                    "root": "{dst}",
                    "protection": "incremental",
                    "initialReplication": "mostRecent",
                }
            ],
        },
    }


def foreign(s: Scenario) -> list[dict[str, Any]]:
    status = s.reconcile("status")
    assert status.code == 0, status.stdout + status.stderr
    found: list[dict[str, Any]] = status.json()["foreign_leftovers"]
    return found


def listed(found: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(f["host"], f["kind"], f["what"], f["command"]) for f in found}


def bookmark_exists(s: Scenario, bookmark: str) -> bool:
    return s.guest.run(["zfs", "list", "-H", "-t", "bookmark", bookmark]).returncode == 0


def run_printed(s: Scenario, found: list[dict[str, Any]]) -> None:
    """What the user does: each printed command, as printed, in a shell on its host."""
    for each in found:
        s.sh(each["command"])


def test_zrepl_leftovers_are_listed_kept_by_a_pass_and_removed_by_the_printed_commands(
    s: Scenario,
) -> None:
    data, target = f"{s.src}/data", s.target(f"{s.src}/data")
    s.create(data, nbytes=256 << 10)
    s.history(data, [ZREPL_1, ZREPL_2], nbytes=64 << 10)
    q = shlex.quote
    s.sh(
        f"zfs create -p {q(target.rsplit('/', 1)[0])} && "
        f"zfs send {q(f'{data}@{ZREPL_1}')} | zfs receive -u {q(target)} && "
        f"zfs send -I @{ZREPL_1} {q(f'{data}@{ZREPL_2}')} | zfs receive -u {q(target)}"
    )
    cursor = f"zrepl_CURSOR_G_{int(s.get(f'{data}@{ZREPL_2}', 'guid')):016x}_J_push"
    s.sh(
        f"zfs bookmark {q(f'{data}@{ZREPL_2}')} {q(f'{data}#{cursor}')} && "
        f"zfs hold {STEP_HOLD} {q(f'{data}@{ZREPL_2}')} && "
        f"zfs hold {LAST_RECEIVED} {q(f'{target}@{ZREPL_2}')}"
    )
    s.policy(policy())
    s.at(0)
    expected = {
        ("src", "hold", "step hold", f"zfs release {STEP_HOLD} {data}@{ZREPL_2}"),
        ("src", "bookmark", "replication cursor", f"zfs destroy '{data}#{cursor}'"),
        ("dst", "hold", "last-received hold", f"zfs release {LAST_RECEIVED} {target}@{ZREPL_2}"),
    }
    assert listed(foreign(s)) == expected
    text = s.reconcile("status", output="text").stdout
    assert "left by zrepl, run before the reconciler" in text
    assert "never destroys or releases them" in text

    held = {f"{data}@{ZREPL_2}": {STEP_HOLD}, f"{target}@{ZREPL_2}": {LAST_RECEIVED}}
    for minutes in (0, 15):  # the first pass sends from zrepl's snapshot, the second from ours
        s.at(minutes)
        applied = s.reconcile()
        assert applied.code == 0, applied.stdout + applied.stderr
        assert s.holds(*held) == held
        assert bookmark_exists(s, f"{data}#{cursor}")
    assert s.snapshots("src", data)[:2] == [ZREPL_1, ZREPL_2]
    assert s.snapshots("dst", target)[:2] == [ZREPL_1, ZREPL_2]
    assert any(name.startswith("zr_") for name in s.snapshots("dst", target))

    found = foreign(s)  # zrepl's holds now sit below the pair's common snapshot: still seen
    assert listed(found) == expected and not any(f["in_use"] for f in found)
    run_printed(s, found)
    assert s.holds(*held) == {snapshot: set() for snapshot in held}
    assert not bookmark_exists(s, f"{data}#{cursor}")
    assert foreign(s) == []


def test_syncoid_sync_snapshots_are_listed_kept_by_a_pass_and_removed_by_the_printed_commands(
    s: Scenario,
) -> None:
    found_syncoid = s.guest.sh("command -v syncoid")
    assert found_syncoid.returncode == 0, (
        "syncoid is missing: `make vm-setup` installs Debian's sanoid package (with syncoid) "
        "on the host, whose userland the guest runs"
    )
    syncoid = found_syncoid.stdout.decode().strip()
    data, target = f"{s.src}/data", s.target(f"{s.src}/data")
    s.create(data, nbytes=256 << 10)
    q = shlex.quote
    s.sh(f"zfs create -p {q(target.rsplit('/', 1)[0])}")
    for _ in range(2):  # the second run takes a new sync snapshot and prunes the first
        s.sh(f"{q(syncoid)} --quiet {q(data)} {q(target)}")
        s.write(data, 64 << 10)
    sync = [n for n in s.snapshots("src", data) if n.startswith("syncoid_")]
    assert len(sync) == 1 and s.snapshots("dst", target) == sync, s.snapshots("dst", target)
    (name,) = sync
    s.policy(policy())
    s.at(0)
    expected = {
        ("src", "snapshot", "sync snapshot", f"zfs destroy {q(f'{data}@{name}')}"),
        ("dst", "snapshot", "sync snapshot", f"zfs destroy {q(f'{target}@{name}')}"),
    }
    before = foreign(s)
    assert listed(before) == expected
    assert all(f["in_use"] for f in before)  # the only common snapshot: a full send without

    applied = s.reconcile()
    assert applied.code == 0, applied.stdout + applied.stderr
    (send,) = applied.of_kind("send")
    assert send["mode"] in {"incremental", "intermediates"}, (
        send
    )  # from syncoid's snapshot: no full resend
    assert s.snapshots("src", data)[0] == name and s.snapshots("dst", target)[0] == name

    found = foreign(s)
    assert listed(found) == expected and not any(f["in_use"] for f in found)
    run_printed(s, found)
    assert name not in s.snapshots("src", data) and name not in s.snapshots("dst", target)
    assert foreign(s) == []
