"""`maxLag` on real OpenZFS: a pair replicated once turns `stale` when `reconcile status` looks
at it later than its target's maxLag allows, and `--output nagios` says CRITICAL (exit 2).

Hosts `src` and `dst` are both the guest (platform_tests/scenario.py); time is driven with
`--now`, so "later" costs nothing but one more observation."""

from __future__ import annotations

from typing import Any

from platform_tests.scenario import Scenario


def policy() -> dict[str, Any]:
    """Policy `data`: `{src}/data` every 15m to target `backup` on `dst`, maxLag 2h."""
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": {
            "source": {"host": "src", "filesystems": {"{src}/data": True}},
            "snapshots": {"prefix": "zr_", "interval": "15m"},
            "replication": [
                {
                    "name": "backup",
                    "host": "dst",
                    "root": "{dst}",
                    "protection": "incremental",
                    "maxLag": "2h",
                }
            ],
        },
    }


def test_a_pair_replicated_once_is_stale_beyond_max_lag(s: Scenario) -> None:
    data = f"{s.src}/data"
    s.create(data)
    s.policy(policy())
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    assert s.snapshots("dst", s.target(data)) == ["zr_20261126T000000Z"]

    s.at(60)  # 1h: within maxLag (a snapshot is due: pending)
    within = s.reconcile("status", output="nagios")
    assert within.code == 0, within.stdout + within.stderr
    assert within.stdout == (
        "ZFS-RECONCILER OK - 1 replica: 1 pending; "
        f"worst lag 1h00m (data/backup {data})"
        " | 'lag_data_backup'=3600s;5400;7200;0 'replicas'=1;;;0\n"
    )

    s.at(121)  # 2h01m: beyond maxLag
    late = s.reconcile("status")
    assert late.code == 1, late.stdout + late.stderr
    (target,) = late.json()["policies"][0]["targets"]
    assert target["max_lag"] == 7200
    (row,) = target["filesystems"]
    assert (row["filesystem"], row["condition"], row["lag"]) == (data, "stale", 7260)
    assert row["newest_common"]["name"] == "zr_20261126T000000Z"
    assert row["message"] == "lag 2h01m, beyond maxLag 2h"

    nagios = s.reconcile("status", output="nagios")
    assert nagios.code == 2, nagios.stdout + nagios.stderr
    assert nagios.stdout == (
        f"ZFS-RECONCILER CRITICAL - data/backup {data} stale (lag 2h01m, maxLag 2h); "
        f"1 replica: 1 stale; worst lag 2h01m (data/backup {data})"
        " | 'lag_data_backup'=7260s;5400;7200;0 'replicas'=1;;;0\n"
    )
    assert s.snapshots("dst", s.target(data)) == ["zr_20261126T000000Z"]  # status changed nothing
