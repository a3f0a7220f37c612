"""The control loop's state: one frozen value saying what the loop knows and will do next.

Owned here: `LoopState` (manifest generation and validity, the errors of an invalid edit, and
per policy a `PolicyState`: its last pass, its last success, its condition, its current error,
when and why it wakes next, and the status report its last pass left), `PassSummary`,
`PolicyCondition`, the outcome classes (`Outcome`) and the JSON form (`state_to_json`, with
`format_version`) that `docs/loop.md` describes. Built by the controller
(`loop/controller.py`) after every pass and every manifest load; read by its logs, by tests
and by the HTTP endpoint (`loop/http.py`). Pure values: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from reconciler.core.status import StatusReport

LOOP_STATE_FORMAT_VERSION = 1


class Outcome(StrEnum):
    """How a pass ended, as the loop classifies it (docs/loop.md "Errors")."""

    OK = "ok"  # every action succeeded, nothing in conflict, every host observed
    TRANSIENT = "transient"  # worth retrying soon: a host unreachable, a stream cut, a lock held
    PERMANENT = "permanent"  # waits for a manifest edit or the next resync: conflict, refusal
    CANCELLED = "cancelled"  # the loop is stopping


@dataclass(frozen=True, slots=True)
class PolicyCondition:
    """Kubernetes-style: `ready` with a CamelCase `reason` and a human `message`."""

    ready: bool
    reason: str
    message: str
    since: float  # UNIX seconds: when it last changed

    def same(self, other: PolicyCondition | None) -> bool:
        return other is not None and (self.ready, self.reason) == (other.ready, other.reason)


@dataclass(frozen=True, slots=True)
class PassSummary:
    pass_id: int
    policy: str
    generation: str
    started: float
    seconds: float
    now: int  # the time the plan was made for
    why: tuple[str, ...]  # the wake-up reasons that started it
    actions: int
    failed: int
    conflicts: int
    unobserved: tuple[str, ...]
    outcome: Outcome
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Wakeup:
    at: float
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyState:
    name: str
    condition: PolicyCondition | None = None
    last_pass: PassSummary | None = None
    error: str | None = None  # the current error, until a pass succeeds
    failures: int = 0  # consecutive transient failures (the backoff's count)
    next_wakeup: Wakeup | None = None
    running: bool = False
    added: float | None = None  # UNIX seconds: when the policy came into force in this loop
    last_success: float | None = None  # UNIX seconds: when its last pass without errors ended
    status: StatusReport | None = None  # of its last pass that observed, after its actions


@dataclass(frozen=True, slots=True)
class LoopState:
    started: float
    generation: str | None = None  # hash of the normalized manifests in force (None: none yet)
    manifests_valid: bool = False  # whether the last load succeeded
    manifest_errors: tuple[str, ...] = ()  # FILE:LINE:COLUMN: field.path: message
    policies: Mapping[str, PolicyState] = field(default_factory=dict)
    passes: int = 0
    stopping: bool = False


def state_to_json(state: LoopState) -> dict[str, Any]:
    return {
        "format_version": LOOP_STATE_FORMAT_VERSION,
        "started": _iso(state.started),
        "generation": state.generation,
        "manifests_valid": state.manifests_valid,
        "manifest_errors": list(state.manifest_errors),
        "passes": state.passes,
        "stopping": state.stopping,
        "policies": {name: _policy_json(p) for name, p in sorted(state.policies.items())},
    }


def _policy_json(policy: PolicyState) -> dict[str, Any]:
    condition = policy.condition
    last = policy.last_pass
    wakeup = policy.next_wakeup
    return {
        "condition": None
        if condition is None
        else {
            "ready": condition.ready,
            "reason": condition.reason,
            "message": condition.message,
            "since": _iso(condition.since),
        },
        "last_pass": None
        if last is None
        else {
            "id": last.pass_id,
            "generation": last.generation,
            "started": _iso(last.started),
            "seconds": round(last.seconds, 3),
            "why": list(last.why),
            "actions": last.actions,
            "failed": last.failed,
            "conflicts": last.conflicts,
            "unobserved_hosts": list(last.unobserved),
            "outcome": last.outcome.value,
            "errors": list(last.errors),
        },
        "last_success": None if policy.last_success is None else _iso(policy.last_success),
        "error": policy.error,
        "failures": policy.failures,
        "next_wakeup": None
        if wakeup is None
        else {"at": _iso(wakeup.at), "why": list(wakeup.reasons)},
        "running": policy.running,
    }


def _iso(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds; a time outside 1970 to 9999 is clamped to that range
    rather than failing the whole state."""
    moment = _EPOCH + timedelta(seconds=min(max(seconds, 0.0), _LAST))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = 253402300799.0  # 9999-12-31T23:59:59Z
