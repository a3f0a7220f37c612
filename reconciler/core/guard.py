"""The destroy guard: a plan that would destroy too many snapshots of one filesystem at once
loses those destroys until a person confirms them.

Owned here: `DestroyLimit` (a count or a share of the managed snapshots, `parse_limit`),
`GuardedDestroys` (one filesystem's destroys that were held back and why), `GuardVerdict` and
`guard_plan`, a pure function of (plan, policies, observed, limit, confirmed policies). Called by
`apply/passes.run_pass` between planning and executing, so the one-shot pass, `--dry-run`,
`status` and the control loop all see the same verdict.

What counts: per (policy, host, filesystem), the snapshots its destroy actions name plus those a
rollback would take with it. What it is compared with: the snapshots of that filesystem that the
policy manages (its prefix), as observed, plus those the plan itself creates there (the snapshot
a pass takes counts in that pass's retention). Over the limit, every destroy and rollback of that
filesystem for that policy is withheld, together with every action that depends on one of them;
the rest of the plan stands, so snapshots and replication go on while the destroys wait. Each
withheld group becomes a `destroy_guard` notice of the plan. A policy named in `confirmed` (its
manifest confirms the destroys of its current spec, `manifest/confirm.py`) is not guarded.
Bookmarks are not counted: they hold no data. docs/destroy-guard.md is the user's view.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from reconciler.core.desired import PolicyIntent
from reconciler.core.names import is_managed_snapshot
from reconciler.core.plan import (
    Action,
    DestroyAction,
    Notice,
    NoticeKind,
    Plan,
    RollbackAction,
    SendAction,
    SnapshotAction,
)
from reconciler.core.state import Observed

MAX_NAMES_SHOWN = 5  # snapshot names a notice spells out before "and N more"


@dataclass(frozen=True, slots=True)
class DestroyLimit:
    """At most `count` snapshots, or at most `percent` % of the managed ones (never fewer than
    one unless the percentage is 0), destroyed on one filesystem by one policy in one pass."""

    count: int | None = None
    percent: int | None = None

    def allowed(self, managed: int) -> int:
        if self.count is not None:
            return self.count
        percent = self.percent or 0
        return 0 if percent == 0 else max(1, managed * percent // 100)

    def __str__(self) -> str:
        return f"{self.percent}%" if self.count is None else str(self.count)


DEFAULT_LIMIT = DestroyLimit(percent=25)
_LIMIT = re.compile(r"(0|[1-9][0-9]{0,8})(%?)")


def parse_limit(text: str) -> DestroyLimit:
    """`10` (snapshots) or `25%` (of the managed ones, 0 to 100); ValueError otherwise."""
    match = _LIMIT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a count or a percentage (e.g. 10 or 25%): {text!r}")
    number, percent = int(match[1]), bool(match[2])
    if percent and number > 100:
        raise ValueError(f"a percentage is at most 100%: {text!r}")
    return DestroyLimit(percent=number) if percent else DestroyLimit(count=number)


@dataclass(frozen=True, slots=True)
class GuardedDestroys:
    """One (policy, host, filesystem) whose destroys were withheld."""

    policy: str
    host: str
    filesystem: str
    snapshots: tuple[str, ...]  # "@name", in plan order
    managed: int  # the policy's snapshots there, observed and planned
    allowed: int
    limit: DestroyLimit
    actions: tuple[DestroyAction | RollbackAction, ...]  # the destroys and rollbacks
    hint: str = ""  # how to confirm them

    @property
    def action_ids(self) -> tuple[int, ...]:
        return tuple(action.id for action in self.actions)

    @property
    def message(self) -> str:
        names = ", ".join(self.snapshots[:MAX_NAMES_SHOWN])
        more = len(self.snapshots) - MAX_NAMES_SHOWN
        shown = f"{names} and {more} more" if more > 0 else names
        return (
            f"destroy guard: {len(self.snapshots)} of the {self.managed} snapshots policy "
            f"{self.policy} manages on {self.host}:{self.filesystem} would be destroyed "
            f"({shown}); the limit is {self.allowed} ({self.limit}); withheld until confirmed"
            + (f": {self.hint}" if self.hint else "")
        )


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The plan to carry out (`plan`: without the withheld actions, with a notice per group),
    the groups withheld, and the ids of every action withheld (dependents included)."""

    plan: Plan
    withheld: tuple[GuardedDestroys, ...] = ()
    withheld_ids: frozenset[int] = frozenset()


def guard_plan(
    plan: Plan,
    policies: Sequence[PolicyIntent],
    observed: Observed,
    limit: DestroyLimit | None,
    confirmed: Collection[str] = (),
    hints: Mapping[str, str] | None = None,
) -> GuardVerdict:
    """Withhold the destroys of every (policy, host, filesystem) over `limit` (None: no guard).
    `hints` says, per policy, how to confirm its destroys (shown in the notices)."""
    if limit is None:
        return GuardVerdict(plan)
    prefixes = {p.name: p.prefix for p in policies}
    doomed = _doomed(plan.actions, confirmed)
    if not doomed:
        return GuardVerdict(plan)
    created = _created(plan.actions)
    groups: list[GuardedDestroys] = []
    for key, (snapshots, actions) in doomed.items():
        policy, host, filesystem = key
        prefix = prefixes.get(policy)
        managed = created[key] + (_managed(observed, host, filesystem, prefix) if prefix else 0)
        allowed = limit.allowed(managed)
        if len(snapshots) > allowed:
            hint = (hints or {}).get(policy, "")
            found = (tuple(snapshots), managed, allowed, limit, tuple(actions), hint)
            groups.append(GuardedDestroys(policy, host, filesystem, *found))
    if not groups:
        return GuardVerdict(plan)
    withheld = _with_dependents(plan.actions, {i for g in groups for i in g.action_ids})
    notices = tuple(_notice(group) for group in groups)
    kept = tuple(a for a in plan.actions if a.id not in withheld)
    guarded = replace(plan, actions=kept, notices=plan.notices + notices)
    return GuardVerdict(guarded, tuple(groups), frozenset(withheld))


_Key = tuple[str, str, str]  # (policy, host, filesystem)


_Doomed = tuple[list[str], list[DestroyAction | RollbackAction]]


def _doomed(actions: Iterable[Action], confirmed: Collection[str]) -> dict[_Key, _Doomed]:
    """(snapshots, actions) of the destroys and rollbacks of each group."""
    found: dict[_Key, _Doomed] = defaultdict(lambda: ([], []))
    for action in actions:
        if action.policy in confirmed:
            continue
        if isinstance(action, DestroyAction):
            names = [v for v in action.versions if v.startswith("@")]
        elif isinstance(action, RollbackAction):
            names = list(action.destroys)
        else:
            continue
        if not names:
            continue
        snapshots, doomed = found[(action.policy, action.host, action.filesystem)]
        snapshots += names
        doomed.append(action)
    return found


def _created(actions: Iterable[Action]) -> Counter[_Key]:
    """Snapshots the plan makes on each (policy, host, filesystem): taken or received."""
    made: Counter[_Key] = Counter()
    for action in actions:
        if isinstance(action, SnapshotAction):
            for filesystem in action.filesystems:
                made[(action.policy, action.host, filesystem)] += 1
        elif isinstance(action, SendAction):
            key = (action.policy, action.target_host, action.target_filesystem)
            made[key] += len(action.delivers)
    return made


def _managed(observed: Observed, host: str, filesystem: str, prefix: str) -> int:
    state = observed.host(host).filesystem(filesystem)
    if state is None:
        return 0
    return sum(1 for v in state.snapshots if is_managed_snapshot(prefix, v.name))


def _with_dependents(actions: Sequence[Action], roots: set[int]) -> set[int]:
    """`roots` and every action that depends on one of them, directly or not (the plan lists
    an action after everything it depends on)."""
    withheld = set(roots)
    for action in actions:
        if withheld.intersection(action.depends_on):
            withheld.add(action.id)
    return withheld


def _notice(group: GuardedDestroys) -> Notice:
    return Notice(
        NoticeKind.DESTROY_GUARD,
        group.host,
        group.message,
        policy=group.policy,
        filesystem=group.filesystem,
    )
