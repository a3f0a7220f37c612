"""The control loop behind `reconcile watch`: level-triggered, one pass per policy, forever.

Owned here: `Controller` (the loop: manifest reloads, the work queue's workers, the decision
of each policy's next wake-up, the loop's state and its log lines), `LoopOptions` and
`LoopServices`. Called by the CLI (`reconcile watch`), which wires the real driver, the system
clock, the manifest watcher and the signals; tests wire the in-memory ZFS and a fake clock.

How it works (docs/loop.md says it for users):
- Watchers, timers and signals only enqueue a policy name with a reason, in a de-duplicating
  queue (`loop/queue.py`). A worker takes a name and runs one pass for that policy through
  `apply/passes.run_pass`: it observes ZFS again and plans from scratch; of what was observed
  before, only the snapshot names of filesystems whose `snapshots_changed` shows no change
  are reused (`zfs/stamps.VersionCache`, one for the loop's life). Nothing survives a
  restart but what ZFS holds: a new loop passes every policy at once.
- After each pass the policy is queued again for the earliest of: its next scheduled snapshot
  (`core/wakeups.next_snapshot_due`), the periodic resync (`--resync`), and, after a transient
  error, a retry with capped, jittered exponential backoff. A permanent error (a conflict, a
  refusal) waits for the resync or for an edit of the manifests that concerns the policy.
- Up to `jobs` passes run at once, never two whose policies can touch one filesystem
  (`core/wakeups.policies_overlap`); each pass holds its hosts' locks only while it runs.
- A reload (an edit seen by the watcher, SIGHUP) that fails validation changes nothing: the
  last valid manifests stay in force and the errors stay in the state until a load succeeds.
- Each pass that observed leaves its status report (`loop/settle.py`) in the state, and every
  pass and load feeds the loop's metrics (`loop/metrics.py`, `self.metrics`), which the HTTP
  endpoint (`loop/http.py`) serves.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from loguru import logger

from reconciler.apply.executor import ActionStatus
from reconciler.apply.lock import LockError, LockHeld, lock_key
from reconciler.apply.passes import (
    Connect,
    Dependencies,
    Locker,
    PassAudit,
    PassResult,
    run_pass,
)
from reconciler.core.desired import PolicyIntent, intents
from reconciler.core.guard import DEFAULT_LIMIT, DestroyLimit
from reconciler.core.plan import SnapshotAction
from reconciler.core.status import StatusReport
from reconciler.core.wakeups import next_snapshot_due, policies_overlap
from reconciler.loop.backoff import Backoff
from reconciler.loop.clock import Clock
from reconciler.loop.metrics import Metrics, failed_pass, policy_passes
from reconciler.loop.queue import WorkItem, WorkQueue
from reconciler.loop.settle import settled_status
from reconciler.loop.state import (
    LoopState,
    Outcome,
    PassSummary,
    PolicyCondition,
    PolicyState,
    Wakeup,
)
from reconciler.loop.watcher import ManifestWatcher
from reconciler.manifest.changes import affected_policies, changes, generation
from reconciler.manifest.errors import ManifestErrors
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import Manifests
from reconciler.zfs.errors import (
    HostUnreachable,
    ResumeTokenStale,
    StreamInterrupted,
    ZFSError,
)
from reconciler.zfs.stamps import VersionCache

DEFAULT_RESYNC = 600  # seconds: repair drift made by hand at least this often
SHUTDOWN_GRACE = 8.0  # seconds a stopping loop waits for its passes (the contract says 10)
TRANSIENT_ERRORS: tuple[type[ZFSError], ...] = (
    HostUnreachable,
    StreamInterrupted,
    ResumeTokenStale,
)
_BUSY = ("dataset is busy", "pool I/O is currently suspended", "Resource temporarily unavailable")


@dataclass(frozen=True)
class LoopOptions:
    """`paths`: the `-f` paths; `policies`: only these (None: every policy); `jobs`: passes at
    once, and actions at once within a pass; `resync`: seconds between passes of a policy when
    nothing else wakes it; `max_destroy`: the destroy guard's limit (`core/guard.py`; the loop
    has no `--force`: a policy confirms its destroys with an annotation)."""

    paths: tuple[str, ...] = ("manifests",)
    policies: frozenset[str] | None = None
    jobs: int = 4
    resync: int = DEFAULT_RESYNC
    max_destroy: DestroyLimit | None = DEFAULT_LIMIT  # None: no guard (tests)


PassObserver = Callable[[PassSummary, PassResult | None], None]


@dataclass(frozen=True)
class LoopServices:
    """The loop's outside world: how to reach a host, the clock, the cancel flag running
    transfers watch, the hosts' locks, how manifests are loaded, a random source for the
    backoff's jitter, and who is told of every finished pass (`on_pass`: the summary and, when
    the pass got that far, its result; called on the worker's thread)."""

    connect: Connect
    clock: Clock
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: Locker | None = None
    load: Callable[[Sequence[str]], Manifests] = load_manifests
    rng: random.Random = field(default_factory=random.Random)
    on_pass: PassObserver | None = None
    audit: PassAudit | None = None  # the audit log's sink of each pass (`apply/audit.py`)


@dataclass(frozen=True)
class _Generation:
    """The manifests in force: the value, its hash, its policies' intents by name."""

    manifests: Manifests
    generation: str
    intents: dict[str, PolicyIntent]
    machines: dict[str, str]  # host name → lock key (two names may be one machine)


class Controller:
    """The loop. `start()` loads the manifests and starts the workers; `reload(why)` (any
    thread) re-reads the manifests; `stop()` (any thread) ends it;
    `join()` waits for the workers; `state()` is the loop's state as one value."""

    def __init__(self, options: LoopOptions, services: LoopServices) -> None:
        self.options = options
        self.services = services
        self._clock = services.clock
        self._queue: WorkQueue[str] = WorkQueue(services.clock)
        self._backoff = Backoff(rng=services.rng)
        self._stop = threading.Event()
        self._mutex = threading.Lock()  # guards _current and _state
        self._reload_mutex = threading.Lock()  # one reload at a time
        self._current: _Generation | None = None
        self._state = LoopState(started=services.clock.time())
        self._versions = VersionCache()  # snapshots of unchanged filesystems, across passes
        # whether two policies overlap, per generation: read and written under the queue's lock
        self._overlaps: dict[tuple[str, str], bool] = {}
        self._pass_ids = itertools.count(1)
        self._workers: list[threading.Thread] = []
        self.metrics = Metrics()  # a registry of its own: never the process-wide one

    # -- the outside -------------------------------------------------------------------------
    def start(self) -> None:
        """Load the manifests (an invalid set is reported and waits for a fix), then start
        the workers."""
        self.reload("start")
        for index in range(self.options.jobs):
            worker = threading.Thread(
                target=self._work, name=f"reconcile-worker-{index + 1}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def watch_manifests(
        self, stop: threading.Event, ready_timeout: float = 5.0
    ) -> threading.Thread:
        """Start a thread that re-reads the manifests on every edit of the `-f` paths
        (`loop/watcher.py`) until `stop` is set; returns once the watch is armed (or after
        `ready_timeout`), so that an edit made after this call is never missed. Start it
        before `start()`: the first load then happens under watch."""
        watcher = ManifestWatcher(list(self.options.paths), self._edited, stop)
        thread = threading.Thread(target=watcher.run, name="manifest-watcher", daemon=True)
        thread.start()
        if not watcher.watching.wait(ready_timeout):
            logger.warning("the manifest watch is not armed after {:.0f}s", ready_timeout)
        return thread

    def _edited(self, changed: frozenset[str]) -> None:
        # the manifests among the paths, when there are any: an editor's temporary files
        # (`.m.yaml.tmp`, sed's `sedXXXXXX`) are in the same burst but say nothing
        manifests = [path for path in changed if path.endswith((".yaml", ".yml"))]
        shown = sorted(manifests or changed)
        more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
        self.reload(f"edit of {', '.join(shown[:3])}{more}")

    def stop(self) -> None:
        """Start nothing new, cut running transfers (they resume from their token next
        time), wake every waiting worker. Any thread; not a signal handler (it takes locks:
        the CLI's handlers only note the signal, `cli._signals`)."""
        self._stop.set()
        self.services.cancel.set()
        self._queue.shutdown()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout: float = SHUTDOWN_GRACE) -> bool:
        """Wait up to `timeout` real seconds for the workers to end; whether they all did."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        running = [w.name for w in self._workers if w.is_alive()]
        if running:
            logger.warning(
                "{} still running after {:.0f}s; exiting without them (their transfers were "
                "cut; the locks go with the process)",
                ", ".join(running),
                timeout,
            )
        return not running

    def state(self) -> LoopState:
        with self._mutex:
            state = self._state
        scheduled = self._queue.scheduled()
        running = self._queue.processing()
        policies = {
            name: replace(
                policy,
                next_wakeup=Wakeup(*scheduled[name]) if name in scheduled else None,
                running=name in running,
            )
            for name, policy in state.policies.items()
        }
        return replace(state, policies=policies, stopping=self._stop.is_set())

    # -- manifests ---------------------------------------------------------------------------
    def reload(self, why: str) -> bool:
        """Read the manifests again; a valid set that differs from the one in force replaces
        it and queues the policies it concerns. Returns whether the set read was valid."""
        with self._reload_mutex:
            try:
                manifests = self.services.load(list(self.options.paths))
            except ManifestErrors as errors:
                self._invalid(why, [str(error) for error in errors.errors])
                return False
            self._valid(why, manifests)
            return True

    def _invalid(self, why: str, errors: list[str]) -> None:
        for line in errors:
            logger.error("manifest error: {}", line)
        with self._mutex:
            current = self._current
            self._state = replace(self._state, manifests_valid=False, manifest_errors=tuple(errors))
        self.metrics.manifests(False, current.generation if current is not None else None)
        if current is None:
            logger.error(
                "{}: the manifests are invalid ({} errors): nothing runs until they are fixed",
                why,
                len(errors),
            )
        else:
            logger.error(
                "{}: the manifests are invalid ({} errors): nothing was applied; generation {} "
                "stays in force",
                why,
                len(errors),
                current.generation,
            )

    def _valid(self, why: str, manifests: Manifests) -> None:
        new = generation(manifests)
        with self._mutex:
            old = self._current
            was_valid = self._state.manifests_valid
        if old is not None and old.generation == new:
            if not was_valid:
                logger.info("{}: the manifests are valid again (generation {})", why, new)
            else:
                logger.debug("{}: the manifests did not change (generation {})", why, new)
            with self._mutex:
                self._state = replace(self._state, manifests_valid=True, manifest_errors=())
            self.metrics.manifests(True, new)
            return
        for change in changes(old.manifests if old else None, manifests):
            logger.info("manifest change: {}", change)
        selected = self._selected(manifests)
        previous = set(old.intents) if old else set()
        affected = set(affected_policies(old.manifests if old else None, manifests)) & selected
        current = _Generation(
            manifests,
            new,
            {i.name: i for i in intents(manifests, selected)},
            {name: lock_key(host) for name, host in manifests.hosts.items()},
        )
        with self._mutex:
            self._current = current
            self._overlaps = {}
            added = self._clock.time()
            policies = {
                name: self._state.policies.get(name, PolicyState(name, added=added))
                for name in sorted(selected)
            }
            self._state = replace(
                self._state,
                generation=new,
                manifests_valid=True,
                manifest_errors=(),
                policies=policies,
            )
        self.metrics.manifests(True, new)
        self.metrics.retain(selected)
        for name in sorted(previous - selected):
            self._queue.remove(name)
            self._backoff.forget(name)
            logger.info("policy {}: gone from the manifests; no longer reconciled", name)
        logger.info(
            "{}: generation {} in force: {} {}, {} to reconcile now",
            why,
            new,
            len(selected),
            "policy" if len(selected) == 1 else "policies",
            len(affected),
        )
        for name in sorted(affected):
            self._queue.add(name, f"manifests changed (generation {new})")

    def _selected(self, manifests: Manifests) -> set[str]:
        wanted = self.options.policies
        if wanted is None:
            return set(manifests.policies)
        for name in sorted(wanted - set(manifests.policies)):
            logger.warning("policy {} (--policy) is not in the manifests", name)
        return set(manifests.policies) & wanted

    # -- workers -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get(self._stop, self._blocked)
            if item is None:
                return
            try:
                self._reconcile(item)
            except Exception as error:  # a bug must not kill the worker: retry later
                logger.opt(exception=error).error("policy {}: the pass crashed", item.key)
                self._schedule(item.key, [(self._retry_at(item.key), "retry after a crash")])
            finally:
                self._queue.done(item.key)

    def _blocked(self, key: str, running: frozenset[str]) -> bool:
        """Whether `key` must wait: a running policy may touch one of its filesystems. Runs
        under the queue's lock: the overlap of each pair is computed once per generation."""
        current = self._current
        if current is None or key not in current.intents:
            return False
        for other in running:
            pair = (min(key, other), max(key, other))
            found = self._overlaps.get(pair)
            if found is None:
                mine, theirs = current.intents.get(key), current.intents.get(other)
                found = (
                    mine is None
                    or theirs is None
                    or policies_overlap(mine, theirs, current.machines)
                )
                self._overlaps[pair] = found
            if found:
                return True
        return False

    def _reconcile(self, item: WorkItem[str]) -> None:
        key = item.key
        with self._mutex:
            current = self._current
        if current is None or key not in current.intents or self._stop.is_set():
            return
        pass_id = next(self._pass_ids)
        started = self._clock.time()
        now = int(started)
        log = logger.bind(policy=key, pass_id=pass_id)
        log.info("policy {}: pass {} starts: {}", key, pass_id, "; ".join(item.reasons))
        began = time.monotonic()
        result: PassResult | None = None
        try:
            result = run_pass(
                current.manifests,
                [key],
                now,
                self._dependencies(),
                jobs=self.options.jobs,
                max_destroy=self.options.max_destroy,
            )
            outcome, reason, error = self._classify(result)
        except LockHeld as held:
            who = held.holder.describe() if held.holder is not None else "holder unknown"
            outcome, reason = Outcome.TRANSIENT, "LockHeld"
            error = f"another reconciler holds the lock of {held.key} ({who})"
        except LockError as failure:
            outcome, reason, error = Outcome.PERMANENT, "LockUnusable", str(failure)
        seconds = time.monotonic() - began
        summary = _summary(pass_id, key, current.generation, started, seconds, now, item, result)
        summary = replace(summary, outcome=outcome, errors=summary.errors or _one(error))
        log.log(
            "INFO" if outcome is Outcome.OK else "WARNING",
            "policy {}: pass {} {}: {} actions, {} failed, {} conflicts{} in {:.1f}s",
            key,
            pass_id,
            outcome.value,
            summary.actions,
            summary.failed,
            summary.conflicts,
            f", hosts not observed: {', '.join(summary.unobserved)}" if summary.unobserved else "",
            seconds,
        )
        wakeups = []
        if outcome is not Outcome.CANCELLED:
            wakeups = self._next_wakeups(key, result, now, outcome)
        status = self._settled(key, result)
        self._record(key, summary, reason, error, status)
        self._measure(summary, result, status)
        if self.services.on_pass is not None:
            self.services.on_pass(summary, result)
        if wakeups:
            self._schedule(key, wakeups)

    def _dependencies(self) -> Dependencies:
        return Dependencies(
            connect=self.services.connect,
            cancel=self.services.cancel,
            lock=self.services.lock,
            versions=self._versions,
            audit=self.services.audit,
        )

    def _classify(self, result: PassResult) -> tuple[Outcome, str, str | None]:
        """(outcome, CamelCase reason, the error in words). Transient wins over permanent:
        what may clear by itself is retried soon; a conflict is simply reported again."""
        report = result.report
        assert report is not None
        if self.services.cancel.is_set() and any(
            r.status is ActionStatus.SKIPPED for r in report.results
        ):
            return Outcome.CANCELLED, "Cancelled", "the loop is stopping"
        errors = result.errors
        transient = [r for r in report.failed if _transient(r.error)]
        if result.plan.unobserved_hosts:
            return Outcome.TRANSIENT, "HostUnreachable", errors[0]
        if transient:
            first = transient[0]
            why = f"action {first.action_id} failed: {first.message}"
            return Outcome.TRANSIENT, "TransientFailure", why
        if report.failed:
            return Outcome.PERMANENT, "ActionFailed", errors[-1]
        if result.plan.conflicts:
            return Outcome.PERMANENT, "Conflict", errors[0]
        if result.withheld:  # waits for a confirmation: passed again at resync or on an edit
            return Outcome.PERMANENT, "DestroyGuard", result.withheld[0].message
        return Outcome.OK, "Reconciled", None

    # -- what comes next ---------------------------------------------------------------------
    def _next_wakeups(
        self,
        key: str,
        result: PassResult | None,
        now: int,
        outcome: Outcome,
    ) -> list[tuple[float, str]]:
        """(time, why) of each reason to pass the policy again."""
        wakeups: list[tuple[float, str]] = [(now + self.options.resync, "periodic resync")]
        due: float | None = self._snapshot_due(key, result, now)
        retry: float | None = None
        if outcome is Outcome.TRANSIENT:
            retry = self._retry_at(key)
            wakeups.append((retry, f"retry {self._backoff.failures(key)} after a transient error"))
        else:
            self._backoff.succeeded(key)
        if due is not None and due <= now:
            # due already: this pass did not take the snapshot (it failed, or its source was not
            # observed); try again with the retry, not at once
            due = retry if retry is not None else (now + 1 if outcome is Outcome.OK else None)
        if due is not None:
            # a snapshot falling due is never held back by the backoff of another error (an
            # unreachable target must not stop the source's snapshots)
            wakeups.append((due, "snapshot due"))
        return wakeups

    def _snapshot_due(self, key: str, result: PassResult | None, now: int) -> int | None:
        """From the pass's own intent: an intent memoizes what it parses of snapshot names,
        so one kept across passes (the generation's) would grow with every snapshot."""
        intent = next((i for i in result.policies if i.name == key), None) if result else None
        if result is None or intent is None:
            return None
        taken = False
        if result.report is not None:
            taken = any(
                isinstance(action, SnapshotAction)
                and (found := result.report.result(action.id)) is not None
                and found.succeeded
                for action in result.plan.actions
            )
        source = result.observed.host(intent.source_host)
        return next_snapshot_due(intent, source, now, taken_at=now if taken else None)

    def _retry_at(self, key: str) -> float:
        return self._clock.time() + self._backoff.failed(key)

    def _schedule(self, key: str, wakeups: list[tuple[float, str]]) -> None:
        """Queue the policy at the earliest wake-up, with every reason that falls then."""
        if self._stop.is_set():
            return
        at = min(when for when, _ in wakeups)
        for when, why in sorted(wakeups):
            if when == at:
                self._queue.add(key, why, at=at)

    def _settled(self, key: str, result: PassResult | None) -> StatusReport | None:
        """The status the pass left (`loop/settle.py`). A failure here is a bug in the
        report, never a reason to lose the pass's outcome or its next wake-up."""
        if result is None or result.report is None:
            return None
        try:
            return settled_status(result)
        except Exception as error:
            logger.opt(exception=error).error("policy {}: the status report failed", key)
            return None

    def _measure(
        self, summary: PassSummary, result: PassResult | None, status: StatusReport | None
    ) -> None:
        """Feed the pass to the metrics; like `_settled`, a failure is logged, no more."""
        ended = summary.started + summary.seconds
        try:
            if result is None or status is None:
                self.metrics.record(failed_pass(summary.policy, ended, summary.seconds))
                return
            for passed in policy_passes(result, status, ended, summary.seconds):
                ok = passed.succeeded and summary.outcome is Outcome.OK
                self.metrics.record(replace(passed, succeeded=ok))
        except Exception as error:
            logger.opt(exception=error).error("policy {}: the metrics failed", summary.policy)

    def _record(
        self,
        key: str,
        summary: PassSummary,
        reason: str,
        error: str | None,
        status: StatusReport | None = None,
    ) -> None:
        with self._mutex:
            policy = self._state.policies.get(key, PolicyState(key))
            ready = summary.outcome is Outcome.OK
            message = error or "every action succeeded; nothing in conflict"
            condition = PolicyCondition(ready, reason, message, summary.started + summary.seconds)
            if condition.same(policy.condition):
                condition = replace(condition, since=policy.condition.since)  # type: ignore[union-attr]
            else:
                logger.bind(policy=key).log(
                    "INFO" if ready else "WARNING",
                    "policy {}: condition {} ({}): {}",
                    key,
                    "Ready" if ready else "NotReady",
                    reason,
                    message,
                )
            updated = replace(
                policy,
                condition=condition,
                last_pass=summary,
                error=error,
                failures=self._backoff.failures(key),
                last_success=summary.started + summary.seconds if ready else policy.last_success,
                status=status if status is not None else policy.status,
            )
            self._state = replace(
                self._state,
                policies={**self._state.policies, key: updated},
                passes=self._state.passes + 1,
            )


def _transient(error: ZFSError | None) -> bool:
    if error is None:
        return False
    return isinstance(error, TRANSIENT_ERRORS) or any(text in error.detail for text in _BUSY)


def _one(error: str | None) -> tuple[str, ...]:
    return () if error is None else (error,)


def _summary(
    pass_id: int,
    key: str,
    generation_hash: str,
    started: float,
    seconds: float,
    now: int,
    item: WorkItem[str],
    result: PassResult | None,
) -> PassSummary:
    plan = result.plan if result is not None else None
    report = result.report if result is not None else None
    return PassSummary(
        pass_id=pass_id,
        policy=key,
        generation=generation_hash,
        started=started,
        seconds=seconds,
        now=now,
        why=item.reasons,
        actions=len(plan.actions) if plan is not None else 0,
        failed=len(report.failed) if report is not None else 0,
        conflicts=len(plan.conflicts) if plan is not None else 0,
        unobserved=tuple(u.host for u in plan.unobserved_hosts) if plan is not None else (),
        outcome=Outcome.OK,
        errors=result.errors if result is not None else (),
    )
