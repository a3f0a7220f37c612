"""Saved plans in the shell: writing and reading the file, and the check before applying one.

Owned here: `saved_plan_of` (a dry run's result → the `SavedPlan` to write), `check_out_path`
and `write_saved_plan` (`reconcile --dry-run --out PATH`: atomic, a temporary file in the same
directory renamed over the path), `read_saved_plan` (`reconcile --plan PATH`: the file as
hostile input, at most `MAX_SAVED_PLAN_BYTES`), `expect` (the `run_pass` check that refuses a
stale saved plan and otherwise hands the pass the saved plan to carry out) and the errors
`SavedPlanFileError` and `StalePlan`; `check_manifests` refuses a plan made from other
manifests. Called by the CLI (`reconciler/cli/apply.py`).

The format is `core/saved_plan.py`'s; the fingerprint `core/fingerprint.py`'s; the lines that
say what changed `core/staleness.py`'s. Documented for users in docs/plan-format.md section 9.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from reconciler.apply.passes import PassResult, PlanCheck
from reconciler.core.desired import PolicyIntent
from reconciler.core.fingerprint import fingerprint
from reconciler.core.guard import DEFAULT_LIMIT, DestroyLimit
from reconciler.core.plan import Plan
from reconciler.core.saved_plan import (
    SavedPlan,
    SavedPlanError,
    dump_saved_plan,
    saved_plan_from_json,
)
from reconciler.core.staleness import (
    capped,
    fingerprint_changes,
    manifests_changed,
    plan_changes,
)
from reconciler.core.state import Observed
from reconciler.manifest.changes import generation
from reconciler.manifest.models import Manifests

MAX_SAVED_PLAN_BYTES = 64 << 20
FILE_MODE = 0o644  # a plan names datasets and hosts; it holds no secret


class SavedPlanFileError(Exception):
    """A saved plan file that cannot be written or read: the path and why (one line)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class StalePlan(Exception):
    """A saved plan that no longer fits the manifests or the hosts: what changed, one line
    each (already capped)."""

    def __init__(self, changes: tuple[str, ...]) -> None:
        super().__init__(changes)
        self.changes = changes

    def __str__(self) -> str:
        return "; ".join(self.changes)


def saved_plan_of(
    result: PassResult,
    manifests: Manifests,
    only: Sequence[str] | None,
    max_destroy: DestroyLimit | None = DEFAULT_LIMIT,
) -> SavedPlan:
    """What `--out` saves of a dry run: its plan, policies, generation and fingerprint, and
    the destroy guard's limit it was made with (None: `--force`)."""
    return SavedPlan(
        plan=result.plan,
        policies=tuple(sorted(set(only))) if only else None,
        generation=generation(manifests),
        fingerprint=fingerprint(result.policies, result.observed),
        max_destroy=max_destroy,
    )


def check_out_path(path: Path) -> None:
    """Refuse, before anything is observed, a path a saved plan cannot be written to."""
    if path.is_dir():
        raise SavedPlanFileError(str(path), "is a directory")
    if not path.parent.is_dir():
        raise SavedPlanFileError(str(path), "its directory does not exist")


def write_saved_plan(path: Path, saved: SavedPlan) -> None:
    """Write atomically: the whole file appears under `path`, or nothing changes there."""
    check_out_path(path)
    data = dump_saved_plan(saved).encode("utf-8")
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), FILE_MODE)
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise SavedPlanFileError(str(path), error.strerror or str(error)) from None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def read_saved_plan(path: Path) -> SavedPlan:
    """The saved plan in `path`; `SavedPlanFileError` (one line) for anything else."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SAVED_PLAN_BYTES + 1)
    except OSError as error:
        raise SavedPlanFileError(str(path), error.strerror or str(error)) from None
    if len(data) > MAX_SAVED_PLAN_BYTES:
        limit = MAX_SAVED_PLAN_BYTES >> 20
        raise SavedPlanFileError(str(path), f"larger than {limit} MiB: not a saved plan")
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SavedPlanFileError(str(path), "not UTF-8 text: not a saved plan") from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise SavedPlanFileError(str(path), f"not valid JSON ({where}): {error.msg}") from None
    except (ValueError, RecursionError) as error:
        raise SavedPlanFileError(str(path), f"not valid JSON: {error}") from None
    try:
        return saved_plan_from_json(document)
    except SavedPlanError as error:
        raise SavedPlanFileError(str(path), str(error)) from None


def expect(saved: SavedPlan) -> PlanCheck:
    """The `run_pass` check of a saved plan: raises `StalePlan` when what the pass observed
    differs from what the plan was made from (the fingerprint) or when the plan made now
    differs from the saved one; otherwise returns the saved plan, with the notices and
    unobserved hosts of now, to be carried out."""

    def check(policies: Sequence[PolicyIntent], observed: Observed, plan: Plan) -> Plan:
        changes = fingerprint_changes(saved.fingerprint, fingerprint(policies, observed))
        if not changes:
            changes = plan_changes(saved.plan, plan)
        if changes:
            raise StalePlan(capped(changes))
        return replace(saved.plan, notices=plan.notices, unobserved_hosts=plan.unobserved_hosts)

    return check


def check_manifests(saved: SavedPlan, manifests: Manifests) -> None:
    """Raise `StalePlan`, before anything is observed, when the manifests are not those the
    plan was made from (their generation) or lack one of its policies."""
    changes = manifests_changed(saved.generation, generation(manifests))
    if changes:
        raise StalePlan(changes)
    missing = sorted(set(saved.policies or ()) - set(manifests.policies))
    if missing:
        raise StalePlan((f"policy {', '.join(missing)} is no longer in the manifests",))
