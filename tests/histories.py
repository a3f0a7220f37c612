"""Random histories for the property tests: scenarios, steps, and the driver that plays them.

Owned here: `Scenario` (one source host "nas" with pool tank, one or two target hosts with pool
vault, a policy drawn from a small set of manifest variants, sometimes a second policy with
another prefix on the same filesystems), the history `Step`s, the hypothesis strategies that
draw them, and `World`, which plays a history on in-memory ZFS hosts (`ModelZFS`) and records
every pass (`PassRecord`). Used by tests/test_properties.py, which states the properties.

A pass is what the CLI does: observe every host, plan at `now`, execute the plan. A killed pass
executes only the first K actions of its plan. `truth` observations ignore reachability, so the
properties can judge what really happened on a host the pass could not see.
"""

from __future__ import annotations

import calendar
import itertools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from reconciler.apply.executor import ActionResult, ActionStatus, ApplyReport
from reconciler.apply.passes import Dependencies, run_pass
from reconciler.core.plan import Plan, SendAction
from reconciler.core.state import Observed
from reconciler.manifest.loader import Manifests, parse_manifests
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.observe import observe_hosts

START = calendar.timegm((2026, 11, 26, 0, 0, 0, 0, 0, 0))
MINUTE, HOUR, DAY = 60, 3600, 86400
SOURCE = "nas"
TARGET_HOSTS = ("b1", "b2")
TARGET_NAMES = ("t1", "t2")
ROOT = "vault/nas"
UNREACHABLE = "ssh: connect to host: Connection refused"
NO_CUT = 1 << 62  # arms a cut no stream reaches: the next receive completes


def history_settings(examples: int) -> settings:
    """Hypothesis settings of the history properties: reproducible, no deadline, no database
    (histories are slow and large by design)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- scenarios -------------------------------------------------------------------------------

FILESYSTEM_SETS: tuple[tuple[str, ...], ...] = (
    ("tank/a",),
    ("tank/a", "tank/a/b"),
    ("tank/a", "tank/c"),
    ("tank/a", "tank/a/b", "tank/c"),
)
# name → the main policy's filesystem filter (Scenario.selected says what each one selects)
SELECTIONS: dict[str, dict[str, bool]] = {
    "a-and-c": {"tank/a<": True, "tank/c<": True},
    "whole-pool": {"tank<": True},
    "pool-but-b": {"tank<": True, "tank/a/b<": False},
}
GRID = "1x1h(keep=all) | 6x1h | 3x1d"
TARGET_GRID = "1x1h(keep=all) | 12x1h | 7x1d"
RETENTIONS: dict[str, list[dict[str, Any]] | None] = {
    "keep-all": None,
    "grid": [{"grid": GRID}],
    "last4": [{"lastN": 4}],
    "grid+last2": [{"grid": GRID}, {"lastN": 2}],
}
TARGET_RETENTIONS: dict[str, list[dict[str, Any]] | None] = {
    "keep-all": None,
    "grid": [{"grid": TARGET_GRID}],
    "last3": [{"lastN": 3}],
    "grid+last2": [{"grid": TARGET_GRID}, {"lastN": 2}],
}
PREFIXES = {"frequent": "zr_", "monthly": "zm_"}  # policy → snapshot prefix
MONTHLY_TARGET, MONTHLY_ROOT = "m1", "vault/monthly"  # the second policy's one target, on b1


@dataclass(frozen=True)
class TargetVariant:
    protection: str  # resumable | incremental | none
    initial: str  # mostRecent | all
    retention: str  # a key of TARGET_RETENTIONS
    allow_rollback: bool


@dataclass(frozen=True)
class Pair:
    """One replicated (policy, target, source filesystem)."""

    policy: str
    prefix: str
    target: str
    target_host: str
    filesystem: str
    target_filesystem: str
    allow_rollback: bool
    protection: str
    keeps_all: bool  # the target has no retention of its own: it wants every candidate


@dataclass(frozen=True)
class Scenario:
    filesystems: tuple[str, ...]
    selection: str  # a key of SELECTIONS
    retention: str  # a key of RETENTIONS
    targets: tuple[TargetVariant, ...]  # t1 on b1, t2 on b2
    monthly: bool  # a second policy (prefix zm_) on tank/a, replicating to b1

    @property
    def target_hosts(self) -> tuple[str, ...]:
        return TARGET_HOSTS[: len(self.targets)]

    def every_filesystem(self) -> tuple[str, ...]:
        """The pool's root filesystem and the others, parents first."""
        return ("tank", *self.filesystems)

    def selected(self) -> tuple[str, ...]:
        """The source filesystems the main policy selects (computed here, not by the planner)."""
        every = self.every_filesystem()
        if self.selection == "a-and-c":
            return tuple(fs for fs in every if fs.startswith(("tank/a", "tank/c")))
        if self.selection == "pool-but-b":
            return tuple(fs for fs in every if not fs.startswith("tank/a/b"))
        return every

    def _named_targets(self) -> list[tuple[str, str, TargetVariant]]:
        """(name, host, variant) of the main policy's targets: t1 on b1, t2 on b2."""
        return list(zip(TARGET_NAMES, self.target_hosts, self.targets, strict=False))

    def pairs(self) -> tuple[Pair, ...]:
        pairs = [
            Pair(
                policy="frequent",
                prefix=PREFIXES["frequent"],
                target=name,
                target_host=host,
                filesystem=fs,
                target_filesystem=f"{ROOT}/{fs}",
                allow_rollback=variant.allow_rollback,
                protection=variant.protection,
                keeps_all=TARGET_RETENTIONS[variant.retention] is None,
            )
            for name, host, variant in self._named_targets()
            for fs in self.selected()
        ]
        if self.monthly:
            pairs += [_monthly_pair(fs) for fs in self.filesystems if fs.startswith("tank/a")]
        return tuple(pairs)

    def target_names(self, policy: str) -> tuple[str, ...]:
        if policy == "monthly":
            return (MONTHLY_TARGET,)
        return TARGET_NAMES[: len(self.targets)]

    def manifest_text(self) -> str:
        documents: list[dict[str, Any]] = [
            _document("Host", host, {"transport": "local"}) for host in (SOURCE, *self.target_hosts)
        ]
        documents.append(_document("Policy", "frequent", self._frequent()))
        if self.monthly:
            documents.append(_document("Policy", "monthly", _monthly()))
        return "\n---\n".join(json.dumps(document) for document in documents) + "\n"

    def _frequent(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "source": {"host": SOURCE, "filesystems": SELECTIONS[self.selection]},
            "snapshots": {"prefix": "zr_", "interval": "15m"},
            "replication": [
                _target(name, host, variant) for name, host, variant in self._named_targets()
            ],
        }
        rules = RETENTIONS[self.retention]
        if rules is not None:
            spec["retention"] = {"keep": rules}
        return spec


def _document(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def _target(name: str, host: str, variant: TargetVariant) -> dict[str, Any]:
    target: dict[str, Any] = {
        "name": name,
        "host": host,
        "root": ROOT,
        "protection": variant.protection,
        "initialReplication": variant.initial,
        "receive": {"allowRollback": variant.allow_rollback},
    }
    rules = TARGET_RETENTIONS[variant.retention]
    if rules is not None:
        target["retention"] = {"keep": rules}
    return target


def _monthly() -> dict[str, Any]:
    return {
        "source": {"host": SOURCE, "filesystems": {"tank/a<": True}},
        "snapshots": {"prefix": PREFIXES["monthly"], "interval": "1d"},
        "retention": {"keep": [{"lastN": 2}]},
        "replication": [{"name": MONTHLY_TARGET, "host": "b1", "root": MONTHLY_ROOT}],
    }


def _monthly_pair(fs: str) -> Pair:
    return Pair(
        policy="monthly",
        prefix=PREFIXES["monthly"],
        target=MONTHLY_TARGET,
        target_host="b1",
        filesystem=fs,
        target_filesystem=f"{MONTHLY_ROOT}/{fs}",
        allow_rollback=False,
        protection="resumable",
        keeps_all=True,
    )


@lru_cache(maxsize=1024)
def manifests_of(scenario: Scenario) -> Manifests:
    """The scenario's manifests, loaded as `reconcile` loads them (once per scenario: YAML
    parsing would otherwise cost most of the run time)."""
    return parse_manifests([("properties.yaml", scenario.manifest_text())])


# --- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Advance:
    seconds: int


@dataclass(frozen=True)
class Write:
    fs: int  # index into Scenario.every_filesystem() (modulo)
    nbytes: int


@dataclass(frozen=True)
class ForeignSnapshot:
    fs: int


@dataclass(frozen=True)
class ForeignHold:
    fs: int
    pick: int  # which snapshot of that filesystem (modulo)


@dataclass(frozen=True)
class ReleaseForeignHold:
    pick: int


@dataclass(frozen=True)
class DestroyForeign:
    pick: int


@dataclass(frozen=True)
class Unreachable:
    target: int  # index into the scenario's target hosts (modulo)


@dataclass(frozen=True)
class Reachable:
    target: int


@dataclass(frozen=True)
class CutReceive:
    target: int
    after_bytes: int


@dataclass(frozen=True)
class Pass:
    """Observe every host, plan, execute the whole plan."""


@dataclass(frozen=True)
class KilledPass:
    after_actions: int  # execute only the first K actions of the plan


@dataclass(frozen=True)
class Reconfigure:
    """The user edits the manifest: a target gets another protection, retention, etc."""

    target: int  # index into the scenario's targets (modulo)
    variant: TargetVariant


@dataclass(frozen=True)
class Run:
    """Time passes with the reconciler running: `passes` times, advance `every`, write
    `nbytes` to every filesystem (none for 0), then pass."""

    passes: int
    every: int
    nbytes: int


Step = (
    Advance
    | Write
    | ForeignSnapshot
    | ForeignHold
    | ReleaseForeignHold
    | DestroyForeign
    | Unreachable
    | Reachable
    | CutReceive
    | Pass
    | KilledPass
    | Reconfigure
    | Run
)

# --- strategies ------------------------------------------------------------------------------

_picks = st.integers(0, 7)
target_variants = st.builds(
    TargetVariant,
    protection=st.sampled_from(["resumable", "incremental", "none"]),
    initial=st.sampled_from(["mostRecent", "all"]),
    retention=st.sampled_from(list(TARGET_RETENTIONS)),
    allow_rollback=st.booleans(),
)
_advance = st.builds(
    Advance,
    st.one_of(
        st.sampled_from([5 * MINUTE, 15 * MINUTE, HOUR, 6 * HOUR, DAY, 2 * DAY]),
        st.integers(5 * MINUTE, 2 * DAY),
    ),
)
_run = st.builds(
    Run,
    st.integers(1, 8),
    st.sampled_from([15 * MINUTE, HOUR, 3 * HOUR, 12 * HOUR, DAY]),
    st.sampled_from([0, 4096, 64 << 10]),
)
# what is done to the hosts by hand, and faults: shared with the loop's histories
host_steps: tuple[st.SearchStrategy[Step], ...] = (
    st.builds(Write, _picks, st.integers(1, 1 << 20)),
    st.builds(ForeignSnapshot, _picks),
    st.builds(ForeignHold, _picks, _picks),
    st.builds(ReleaseForeignHold, _picks),
    st.builds(DestroyForeign, _picks),
    st.builds(Unreachable, _picks),
    st.builds(Reachable, _picks),
)
cut_receives = st.builds(
    CutReceive, _picks, st.one_of(st.integers(0, 2048), st.integers(0, 1 << 20))
)
_calm_steps: tuple[st.SearchStrategy[Step], ...] = (
    st.builds(Pass),
    _advance,
    _run,
    st.builds(Pass),
    _advance,
    _run,
    *host_steps,
    st.builds(Reconfigure, _picks, target_variants),
)
_fault_steps: tuple[st.SearchStrategy[Step], ...] = (
    st.builds(KilledPass, st.integers(0, 12)),
    cut_receives,
)


def scenarios() -> st.SearchStrategy[Scenario]:
    return st.builds(
        Scenario,
        filesystems=st.sampled_from(FILESYSTEM_SETS),
        selection=st.sampled_from(list(SELECTIONS)),
        retention=st.sampled_from(list(RETENTIONS)),
        targets=st.lists(target_variants, min_size=1, max_size=2).map(tuple),
        monthly=st.booleans(),
    )


def histories(min_size: int = 6, max_size: int = 24) -> st.SearchStrategy[list[Step]]:
    """Any history: calm steps, passes, and now and then a killed pass or a cut receive.

    A floor on the length: hypothesis favours short lists, and most bugs need a few passes."""
    step = st.one_of(*_calm_steps, *_fault_steps)
    return st.lists(step, min_size=min_size, max_size=max_size)


def faulty_histories(min_size: int = 6, max_size: int = 24) -> st.SearchStrategy[list[Step]]:
    """Histories rich in faults: killed passes and cut receives, at least one of them."""
    step = st.one_of(*_fault_steps, *_fault_steps, *_calm_steps)
    half = st.lists(step, min_size=min_size // 2, max_size=max_size // 2)
    busy = st.builds(Run, st.integers(1, 3), st.just(15 * MINUTE), st.just(64 << 10))
    fault = st.one_of(
        st.tuples(_fault_steps[0]),
        st.tuples(_fault_steps[1], busy),  # a cut receive, then passes that send data
    )
    return st.tuples(half, fault, half).map(lambda t: [*t[0], *t[1], *t[2]])


# --- the driver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassRecord:
    """One pass: what was true before, what it saw, planned, ran, and what was true after."""

    scenario: Scenario  # the manifests in force
    now: int
    truth_before: Observed  # every host, reachable or not
    observed: Observed  # what the pass itself saw
    plan: Plan
    executed: Plan  # the plan, or its first K actions for a killed pass
    report: ApplyReport
    truth_after: Observed
    armed: frozenset[str] = frozenset()  # target hosts whose next receive was set to break
    replan: Plan | None = None  # a second plan at the same `now`, after a pass that fully succeeded


@dataclass
class World:
    """The hosts of a scenario and the history played on them so far."""

    scenario: Scenario
    now: int = START
    manifests: Manifests = field(init=False)
    hosts: dict[str, ModelZFS] = field(init=False)
    unreachable: set[str] = field(default_factory=set)
    foreign_snapshots: set[tuple[str, str]] = field(default_factory=set)  # (fs, name)
    foreign_holds: set[tuple[str, str, str]] = field(default_factory=set)  # (fs, snap, tag)
    cuts: set[str] = field(default_factory=set)  # hosts whose next receive breaks
    records: list[PassRecord] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.manifests = manifests_of(self.scenario)
        source = ModelZFS(SOURCE, seed=1)
        source.clock = self.now
        source.create_pool("tank")
        for fs in self.scenario.every_filesystem():
            source.create(fs)
            source.write(fs, 4096)
        self.hosts = {SOURCE: source}
        for host in self.scenario.target_hosts:
            target = ModelZFS(host, seed=1)
            target.create_pool("vault")
            self.hosts[host] = target

    # -- observing --------------------------------------------------------------------------
    def truth(self) -> Observed:
        """Every host as it is, whether or not a pass could observe it now."""
        for host in self.unreachable:
            self.hosts[host].set_unreachable(None)
        try:
            return observe_hosts(self.hosts)
        finally:
            for host in self.unreachable:
                self.hosts[host].set_unreachable(UNREACHABLE)

    # -- steps ------------------------------------------------------------------------------
    def play(self, history: Sequence[Step]) -> None:
        for step in history:
            self.step(step)

    def step(self, step: Step) -> None:
        match step:
            case Advance(seconds):
                self.now += seconds
            case Write(fs, nbytes):
                self.hosts[SOURCE].write(self._filesystem(fs), nbytes)
            case ForeignSnapshot(fs):
                self._foreign_snapshot(self._filesystem(fs))
            case ForeignHold(fs, pick):
                self._foreign_hold(self._filesystem(fs), pick)
            case ReleaseForeignHold(pick):
                self._release_foreign_hold(pick)
            case DestroyForeign(pick):
                self._destroy_foreign(pick)
            case Unreachable(target):
                self._set_reachable(self._target_host(target), False)
            case Reachable(target):
                self._set_reachable(self._target_host(target), True)
            case CutReceive(target, after_bytes):
                host = self._target_host(target)
                self.hosts[host].interrupt_next_receive(after_bytes)
                self.cuts.add(host)
            case Pass():
                self.run_pass()
            case KilledPass(after_actions):
                self.run_pass(limit=after_actions)
            case Reconfigure(target, variant):
                self._reconfigure(target, variant)
            case Run(passes, every, nbytes):
                self._run(passes, every, nbytes)

    def run_pass(self, limit: int | None = None) -> PassRecord:
        """One pass as the CLI and the loop run it (`apply.passes.run_pass`); a killed pass
        stops starting actions once `limit` of them have finished."""
        for model in self.hosts.values():
            model.clock = self.now
        truth_before = self.truth()
        armed = frozenset(self.cuts)
        result = run_pass(self.manifests, None, self.now, self._dependencies(limit))
        full, report = result.plan, result.report
        assert report is not None
        executed = full if limit is None else replace(full, actions=full.actions[:limit])
        self._consume_cuts(executed, report)
        replan = None
        if limit is None and report.ok:
            replan = run_pass(self.manifests, None, self.now, self._dependencies(), apply=False)
        observed = result.observed
        record = PassRecord(
            self.scenario,
            self.now,
            truth_before,
            observed,
            full,
            executed,
            report,
            self.truth(),
            armed,
            replan.plan if replan is not None else None,
        )
        self.records.append(record)
        return record

    def _dependencies(self, limit: int | None = None) -> Dependencies:
        """Hosts by name; with `limit`, the cancel flag is set once `limit` actions finished
        (actions run one at a time, in plan order)."""
        cancel = threading.Event()
        finished = itertools.count(1)

        def on_result(_result: ActionResult) -> None:
            if limit is not None and next(finished) >= limit:
                cancel.set()

        if limit == 0:
            cancel.set()
        return Dependencies(
            connect=lambda host: self.hosts[host.metadata.name],
            cancel=cancel,
            on_result=on_result,
        )

    def _consume_cuts(self, executed: Plan, report: ApplyReport) -> None:
        """A cut is spent by the first receive on its host: any send to it that ran."""
        for action in executed.actions:
            result = report.result(action.id)
            ran = result is not None and result.status is not ActionStatus.SKIPPED
            if isinstance(action, SendAction) and ran:
                self.cuts.discard(action.target_host)

    def settle(self, passes: int = 4) -> list[PassRecord]:
        """Lift every fault, then pass at the same `now` until a plan is empty (at most
        `passes` passes)."""
        for host in self.scenario.target_hosts:
            self._set_reachable(host, True)
            self.hosts[host].interrupt_next_receive(NO_CUT)
        self.cuts.clear()
        records: list[PassRecord] = []
        for _ in range(passes):
            records.append(self.run_pass())
            if records[-1].plan.is_empty:
                break
        return records

    # -- helpers ----------------------------------------------------------------------------
    def _filesystem(self, index: int) -> str:
        filesystems = self.scenario.every_filesystem()
        return filesystems[index % len(filesystems)]

    def _target_host(self, index: int) -> str:
        hosts = self.scenario.target_hosts
        return hosts[index % len(hosts)]

    def _next(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}-{self._counter}"

    def _run(self, passes: int, every: int, nbytes: int) -> None:
        for _ in range(passes):
            self.now += every
            for name in self.scenario.every_filesystem() if nbytes else ():
                self.hosts[SOURCE].write(name, nbytes)
            self.run_pass()

    def _reconfigure(self, index: int, variant: TargetVariant) -> None:
        targets = list(self.scenario.targets)
        targets[index % len(targets)] = variant
        self.scenario = replace(self.scenario, targets=tuple(targets))
        self.manifests = manifests_of(self.scenario)

    def _set_reachable(self, host: str, reachable: bool) -> None:
        if reachable:
            self.unreachable.discard(host)
            self.hosts[host].set_unreachable(None)
        else:
            self.unreachable.add(host)
            self.hosts[host].set_unreachable(UNREACHABLE)

    def _foreign_snapshot(self, fs: str) -> None:
        name = self._next("manual")
        self.hosts[SOURCE].clock = self.now
        self.hosts[SOURCE].snapshot([fs], name)
        self.foreign_snapshots.add((fs, name))

    def _foreign_hold(self, fs: str, pick: int) -> None:
        state = self.hosts[SOURCE].observe().filesystem(fs)
        snapshots = state.snapshots if state is not None else ()
        if not snapshots:
            return
        snapshot = snapshots[pick % len(snapshots)].name
        tag = self._next("keep")
        self.hosts[SOURCE].hold(fs, snapshot, tag)
        self.foreign_holds.add((fs, snapshot, tag))

    def _release_foreign_hold(self, pick: int) -> None:
        if not self.foreign_holds:
            return
        fs, snapshot, tag = sorted(self.foreign_holds)[pick % len(self.foreign_holds)]
        self.hosts[SOURCE].release(fs, snapshot, tag)
        self.foreign_holds.discard((fs, snapshot, tag))

    def _destroy_foreign(self, pick: int) -> None:
        if not self.foreign_snapshots:
            return
        fs, name = sorted(self.foreign_snapshots)[pick % len(self.foreign_snapshots)]
        state = self.hosts[SOURCE].observe().filesystem(fs)
        held = state is not None and any(v.name == name and v.holds for v in state.snapshots)
        if held:
            return  # a held snapshot cannot be destroyed: the history leaves it
        self.hosts[SOURCE].destroy(fs, ["@" + name])
        self.foreign_snapshots.discard((fs, name))
