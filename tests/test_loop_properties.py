"""Property test of the control loop (`reconcile watch`): random interleavings of clock moves,
manifest edits (valid and invalid), host changes, injected faults and restarts converge, and
no pass of the loop ever breaks guarantees 1–5 (product.md §5).

Each example draws a scenario (tests/histories.py), a worker count and a history of loop steps
(tests/loop_histories.py), runs the real `Controller` on in-memory hosts and a fake clock, and
after each step waits until the loop is at rest (no pass running, every wake-up in the future
of the fake clock; a hang fails the example). Every pass the loop finishes is judged by the
checkers of tests/test_properties.py (guarantees 1, 2, 3, 5) and by `pass_violations` here
(guarantee 4: the pass ran the generation the test last put in force; only injected faults
make actions fail). The steps that must start no pass (an invalid edit, a reload that changes
nothing, a host change or fault, the clock stopped one second short of a wake-up) are checked
to start none, the clock set to a wake-up to start one, and the clock jumped back to pass every
policy again. The steps: the clock
moved by minutes to days, to a wake-up or one second short of it, or jumped back; writes,
foreign snapshots and holds made by hand on the source; a target host or the source
unreachable and back; a receive cut; the loop killed after the K-th changing ZFS call of the
passes to come (a new loop is started, as a supervisor would); edits of the manifests (a
target's variant, the source retention, a target added or removed, the second policy added or
removed), invalid edits (they stay until the next valid edit, even across a restart), a fix,
and a stop and restart at rest.

At the end every fault is lifted and the clock moved from wake-up to wake-up until each policy
has passed cleanly; then nothing is left to do, the pass at the next wake-up does only what the
snapshot schedule asks, the replicas hold the source's newest managed snapshot, holds and
cursors sit on the newest common snapshot, and every foreign snapshot and hold is still there.

Examples are derandomized, as in test_properties.py: every run and CI try the same ones. With
`ZFS_RECONCILER_FUZZ=deep` (the variable `make fuzz` sets) 20 times as many run, drawn afresh
each time (the failing example's blob is printed); `ZFS_RECONCILER_FUZZ_EXAMPLES=N` runs N.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger

from reconciler.apply.executor import ActionResult, ActionStatus, ApplyReport
from reconciler.apply.passes import PassResult
from reconciler.core.desired import intents
from reconciler.core.plan import (
    Action,
    DestroyAction,
    Plan,
    Reason,
    RollbackAction,
    SendAction,
    SendMode,
    SnapshotAction,
)
from reconciler.loop.state import LoopState, Outcome, PassSummary
from reconciler.zfs.observe import observe_hosts
from tests.histories import (
    DAY,
    SOURCE,
    START,
    Advance,
    CutReceive,
    PassRecord,
    Reachable,
    Scenario,
    TargetVariant,
    Unreachable,
    Write,
    manifests_of,
    scenarios,
)
from tests.loop_histories import (
    HOST_STEPS,
    CutAfterWrites,
    Fix,
    InvalidEdit,
    JumpBack,
    JustBeforeWakeup,
    KillMidPass,
    LoopPass,
    LoopRun,
    LoopStep,
    Restart,
    Retention,
    SourceReachable,
    SourceUnreachable,
    ToggleMonthly,
    ToWakeup,
    loop_histories,
)
from tests.manifest_strategies import DEEP, DEEP_FACTOR
from tests.test_properties import (
    common_base_violations,
    foreign_state_violations,
    foreign_violations,
    needed_snapshot_violations,
    overwrite_violations,
    protection_state_violations,
    replication_violations,
    unobserved_host_violations,
)

EXAMPLES = 250
A = TypeVar("A", bound=Action)
QUIET_STEPS = (
    InvalidEdit,
    JustBeforeWakeup,
    SourceUnreachable,
    SourceReachable,
    KillMidPass,
    *HOST_STEPS,
)


def _settings(examples: int) -> settings:
    override = os.environ.get("ZFS_RECONCILER_FUZZ_EXAMPLES")
    count = int(override) if override else examples * (DEEP_FACTOR if DEEP else 1)
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=not DEEP,
        database=None,
        print_blob=DEEP,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(autouse=True)
def _quiet_loop() -> Iterator[None]:
    """The loop logs every pass and the executor every action; none of it is needed here."""
    logger.disable("reconciler")
    yield
    logger.enable("reconciler")


# --- checkers: each returns the violations it finds ------------------------------------------


def failure_violations(record: PassRecord) -> list[str]:
    """Only injected faults make actions fail: a failed action is a send to a host whose next
    receive was set to break, at most one per such host (with jobs > 1 which send of a pass
    meets the cut first is not fixed, so unlike `unexplained_failures` no order is assumed)."""
    found: list[str] = []
    armed = set(record.armed)
    for result in record.report.failed:
        action = next((a for a in record.plan.actions if a.id == result.action_id), None)
        if isinstance(action, SendAction) and action.target_host in armed:
            armed.discard(action.target_host)
            continue
        found.append(f"action {result.action_id} failed: {result.message}")
    return found


def pass_violations(done: LoopPass) -> list[str]:
    """Guarantees 1–5 on one pass of the loop; the violations, named by pass."""
    summary, record = done.summary, done.record
    found: list[str] = []
    # 4: the pass ran the manifests the test last put in force, and nothing else
    if done.expected is None:
        found.append(f"ran generation {summary.generation} while no valid manifests were loaded")
    elif summary.generation != done.expected:
        found.append(f"ran generation {summary.generation}, not {done.expected} in force")
    if record is None or done.result is None:
        found.append(f"got no result: {list(summary.errors)}")
    else:
        names = [intent.name for intent in done.result.policies]
        if names != [summary.policy]:
            found.append(f"planned for policies {names}")
        found += foreign_violations(record.plan, record.scenario)  # 1
        for pair in record.scenario.pairs():
            if pair.policy == summary.policy:
                found += common_base_violations(record, pair)  # 2
                found += needed_snapshot_violations(record, pair)  # 2
                found += overwrite_violations(record, pair)  # 3
        found += unobserved_host_violations(record)  # 5
        found += failure_violations(record)
    return [f"pass {summary.pass_id} of {summary.policy} at {summary.now}: {v}" for v in found]


def step_violations(
    step: LoopStep, run: LoopRun, before: LoopState | None, passes: Sequence[LoopPass]
) -> list[str]:
    """What one step did to the loop: the manifests in force and their validity as the file
    says; no pass from an invalid edit, a reload that changes nothing, a host change or a clock
    one second short of a wake-up; a pass when the clock reaches one; no crashed pass."""
    state = run.state()
    found: list[str] = []
    if state.generation != run.generation:
        found.append(f"generation {state.generation} in force, not {run.generation}")
    if state.manifests_valid != (run.invalid is None):
        found.append(f"manifests_valid is {state.manifests_valid}, the file says otherwise")
    if run.invalid is not None and not state.manifest_errors:
        found.append("the manifests are invalid but no error is reported")
    quiet = isinstance(step, QUIET_STEPS) or (
        isinstance(step, Fix) and before is not None and before.generation is not None
    )
    if quiet and passes:
        found.append(f"{len(passes)} passes started by {step}")
    if isinstance(step, ToWakeup) and before is not None and before.policies and not passes:
        found.append("no pass when the clock reached a wake-up")
    for name, policy in state.policies.items():
        reasons = policy.next_wakeup.reasons if policy.next_wakeup else ()
        if any("crash" in reason for reason in reasons):
            found.append(f"a pass of {name} crashed: {policy.error}")
    return found


def convergence_violations(run: LoopRun, settled: Sequence[LoopPass]) -> list[str]:
    """After the faults are lifted: each policy's last pass was clean, nothing is left to do
    now, and the pass at the next wake-up does nothing but what the snapshot schedule asks."""
    found: list[str] = []
    last = {p.summary.policy: p.summary for p in settled}
    for name in sorted(run.state().policies):
        summary = last.get(name)
        if summary is None:
            found.append(f"{name} did not pass after the faults were lifted")
        elif summary.outcome is not Outcome.OK:
            found.append(f"{name}'s last pass was {summary.outcome.value}: {list(summary.errors)}")
    preview = run.preview()
    if not preview.is_empty:
        found.append(f"still to do at rest: {[a.kind.value for a in preview.actions]}")
    for done in run.play(ToWakeup()):
        summary, plan = done.summary, done.result.plan if done.result else None
        if summary.outcome is not Outcome.OK:
            found.append(f"pass {summary.pass_id} of {summary.policy}: {summary.outcome.value}")
        scheduled = plan is not None and any(isinstance(a, SnapshotAction) for a in plan.actions)
        if plan is not None and not plan.is_empty and not scheduled:
            kinds = [a.kind.value for a in plan.actions]
            found.append(f"pass {summary.pass_id} of {summary.policy} ({summary.why}): {kinds}")
    return found


def final_violations(run: LoopRun) -> list[str]:
    """What the hosts hold once converged (test_properties.py's end-of-history checkers)."""
    return (
        replication_violations(run.world)
        + protection_state_violations(run.world)
        + foreign_state_violations(run.world)
    )


# --- the property -------------------------------------------------------------------------------


def run_history(scenario: Scenario, jobs: int, history: Sequence[LoopStep]) -> LoopRun:
    """Play the history on a loop and settle it, checking every step and pass on the way;
    the loop is stopped (and its workers joined) whatever happens."""
    run = LoopRun(scenario, jobs=jobs)
    try:
        run.start()
        run.wait_quiescent()
        checked = _check_passes(run, 0, "after the start")
        for index, step in enumerate(history):
            before = run.state()
            passes = run.play(step)
            where = f"after step {index}: {step}"
            assert step_violations(step, run, before, passes) == [], where
            assert foreign_state_violations(run.world) == [], where  # 1, on the hosts
            checked = _check_passes(run, checked, where)
        settled = run.settle()
        _check_passes(run, checked, "while settling")
        assert convergence_violations(run, settled) == []
        assert final_violations(run) == []
        return run
    finally:
        run.stop()


def _check_passes(run: LoopRun, checked: int, where: str) -> int:
    """Check the passes finished since the first `checked`; how many are checked now."""
    assert run.problems == [], where
    for done in run.passes[checked:]:
        assert pass_violations(done) == [], where
    return len(run.passes)


@_settings(EXAMPLES)
@given(scenarios(), st.sampled_from([1, 2]), loop_histories())
def test_the_loop_converges_and_keeps_guarantees_1_to_5_under_any_history(
    scenario: Scenario, jobs: int, history: list[LoopStep]
) -> None:
    run_history(scenario, jobs, history)


# --- histories worth keeping --------------------------------------------------------------------

KEEP_ALL_RESUMABLE = TargetVariant("resumable", "mostRecent", "keep-all", allow_rollback=False)
TWO_POLICIES = Scenario(("tank/a", "tank/c"), "a-and-c", "grid", (KEEP_ALL_RESUMABLE,), True)


def test_an_invalid_edit_a_restart_under_it_and_a_fix() -> None:
    run = run_history(
        TWO_POLICIES,
        2,
        [
            Advance(900),
            InvalidEdit("interval"),
            Advance(900),  # the last valid generation keeps running
            Restart(),  # a new loop with an invalid file runs nothing
            Advance(900),
            ToWakeup(),
            Retention("last4"),  # a valid edit: in force at once
            Fix(),
        ],
    )
    assert run.restarts == 1


def test_faults_under_the_loop_then_a_restart() -> None:
    run_history(
        TWO_POLICIES,
        1,
        [
            Write(1, 1 << 16),
            CutReceive(0, 100),
            ToWakeup(),
            Unreachable(0),
            Advance(3600),
            ToWakeup(),
            ToggleMonthly(),
            Restart(),
            Reachable(0),
            JustBeforeWakeup(),
            ToWakeup(),
        ],
    )


def test_a_kill_mid_pass_a_clock_jumped_back_and_a_source_gone() -> None:
    run = run_history(
        TWO_POLICIES,
        2,
        [
            CutAfterWrites(0, 1000),
            KillMidPass(2),
            ToWakeup(),  # the send is cut and the loop killed after it; a new loop resumes
            JumpBack(DAY),  # every wake-up timed again on the new clock
            SourceUnreachable(),
            ToWakeup(),
            Write(0, 4096),
            SourceReachable(),
            ToWakeup(),
        ],
    )
    assert run.kills == 1


# --- the checkers can fail ----------------------------------------------------------------------


def _summary(policy: str = "frequent", generation: str = "g1") -> PassSummary:
    return PassSummary(
        pass_id=1,
        policy=policy,
        generation=generation,
        started=START,
        seconds=0.0,
        now=START,
        why=("test",),
        actions=0,
        failed=0,
        conflicts=0,
        unobserved=(),
        outcome=Outcome.OK,
    )


def _action(cls: type[A], **fields: Any) -> A:
    fields.setdefault("host", SOURCE)
    return cls(
        id=fields.pop("id", 1),
        policy="frequent",
        target="t1",
        reason=Reason.RETENTION_NOT_KEPT,
        message="test",
        **fields,
    )


def test_checkers_flag_a_pass_that_breaks_a_guarantee() -> None:
    run = LoopRun(TWO_POLICIES, jobs=1)
    truth = run.truth()
    policies = intents(manifests_of(TWO_POLICIES), ["frequent"])
    empty = Plan(now=START)
    record = PassRecord(TWO_POLICIES, START, truth, truth, empty, empty, ApplyReport(), truth)
    clean = LoopPass(_summary(), PassResult(policies, truth, empty), "g1", record)

    def with_plan(*actions: Action, report: ApplyReport | None = None, **fields: Any) -> LoopPass:
        plan = Plan(now=START, actions=actions)
        changed = replace(record, plan=plan, executed=plan, report=report or ApplyReport())
        return replace(clean, record=replace(changed, **fields))

    assert pass_violations(clean) == []
    # 4: another generation than the one in force, or none in force at all
    assert pass_violations(replace(clean, expected="g2")) != []
    assert pass_violations(replace(clean, expected=None)) != []
    # 1: a foreign snapshot destroyed
    destroy = _action(DestroyAction, filesystem="tank/a", versions=("@manual-1",))
    assert any("foreign" in v for v in pass_violations(with_plan(destroy)))
    # 3: a target rolled back without allowRollback
    target = TWO_POLICIES.pairs()[0].target_filesystem
    rollback = _action(RollbackAction, host="b1", filesystem=target, snapshot="@x")
    assert any("rolls back" in v for v in pass_violations(with_plan(rollback)))
    # 5: an action on a host the pass could not observe
    run.world.hosts[SOURCE].set_unreachable("down")
    down = observe_hosts(run.world.hosts)
    assert any("unobserved" in v for v in pass_violations(with_plan(destroy, observed=down)))
    # an action failing with no fault injected; a send cut on purpose is excused, once per host
    send = _action(
        SendAction,
        id=2,
        filesystem="tank/a",
        target_host="b1",
        target_filesystem=target,
        mode=SendMode.FULL,
        from_version=None,
        to_snapshot="@zr_x",
        delivers=("@zr_x",),
    )
    cut = ActionResult(2, ActionStatus.FAILED, "cut")
    assert any("failed" in v for v in pass_violations(with_plan(send, report=ApplyReport((cut,)))))
    armed = with_plan(send, report=ApplyReport((cut,)), armed=frozenset({"b1"})).record
    assert armed is not None and failure_violations(armed) == []
    twice = ApplyReport((cut, replace(cut, action_id=3)))
    both = with_plan(send, replace(send, id=3), report=twice, armed=frozenset({"b1"})).record
    assert both is not None and failure_violations(both) != []


def test_checkers_flag_a_step_that_passes_when_it_must_not_and_no_convergence() -> None:
    run = LoopRun(TWO_POLICIES, jobs=1)
    try:
        run.start()
        state = run.wait_quiescent()
        extra = LoopPass(_summary(), None, run.generation, None)
        assert step_violations(InvalidEdit("interval"), run, state, [extra]) != []
        assert step_violations(JustBeforeWakeup(), run, state, [extra]) != []
        assert step_violations(ToWakeup(), run, state, []) != []
        assert pass_violations(extra) != []  # no result
        run.world.hosts["b1"].set_unreachable("down")
        run.world.unreachable.add("b1")
        run.world.hosts[SOURCE].write("tank/a", 1 << 16)
        run.play(ToWakeup())
        assert convergence_violations(run, run.passes[-1:]) != []
        assert final_violations(run) != []
    finally:
        run.stop()
