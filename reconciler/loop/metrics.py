"""Prometheus metrics of passes, in the `zfs_reconciler_` namespace (docs/monitoring.md).

Owned here: `PolicyPass` (what one policy's pass says for metrics; `policy_passes` reads them
off a `PassResult` and its settled status, `failed_pass` stands for a pass that ended before it
observed anything) and `Metrics` (the accumulator: counters and the duration histogram across
passes, the latest gauges of each policy, the manifests' validity), which is a prometheus-client
collector in a `CollectorRegistry` of its own, never the global one. prometheus-client writes
the exposition format and escapes label values (dataset names may hold quotes, backslashes,
newlines). Fed by the control loop after every pass and manifest load, read by its HTTP
endpoint (`loop/http.py`), and by the CLI's `--metrics-file` for one pass. No I/O here: the
socket and the file are the callers'; `seed` takes a previous textfile's text so that counters
and the last success survive from one cron run to the next.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from reconciler.apply.executor import ActionResult
from reconciler.apply.passes import PassResult, hosts_of
from reconciler.core.desired import PolicyIntent, source_filesystems
from reconciler.core.state import FilesystemState, Observed, VersionKind
from reconciler.core.status import Condition, PolicyStatus, StatusReport

PREFIX = "zfs_reconciler_"
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, math.inf)


@dataclass(frozen=True, slots=True)
class PolicyPass:
    """One policy's pass for metrics. `status` and the counts after it are None when the pass
    ended before it observed anything (a lock held, a crash): the gauges of the previous pass
    then stay."""

    policy: str
    ended: float  # UNIX seconds
    seconds: float
    succeeded: bool  # every action succeeded, nothing in conflict, every host observed
    actions: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (kind, result) → n
    sent_bytes: Mapping[str, int] = field(default_factory=dict)  # target → bytes
    conflicts: int | None = None
    unobserved: int | None = None  # hosts of the policy not observed
    withheld: int | None = None  # snapshots whose destroy the guard withheld
    managed: Mapping[str, int] | None = None  # host → managed snapshots observed there
    status: PolicyStatus | None = None


def failed_pass(policy: str, ended: float, seconds: float) -> PolicyPass:
    return PolicyPass(policy, ended, seconds, succeeded=False)


def policy_passes(
    result: PassResult, status: StatusReport, ended: float, seconds: float
) -> tuple[PolicyPass, ...]:
    """Per policy of the pass: its actions by kind and result, the bytes its sends moved, its
    conflicts and unobserved hosts, its managed snapshots per host, its (settled) status."""
    statuses = {p.name: p for p in status.policies}
    outcomes = {r.action_id: r for r in result.report.results} if result.report else {}
    return tuple(
        replace(
            _policy_pass(intent, result, outcomes),
            ended=ended,
            seconds=seconds,
            status=statuses.get(intent.name),
        )
        for intent in result.policies
    )


def _policy_pass(
    intent: PolicyIntent, result: PassResult, outcomes: Mapping[int, ActionResult]
) -> PolicyPass:
    actions = [a for a in result.plan.actions if a.policy == intent.name]
    counted: Counter[tuple[str, str]] = Counter()
    sent: Counter[str] = Counter({t.name: 0 for t in intent.targets})
    for action in actions:
        found = outcomes.get(action.id)
        counted[(action.kind.value, found.status.value if found else "not_run")] += 1
        if found is not None and found.bytes is not None and action.target is not None:
            sent[action.target] += found.bytes
    hosts = [h for h in hosts_of([intent]) if not result.observed.host(h).reachable]
    conflicts = sum(1 for c in result.plan.conflicts if c.policy == intent.name)
    done = all((o := outcomes.get(a.id)) is not None and o.succeeded for a in actions)
    withheld = sum(len(g.snapshots) for g in result.withheld if g.policy == intent.name)
    return PolicyPass(
        policy=intent.name,
        ended=0.0,
        seconds=0.0,
        succeeded=result.report is not None
        and done
        and not conflicts
        and not hosts
        and not withheld,
        actions=dict(counted),
        sent_bytes=dict(sent),
        conflicts=conflicts,
        unobserved=len(hosts),
        withheld=withheld,
        managed=managed_snapshots(intent, result.observed),
    )


def managed_snapshots(intent: PolicyIntent, observed: Observed) -> dict[str, int]:
    """Host → the policy's managed snapshots observed there: on its source filesystems and on
    their replicas. A host not observed has no entry (nor do targets while the source is not
    observed: which filesystems they should hold is unknown)."""
    counts: Counter[str] = Counter()
    source = observed.host(intent.source_host)
    if not source.reachable:
        return {}
    names = source_filesystems(intent, list(source.filesystems))
    counts[intent.source_host] += sum(_managed(intent, source.filesystems[n]) for n in names)
    for target in intent.targets:
        host = observed.host(target.host)
        if not host.reachable:
            continue
        replicas = (host.filesystem(target.target_filesystem(n)) for n in names)
        counts[target.host] += sum(_managed(intent, r) for r in replicas if r is not None)
    return dict(counts)


def _managed(intent: PolicyIntent, state: FilesystemState) -> int:
    names = tuple(v.name for v in state.versions if v.kind is VersionKind.SNAPSHOT)
    return len(intent.managed(names).names)


class Metrics(Collector):
    """The metrics of a loop (or of one pass), thread-safe: `record` a pass from any thread,
    `manifests` after every load, `retain` the policies in force; `registry` is what
    `generate_latest` and `write_to_textfile` read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, PolicyPass] = {}
        self._last_success: dict[str, float] = {}
        self._sent: dict[tuple[str, ...], float] = {}  # (policy, target) → bytes
        self._actions: dict[tuple[str, ...], float] = {}  # (policy, kind, result) → count
        self._durations: dict[str, tuple[list[float], float]] = {}  # buckets' counts, sum
        self._valid: bool | None = None
        self._generation: str | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def record(self, passed: PolicyPass) -> None:
        name = passed.policy
        with self._lock:
            if passed.status is not None or name not in self._latest:
                self._latest[name] = passed
            if passed.succeeded:
                self._last_success[name] = passed.ended
            for target, sent in passed.sent_bytes.items():
                self._sent[(name, target)] = self._sent.get((name, target), 0) + sent
            for (kind, result), count in passed.actions.items():
                key = (name, kind, result)
                self._actions[key] = self._actions.get(key, 0) + count
            counts, total = self._durations.get(name, ([0.0] * len(DURATION_BUCKETS), 0.0))
            for index, bound in enumerate(DURATION_BUCKETS):
                counts[index] += 1 if passed.seconds <= bound else 0
            self._durations[name] = (counts, total + passed.seconds)

    def manifests(self, valid: bool, generation: str | None) -> None:
        with self._lock:
            self._valid, self._generation = valid, generation

    def retain(self, policies: Iterable[str]) -> None:
        """Forget every series of the policies not in `policies` (gone from the manifests):
        a policy removed is no longer reconciled, and its last success must not age into an
        alert."""
        keep = set(policies)
        with self._lock:
            for table in (self._latest, self._last_success, self._durations):
                for name in set(table) - keep:
                    del table[name]
            for counter in (self._sent, self._actions):
                for key in [k for k in counter if k[0] not in keep]:
                    del counter[key]

    def last_success(self, policy: str) -> float | None:
        with self._lock:
            return self._last_success.get(policy)

    # -- exposition ----------------------------------------------------------------------------
    def describe(self) -> Iterable[Metric]:
        return []  # families are known only once collected; no checks of duplicate names

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            latest = dict(self._latest)
            last_success = dict(self._last_success)
            sent, actions = dict(self._sent), dict(self._actions)
            durations = {k: (list(c), s) for k, (c, s) in self._durations.items()}
            valid, generation = self._valid, self._generation
        yield from _manifest_families(valid, generation)
        successes: dict[tuple[str, ...], float] = {(p,): at for p, at in last_success.items()}
        yield _gauge("last_success_timestamp_seconds", _LAST_SUCCESS, ["policy"], successes)
        yield from _pass_families(latest)
        yield from _replica_families(latest)
        yield _counter("sent_bytes", _SENT, ["policy", "target"], sent)
        yield _counter("actions", _ACTIONS, ["policy", "kind", "result"], actions)
        yield _histogram(durations)

    # -- carried over from a previous textfile ---------------------------------------------------
    def seed(self, text: str) -> None:
        """Start the counters, the histogram and the last successes from a previous
        exposition of these metrics (the textfile a cron run wrote last time). Raises
        ValueError when the text is not the exposition format."""
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self._seed(sample.name, sample.labels, sample.value)

    def _seed(self, name: str, labels: Mapping[str, str], value: float) -> None:
        policy = labels.get("policy")
        if policy is None or not math.isfinite(value) or value < 0:
            return
        short = name.removeprefix(PREFIX)
        if short == "last_success_timestamp_seconds":
            self._last_success[policy] = value
        elif short == "sent_bytes_total" and "target" in labels:
            self._sent[(policy, labels["target"])] = value
        elif short == "actions_total" and {"kind", "result"} <= set(labels):
            self._actions[(policy, labels["kind"], labels["result"])] = value
        elif short.startswith("pass_duration_seconds_"):
            self._seed_duration(short.removeprefix("pass_duration_seconds_"), labels, value)

    def _seed_duration(self, part: str, labels: Mapping[str, str], value: float) -> None:
        policy = labels["policy"]
        counts, total = self._durations.get(policy, ([0.0] * len(DURATION_BUCKETS), 0.0))
        if part == "sum":
            total = value
        elif part == "bucket":
            try:
                bound = float(labels.get("le", "nan"))
            except ValueError:
                return
            if bound not in DURATION_BUCKETS:
                return
            counts[DURATION_BUCKETS.index(bound)] = value
        self._durations[policy] = (counts, total)


_VALID = "1 when the last load of the manifests succeeded, else 0."
_LAST_SUCCESS = "When the policy's last pass without errors ended (UNIX seconds)."
_SENT = "Bytes sent by the policy's sends to a target."
_ACTIONS = "Actions carried out, by kind and result (ok, already_done, failed, skipped)."


def _manifest_families(valid: bool | None, generation: str | None) -> Iterator[Metric]:
    if valid is not None:
        yield _gauge("manifests_valid", _VALID, [], {(): valid})
    info = GaugeMetricFamily(
        PREFIX + "manifest_generation_info",
        "The generation (hash of the normalized manifests) in force; the value is always 1.",
        labels=["generation"],
    )
    if generation is not None:
        info.add_metric([generation], 1)
    yield info


def _pass_families(latest: Mapping[str, PolicyPass]) -> Iterator[Metric]:
    passes = sorted(latest.values(), key=lambda p: p.policy)
    yield _gauge(
        "conflicts",
        "Filesystems of the policy in conflict at its last pass.",
        ["policy"],
        {(p.policy,): p.conflicts for p in passes if p.conflicts is not None},
    )
    yield _gauge(
        "hosts_unobserved",
        "Hosts of the policy (source and targets) that its last pass could not observe.",
        ["policy"],
        {(p.policy,): p.unobserved for p in passes if p.unobserved is not None},
    )
    yield _gauge(
        "destroys_withheld",
        "Snapshots whose destroy the destroy guard withheld at the policy's last pass "
        "(docs/destroy-guard.md): they wait for a confirmation.",
        ["policy"],
        {(p.policy,): p.withheld for p in passes if p.withheld is not None},
    )
    yield _gauge(
        "managed_snapshots",
        "The policy's managed snapshots on each host, as its last pass observed them.",
        ["policy", "host"],
        {(p.policy, host): n for p in passes for host, n in sorted((p.managed or {}).items())},
    )


def _replica_families(latest: Mapping[str, PolicyPass]) -> Iterator[Metric]:
    lag: dict[tuple[str, ...], float] = {}
    conditions: dict[tuple[str, ...], float] = {}
    for name in sorted(latest):
        status = latest[name].status
        for target in status.targets if status is not None else ():
            for replica in target.replicas:
                key = (name, target.name, replica.filesystem or "")
                if replica.lag is not None:
                    lag[key] = replica.lag
                for condition in Condition:
                    conditions[(*key, condition.value)] = condition is replica.condition
    yield _gauge(
        "replication_lag_seconds",
        "Age of the newest snapshot common to the source filesystem and its replica.",
        ["policy", "target", "filesystem"],
        lag,
    )
    yield _gauge(
        "replica_condition",
        "1 for the replica's current condition (reconcile status), 0 for the others.",
        ["policy", "target", "filesystem", "condition"],
        conditions,
    )


def _gauge(
    name: str, help_text: str, labels: list[str], values: Mapping[tuple[str, ...], float | bool]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(PREFIX + name, help_text, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), float(value))
    return family


def _counter(
    name: str, help_text: str, labels: list[str], values: Mapping[tuple[str, ...], float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(PREFIX + name, help_text, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _histogram(durations: Mapping[str, tuple[list[float], float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        PREFIX + "pass_duration_seconds",
        "How long the policy's passes took, from observing to the last action.",
        labels=["policy"],
    )
    for policy, (counts, total) in sorted(durations.items()):
        buckets = [
            ("+Inf" if math.isinf(bound) else repr(bound), count)
            for bound, count in zip(DURATION_BUCKETS, counts, strict=True)
        ]
        family.add_metric([policy], buckets, total)
    return family
