"""The plan under construction: numbered actions, conflicts and notices, in build order.

Owned here: `PlanBuilder`, used only by the planner modules. Actions get ids in the order they
are added; the planner adds an action only after everything it depends on, so a plan's order
is also a valid execution order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from reconciler.core.plan import Action, Conflict, Notice, Plan

A = TypeVar("A", bound=Action)


class PlanBuilder:
    def __init__(self) -> None:
        self.actions: list[Action] = []
        self.conflicts: list[Conflict] = []
        self.notices: list[Notice] = []
        self._notice_keys: set[Notice] = set()
        # (host, filesystem) → id of the first send that creates it in this pass
        self.first_receive: dict[tuple[str, str], int] = {}
        # (host, filesystem) → id of the create_parent action for it
        self.created: dict[tuple[str, str], int] = {}
        self._refs: dict[str, str] = {}

    def snapshot_refs(self, names: Iterable[str]) -> tuple[str, ...]:
        """`@name` for each name, the same string object for the same name: a plan that
        destroys the same snapshot names on thousands of filesystems stores each name once."""
        refs = self._refs
        return tuple([refs.get(n) or refs.setdefault(n, "@" + n) for n in names])

    def add(self, action_type: type[A], **fields: Any) -> int:
        action_id = len(self.actions)
        fields["depends_on"] = tuple(sorted(set(fields.get("depends_on", ()))))
        self.actions.append(action_type(id=action_id, **fields))
        return action_id

    def conflict(self, conflict: Conflict) -> None:
        self.conflicts.append(conflict)

    def notice(self, notice: Notice) -> None:
        if notice not in self._notice_keys:
            self._notice_keys.add(notice)
            self.notices.append(notice)

    def build(self, now: int) -> Plan:
        return Plan(
            now=now,
            actions=tuple(self.actions),
            conflicts=tuple(self.conflicts),
            notices=tuple(self.notices),
        )
