"""The saved plan: a plan with what it was computed from, as a versioned JSON document.

Owned here: `SavedPlan` (the plan, its planning time `now`, the selected policies, the manifest
generation and the fingerprint of the observed state, `core/fingerprint.py`),
`dump_saved_plan` (the file `reconcile --dry-run --out PATH` writes), `saved_plan_from_json`
(the hostile-input reader of `reconcile --plan PATH`) and `SavedPlanError`. Called by
`apply/saved_plan.py`, which does the file I/O. Pure: no I/O, no clock, no logging.

The layout is documented in docs/plan-format.md section 9; `SAVED_PLAN_FORMAT_VERSION` is its
own version, apart from the plan document's `format_version` (which the embedded `plan` keeps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from reconciler.core.fingerprint import Fingerprint
from reconciler.core.guard import DEFAULT_LIMIT, DestroyLimit, parse_limit
from reconciler.core.names import iso_time
from reconciler.core.plan import Plan
from reconciler.core.plan_decode import PlanDecodeError, parse_iso_time, plan_from_json
from reconciler.core.render import plan_to_json

SAVED_PLAN_FORMAT_VERSION = 1
SAVED_PLAN_KIND = "saved_plan"
SAVED_PLAN_KEYS = (
    "format_version",
    "kind",
    "now",
    "policies",
    "max_destroy",
    "generation",
    "fingerprint",
    "plan",
)


class SavedPlanError(ValueError):
    """A saved plan file that cannot be used, and why (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class SavedPlan:
    """A plan and what it was computed from. `policies` is None when every policy was
    planned (no `--policy`); `now` is the time the plan was made for, equal to `plan.now`."""

    plan: Plan
    policies: tuple[str, ...] | None
    generation: str
    fingerprint: Fingerprint
    max_destroy: DestroyLimit | None = DEFAULT_LIMIT  # the destroy guard's; None: --force

    @property
    def now(self) -> int:
        return self.plan.now


def saved_plan_to_json(saved: SavedPlan) -> dict[str, object]:
    """The saved plan as a JSON-ready object, keys in the documented order."""
    return {
        "format_version": SAVED_PLAN_FORMAT_VERSION,
        "kind": SAVED_PLAN_KIND,
        "now": iso_time(saved.now),
        "policies": list(saved.policies) if saved.policies is not None else None,
        "max_destroy": str(saved.max_destroy) if saved.max_destroy is not None else None,
        "generation": saved.generation,
        "fingerprint": saved.fingerprint,
        "plan": plan_to_json(saved.plan),
    }


def dump_saved_plan(saved: SavedPlan) -> str:
    """The saved plan as indented JSON text with a final newline; equal values, equal bytes."""
    return json.dumps(saved_plan_to_json(saved), indent=2, ensure_ascii=False) + "\n"


def saved_plan_from_json(document: object) -> SavedPlan:
    """The saved plan of a parsed JSON document; raises `SavedPlanError` naming what is wrong."""
    if not isinstance(document, dict):
        raise SavedPlanError("not a saved plan: the file is not a JSON object")
    if document.get("kind") != SAVED_PLAN_KIND:
        hint = " (a plan printed by --output json?)" if "actions" in document else ""
        raise SavedPlanError(
            f'not a saved plan{hint}: no "kind": "{SAVED_PLAN_KIND}"; '
            "save one with --dry-run --out PATH"
        )
    version = document.get("format_version")
    if type(version) is not int or version != SAVED_PLAN_FORMAT_VERSION:
        raise SavedPlanError(
            f"unsupported saved plan format_version {version!r} "
            f"(this reconciler reads {SAVED_PLAN_FORMAT_VERSION})"
        )
    missing = [key for key in SAVED_PLAN_KEYS if key not in document]
    if missing:
        raise SavedPlanError(f"saved plan: missing key {missing[0]!r}")
    try:
        plan = plan_from_json(document["plan"])
        now = parse_iso_time(document["now"], "now")
    except PlanDecodeError as error:
        where = f"plan.{error.path}" if error.path and error.path != "now" else error.path
        raise SavedPlanError(f"saved plan: {where}: {error.reason}") from None
    if now != plan.now:
        raise SavedPlanError("saved plan: now differs from plan.now")
    return SavedPlan(
        plan=plan,
        policies=_policies(document["policies"]),
        max_destroy=_max_destroy(document["max_destroy"]),
        generation=_generation(document["generation"]),
        fingerprint=_fingerprint(document["fingerprint"]),
    )


def _policies(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(name, str) and name for name in value)
    ):
        raise SavedPlanError("saved plan: policies: expected null or a list of policy names")
    return tuple(value)


def _max_destroy(value: object) -> DestroyLimit | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return parse_limit(value)
    except ValueError as error:
        raise SavedPlanError(f"saved plan: max_destroy: {error}") from None
    raise SavedPlanError("saved plan: max_destroy: expected null or a limit such as 25%")


def _generation(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise SavedPlanError("saved plan: generation: expected a string")
    return value


def _fingerprint(value: object) -> Fingerprint:
    """An object of hosts, each an object (compared as a whole with the one computed when the
    plan is applied: any other shape simply differs)."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise SavedPlanError("saved plan: fingerprint: expected an object of hosts")
    fingerprint: Fingerprint = value
    return fingerprint
