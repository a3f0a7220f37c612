"""Retiring a replication target: what the plan does for a target marked `retiring: true`.

Owned here: `plan_retirement`, called by `core/planner.py` instead of `core/replication.py`'s
`plan_target` for each (source filesystem, retiring target) pair. A retiring target gets no
send, no hold, no bookmark, no retention destroy, and the source keeps nothing for it: the
protection it had is gone (guarantee 2 covers declared targets that are not retiring). The plan
only releases every hold with the target's tag (on the source, and on the target's filesystem
while its host can be observed) and then destroys the target's cursor bookmarks on the source.
The target's snapshots are the user's data: they are never touched. Pure.

Order, so that a pass that stops half-way leaves the next one able to finish: the cursor
bookmarks are destroyed only after every release succeeded, and only once the target host has
been observed (the cursors name the snapshots whose holds the next pass must see, on both
sides: `core/details.py`). docs/retiring-targets.md tells the user's side.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.core.builder import PlanBuilder
from reconciler.core.desired import TargetIntent
from reconciler.core.plan import DestroyAction, Reason, ReleaseAction
from reconciler.core.protection import Side
from reconciler.core.replication import unreachable_target_notice
from reconciler.core.source import SourceFilesystem
from reconciler.core.state import HostState, Version


def plan_retirement(
    builder: PlanBuilder, source: SourceFilesystem, target: TargetIntent, target_host: HostState
) -> None:
    """Release the retiring `target`'s holds and destroy its cursor bookmarks for `source`."""
    side = Side(source.intent.name, target.name)
    releases = _release(builder, side, source.host, source.name, source.held, target)
    for name in _held_names(source.held, target.hold_tag):
        source.released.setdefault(name, set()).add(target.hold_tag)
    source.destroy_deps.extend(releases)  # its snapshots may go in this pass's retention
    if not target_host.reachable:
        builder.notice(unreachable_target_notice(side.policy, target, target_host))
        return  # the cursors stay: they lead the next pass to the target's holds
    state = target_host.filesystem(target.target_filesystem(source.name))
    if state is not None:
        held = [v for v in state.snapshots if v.holds]
        releases += _release(builder, side, target.host, state.name, held, target)
    cursors = sorted(
        v.name
        for v in source.bookmarks
        if source.intent.parse_cursor(target.name, v.name) is not None
    )
    if cursors:
        builder.add(
            DestroyAction,
            **side.fields(
                host=source.host,
                filesystem=source.name,
                versions=tuple("#" + name for name in cursors),
                reason=Reason.TARGET_RETIRING,
                message=f"target {target.name} is retiring: its replication cursor is no "
                "longer kept",
                depends_on=tuple(releases),
            ),
        )


def _held_names(held: Sequence[Version], tag: str) -> list[str]:
    return [v.name for v in held if tag in v.holds]


def _release(
    builder: PlanBuilder,
    side: Side,
    host: str,
    filesystem: str,
    held: Sequence[Version],
    target: TargetIntent,
) -> list[int]:
    """A release of the target's hold on each of `held` (snapshots with holds) that has it."""
    return [
        builder.add(
            ReleaseAction,
            **side.fields(
                host=host,
                filesystem=filesystem,
                snapshot="@" + name,
                tag=target.hold_tag,
                reason=Reason.TARGET_RETIRING,
                message=f"target {target.name} is retiring: its hold is no longer kept",
            ),
        )
        for name in _held_names(held, target.hold_tag)
    ]
