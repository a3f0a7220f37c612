"""Property: retiring one target never costs another declared target anything.

After a random history (tests/histories.py) with two targets t1 (on b1) and t2 (on b2), the
plan made with t2 marked `retiring: true` is compared with the plan made without, on the same
observed state:
- every action for t1 (and for the second policy's m1) is the same in both plans;
- t2 gets only releases of its own hold tag and destroys of its own cursor bookmarks
  (`target_retiring`), and nothing on b2 but releases;
- a source destroy that only the retiring plan has never takes a snapshot that t1 still holds,
  nor t1's newest common snapshot without a bookmark of it (guarantee 2 for t1).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.incremental import find_common_base
from reconciler.core.names import hold_tag, parse_cursor_bookmark
from reconciler.core.plan import Action, DestroyAction, Plan, Reason, ReleaseAction
from reconciler.core.planner import plan
from reconciler.core.state import Observed
from reconciler.manifest.loader import Manifests, parse_manifests
from reconciler.zfs.observe import observe_hosts
from tests.histories import (
    FILESYSTEM_SETS,
    RETENTIONS,
    SELECTIONS,
    Scenario,
    Step,
    World,
    histories,
    history_settings,
    target_variants,
)

two_target_scenarios = st.builds(
    Scenario,
    filesystems=st.sampled_from(FILESYSTEM_SETS),
    selection=st.sampled_from(list(SELECTIONS)),
    retention=st.sampled_from(list(RETENTIONS)),
    targets=st.lists(target_variants, min_size=2, max_size=2).map(tuple),
    monthly=st.booleans(),
)
T1_TAG = hold_tag("zr_", "frequent", "t1")
T2_TAG = hold_tag("zr_", "frequent", "t2")


def retiring_t2(scenario: Scenario) -> Manifests:
    documents = [json.loads(text) for text in scenario.manifest_text().split("\n---\n")]
    for document in documents:
        if document["metadata"]["name"] == "frequent":
            document["spec"]["replication"][1]["retiring"] = True
    text = "\n---\n".join(json.dumps(document) for document in documents) + "\n"
    return parse_manifests([("retiring.yaml", text)])


def _key(action: Action) -> Action:
    return replace(action, id=0, depends_on=())


def _of(result: Plan, targets: set[str]) -> Counter[Action]:
    return Counter(_key(a) for a in result.actions if a.target in targets)


@given(two_target_scenarios, histories(min_size=4, max_size=14))
@history_settings(examples=60)
def test_retiring_a_target_never_touches_another(scenario: Scenario, history: list[Step]) -> None:
    world = World(scenario)
    world.play(history)
    observed = observe_hosts(world.hosts)
    declared = plan(world.manifests, observed, world.now)
    retiring = plan(retiring_t2(world.scenario), observed, world.now)
    assert _of(retiring, {"t1", "m1"}) == _of(declared, {"t1", "m1"})
    for action in retiring.actions:
        if action.target != "t2":
            continue
        assert action.reason is Reason.TARGET_RETIRING, action
        if isinstance(action, ReleaseAction):
            assert action.tag == T2_TAG
        else:
            assert isinstance(action, DestroyAction) and action.host == "nas", action
            assert all(
                parse_cursor_bookmark("zr_", "t2", v[1:]) is not None and v[0] == "#"
                for v in action.versions
            ), action
    _t1_keeps_its_newest_common(retiring, declared, observed)


def _t1_keeps_its_newest_common(retiring: Plan, declared: Plan, observed: Observed) -> None:
    before = {
        (a.filesystem, v)
        for a in declared.actions
        if isinstance(a, DestroyAction)
        for v in a.versions
    }
    released = {
        (a.host, a.filesystem, a.snapshot, a.tag)
        for a in retiring.actions
        if isinstance(a, ReleaseAction)
    }
    source = observed.host("nas")
    target = observed.host("b1")
    for action in retiring.actions:
        if (
            not isinstance(action, DestroyAction)
            or action.host != "nas"
            or action.target is not None
        ):
            continue
        state = source.filesystem(action.filesystem)
        assert state is not None
        held = {v.name: v.holds for v in state.snapshots}
        common = None
        if target.reachable:
            replica = target.filesystem(f"vault/nas/{action.filesystem}")
            base = find_common_base(state.versions, replica.versions) if replica else None
            common = base.source.name if base is not None and base.source.is_snapshot else None
        marks = {v.guid for v in state.bookmarks}
        for version in action.versions:
            if (action.filesystem, version) in before:
                continue  # the declared plan destroys it too: not the retirement's doing
            name = version[1:]
            if T1_TAG in held.get(name, frozenset()):
                assert ("nas", action.filesystem, version, T1_TAG) in released, version
            if name == common:
                snapshot = next(v for v in state.snapshots if v.name == name)
                assert snapshot.guid in marks, f"t1's newest common {version} destroyed"
