"""Saved plans on real OpenZFS: `reconcile --dry-run --out PATH`, then `reconcile --plan PATH`.

A snapshot taken by hand (`zfs snapshot` in the guest) after the plan was saved makes it stale:
`--plan` refuses, names the snapshot, and changes nothing on either pool. A plan saved afresh
is applied and the pools converge. Hosts `src` and `dst` are both the guest (`Scenario`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from platform_tests.scenario import Outcome, Scenario
from reconciler.cli import Console, Services, main


def data_policy() -> dict[str, Any]:
    """Policy `data`: `{src}/data` every 15m, replicated to `{dst}` (incremental protection:
    a cursor bookmark, no holds, so each pass costs few zfs commands under emulation)."""
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": {
            "source": {"host": "src", "filesystems": {"{src}/data<": True}},
            "snapshots": {"prefix": "zr_", "interval": "15m"},
            "replication": [
                {"name": "backup", "host": "dst", "root": "{dst}", "protection": "incremental"}
            ],
        },
    }


def apply_saved(s: Scenario, path: Path) -> Outcome:
    """`reconcile --plan PATH` (no `--now`: the saved plan carries its time)."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["-f", str(s.directory / "manifests"), "--plan", str(path), "--output", "json"]
    argv += ["--lock-dir", str(s.directory / "locks")]
    code = main(argv, Console(out, err), Services(connect=s.connect))
    return Outcome(code, out.getvalue(), err.getvalue())


def test_a_saved_plan_is_refused_after_a_snapshot_by_hand_and_a_fresh_one_applies(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    s.create(data, nbytes=256 << 10)
    s.policy(data_policy())
    s.at(0)
    assert s.reconcile().code == 0  # the first snapshot, replicated
    s.at(15)
    path = s.directory / "plan.json"
    saved = s.reconcile("--dry-run", "--out", str(path))
    assert saved.code == 0, saved.stderr
    assert {"snapshot", "send"} <= set(saved.kinds())

    s.snapshot(data, "by-hand")
    before = s.all_guids(data, s.target(data))
    refused = apply_saved(s, path)
    assert refused.code == 1 and refused.stdout == ""
    assert "is stale; nothing was applied" in refused.stderr
    assert f"src:{data}: snapshot @by-hand created since the plan was made" in refused.stderr
    assert s.all_guids(data, s.target(data)) == before

    fresh = s.reconcile("--dry-run", "--out", str(path))
    assert fresh.code == 0, fresh.stderr
    applied = apply_saved(s, path)
    assert applied.code == 0, applied.stderr
    assert [a["id"] for a in applied.actions()] == [a["id"] for a in fresh.actions()]
    assert set(applied.statuses()) == {"ok"}
    source, target = s.replicated(data)
    assert list(target)[-1] == "zr_20261126T001500Z"
    assert target == {name: source[name] for name in target}
    steady = s.dry_run()
    assert (steady.code, steady.kinds()) == (0, []), steady.stdout
