"""The destroy guard: a plan that would destroy too many snapshots of one filesystem at once
loses those destroys until a person confirms them.

Owned here: `DestroyLimit` (a count or a share of the managed snapshots, `parse_limit`),
`GuardedDestroys` (one filesystem's destroys that were held back and why), `GuardVerdict` and
`guard_plan`, a pure function of (plan, policies, observed, limit, confirmed policies). Called by
`apply/passes.run_pass` between planning and executing, so the one-shot pass, `--dry-run`,
`status` and the control loop all see the same verdict.

What counts: per (policy, host, filesystem), the snapshots its destroy actions name that earlier
passes kept (today's rules would have destroyed them in the state before this pass, and on the
source every target had received them: a rule change, not time or a target's outage, is what
frees them), plus those a rollback would take with it. What it is compared with: the snapshots
of that filesystem that the policy manages (its prefix), as observed, plus those the plan itself
creates there (the snapshot a pass takes counts in that pass's retention). Over the limit, every
destroy and rollback of that filesystem for that policy is withheld, together with every action
that depends on one of them; the rest of the plan stands, so snapshots and replication go on
while the destroys wait. Each withheld group becomes a `destroy_guard` notice of the plan. A
policy named in `confirmed` (its manifest confirms the destroys of its current spec,
`manifest/confirm.py`) is not guarded. Bookmarks are not counted: they hold no data.
docs/destroy-guard.md is the user's view.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.core.desired import PolicyIntent
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
from reconciler.core.retention import Rule, evaluate
from reconciler.core.state import FilesystemState, Observed

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
    snapshots: tuple[str, ...]  # "@name", in plan order: those counted against the limit
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
            f"destroy guard: policy {self.policy} would destroy {len(self.snapshots)} of the "
            f"{self.managed} snapshots it manages on {self.host}:{self.filesystem} that earlier "
            f"passes kept ({shown}); the limit is {self.allowed} ({self.limit}); withheld until "
            "confirmed" + (f": {self.hint}" if self.hint else "")
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
    intents = {p.name: p for p in policies}
    doomed = _doomed(plan.actions, confirmed)
    if not doomed:
        return GuardVerdict(plan)
    created = _created(plan.actions)
    groups: list[GuardedDestroys] = []
    for key, found in doomed.items():
        policy, host, filesystem = key
        intent = intents.get(policy)
        if intent is None:
            continue
        overdue = _overdue(intent, found.target, observed, host, filesystem)
        counted = found.rolled_back + [n for n in found.pruned if n in overdue]
        managed = created[key] + _managed(observed, host, filesystem, intent)
        allowed = limit.allowed(managed)
        if len(counted) > allowed:
            hint = (hints or {}).get(policy, "")
            group = (tuple(counted), managed, allowed, limit, tuple(found.actions), hint)
            groups.append(GuardedDestroys(policy, host, filesystem, *group))
    if not groups:
        return GuardVerdict(plan)
    withheld = _with_dependents(plan.actions, {i for g in groups for i in g.action_ids})
    notices = tuple(_notice(group) for group in groups)
    kept = tuple(a for a in plan.actions if a.id not in withheld)
    guarded = replace(plan, actions=kept, notices=plan.notices + notices)
    return GuardVerdict(guarded, tuple(groups), frozenset(withheld))


_Key = tuple[str, str, str]  # (policy, host, filesystem)


@dataclass
class _Doomed:
    """What one group's actions would destroy: retention's snapshots (`pruned`) and those of
    rollbacks, the actions, and the target whose side this is (None: the source)."""

    pruned: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    actions: list[DestroyAction | RollbackAction] = field(default_factory=list)
    target: str | None = None


def _doomed(actions: Iterable[Action], confirmed: Collection[str]) -> dict[_Key, _Doomed]:
    found: dict[_Key, _Doomed] = defaultdict(_Doomed)
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
        group = found[(action.policy, action.host, action.filesystem)]
        if isinstance(action, DestroyAction):
            group.pruned += names
        else:
            group.rolled_back += names
        group.actions.append(action)
        group.target = action.target
    return found


def _overdue(
    intent: PolicyIntent, target: str | None, observed: Observed, host: str, filesystem: str
) -> set[str]:
    """The snapshots ("@name") of the filesystem that its rules would already have destroyed
    in the state before this pass (retention's "now" is the youngest snapshot it sees), less,
    on the source, those a target had not received yet: what earlier passes kept although
    today's rules do not keep it. Destroys that are due only because time went on (a new
    snapshot moves the grid) are not here, nor those a target's outage held back."""
    state = observed.host(host).filesystem(filesystem)
    rules = intent.rules if target is None else _target_rules(intent, target)
    if state is None or not rules:
        return set()
    names = tuple(v.name for v in state.snapshots)
    result = evaluate(rules, intent.managed(names).pairs())
    overdue = {name for name, _ in result.destroyed}
    if target is None:
        replicated = _replicated_up_to(intent, state, observed)
        if replicated is not None:
            txg = {v.name: v.createtxg for v in state.snapshots}
            overdue = {name for name in overdue if txg[name] <= replicated}
    return {f"@{name}" for name in overdue}


def _target_rules(intent: PolicyIntent, target: str) -> tuple[Rule, ...]:
    return next((t.rules for t in intent.targets if t.name == target), ())


def _replicated_up_to(
    intent: PolicyIntent, source: FilesystemState, observed: Observed
) -> int | None:
    """The createtxg up to which every observed target has the source's snapshots (the oldest
    of their newest common versions, by GUID; -1 when one has none); None when no target is
    observed."""
    txg_of_guid = {v.guid: v.createtxg for v in source.versions}
    oldest: int | None = None
    for target in intent.targets:
        host = observed.host(target.host)
        if not host.reachable:
            continue
        replica = host.filesystem(target.target_filesystem(source.name))
        common = (
            max(
                (txg_of_guid[v.guid] for v in replica.versions if v.guid in txg_of_guid), default=-1
            )
            if replica is not None
            else -1
        )
        oldest = common if oldest is None else min(oldest, common)
    return oldest


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


def _managed(observed: Observed, host: str, filesystem: str, intent: PolicyIntent) -> int:
    """The snapshots of the filesystem that the policy owns (its own names and adopted ones)."""
    state = observed.host(host).filesystem(filesystem)
    if state is None:
        return 0
    return sum(1 for v in state.snapshots if intent.snapshot_time(v.name) is not None)


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
