"""Property tests of the whole engine: random histories played on in-memory ZFS hosts.

Each test draws a scenario and a history (tests/histories.py), plays it pass by pass
(observe → plan → execute, sometimes killed after K actions) and checks one property from
product.md §5/§6 and docs/design.md on every pass or after the history. The checkers return
lists of violations so a failure names what went wrong; the checker tests at the end show
each checker can fail. Examples are derandomized, so every run (and CI) tries the same ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import given
from loguru import logger

from reconciler.apply.executor import ActionStatus, ApplyReport
from reconciler.core.names import hold_tag, parse_cursor_bookmark, parse_hold_tag, snapshot_time
from reconciler.core.plan import (
    Action,
    DestroyAction,
    Plan,
    Reason,
    ReleaseAction,
    RollbackAction,
    SendAction,
)
from reconciler.core.state import FilesystemState, Observed, Version
from reconciler.zfs.observe import observe_hosts
from tests.histories import (
    PREFIXES,
    SOURCE,
    START,
    Advance,
    CutReceive,
    KilledPass,
    Pair,
    Pass,
    PassRecord,
    Reconfigure,
    Scenario,
    Step,
    TargetVariant,
    Unreachable,
    World,
    Write,
    faulty_histories,
    histories,
    history_settings,
    scenarios,
)

RETENTION_REASONS = {
    Reason.RETENTION_GRID_EXPIRED,
    Reason.RETENTION_GRID_BUCKET_FULL,
    Reason.RETENTION_NOT_KEPT,
}
PASSES_TO_CONVERGE = 4
A = TypeVar("A", bound=Action)


@pytest.fixture(autouse=True)
def _quiet_executor() -> Iterator[None]:
    """The executor logs one line per action; thousands of passes need none of them."""
    logger.disable("reconciler")
    yield
    logger.enable("reconciler")


def played(scenario: Scenario, history: Sequence[Step]) -> World:
    world = World(scenario)
    world.play(history)
    return world


# --- reading observed state ------------------------------------------------------------------


def _filesystem(observed: Observed, host: str, name: str) -> FilesystemState | None:
    return observed.host(host).filesystem(name)


def newest_common(observed: Observed, pair: Pair) -> Version | None:
    """The newest target snapshot (createtxg) whose GUID the source has as snapshot or bookmark."""
    source = _filesystem(observed, SOURCE, pair.filesystem)
    target = _filesystem(observed, pair.target_host, pair.target_filesystem)
    if source is None or target is None:
        return None
    guids = {v.guid for v in source.versions}
    return next((v for v in reversed(target.snapshots) if v.guid in guids), None)


def _has_guid(state: FilesystemState | None, guid: int, *, snapshots_only: bool) -> bool:
    if state is None:
        return False
    versions = state.snapshots if snapshots_only else state.versions
    return any(v.guid == guid for v in versions)


# --- checkers: each returns the violations it finds ------------------------------------------


def convergence_violations(settled: Sequence[PassRecord]) -> list[str]:
    """Fault-free passes at one `now` end in an empty plan, and none of their actions fails."""
    found: list[str] = []
    if not settled[-1].plan.is_empty:
        kinds = [a.kind.value for a in settled[-1].plan.actions]
        found.append(f"no empty plan after {len(settled)} passes; last plans {kinds}")
    for index, record in enumerate(settled, 1):
        for result in record.report.results:
            if result.status in (ActionStatus.FAILED, ActionStatus.SKIPPED):
                found.append(f"settling pass {index}: action {result.action_id}: {result.message}")
    return found


def conflict_violations(records: Sequence[PassRecord]) -> list[str]:
    """The histories never write to a target: no pass may see a conflict or plan a rollback."""
    found: list[str] = []
    for record in records:
        found += [
            f"conflict {c.kind.value} on {c.target_filesystem}" for c in record.plan.conflicts
        ]
        found += [
            f"rollback of {a.filesystem} on {a.host}"
            for a in record.plan.actions
            if isinstance(a, RollbackAction)
        ]
    return found


def foreign_violations(plan: Plan, scenario: Scenario) -> list[str]:
    """Guarantee 1 in a plan: destroys and releases name only what the policy owns."""
    found: list[str] = []
    for action in plan.actions:
        prefix = PREFIXES[action.policy]
        if isinstance(action, DestroyAction):
            targets = scenario.target_names(action.policy)
            found += [
                f"action {action.id} destroys foreign {action.filesystem}{version}"
                for version in action.versions
                if not _owned_version(prefix, targets, version)
            ]
        elif isinstance(action, ReleaseAction):
            parsed = parse_hold_tag(action.tag)
            if parsed is None or parsed[:2] != (prefix, action.policy):
                found.append(f"action {action.id} releases foreign hold {action.tag}")
    return found


def _owned_version(prefix: str, targets: Sequence[str], version: str) -> bool:
    name = version[1:]
    if version.startswith("@"):
        return snapshot_time(prefix, name) is not None
    return any(parse_cursor_bookmark(prefix, target, name) is not None for target in targets)


def foreign_state_violations(world: World) -> list[str]:
    """Guarantee 1 on the hosts: foreign snapshots and holds the history left are all there."""
    truth = world.truth()
    found: list[str] = []
    for fs, name in sorted(world.foreign_snapshots):
        if not _has_name(_filesystem(truth, SOURCE, fs), name):
            found.append(f"foreign snapshot {fs}@{name} is gone")
    for fs, name, tag in sorted(world.foreign_holds):
        state = _filesystem(truth, SOURCE, fs)
        held = state is not None and any(v.name == name and tag in v.holds for v in state.snapshots)
        if not held:
            found.append(f"foreign hold {tag} on {fs}@{name} is gone")
    return found


def _has_name(state: FilesystemState | None, name: str) -> bool:
    return state is not None and any(v.name == name for v in state.snapshots)


def common_base_violations(record: PassRecord, pair: Pair) -> list[str]:
    """Guarantee 2: the newest common snapshot survives the pass (or a bookmark of it on the
    source), unless the pass made a newer common snapshot."""
    before = newest_common(record.truth_before, pair)
    if before is None:
        return []
    after = newest_common(record.truth_after, pair)
    target = _filesystem(record.truth_after, pair.target_host, pair.target_filesystem)
    source = _filesystem(record.truth_after, SOURCE, pair.filesystem)
    kept = _has_guid(target, before.guid, snapshots_only=True) and _has_guid(
        source, before.guid, snapshots_only=False
    )
    if kept or (after is not None and after.createtxg > before.createtxg):
        return []
    what = "no common snapshot" if after is None else f"only the older @{after.name}"
    return [
        f"{pair.filesystem} → {pair.target_host}:{pair.target_filesystem}: newest common "
        f"@{before.name} lost; {what} remains"
    ]


def needed_snapshot_violations(record: PassRecord, pair: Pair) -> list[str]:
    """Guarantee 2, second half: a managed source snapshot newer than the newest common one
    is destroyed only once the target has it — never while the target cannot be observed
    (any protection), and, for a target that wants every snapshot, only if it arrived in the
    same pass (protection not `none`)."""
    base = newest_common(record.truth_before, pair)
    source = _filesystem(record.truth_before, SOURCE, pair.filesystem)
    if base is None or source is None:
        return []
    unobserved = not record.observed.host(pair.target_host).reachable
    if not unobserved and (pair.protection == "none" or not pair.keeps_all):
        return []
    base_txg = next(v.createtxg for v in source.versions if v.guid == base.guid)
    after = _filesystem(record.truth_after, SOURCE, pair.filesystem)
    target = _filesystem(record.truth_after, pair.target_host, pair.target_filesystem)
    found: list[str] = []
    for version in source.snapshots:
        if version.createtxg <= base_txg or snapshot_time(pair.prefix, version.name) is None:
            continue
        if _has_guid(after, version.guid, snapshots_only=True):
            continue
        if unobserved or not _has_guid(target, version.guid, snapshots_only=True):
            found.append(
                f"{pair.filesystem}@{version.name} destroyed before {pair.target} had it"
                + (" (target unobserved)" if unobserved else "")
            )
    return found


def unobserved_host_violations(record: PassRecord) -> list[str]:
    """Guarantee 5: a host the pass could not observe gets no action at all."""
    down = {name for name, state in record.observed.hosts.items() if not state.reachable}
    found: list[str] = []
    for action in record.plan.actions:
        hosts = {action.host}
        if isinstance(action, SendAction):
            hosts.add(action.target_host)
        if hosts & down:
            found.append(f"action {action.id} ({action.kind.value}) on unobserved {hosts & down}")
    return found


def overwrite_violations(record: PassRecord, pair: Pair) -> list[str]:
    """Guarantee 3 for a target without allowRollback: no rollback, no forced receive, no
    destroy of target snapshots newer than the common base, no destroy but retention's."""
    if pair.allow_rollback:
        return []
    base = newest_common(record.truth_before, pair)
    target = _filesystem(record.truth_before, pair.target_host, pair.target_filesystem)
    txgs = {v.name: v.createtxg for v in target.snapshots} if target else {}
    found: list[str] = []
    for action in _pair_actions(record.plan, pair):
        if isinstance(action, RollbackAction):
            found.append(f"action {action.id} rolls back {action.filesystem}")
        elif isinstance(action, SendAction) and action.receive_options.force:
            found.append(f"action {action.id} receives into {action.target_filesystem} with -F")
        elif isinstance(action, DestroyAction) and action.filesystem == pair.target_filesystem:
            if action.reason not in RETENTION_REASONS:
                found.append(f"action {action.id} destroys on the target for {action.reason}")
            for version in action.versions:
                txg = txgs.get(version[1:])
                if txg is not None and (base is None or txg > base.createtxg):
                    found.append(f"action {action.id} destroys target-only {version}")
    return found


def _pair_actions(plan: Plan, pair: Pair) -> Iterator[Action]:
    for action in plan.actions:
        ours = action.policy == pair.policy and action.target == pair.target
        if ours and (action.host == pair.target_host or isinstance(action, SendAction)):
            yield action


def unexplained_failures(record: PassRecord) -> list[str]:
    """A failed action must be a receive broken on purpose: the first send that ran to a host
    whose next receive was set to break."""
    armed, excused = set(record.armed), set()
    for action in record.executed.actions:
        result = record.report.result(action.id)
        ran = result is not None and result.status is not ActionStatus.SKIPPED
        if isinstance(action, SendAction) and ran and action.target_host in armed:
            armed.discard(action.target_host)
            excused.add(action.id)
    return [
        f"action {result.action_id} failed: {result.message}"
        for result in record.report.failed
        if result.action_id not in excused
    ]


def replication_violations(world: World) -> list[str]:
    """After convergence each target has the source's newest managed snapshot, and every
    snapshot it shares with the source (by GUID) carries the same data."""
    truth = world.truth()
    source_host, found = world.hosts[SOURCE], []
    for pair in world.scenario.pairs():
        source = _filesystem(truth, SOURCE, pair.filesystem)
        target = _filesystem(truth, pair.target_host, pair.target_filesystem)
        where = f"{pair.target_host}:{pair.target_filesystem}"
        if source is None or target is None:
            found.append(f"{where} or its source is missing")
            continue
        by_guid = {v.guid: v for v in source.snapshots}
        target_model = world.hosts[pair.target_host]
        for version in target.snapshots:
            mine = by_guid.get(version.guid)
            if mine is None:
                continue
            sent = source_host.fingerprint(f"{pair.filesystem}@{mine.name}")
            received = target_model.fingerprint(f"{pair.target_filesystem}@{version.name}")
            if sent != received:
                found.append(f"{where}@{version.name} differs from its source")
        managed = [v for v in source.snapshots if snapshot_time(pair.prefix, v.name) is not None]
        if managed and not _has_guid(target, managed[-1].guid, snapshots_only=True):
            found.append(f"{where} lacks the newest managed snapshot @{managed[-1].name}")
    return found


def protection_state_violations(world: World, *, none_has_no_cursor: bool = True) -> list[str]:
    """After convergence (product §6, docs/design.md "Protection"): our hold of a pair sits
    only on its newest common snapshot, on both sides, and only for `resumable`; each pair
    with protection `resumable` or `incremental` has exactly one cursor bookmark on the source,
    with the GUID of the newest common snapshot, and (with `none_has_no_cursor`) a pair with
    `none` has none."""
    truth = world.truth()
    found: list[str] = []
    for pair in world.scenario.pairs():
        common = newest_common(truth, pair)
        tag = hold_tag(pair.prefix, pair.policy, pair.target)
        due = {common.name} if common is not None and pair.protection == "resumable" else set()
        for host, name in (
            (SOURCE, pair.filesystem),
            (pair.target_host, pair.target_filesystem),
        ):
            state = _filesystem(truth, host, name)
            held = {v.name for v in state.snapshots if tag in v.holds} if state else set()
            if held != due:
                found.append(f"{host}:{name}: {tag} holds {sorted(held)}, expected {sorted(due)}")
        source = _filesystem(truth, SOURCE, pair.filesystem)
        cursors = [
            v
            for v in (source.bookmarks if source else ())
            if parse_cursor_bookmark(pair.prefix, pair.target, v.name) is not None
        ]
        if pair.protection == "none" and not none_has_no_cursor:
            continue
        wanted = common is not None and pair.protection != "none"
        expected = [common.guid] if wanted and common is not None else []
        if [v.guid for v in cursors] != expected:
            names = [v.name for v in cursors]
            found.append(
                f"{pair.filesystem}: cursors of {pair.target} ({pair.protection}) are {names}"
            )
    return found


# --- the properties ---------------------------------------------------------------------------


@history_settings(120)
@given(scenarios(), histories())
def test_convergence_after_any_history(scenario: Scenario, history: list[Step]) -> None:
    world = played(scenario, history)
    settled = world.settle(PASSES_TO_CONVERGE)
    assert convergence_violations(settled) == []
    assert conflict_violations(world.records) == []


@history_settings(120)
@given(scenarios(), histories())
def test_idempotence_a_successful_pass_leaves_nothing_to_do(
    scenario: Scenario, history: list[Step]
) -> None:
    world = played(scenario, history)
    world.settle(PASSES_TO_CONVERGE)
    for record in world.records:
        if record.replan is not None:
            kinds = [a.kind.value for a in record.replan.actions]
            assert record.replan.is_empty, f"at {record.now}, after a clean pass: {kinds}"


@history_settings(120)
@given(scenarios(), histories())
def test_guarantee_1_nothing_foreign_is_destroyed_or_released(
    scenario: Scenario, history: list[Step]
) -> None:
    world = played(scenario, history)
    world.settle(PASSES_TO_CONVERGE)
    for record in world.records:
        assert foreign_violations(record.plan, record.scenario) == []
    assert foreign_state_violations(world) == []


@history_settings(120)
@given(scenarios(), histories())
def test_guarantee_2_the_newest_common_snapshot_survives(
    scenario: Scenario, history: list[Step]
) -> None:
    world = played(scenario, history)
    world.settle(PASSES_TO_CONVERGE)
    for record in world.records:
        for pair in record.scenario.pairs():
            assert common_base_violations(record, pair) == []
            assert needed_snapshot_violations(record, pair) == []


@history_settings(120)
@given(scenarios(), histories())
def test_guarantee_3_no_target_is_overwritten_unasked(
    scenario: Scenario, history: list[Step]
) -> None:
    world = played(scenario, history)
    world.settle(PASSES_TO_CONVERGE)
    for record in world.records:
        for pair in record.scenario.pairs():
            assert overwrite_violations(record, pair) == []


@history_settings(60)
@given(scenarios(), histories())
def test_guarantee_5_no_action_on_a_host_that_cannot_be_observed(
    scenario: Scenario, history: list[Step]
) -> None:
    world = played(scenario, history)
    for record in world.records:
        assert unobserved_host_violations(record) == []


@history_settings(120)
@given(scenarios(), faulty_histories())
def test_interrupted_apply_converges(scenario: Scenario, history: list[Step]) -> None:
    world = played(scenario, history)
    settled = world.settle(PASSES_TO_CONVERGE)
    assert convergence_violations(settled) == []
    assert conflict_violations(world.records) == []


@history_settings(80)
@given(scenarios(), faulty_histories())
def test_only_injected_faults_make_actions_fail(scenario: Scenario, history: list[Step]) -> None:
    world = played(scenario, history)
    for record in world.records:
        assert unexplained_failures(record) == []


@history_settings(100)
@given(scenarios(), histories())
def test_converged_holds_and_cursors_sit_only_on_the_newest_common_snapshot(
    scenario: Scenario, history: list[Step]
) -> None:
    world = played(scenario, history)
    world.settle(PASSES_TO_CONVERGE)
    assert protection_state_violations(world) == []


@history_settings(120)
@given(scenarios(), histories())
def test_replicated_data_is_right_after_convergence(
    scenario: Scenario, history: list[Step]
) -> None:
    world = played(scenario, history)
    world.settle(PASSES_TO_CONVERGE)
    assert replication_violations(world) == []


# --- failures found once, kept as explicit histories ---------------------------------------------

KEEP_ALL_RESUMABLE = TargetVariant("resumable", "mostRecent", "keep-all", allow_rollback=False)
ONE_FILESYSTEM = Scenario(("tank/a",), "a-and-c", "keep-all", (KEEP_ALL_RESUMABLE,), False)


def test_switching_a_target_to_protection_none_drops_its_cursor() -> None:
    world = played(
        ONE_FILESYSTEM,
        [Pass(), Reconfigure(0, replace(KEEP_ALL_RESUMABLE, protection="none"))],
    )
    world.settle(PASSES_TO_CONVERGE)
    assert protection_state_violations(world) == []


def test_an_interrupted_initial_receive_resumes_when_newer_snapshots_are_due() -> None:
    world = played(ONE_FILESYSTEM, [CutReceive(0, 1), Pass(), Advance(900)])
    settled = world.settle(PASSES_TO_CONVERGE)
    assert convergence_violations(settled) == []
    assert conflict_violations(world.records) == []


# --- the checkers can fail --------------------------------------------------------------------


def _record(world: World, before: Observed, plan: Plan | None = None) -> PassRecord:
    """A pass record around whatever the test did to the hosts since `before`."""
    empty = Plan(now=world.now)
    return PassRecord(
        world.scenario,
        world.now,
        before,
        before,
        plan or empty,
        plan or empty,
        ApplyReport(),
        world.truth(),
    )


def _act(cls: type[A], **fields: Any) -> A:
    fields.setdefault("host", SOURCE)
    fields.setdefault("policy", "frequent")
    fields.setdefault("target", "t1")
    return cls(id=0, reason=Reason.RETENTION_NOT_KEPT, message="test", **fields)


def test_checkers_flag_foreign_destroys_and_releases() -> None:
    destroy = _act(DestroyAction, filesystem="tank/a", versions=("@manual-1", "#keep_t1"))
    release = _act(ReleaseAction, filesystem="tank/a", snapshot="@zr_x", tag="keep-1")
    plan = Plan(now=START, actions=(destroy, release))
    assert len(foreign_violations(plan, ONE_FILESYSTEM)) == 3


def test_checkers_flag_a_lost_common_snapshot_and_a_lost_needed_one() -> None:
    world = played(ONE_FILESYSTEM, [Pass(), Advance(900), Pass()])
    source, target = world.hosts[SOURCE], world.hosts["b1"]
    before = world.truth()
    pair = ONE_FILESYSTEM.pairs()[0]
    common = newest_common(before, pair)
    assert common is not None
    target.release(pair.target_filesystem, common.name, "zr_:frequent:t1")
    target.destroy(pair.target_filesystem, ["@" + common.name])
    assert common_base_violations(_record(world, before), pair) != []
    world.step(Unreachable(0))
    source.snapshot(["tank/a"], "zr_20261126T003000Z")
    with_snapshot = world.truth()
    source.destroy("tank/a", ["@zr_20261126T003000Z"])
    record = replace(_record(world, with_snapshot), observed=observe_hosts(world.hosts))
    assert needed_snapshot_violations(record, pair) != []


def test_checkers_flag_rollbacks_forced_receives_and_actions_on_unobserved_hosts() -> None:
    world = played(ONE_FILESYSTEM, [Pass(), Unreachable(0)])
    pair = ONE_FILESYSTEM.pairs()[0]
    rollback = _act(RollbackAction, host="b1", filesystem=pair.target_filesystem, snapshot="@x")
    record = _record(world, world.truth(), Plan(now=world.now, actions=(rollback,)))
    assert overwrite_violations(record, pair) != []
    assert conflict_violations([record]) != []
    unobserved = replace(record, observed=observe_hosts(world.hosts))
    assert unobserved_host_violations(unobserved) != []


def test_checkers_flag_unexplained_failures_and_no_convergence() -> None:
    world = World(ONE_FILESYSTEM)
    world.step(KilledPass(0))
    assert convergence_violations(world.records) != []
    world.step(Write(1, 1 << 16))
    world.step(CutReceive(0, 10))
    world.step(Pass())
    assert world.records[-1].report.failed
    assert unexplained_failures(world.records[-1]) == []
    assert unexplained_failures(replace(world.records[-1], armed=frozenset())) != []


def test_checkers_flag_stale_replicas_and_stray_holds() -> None:
    world = played(ONE_FILESYSTEM, [Pass(), Advance(900), Pass()])
    source = world.hosts[SOURCE]
    state = source.observe().filesystem("tank/a")
    assert state is not None
    source.hold("tank/a", state.snapshots[0].name, "zr_:frequent:t1")
    source.snapshot(["tank/a"], "zr_20261126T003000Z")
    assert replication_violations(world) != []
    assert protection_state_violations(world) != []
