"""Random histories for the control loop's property test: steps, strategies, and `LoopRun`,
which plays a history on the real `Controller` (in-memory ZFS hosts, a fake clock).

Owned here: the loop's history steps (clock moves and jumps, manifest edits valid and invalid,
the source unreachable, a kill mid-pass, restarts; the host steps of tests/histories.py are
reused as they are), the hypothesis strategies that draw them, and `LoopRun`, which wires a
`Controller` to a `World` of tests/histories.py (its hosts, its foreign snapshots and holds, its
cuts, its scenario = the manifests on disk) and records every pass the loop finishes as a
`LoopPass` holding a `PassRecord`, so that the checkers of tests/test_properties.py judge loop
passes as they judge CLI passes. Used by tests/test_loop_properties.py, which states the
properties.

How a pass is recorded: the loop's `lock` hook (held around each applying pass, observation
to last action) takes the hosts' truth before and after the pass; `on_pass` (after the pass,
same thread) adds what the pass observed, planned and did. The scenarios' policies all select
tank/a, so the loop never runs two of their passes at once: the lock hook notes it if it does.

A kill: the hosts are handed to the loop behind `_Tripwired`, which counts changing ZFS calls;
after the K-th one armed by `KillMidPass` it stops the loop (as SIGTERM does: running passes
start no further action), and `wait_quiescent` then starts a new loop, as a supervisor would.

Manifest edits go through the `load` hook: `LoopRun` holds what "the file" says (the scenario
in force, or an invalid text) and calls `controller.reload` directly; the file watcher is
tested elsewhere (tests/test_loop.py, tests/test_loop_watcher.py).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from reconciler.apply.executor import ActionStatus
from reconciler.apply.passes import Dependencies, PassResult, run_pass
from reconciler.core.plan import Plan, SendAction
from reconciler.core.state import Observed
from reconciler.loop.clock import FakeClock
from reconciler.loop.controller import Controller, LoopOptions, LoopServices
from reconciler.loop.state import LoopState, Outcome, PassSummary
from reconciler.manifest.changes import generation
from reconciler.manifest.loader import Manifests, parse_manifests
from reconciler.manifest.models import Host
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS
from tests.histories import (
    DAY,
    HOUR,
    MINUTE,
    NO_CUT,
    RETENTIONS,
    SOURCE,
    START,
    TARGET_HOSTS,
    UNREACHABLE,
    Advance,
    CutReceive,
    DestroyForeign,
    ForeignHold,
    ForeignSnapshot,
    PassRecord,
    Reachable,
    Reconfigure,
    ReleaseForeignHold,
    Scenario,
    TargetVariant,
    Unreachable,
    World,
    Write,
    cut_receives,
    host_steps,
    manifests_of,
    target_variants,
)

QUIESCENT_TIMEOUT = 15.0  # real seconds a step may take before the test calls it a hang
JOIN_TIMEOUT = 5.0  # real seconds a stopped loop gets to end its workers
RESYNC = 3600
# wake-ups the loop gets, faults lifted, to converge: usually one or two, but the hourly resyncs
# of one policy may come before another policy's first wake-up
SETTLE_ROUNDS = 100

# --- steps (the host steps Write, ForeignSnapshot, ForeignHold, ReleaseForeignHold,
# DestroyForeign, Unreachable, Reachable, CutReceive and the edit Reconfigure come from
# tests/histories.py; Advance moves the fake clock) ----------------------------------------------


@dataclass(frozen=True)
class ToWakeup:
    """Set the clock exactly to the earliest next wake-up of any policy."""


@dataclass(frozen=True)
class JustBeforeWakeup:
    """Set the clock to one second before the earliest next wake-up: no pass may start."""


@dataclass(frozen=True)
class CutAfterWrites:
    """64 KiB written to every source filesystem, and the next receive on a target host set
    to break after `after_bytes` (so that the next send to it, which carries the new data,
    is cut: a bare `CutReceive` is mostly spent on a send too small to break)."""

    target: int  # index into the scenario's target hosts (modulo)
    after_bytes: int


@dataclass(frozen=True)
class JumpBack:
    """The wall clock jumps back (NTP, an operator's `date -s`) by `seconds`."""

    seconds: int


@dataclass(frozen=True)
class SourceUnreachable:
    """The source host cannot be reached (the history's host steps still work on it)."""


@dataclass(frozen=True)
class SourceReachable:
    pass


@dataclass(frozen=True)
class KillMidPass:
    """The loop is stopped (as by SIGTERM) right after the `after_calls`-th changing ZFS call
    of the passes to come, and a new loop is started once the old one has ended."""

    after_calls: int


@dataclass(frozen=True)
class Retention:
    """Edit: the source retention of the main policy."""

    name: str  # a key of RETENTIONS


@dataclass(frozen=True)
class AddTarget:
    """Edit: a second target t2 on b2 (nothing if there is one already)."""

    variant: TargetVariant


@dataclass(frozen=True)
class RemoveTarget:
    """Edit: the main policy loses its last target (nothing if it has only one)."""


@dataclass(frozen=True)
class ToggleMonthly:
    """Edit: the second policy (monthly) appears or goes."""


INVALID_KINDS = ("interval", "unknown-host", "yaml-syntax", "duplicate-policy", "api-version")


@dataclass(frozen=True)
class InvalidEdit:
    """Edit: the file now fails validation (it stays so until the next valid edit)."""

    kind: str  # one of INVALID_KINDS


@dataclass(frozen=True)
class Fix:
    """Edit: the file holds the manifests in force again (a reload that changes nothing)."""


@dataclass(frozen=True)
class Restart:
    """Stop the loop (at rest) and start a new one: nothing is kept but what ZFS holds."""


HOST_STEPS = (
    Write,
    ForeignSnapshot,
    ForeignHold,
    ReleaseForeignHold,
    DestroyForeign,
    Unreachable,
    Reachable,
    CutReceive,
    CutAfterWrites,
)
LoopStep = (
    Advance
    | ToWakeup
    | JustBeforeWakeup
    | Write
    | ForeignSnapshot
    | ForeignHold
    | ReleaseForeignHold
    | DestroyForeign
    | Unreachable
    | Reachable
    | CutReceive
    | CutAfterWrites
    | JumpBack
    | SourceUnreachable
    | SourceReachable
    | KillMidPass
    | Reconfigure
    | Retention
    | AddTarget
    | RemoveTarget
    | ToggleMonthly
    | InvalidEdit
    | Fix
    | Restart
)

# --- strategies --------------------------------------------------------------------------------

_picks = st.integers(0, 7)
_advance = st.builds(
    Advance,
    st.one_of(
        st.sampled_from([MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 6 * HOUR, DAY, 2 * DAY]),
        st.integers(MINUTE, 3 * DAY),
    ),
)
_time_steps: tuple[st.SearchStrategy[LoopStep], ...] = (
    _advance,
    st.just(ToWakeup()),
    st.just(JustBeforeWakeup()),
)
_jump_back = st.builds(JumpBack, st.sampled_from([MINUTE, 15 * MINUTE, HOUR, DAY]))
_host_steps: tuple[st.SearchStrategy[LoopStep], ...] = (
    *host_steps,
    cut_receives,
    st.builds(CutAfterWrites, _picks, st.integers(0, (64 << 10) - 1)),
    st.builds(CutAfterWrites, _picks, st.integers(0, (64 << 10) - 1)),
    st.just(SourceUnreachable()),
    st.just(SourceReachable()),
    st.builds(KillMidPass, st.integers(1, 12)),
)
_edit_steps: tuple[st.SearchStrategy[LoopStep], ...] = (
    st.builds(Reconfigure, _picks, target_variants),
    st.builds(Retention, st.sampled_from(list(RETENTIONS))),
    st.builds(AddTarget, target_variants),
    st.just(RemoveTarget()),
    st.just(ToggleMonthly()),
    st.builds(InvalidEdit, st.sampled_from(INVALID_KINDS)),
    st.just(Fix()),
)


def loop_histories(min_size: int = 8, max_size: int = 24) -> st.SearchStrategy[list[LoopStep]]:
    """Clock moves (a third of the steps), host steps and faults, edits valid and invalid,
    restarts. Each kind of step is drawn by weight, not by hypothesis's preference for the
    first branches of a `one_of`."""
    weighted = [*_time_steps * 4, _jump_back, *_host_steps, *_edit_steps, st.just(Restart())]
    step = st.sampled_from(weighted).flatmap(lambda strategy: strategy)
    return st.lists(step, min_size=min_size, max_size=max_size)


# --- the driver -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopPass:
    """One pass the loop finished: its summary and result, the generation of the manifests the
    test had put in force when it ran (`expected`; None when none were valid), and the pass as
    a `PassRecord` (None when the pass got no result)."""

    summary: PassSummary
    result: PassResult | None
    expected: str | None
    record: PassRecord | None


def invalid_text(scenario: Scenario, kind: str) -> str:
    """The scenario's manifest text broken in one way that validation refuses."""
    text = scenario.manifest_text()
    match kind:
        case "interval":
            return text.replace('"interval": "15m"', '"interval": "15 minutes"')
        case "unknown-host":
            return text.replace('"host": "b1"', '"host": "b9"')
        case "yaml-syntax":
            return text + "---\n{: [\n"
        case "duplicate-policy":
            return text + "---\n" + text.rstrip("\n").split("\n---\n")[-1] + "\n"
        case "api-version":
            return text.replace("zfs-reconciler.dev/v1alpha1", "zfs-reconciler.dev/v9", 1)
    raise ValueError(f"unknown invalid edit {kind}")


_CHANGING = frozenset(
    {
        "snapshot",
        "receive",
        "abort_resume",
        "hold",
        "release",
        "bookmark",
        "destroy",
        "rollback",
        "create",
    }
)


class _Tripwired:
    """A host's port that tells `called` after each changing call (a KillMidPass counts)."""

    def __init__(self, model: ModelZFS, called: Callable[[], None]) -> None:
        self._model = model
        self._called = called

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._model, name)
        if name not in _CHANGING:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            finally:
                self._called()

        return call


class LoopRun:
    """A `World`'s hosts reconciled by the real control loop, on a fake clock."""

    def __init__(self, scenario: Scenario, *, jobs: int, resync: int = RESYNC) -> None:
        self.world = World(scenario)
        for host in TARGET_HOSTS:  # a target added by an edit finds its host ready
            if host not in self.world.hosts:
                model = ModelZFS(host, seed=1)
                model.create_pool("vault")
                self.world.hosts[host] = model
        self.clock = FakeClock(START)
        self.jobs, self.resync = jobs, resync
        self.invalid: str | None = None  # the file's text when it fails validation
        self.in_force: Scenario | None = None  # what the loop was last seen to load
        self.generation: str | None = None
        self.passes: list[LoopPass] = []  # appended on the workers' threads
        self.problems: list[str] = []  # found on the workers' threads
        self.restarts = 0
        self.kills = 0
        self._trip: int | None = None  # changing ZFS calls left before a KillMidPass stops
        self._trip_lock = threading.Lock()
        self._serial = threading.Lock()
        self._local = threading.local()
        self.controller: Controller | None = None

    # -- the loop -----------------------------------------------------------------------------
    def start(self) -> None:
        self.controller = Controller(
            # no destroy guard: a history may withhold a source's retention for a day (a cut
            # receive waiting to resume), after which the guard rightly asks before pruning the
            # backlog (docs/destroy-guard.md); these histories check guarantees 1-5 and
            # convergence, tests/test_guard.py the guard
            LoopOptions(
                paths=("properties",), jobs=self.jobs, resync=self.resync, max_destroy=None
            ),
            LoopServices(
                connect=self._connect,
                clock=self.clock,
                cancel=threading.Event(),
                lock=self._lock,
                load=self._load,
                rng=random.Random(7),
                on_pass=self._on_pass,
            ),
        )
        # a new loop loads what the file holds: nothing is in force if it is invalid
        self.in_force, self.generation = None, None
        self._expect()  # before the load: its passes may finish before start() returns
        self.controller.start()
        valid = self.controller.state().manifests_valid
        assert valid == (self.invalid is None), f"the loop's first load said valid={valid}"

    def stop(self) -> None:
        """Stop the loop and wait for its workers (idempotent)."""
        controller, self.controller = self.controller, None
        if controller is None:
            return
        controller.stop()
        if not controller.join(JOIN_TIMEOUT):
            raise AssertionError(f"the loop's workers did not end within {JOIN_TIMEOUT}s")

    def reload(self) -> bool:
        """`controller.reload`, the manifests it must put in force noted first (its passes
        may finish before it returns); whether the load was valid."""
        assert self.controller is not None
        self._expect()
        valid = self.controller.reload("edit")
        assert valid == (self.invalid is None), f"a reload said valid={valid}"
        return valid

    def _expect(self) -> None:
        """A load of the file puts its manifests in force if they are valid, else nothing."""
        if self.invalid is None:
            self.generation = generation(self.world.manifests)
            self.in_force = self.world.scenario

    def state(self) -> LoopState:
        assert self.controller is not None
        return self.controller.state()

    def now(self) -> int:
        return int(self.clock.time())

    # -- the services the loop is given ----------------------------------------------------------
    def _connect(self, host: Host) -> ZFS:
        model = self.world.hosts[host.metadata.name]
        model.clock = self.now()
        return _Tripwired(model, self._called)  # type: ignore[return-value]

    def _called(self) -> None:
        """A changing ZFS call finished: stop the loop if a KillMidPass says so."""
        with self._trip_lock:
            if self._trip is None:
                return
            self._trip -= 1
            if self._trip > 0:
                return
            self._trip = None
        self.kills += 1
        assert self.controller is not None
        self.controller.stop()

    def _load(self, _paths: Sequence[str]) -> Manifests:
        if self.invalid is not None:
            return parse_manifests([("properties.yaml", self.invalid)])  # raises ManifestErrors
        return self.world.manifests

    @contextmanager
    def _lock(self, _hosts: Sequence[Host]) -> Iterator[None]:
        if not self._serial.acquire(blocking=False):
            self.problems.append("two passes of overlapping policies ran at once")
            self._serial.acquire()
        try:
            self._local.armed = frozenset(self.world.cuts)
            self._local.before = self.world.truth()
            yield
            self._local.after = self.world.truth()
        finally:
            self._serial.release()

    def _on_pass(self, summary: PassSummary, result: PassResult | None) -> None:
        try:
            record = None
            if result is not None and result.report is not None:
                record = PassRecord(
                    self.in_force or self.world.scenario,
                    summary.now,
                    self._local.before,
                    result.observed,
                    result.plan,
                    result.plan,
                    result.report,
                    self._local.after,
                    self._local.armed,
                )
                self._consume_cuts(result)
            self.passes.append(LoopPass(summary, result, self.generation, record))
        except Exception as error:  # the loop would call it a crashed pass: say why
            self.problems.append(f"recording pass {summary.pass_id} failed: {error!r}")
            raise

    def _consume_cuts(self, result: PassResult) -> None:
        """A cut is spent by the first receive on its host: any send to it that ran."""
        assert result.report is not None
        for action in result.plan.actions:
            ran = result.report.result(action.id)
            if isinstance(action, SendAction) and ran and ran.status is not ActionStatus.SKIPPED:
                self.world.cuts.discard(action.target_host)

    # -- waiting ----------------------------------------------------------------------------------
    def quiescent(self) -> bool:
        """No pass running or due: every policy waits for a time after the fake clock's."""
        now = self.clock.time()
        return all(
            not policy.running and policy.next_wakeup is not None and policy.next_wakeup.at > now
            for policy in self.state().policies.values()
        )

    def wait_quiescent(self, timeout: float = QUIESCENT_TIMEOUT) -> LoopState:
        deadline = time.monotonic() + timeout
        while True:
            assert self.controller is not None
            if self.controller.stopping:  # killed mid-pass: a supervisor starts a new loop
                self.stop()
                self.start()
            if self.quiescent():
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the loop is not at rest after {timeout}s (clock {self.clock.time()}): "
                    f"{self.state()}"
                )
            time.sleep(0.0005)
        return self.state()

    def _wait_seen(self, timeout: float = QUIESCENT_TIMEOUT) -> None:
        """Wait until every worker of the loop has looked at the clock since it last moved:
        each is waiting again, or running a pass."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.controller is not None
            busy = len(self.controller.state().policies) and sum(
                p.running for p in self.controller.state().policies.values()
            )
            if self.clock.waiting_since_move() + busy >= self.jobs:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the loop's workers did not look at the clock in {timeout}s")
            time.sleep(0.0005)

    def _wait_for_passes(
        self, policies: set[str], first: int, timeout: float = QUIESCENT_TIMEOUT
    ) -> None:
        """Wait until each of `policies` has finished a pass after the first `first` passes
        (a loop killed meanwhile is started again, and its new loop passes them all)."""
        deadline = time.monotonic() + timeout
        while not policies <= {done.summary.policy for done in self.passes[first:]}:
            assert self.controller is not None
            if self.controller.stopping:
                self.stop()
                self.start()
            if time.monotonic() > deadline:
                raise AssertionError(f"no pass of {sorted(policies)} after {timeout}s")
            time.sleep(0.0005)

    def next_wakeup(self) -> float | None:
        wakeups = [p.next_wakeup.at for p in self.state().policies.values() if p.next_wakeup]
        return min(wakeups, default=None)

    # -- steps ------------------------------------------------------------------------------------
    def play(self, step: Any) -> list[LoopPass]:
        """Play one step, wait until the loop is at rest; the passes it finished meanwhile."""
        first = len(self.passes)
        match step:
            case Advance(seconds):
                self._set_clock(self.clock.time() + seconds)
            case ToWakeup():
                at = self.next_wakeup()
                self._set_clock(at if at is not None else self.clock.time() + 15 * MINUTE)
            case JustBeforeWakeup():
                at = self.next_wakeup()
                if at is not None:
                    self._set_clock(at - 1)
            case JumpBack(seconds):
                # every queued wake-up timed on the old clock is due at once when the queue sees
                # the clock go back (`WorkQueue`); first let it see the clock as it is
                self._wait_seen()
                waiting = {n for n, p in self.state().policies.items() if p.next_wakeup}
                first_after = len(self.passes)
                self.clock.set(self.clock.time() - seconds)
                self.world.now = self.now()
                self._wait_for_passes(waiting, first_after)
            case SourceUnreachable():
                self.world.unreachable.add(SOURCE)
                self.world.hosts[SOURCE].set_unreachable(UNREACHABLE)
            case SourceReachable():
                self.world.unreachable.discard(SOURCE)
                self.world.hosts[SOURCE].set_unreachable(None)
            case KillMidPass(after_calls):
                with self._trip_lock:
                    self._trip = after_calls
            case Reconfigure():
                self.world.step(step)
                self._edit(self.world.scenario)
            case Retention(name):
                self._edit(replace(self.world.scenario, retention=name))
            case AddTarget(variant):
                targets = self.world.scenario.targets
                self._edit(replace(self.world.scenario, targets=(*targets, variant)[:2]))
            case RemoveTarget():
                targets = self.world.scenario.targets
                self._edit(
                    replace(self.world.scenario, targets=targets[: max(1, len(targets) - 1)])
                )
            case ToggleMonthly():
                scenario = self.world.scenario
                self._edit(replace(scenario, monthly=not scenario.monthly))
            case InvalidEdit(kind):
                self.invalid = invalid_text(self.world.scenario, kind)
                self.reload()
            case Fix():
                self._edit(self.world.scenario)
            case Restart():
                self.stop()
                self.restarts += 1
                self.start()
            case CutAfterWrites(target, after_bytes):
                with self._at_the_console():
                    for index in range(len(self.world.scenario.every_filesystem())):
                        self.world.step(Write(index, 64 << 10))
                self.world.step(CutReceive(target, after_bytes))
            case _ if isinstance(step, HOST_STEPS):
                with self._at_the_console():
                    self.world.step(step)
            case _:
                raise ValueError(f"unknown step {step!r}")
        self.wait_quiescent()
        return self.passes[first:]

    @contextmanager
    def _at_the_console(self) -> Iterator[None]:
        """Host steps are made on the source itself: they work while it is unreachable."""
        down = SOURCE in self.world.unreachable
        if down:
            self.world.hosts[SOURCE].set_unreachable(None)
        try:
            yield
        finally:
            if down:
                self.world.hosts[SOURCE].set_unreachable(UNREACHABLE)

    def _set_clock(self, at: float) -> None:
        if at > self.clock.time():
            self.clock.set(at)
        self.world.now = self.now()

    def _edit(self, scenario: Scenario) -> None:
        self.world.scenario = scenario
        self.world.manifests = manifests_of(scenario)
        self.invalid = None
        self.reload()

    # -- the end ----------------------------------------------------------------------------------
    def lift_faults(self) -> None:
        """Every host reachable, no receive set to break, no kill armed, the file valid."""
        with self._trip_lock:
            self._trip = None
        for host in sorted(self.world.unreachable):
            self.world.hosts[host].set_unreachable(None)
        self.world.unreachable.clear()
        for host in TARGET_HOSTS:
            self.world.hosts[host].interrupt_next_receive(NO_CUT)
        self.world.cuts.clear()
        if self.invalid is not None or self.in_force != self.world.scenario:
            self._edit(self.world.scenario)
        self.wait_quiescent()

    def settle(self, rounds: int = SETTLE_ROUNDS) -> list[LoopPass]:
        """Faults lifted, move the clock to the next wake-up until every policy has passed
        since, its last pass clean (at most `rounds` times); the passes meanwhile."""
        self.lift_faults()
        first = len(self.passes)
        for _ in range(rounds):
            self.play(ToWakeup())
            if self.clean_since(first):
                break
        return self.passes[first:]

    def clean_since(self, first: int) -> bool:
        """Every policy in force passed since pass `first`, and its last pass was clean."""
        last: dict[str, LoopPass] = {p.summary.policy: p for p in self.passes[first:]}
        return all(
            name in last and last[name].summary.outcome is Outcome.OK
            for name in self.state().policies
        )

    def preview(self) -> Plan:
        """What a pass of every policy would do now (a dry run on the hosts as they are)."""
        return run_pass(
            self.world.manifests, None, self.now(), Dependencies(connect=self._connect), apply=False
        ).plan

    def truth(self) -> Observed:
        return self.world.truth()
