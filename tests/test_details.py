"""A plan made from the details `core/details.py` asks for equals the plan made from all of them.

For every pass of random histories (tests/histories.py: scheduled snapshots, writes, retention,
one or two targets, killed passes, cut receives, unreachable hosts, a second policy), the state
the pass observed is planned twice at the pass's `now`: as observed, and with the details
(creation, written, referenced, holds) of every snapshot `needed_details` does not name
forgotten. The needed names are computed from a state whose details are all forgotten, so they
can only depend on names, GUIDs and createtxgs, and then once more with the filesystems' own
properties (resume tokens) known, as the pass does. The plans must be equal, except for
releases of our own holds on snapshots that were not detailed (docs/driver.md: such a hold is
released when retention comes to destroy its snapshot).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection, Iterator, Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from reconciler.core.desired import intents
from reconciler.core.details import needed_details
from reconciler.core.plan import Reason, ReleaseAction
from reconciler.core.planner import plan_intents
from reconciler.core.state import (
    HostState,
    Observed,
    bare,
    completed,
    short_names_by_filesystem,
)
from tests.histories import (
    HOUR,
    Advance,
    Pass,
    PassRecord,
    Scenario,
    Step,
    TargetVariant,
    World,
    faulty_histories,
    histories,
    history_settings,
    manifests_of,
    scenarios,
)

FOREIGN_TAG = "another-backup-tool"


@pytest.fixture(autouse=True)
def _quiet_executor() -> Iterator[None]:
    logger.disable("reconciler")
    yield
    logger.enable("reconciler")


def blank_details(observed: Observed, keep: Mapping[str, Collection[str]]) -> Observed:
    """`observed` with the details of every version not named in `keep` (host → full names)
    forgotten, as a pass that detailed only those sees it (`ZFS.add_details`)."""
    hosts = {}
    for name, host in observed.hosts.items():
        asked = short_names_by_filesystem(keep.get(name, ()))
        filesystems = {
            fs: completed(bare(state), state, asked.get(fs, set()))
            for fs, state in host.filesystems.items()
        }
        hosts[name] = HostState(host=host.host, filesystems=filesystems, error=host.error)
    return Observed(hosts=hosts)


def _without_properties(observed: Observed) -> Observed:
    """What the cheap listing shows: versions by name, GUID and createtxg, nothing else."""
    bare = blank_details(observed, {})
    hosts = {}
    for name, host in bare.hosts.items():
        filesystems = {
            fs: dataclasses.replace(state, written=0, resume_token=None, encrypted=False)
            for fs, state in host.filesystems.items()
        }
        hosts[name] = dataclasses.replace(host, filesystems=filesystems)
    return Observed(hosts=hosts)


def needed_as_a_pass_asks(record: PassRecord) -> dict[str, frozenset[str]]:
    policies = intents(manifests_of(record.scenario))
    first = needed_details(policies, _without_properties(record.observed), record.now)
    known = blank_details(record.observed, first)  # filesystems' properties known now
    second = needed_details(policies, known, record.now)
    return {
        host: first.get(host, frozenset()) | second.get(host, frozenset())
        for host in {*first, *second}
    }


def plan_differences(record: PassRecord) -> list[str]:
    policies = intents(manifests_of(record.scenario))
    needed = needed_as_a_pass_asks(record)
    full = plan_intents(policies, record.observed, record.now)
    partial = plan_intents(policies, blank_details(record.observed, needed), record.now)
    if full == partial:
        return []
    return [
        f"pass at {record.now}: plans differ\nfull:    {full.actions}\npartial: {partial.actions}"
        f"\nconflicts {full.conflicts == partial.conflicts}, "
        f"notices {full.notices == partial.notices}"
    ]


def with_foreign_holds(record: PassRecord, seed: int) -> PassRecord:
    """The record with another tool's hold added to about a third of the snapshots it
    observed, on every host (histories hold only source snapshots)."""
    if seed == 0:
        return record
    pick = random.Random(seed)
    hosts = {}
    for name, host in record.observed.hosts.items():
        filesystems = {}
        for fs, state in host.filesystems.items():
            versions = tuple(
                v._replace(holds=v.holds | {FOREIGN_TAG})
                if v.is_snapshot and pick.random() < 0.3
                else v
                for v in state.versions
            )
            filesystems[fs] = dataclasses.replace(state, versions=versions)
        hosts[name] = dataclasses.replace(host, filesystems=filesystems)
    return dataclasses.replace(record, observed=Observed(hosts=hosts))


def _check(scenario: Scenario, history: Sequence[Step], seed: int) -> None:
    world = World(scenario)
    world.play(history)
    world.settle(2)
    problems = [
        p for record in world.records for p in plan_differences(with_foreign_holds(record, seed))
    ]
    assert problems == []


@history_settings(150)
@given(scenarios(), histories(), st.sampled_from([0, 1, 2, 3]))
def test_a_plan_from_the_needed_details_equals_the_plan_from_all(
    scenario: Scenario, history: list[Step], seed: int
) -> None:
    _check(scenario, history, seed)


@history_settings(100)
@given(scenarios(), faulty_histories(), st.sampled_from([0, 1, 2]))
def test_the_same_after_killed_passes_and_cut_receives(
    scenario: Scenario, history: list[Step], seed: int
) -> None:
    _check(scenario, history, seed)


def test_the_check_can_fail_when_a_needed_detail_is_missing() -> None:
    """Forgetting the details of the newest common snapshot changes the plan: its holds are
    then unknown, so the plan holds it again (the property above is not vacuous)."""
    found = False
    for record in _a_replicating_history().records:
        policies = intents(manifests_of(record.scenario))
        full = plan_intents(policies, record.observed, record.now)
        if full.actions:
            continue
        needed = needed_as_a_pass_asks(record)
        if not any(needed.values()):
            continue
        partial = plan_intents(policies, blank_details(record.observed, {}), record.now)
        found = found or partial != full
    assert found


def _a_replicating_history(passes: int = 3) -> World:
    scenario = Scenario(
        filesystems=("tank/a",),
        selection="a-and-c",
        retention="keep-all",
        targets=(TargetVariant("resumable", "all", "keep-all", False),),
        monthly=False,
    )
    world = World(scenario)
    world.play([Pass()] * passes)
    return world


def _after_a_pass_that_stopped_before_its_releases(*, old_cursor_kept: bool) -> PassRecord:
    """Two hours replicated to t1 (resumable); then the state a pass leaves when it stopped
    after holding the new common snapshot and before releasing the old one: both held on
    both sides, with the old cursor bookmark kept (as the plan orders it: dropped only after
    the releases) or, as an older version could leave it, already gone."""
    world = _a_replicating_history(passes=1)
    world.play([Advance(HOUR), Pass()])
    record = world.records[-1]
    tag = "zr_:frequent:t1"
    old, fs, target_fs = "zr_20261126T000000Z", "tank/a", "vault/nas/tank/a"
    world.hosts["nas"].hold(fs, old, tag)
    world.hosts["b1"].hold(target_fs, old, tag)
    if old_cursor_kept:
        world.hosts["nas"].bookmark(fs, old, f"{old}_t1")
    return dataclasses.replace(record, observed=world.truth())


def test_a_hold_left_on_the_old_common_snapshot_is_found_through_the_old_cursor() -> None:
    record = _after_a_pass_that_stopped_before_its_releases(old_cursor_kept=True)
    needed = needed_as_a_pass_asks(record)
    assert "tank/a@zr_20261126T000000Z" in needed["nas"]
    assert "vault/nas/tank/a@zr_20261126T000000Z" in needed["b1"]
    full = plan_intents(intents(manifests_of(record.scenario)), record.observed, record.now)
    releases = [a for a in full.actions if isinstance(a, ReleaseAction)]
    assert {(a.host, a.snapshot) for a in releases} == {
        ("nas", "@zr_20261126T000000Z"),
        ("b1", "@zr_20261126T000000Z"),
    }
    assert plan_differences(record) == []


def test_without_the_old_cursor_that_hold_waits_for_retention() -> None:
    """The documented limit: nothing names the snapshot, so its hold is not seen (and not
    released) until retention comes to destroy it, which keep-all never does."""
    record = _after_a_pass_that_stopped_before_its_releases(old_cursor_kept=False)
    needed = needed_as_a_pass_asks(record)
    assert "tank/a@zr_20261126T000000Z" not in needed["nas"]
    assert plan_differences(record) != []


def test_the_old_cursor_is_dropped_only_after_the_releases() -> None:
    world = _a_replicating_history(passes=1)
    world.play([Advance(HOUR)])
    world.run_pass()
    plan = world.records[-1].plan
    drop = next(a for a in plan.actions if a.reason is Reason.CURSOR_SUPERSEDED)
    releases = {a.id for a in plan.actions if isinstance(a, ReleaseAction)}
    assert len(releases) == 2 and releases <= set(drop.depends_on)
