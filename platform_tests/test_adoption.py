"""Adoption on real OpenZFS: a pool pair with the history zrepl leaves is taken over by a policy
that adopts zrepl's names, and nothing is resent.

The history has zrepl's exact shape: snapshots `zrepl_YYYYMMDD_HHMMSS_000` (UTC) on the source,
replicated with plain `zfs send` and `zfs send -I` (what zrepl runs), zrepl's replication cursor
bookmark `zrepl_CURSOR_G_<guid>_J_<job>` on the source and its last-received hold on the
target's newest snapshot, plus a snapshot of the administrator's. The checks are on the pools:
the target's snapshots keep their GUIDs and creation txgs (nothing was received again), the one
send is incremental from the newest zrepl snapshot and carries only the new data, retention
prunes adopted snapshots by the times in their names, and what zrepl left (its bookmark and
hold) and the administrator's snapshot are untouched.
"""

from __future__ import annotations

import io
from typing import Any

from platform_tests.scenario import Scenario
from reconciler.cli import Console, main

JOB = "push_to_backup"
ZREPL = [  # four hours of zrepl's hourly snapshots, the day before the scenario's START
    "zrepl_20261125_200000_000",
    "zrepl_20261125_210000_000",
    "zrepl_20261125_220000_000",
    "zrepl_20261125_230000_000",
]


def adopting_policy(
    source_keep: list[dict[str, Any]], target_keep: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": {
            "source": {"host": "src", "filesystems": {"{src}/data": True}},
            "snapshots": {
                "prefix": "zrepl_",
                "interval": "1h",
                "adopt": [{"prefix": "zrepl_", "format": "dense"}],
            },
            "retention": {"keep": source_keep},
            "replication": [
                {
                    "name": "backup",
                    "host": "dst",
                    "root": "{dst}",
                    "protection": "incremental",
                    "retention": {"keep": target_keep},
                }
            ],
        },
    }


def zrepl_history(s: Scenario) -> tuple[str, str]:
    """The source and target filesystems as zrepl leaves them after its last replication."""
    data, target = f"{s.src}/data", s.target(f"{s.src}/data")
    s.create(data, nbytes=1 << 20)
    s.snapshot(data, "manual_before_upgrade")
    s.history(data, ZREPL, nbytes=512 << 10)
    s.sh(f"zfs create -p {s.dst}/{s.src}")
    first, *_, last = ZREPL
    s.sh(
        f"zfs send {data}@{first} | zfs receive -u {target} && "
        f"zfs send -I @{first} {data}@{last} | zfs receive -u {target}"
    )
    guid = int(s.get(f"{data}@{last}", "guid"))
    s.sh(
        f"zfs bookmark {data}@{last} {data}#zrepl_CURSOR_G_{guid:016x}_J_{JOB} && "
        f"zfs hold zrepl_last_received_J_{JOB} {target}@{last}"
    )
    return data, target


def test_an_adopting_policy_continues_zrepls_replication_incrementally_and_resends_nothing(
    s: Scenario,
) -> None:
    data, target = zrepl_history(s)
    before = s.inventory(data, target)
    received = {v.name: (v.guid, v.createtxg) for v in s.versions("dst", target)}
    s.write(data, 64 << 10)
    s.policy(adopting_policy([{"lastN": 3}], [{"lastN": 4}]))
    s.at(0)  # 2026-11-26T00:00Z: the newest zrepl snapshot is an hour old, so one is due

    preview = s.dry_run()
    assert preview.code == 2, preview.stdout
    sends = preview.of_kind("send")
    assert [(a["from_version"], a["to_snapshot"]) for a in sends] == [
        (f"@{ZREPL[-1]}", "@zrepl_20261126T000000Z")
    ]
    destroys = {(a["host"], v) for a in preview.of_kind("destroy") for v in a["versions"]}
    # lastN 3 on the source: the new snapshot and the two newest zrepl ones stay; lastN 4 on
    # the target keeps three zrepl snapshots and the new one
    assert destroys == {
        ("src", f"@{ZREPL[0]}"),
        ("src", f"@{ZREPL[1]}"),
        ("dst", f"@{ZREPL[0]}"),
    }

    applied = s.reconcile()
    assert applied.code == 0, applied.stderr
    [send] = [r for r in applied.results().values() if r.get("bytes")]
    assert send["bytes"] < 1 << 20, send  # 64 KiB of new data, not the 3 MiB of history

    assert s.snapshots("src", data) == [
        "manual_before_upgrade",
        *ZREPL[2:],
        "zrepl_20261126T000000Z",
    ]
    assert s.snapshots("dst", target) == [*ZREPL[1:], "zrepl_20261126T000000Z"]
    now_received = {v.name: (v.guid, v.createtxg) for v in s.versions("dst", target)}
    for name in ZREPL[1:]:  # the same snapshots, never received again
        assert now_received[name] == received[name], name
    source_guids = s.guids("src", data)
    assert now_received["zrepl_20261126T000000Z"][0] == source_guids["zrepl_20261126T000000Z"]
    assert s.same_data(f"{data}@zrepl_20261126T000000Z")

    # zrepl's cursor bookmark and last-received hold, and the administrator's snapshot, stay
    left = set(s.inventory(data, target))
    assert {row for row in before if "zrepl_CURSOR_G_" in row[0]} <= left
    assert s.holds(f"{target}@{ZREPL[-1]}")[f"{target}@{ZREPL[-1]}"] >= {
        f"zrepl_last_received_J_{JOB}"
    }
    steady = s.dry_run()
    assert (steady.code, steady.kinds(), steady.conflicts()) == (0, [], []), steady.stdout


ZREPL_YML = """\
# zrepl's local replication: a push job and a sink on one machine (the `local` transport)
jobs:
  - type: sink
    name: backup_sink
    root_fs: "{dst}/zrepl"
    serve:
      type: local
      listener_name: backups
  - type: push
    name: push_to_backup
    connect:
      type: local
      listener_name: backups
      client_identity: nas
    filesystems:
      "{src}/data<": true
    snapshotting:
      type: periodic
      prefix: zrepl_
      interval: 1h
    pruning:
      keep_sender:
        - type: not_replicated
        - type: last_n
          count: 3
          regex: "^zrepl_"
      keep_receiver:
        - type: grid
          grid: 1x1h(keep=all) | 24x1h | 7x1d
          regex: "^zrepl_"
"""


def test_reconcile_import_zrepl_continues_zrepls_replication_and_resends_nothing(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    target = f"{s.dst}/zrepl/nas/{data}"  # zrepl's sink: root_fs/<client identity>/<path>
    s.create(data, nbytes=1 << 20)
    s.history(data, ZREPL, nbytes=512 << 10)
    s.sh(f"zfs create -p {s.dst}/zrepl/nas/{s.src}")
    first, *_, last = ZREPL
    s.sh(
        f"zfs send {data}@{first} | zfs receive -u {target} && "
        f"zfs send -I @{first} {data}@{last} | zfs receive -u {target}"
    )
    guid = int(s.get(f"{data}@{last}", "guid"))
    cursor = f"zrepl_CURSOR_G_{guid:016x}_J_push_to_backup"
    s.sh(
        f"zfs bookmark {data}@{last} {data}#{cursor} && "
        f"zfs hold zrepl_last_received_J_push_to_backup {target}@{last}"
    )
    received = {v.name: (v.guid, v.createtxg) for v in s.versions("dst", target)}
    config = s.directory / "zrepl.yml"
    config.write_text(ZREPL_YML.format(src=s.src, dst=s.dst))
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["import", "zrepl", str(config), "--out", str(s.directory / "manifests")],
        Console(out, err),
    )
    assert code == 0, err.getvalue()
    s.write(data, 64 << 10)
    s.at(0)

    preview = s.dry_run()
    assert preview.code == 2, preview.stdout + preview.stderr
    sends = preview.of_kind("send")
    assert [(a["from_version"], a["to_snapshot"], a["target_filesystem"]) for a in sends] == [
        (f"@{last}", "@zrepl_20261126T000000Z", target)
    ]
    destroys = {(a["host"], v) for a in preview.of_kind("destroy") for v in a["versions"]}
    # zrepl's last_n 3 on the sender; the receiver's grid keeps one per hour
    assert destroys == {("nas", f"@{ZREPL[0]}"), ("nas", f"@{ZREPL[1]}")}

    applied = s.reconcile()
    assert applied.code == 0, applied.stdout + applied.stderr
    [sent] = [r["bytes"] for r in applied.results().values() if r.get("bytes") is not None]
    assert sent < 1 << 20, sent  # the new 64 KiB, not the 3 MiB of history
    now_received = {v.name: (v.guid, v.createtxg) for v in s.versions("dst", target)}
    assert {name: now_received.get(name) for name in received} == received  # not resent
    assert s.snapshots("src", data) == [*ZREPL[2:], "zrepl_20261126T000000Z"]
    source, received_copy = s.fingerprints(
        f"{data}@zrepl_20261126T000000Z", f"{target}@zrepl_20261126T000000Z"
    )
    assert source == received_copy

    status = s.reconcile("status")
    leftovers = {(f["kind"], f["name"], f.get("tag")) for f in status.json()["foreign_leftovers"]}
    assert ("bookmark", cursor, None) in leftovers, leftovers
    assert ("hold", last, "zrepl_last_received_J_push_to_backup") in leftovers, leftovers
    steady = s.dry_run()
    assert (steady.code, steady.kinds(), steady.conflicts()) == (0, [], []), steady.stdout
