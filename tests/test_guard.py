"""The destroy guard (`core/guard.py`): limits as a table, the pure verdict on hand-made plans,
the CLI's `--max-destroy`, `--force` and the confirm-destroy annotation on the model, the
control loop, and a property: a pass destroys all that retention asks on a filesystem when that
is within the limit, and nothing there when it is not."""

from __future__ import annotations

import calendar
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cli import EXIT_ERROR, EXIT_OK
from reconciler.core.desired import intents
from reconciler.core.guard import DEFAULT_LIMIT, DestroyLimit, guard_plan, parse_limit
from reconciler.core.names import snapshot_name
from reconciler.core.plan import (
    DestroyAction,
    NoticeKind,
    Plan,
    Reason,
    RollbackAction,
    SendAction,
    SendMode,
    SnapshotAction,
)
from reconciler.core.state import FilesystemState, HostState, Observed, Version, VersionKind
from reconciler.loop.state import Outcome
from reconciler.manifest.confirm import confirmed_policies, spec_digest
from reconciler.manifest.loader import load_manifests
from tests.loop_harness import HOSTS as LOOP_HOSTS
from tests.loop_harness import MINUTE, START, LoopHarness
from tests.loop_harness import policy as loop_policy
from tests.test_cli import HOSTS, Fleet

NOW = "2026-11-26T12:00:00Z"
HOUR = 3600
T_NOW = calendar.timegm((2026, 11, 26, 12, 0, 0, 0, 0, 0))  # NOW as UNIX seconds


def _policy(keep: str, annotations: str = "") -> str:
    metadata = f"{{name: home, annotations: {annotations}}}" if annotations else "{name: home}"
    return f"""\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {metadata}
spec:
  source: {{host: nas, filesystems: {{"tank/home<": true}}}}
  snapshots: {{prefix: zr_, interval: 1h}}
  retention: {{keep: [{keep}]}}
"""


def _fleet_with_history(count: int = 12) -> Fleet:
    """nas with `count` hourly managed snapshots of tank/home and tank/home/alice, the newest
    an hour before NOW."""
    fleet = Fleet()
    for i in range(count, 0, -1):
        name = snapshot_name("zr_", T_NOW - i * HOUR)
        fleet.hosts["nas"].snapshot(["tank/home", "tank/home/alice"], name)
    return fleet


def _snapshots(fleet: Fleet, filesystem: str = "tank/home") -> list[str]:
    state = fleet.hosts["nas"].observe().filesystems[filesystem]
    return [v.name for v in state.snapshots]


def _write(tmp_path: Path, keep: str, annotations: str = "") -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(HOSTS + _policy(keep, annotations))
    return path


# --- the limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "managed", "allowed"),
    [
        ("25%", 41, 10),  # a 14x1d typo on a 41-snapshot grid destroys 13: refused
        ("25%", 4, 1),  # never fewer than one with a percentage above 0
        ("25%", 0, 1),
        ("50%", 2, 1),
        ("100%", 7, 7),
        ("0%", 40, 0),  # no destroy at all
        ("0", 40, 0),
        ("10", 3, 10),  # a count does not depend on the managed snapshots
        (" 7 ", 100, 7),
    ],
)
def test_a_limit_allows_a_count_or_a_share_of_the_managed_snapshots(
    text: str, managed: int, allowed: int
) -> None:
    assert parse_limit(text).allowed(managed) == allowed


@pytest.mark.parametrize("text", ["", "x", "-1", "101%", "1.5", "10 %", "%", "1e3", "0x10", "07"])
def test_a_limit_that_is_not_a_count_or_percentage_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"count or a percentage|at most 100%"):
        parse_limit(text)


def test_the_default_limit_is_a_quarter_of_the_managed_snapshots() -> None:
    assert DestroyLimit(percent=25) == DEFAULT_LIMIT
    assert str(DEFAULT_LIMIT) == "25%"


# --- the verdict on hand-made plans ------------------------------------------------------------


def _observed(names: list[str], filesystem: str = "tank/home", host: str = "nas") -> Observed:
    versions = tuple(
        Version(VersionKind.SNAPSHOT, name, guid=i + 1, createtxg=i + 1, creation=i)
        for i, name in enumerate(names)
    )
    fs = FilesystemState(name=filesystem, versions=versions)
    return Observed({host: HostState(host, {filesystem: fs})})


def _home_intents(tmp_path: Path) -> tuple:
    return tuple(intents(load_manifests([str(_write(tmp_path, "{lastN: 1}"))]), None))


def _destroy(id: int, names: list[str], *, depends_on: tuple[int, ...] = ()) -> DestroyAction:
    return DestroyAction(
        id=id,
        host="nas",
        policy="home",
        target=None,
        reason=Reason.RETENTION_NOT_KEPT,
        message="not kept by lastN 1",
        filesystem="tank/home",
        versions=tuple(names),
        depends_on=depends_on,
    )


def test_over_the_limit_every_destroy_of_the_filesystem_and_its_dependents_are_withheld(
    tmp_path: Path,
) -> None:
    names = [snapshot_name("zr_", T_NOW - i * HOUR) for i in range(8, 0, -1)]
    snapshot = SnapshotAction(
        id=1, host="nas", policy="home", target=None, reason=Reason.SCHEDULE_DUE,
        message="due", filesystems=("tank/home",), name=snapshot_name("zr_", T_NOW),
    )  # fmt: skip
    first = _destroy(2, [f"@{n}" for n in names[:3]], depends_on=(1,))
    second = _destroy(3, [f"@{n}" for n in names[3:5]] + ["#zr_mark"])
    dependent = _destroy(4, [], depends_on=(3,))  # stands for any action that waits on one
    plan = Plan(now=T_NOW, actions=(snapshot, first, second, dependent))
    verdict = guard_plan(plan, _home_intents(tmp_path), _observed(names), DestroyLimit(percent=25))
    # 5 snapshots (the bookmark does not count) of 8 observed + 1 taken: 25% of 9 allows 2
    (group,) = verdict.withheld
    assert (group.managed, group.allowed, group.action_ids) == (9, 2, (2, 3))
    assert group.snapshots == tuple(f"@{n}" for n in names[:5])
    assert verdict.withheld_ids == {2, 3, 4}
    assert [a.id for a in verdict.plan.actions] == [1]
    (notice,) = verdict.plan.notices
    assert notice.kind is NoticeKind.DESTROY_GUARD
    assert (notice.policy, notice.host, notice.filesystem) == ("home", "nas", "tank/home")
    assert "5 of the 9 snapshots" in notice.message and "and 0 more" not in notice.message


def test_within_the_limit_or_confirmed_or_unguarded_the_plan_is_unchanged(tmp_path: Path) -> None:
    names = [snapshot_name("zr_", T_NOW - i * HOUR) for i in range(8, 0, -1)]
    plan = Plan(now=T_NOW, actions=(_destroy(1, [f"@{n}" for n in names[:5]]),))
    policies, observed = _home_intents(tmp_path), _observed(names)
    assert guard_plan(plan, policies, observed, DestroyLimit(count=5)).plan is plan
    assert guard_plan(plan, policies, observed, DestroyLimit(count=4)).withheld
    assert guard_plan(plan, policies, observed, DestroyLimit(count=4), {"home"}).plan is plan
    assert guard_plan(plan, policies, observed, None).plan is plan


def test_a_rollback_counts_the_snapshots_it_takes_with_it_and_its_send_waits(
    tmp_path: Path,
) -> None:
    rollback = RollbackAction(
        id=1, host="backup", policy="home", target="offsite", reason=Reason.ROLLBACK_DIVERGED,
        message="diverged", filesystem="vault/nas/tank/home", snapshot="@zr_a",
        destroys=("@x", "@y", "@z"),
    )  # fmt: skip
    send = SendAction(
        id=2, host="nas", policy="home", target="offsite", reason=Reason.NOT_YET_REPLICATED,
        message="send", filesystem="tank/home", target_host="backup",
        target_filesystem="vault/nas/tank/home", mode=SendMode.INCREMENTAL,
        from_version="@zr_a", to_snapshot="@zr_b", delivers=("@zr_b",), depends_on=(1,),
    )  # fmt: skip
    plan = Plan(now=T_NOW, actions=(rollback, send))
    observed = _observed(["zr_a", "x", "y", "z"], "vault/nas/tank/home", "backup")
    verdict = guard_plan(plan, _home_intents(tmp_path), observed, DestroyLimit(count=2))
    assert verdict.withheld_ids == {1, 2}
    assert verdict.withheld[0].snapshots == ("@x", "@y", "@z")
    assert verdict.plan.actions == ()
    assert guard_plan(plan, _home_intents(tmp_path), observed, DestroyLimit(count=3)).plan is plan


# --- the CLI -----------------------------------------------------------------------------------


def test_a_retention_typo_is_withheld_in_a_dry_run_and_the_dry_run_exits_1(
    tmp_path: Path,
) -> None:
    fleet = _fleet_with_history()
    path = _write(tmp_path, "{lastN: 2}")  # was lastN: 12
    code, out, err = fleet.run("--dry-run", "-f", str(path), "--now", NOW)
    assert code == EXIT_ERROR, err
    assert "destroy_guard: nas:tank/home (policy home)" in out
    # 10 that lastN 12 kept until now count; the 11th goes because this pass takes a snapshot
    assert "would destroy 10 of the 13 snapshots it manages on nas:tank/home that earlier" in out
    assert "Withheld by the destroy guard" in out
    withheld = out.split("Withheld by the destroy guard")[1].splitlines()[1:]
    assert len(withheld) == 2 and all("destroy" in line for line in withheld)
    assert "not kept" in withheld[0] or "retention" in withheld[0]
    # the destroys are not in the plan; the snapshot still is
    plan_part = out.split("Notices")[0]
    assert "snapshot" in plan_part and "- destroy" not in plan_part
    code, out, _ = fleet.run("--dry-run", "-f", str(path), "--now", NOW, "--output", "json")
    assert code == EXIT_ERROR
    assert '"kind": "destroy_guard"' in out and '"kind": "destroy"' not in out


def test_an_applying_pass_takes_the_snapshot_but_destroys_nothing_of_a_withheld_filesystem(
    tmp_path: Path,
) -> None:
    fleet = _fleet_with_history()
    path = _write(tmp_path, "{lastN: 2}")
    code, out, _ = fleet.run("-f", str(path), "--now", NOW)
    assert code == EXIT_ERROR
    assert len(_snapshots(fleet, "tank/home")) == 13  # 12 + the one taken now
    assert len(_snapshots(fleet, "tank/home/alice")) == 13
    assert "1 action done, 0 failed" in out


def test_force_or_a_higher_limit_applies_the_destroys(tmp_path: Path) -> None:
    path = _write(tmp_path, "{lastN: 2}")
    fleet = _fleet_with_history()
    code, _, _ = fleet.run("-f", str(path), "--now", NOW, "--force")
    assert code == EXIT_OK
    assert len(_snapshots(fleet, "tank/home")) == 2
    fleet = _fleet_with_history()
    code, _, _ = fleet.run("-f", str(path), "--now", NOW, "--max-destroy", "10")
    assert code == EXIT_OK
    assert len(_snapshots(fleet, "tank/home/alice")) == 2
    fleet = _fleet_with_history()
    code, _, _ = fleet.run("-f", str(path), "--now", NOW, "--max-destroy", "9")
    assert code == EXIT_ERROR
    assert len(_snapshots(fleet, "tank/home/alice")) == 13


def test_pruning_that_time_brings_is_not_guarded_even_at_zero(tmp_path: Path) -> None:
    fleet = _fleet_with_history()
    path = _write(tmp_path, "{lastN: 12}")
    code, out, _ = fleet.run("-f", str(path), "--now", NOW, "--max-destroy", "0")
    assert code == EXIT_OK, out
    assert len(_snapshots(fleet, "tank/home")) == 12  # the oldest went: the new one came
    assert "destroy guard" not in out


GRID = '{grid: "1x1h(keep=all) | 24x1h | 14x1d"}'


def test_a_week_without_passes_thins_the_grid_without_the_guard_but_a_typo_trips_it(
    tmp_path: Path,
) -> None:
    fleet = _fleet_with_history(36)  # hourly for a day and a half, as a laptop left it
    path = _write(tmp_path, GRID)
    # the history was made without the grid: the first pass prunes to it, once confirmed
    code, out, _ = fleet.run("-f", str(path), "--now", NOW)
    assert code == EXIT_ERROR and "destroy guard" in out
    code, out, _ = fleet.run("-f", str(path), "--now", NOW, "--force")
    assert code == EXIT_OK, out
    kept = len(_snapshots(fleet, "tank/home"))
    code, out, _ = fleet.run("-f", str(path), "--now", "2026-12-03T12:00:00Z")  # a week on
    assert code == EXIT_OK, out
    after_a_week = len(_snapshots(fleet, "tank/home"))
    assert kept - after_a_week > kept // 4  # more than 25% went, all because time went on
    typo = _write(tmp_path, '{grid: "1x1h(keep=all) | 24x1h | 1x1d"}')
    code, out, _ = fleet.run("-f", str(typo), "--now", "2026-12-03T12:00:01Z")
    assert code == EXIT_ERROR and "destroy guard" in out
    assert len(_snapshots(fleet, "tank/home")) == after_a_week


def test_the_annotation_the_guard_names_confirms_the_destroys_of_that_spec_only(
    tmp_path: Path,
) -> None:
    fleet = _fleet_with_history()
    path = _write(tmp_path, "{lastN: 2}")
    _, out, _ = fleet.run("--dry-run", "-f", str(path), "--now", NOW)
    found = re.search(r'zfs-reconciler\.dev/confirm-destroy: "([0-9a-f]{12})"', out)
    assert found is not None, out
    digest = found[1]
    annotation = f"{{zfs-reconciler.dev/confirm-destroy: '{digest}'}}"
    path = _write(tmp_path, "{lastN: 2}", annotation)
    assert confirmed_policies(load_manifests([str(path)])) == {"home"}
    code, out, _ = fleet.run("-f", str(path), "--now", NOW)
    assert code == EXIT_OK, out
    assert len(_snapshots(fleet, "tank/home")) == 2
    # the same annotation on another spec confirms nothing, and says so
    fleet = _fleet_with_history()
    path = _write(tmp_path, "{lastN: 1}", annotation)
    code, out, _ = fleet.run("-f", str(path), "--now", NOW)
    assert code == EXIT_ERROR
    assert f"(the one there, {digest}, confirms an earlier spec)" in out
    assert len(_snapshots(fleet, "tank/home")) == 13


def test_the_digest_ignores_metadata_and_follows_the_spec(tmp_path: Path) -> None:
    plain = load_manifests([str(_write(tmp_path, "{lastN: 2}"))]).policies["home"]
    labelled = load_manifests([str(_write(tmp_path, "{lastN: 2}", "{a: b}"))]).policies["home"]
    other = load_manifests([str(_write(tmp_path, "{lastN: 3}"))]).policies["home"]
    assert spec_digest(plain) == spec_digest(labelled) != spec_digest(other)


@pytest.mark.parametrize("value", ["yes", "3F9A2C1B7D4E", "3f9a2c1b7d4", "3f9a2c1b7d4e0", "'1'"])
def test_a_confirmation_that_is_not_a_digest_is_a_validation_error(
    tmp_path: Path, value: str
) -> None:
    path = _write(tmp_path, "{lastN: 2}", f"{{zfs-reconciler.dev/confirm-destroy: {value}}}")
    code, _, err = Fleet().run("validate", "-f", str(path))
    assert code == EXIT_ERROR
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: metadata\.annotations", err), err
    assert "12-character digest" in err


def test_watch_takes_max_destroy_and_not_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "{lastN: 2}")
    for flag, expected in (
        (["--force"], "unrecognized arguments: --force"),
        (["--max-destroy", "x"], "argument --max-destroy: not a count"),
    ):
        with pytest.raises(SystemExit) as stopped:
            Fleet().run("watch", "-f", str(path), *flag)
        assert stopped.value.code == 2
        assert expected in capsys.readouterr().err


# --- the loop ----------------------------------------------------------------------------------


def test_the_loop_withholds_a_typo_until_the_policy_confirms_it(tmp_path: Path) -> None:
    keep_many = loop_policy("home", "{'tank/home<': true}", keep="{lastN: 8}", target=False)
    loop = LoopHarness(tmp_path / "manifests", LOOP_HOSTS + keep_many)
    try:
        loop.start()
        for passes in range(2, 9):
            loop.advance(15 * MINUTE)
            loop.wait_passes("home", passes)
        assert len(loop.snapshots("nas", "tank/home")) == 8
        loop.write("m.yaml", LOOP_HOSTS + keep_many.replace("lastN: 8", "lastN: 1"))
        loop.wait_passes("home", 9)
        home = loop.policy("home")
        assert home.last_pass is not None and home.last_pass.outcome is Outcome.PERMANENT
        assert home.condition is not None and home.condition.reason == "DestroyGuard"
        assert len(loop.snapshots("nas", "tank/home")) == 8
        manifests = load_manifests([str(tmp_path / "manifests")])
        digest = spec_digest(manifests.policies["home"])
        confirmed = keep_many.replace("lastN: 8", "lastN: 1").replace(
            "metadata: {name: home}",
            f"metadata: {{name: home, annotations: {{zfs-reconciler.dev/confirm-destroy: "
            f"'{digest}'}}}}",
        )
        loop.write("m.yaml", LOOP_HOSTS + confirmed)
        loop.wait_passes("home", 10)
        assert loop.snapshots("nas", "tank/home") == [snapshot_name("zr_home_", START + 105 * 60)]
        assert loop.policy("home").last_pass.outcome is Outcome.OK  # type: ignore[union-attr]
    finally:
        loop.close()


# --- the property ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    history=st.integers(min_value=1, max_value=30),
    last_n=st.integers(min_value=1, max_value=30),
    percent=st.integers(min_value=0, max_value=100),
)
def test_a_pass_destroys_what_retention_asks_within_the_limit_and_nothing_beyond(
    tmp_path_factory: pytest.TempPathFactory, history: int, last_n: int, percent: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("guard")
    fleet = _fleet_with_history(history)
    path = _write(tmp_path, f"{{lastN: {last_n}}}")
    code, out, _ = fleet.run("-f", str(path), "--now", NOW, "--max-destroy", f"{percent}%")
    managed = history + 1  # the snapshot this pass takes counts
    asked = max(0, managed - last_n)
    overdue = max(0, history - last_n)  # what lastN kept until now: counted by the guard
    allowed = DestroyLimit(percent=percent).allowed(managed)
    left = len(_snapshots(fleet, "tank/home"))
    if overdue <= allowed:
        assert (code, left) == (EXIT_OK, managed - asked), out
    else:
        assert (code, left) == (EXIT_ERROR, managed), out


def test_the_backlog_a_target_outage_held_on_the_source_is_pruned_without_the_guard(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HOSTS
        + _policy("{lastN: 2}").replace(
            "  retention:",
            "  replication:\n    - {name: offsite, host: backup, root: vault/nas,"
            " protection: resumable}\n  retention:",
        )
    )
    fleet = Fleet()
    hour = "2026-11-26T{:02d}:00:00Z"
    assert fleet.run("-f", str(path), "--now", hour.format(0))[0] == EXIT_OK
    fleet.hosts["backup"].set_unreachable("connection refused")
    for h in range(1, 9):  # eight hourly snapshots the source keeps for the target
        assert fleet.run("-f", str(path), "--now", hour.format(h))[0] == EXIT_ERROR
    assert len(_snapshots(fleet, "tank/home")) == 9
    fleet.hosts["backup"].set_unreachable(None)
    code, out, _ = fleet.run("-f", str(path), "--now", hour.format(9))
    assert code == EXIT_OK, out
    assert "destroy guard" not in out
    assert len(_snapshots(fleet, "tank/home")) == 2


# --- saved plans -------------------------------------------------------------------------------


def test_a_saved_plan_keeps_the_guard_it_was_made_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "{lastN: 2}")
    forced, guarded = tmp_path / "forced.json", tmp_path / "guarded.json"
    fleet = _fleet_with_history()
    assert fleet.run("--dry-run", "-f", str(path), "--now", NOW, "--out", str(guarded))[0] == 1
    code, _, err = fleet.run(
        "--dry-run", "-f", str(path), "--now", NOW, "--force", "--out", str(forced)
    )
    assert code == EXIT_OK, err
    assert '"max_destroy": null' in forced.read_text()
    assert '"max_destroy": "25%"' in guarded.read_text()
    # the guarded plan applies as saved: the snapshot, no destroy, and exit 1 (still withheld)
    code, out, err = fleet.run("-f", str(path), "--plan", str(guarded))
    assert code == EXIT_ERROR and "destroy guard" in out, err
    assert len(_snapshots(fleet)) == 13
    # the forced plan was made before that snapshot: stale now
    code, _, err = fleet.run("-f", str(path), "--plan", str(forced))
    assert code == EXIT_ERROR and "stale" in err
    fleet = _fleet_with_history()
    code, out, err = fleet.run("-f", str(path), "--plan", str(forced))
    assert code == EXIT_OK, out + err
    assert len(_snapshots(fleet)) == 2
    with pytest.raises(SystemExit) as stopped:
        fleet.run("-f", str(path), "--plan", str(forced), "--force")
    assert stopped.value.code == 2
    assert "drop --max-destroy/--force" in capsys.readouterr().err


@pytest.mark.parametrize("value", ['"x"', '"101%"', "7", "true"])
def test_a_saved_plan_whose_limit_is_not_one_is_refused(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, "{lastN: 2}")
    saved = tmp_path / "plan.json"
    fleet = _fleet_with_history()
    fleet.run("--dry-run", "-f", str(path), "--now", NOW, "--out", str(saved))
    text = saved.read_text().replace('"max_destroy": "25%"', f'"max_destroy": {value}')
    saved.write_text(text)
    code, out, err = fleet.run("-f", str(path), "--plan", str(saved))
    assert code == EXIT_ERROR and out == ""
    assert "max_destroy" in err and len(err.splitlines()) == 1, err
    assert len(_snapshots(fleet)) == 12


def test_a_pass_whose_destroys_were_withheld_is_no_success_in_the_metrics(tmp_path: Path) -> None:
    path = _write(tmp_path, "{lastN: 2}")
    metrics = tmp_path / "m.prom"
    fleet = _fleet_with_history()
    argv = ["-f", str(path), "--now", NOW, "--metrics-file", str(metrics)]
    assert fleet.run(*argv, "--lock-dir", str(tmp_path / "locks"))[0] == EXIT_ERROR
    text = metrics.read_text()
    assert 'zfs_reconciler_actions_total{kind="snapshot",policy="home",result="ok"} 1.0' in text
    assert "zfs_reconciler_last_success_timestamp_seconds{" not in text
    # 10 on each of tank/home and tank/home/alice: what lastN 12 kept until now
    assert 'zfs_reconciler_destroys_withheld{policy="home"} 20.0' in text
    assert fleet.run(*argv, "--lock-dir", str(tmp_path / "locks"), "--force")[0] == EXIT_OK
    text = metrics.read_text()
    assert 'zfs_reconciler_last_success_timestamp_seconds{policy="home"}' in text
    assert 'zfs_reconciler_destroys_withheld{policy="home"} 0.0' in text
