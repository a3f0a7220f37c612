"""Managed holds and cursor bookmarks left on the hosts by targets that are going or gone.

Owned here, for `reconcile status` (`core/status.py`):
- `retirement_leftovers`: what remains of a retiring target on one (source filesystem, target)
  pair (its holds on both sides, its cursor bookmarks on the source), and the message telling
  it; when nothing remains, the target can be removed from the manifest;
- `find_orphans`: the holds and cursor bookmarks whose names parse as ours (`core/names.py`)
  for a declared policy but a target that policy does not declare (a target removed without
  being retired first), each with the `zfs` command that cleans it up, quoted for a POSIX
  shell; `orphan_to_json` and `orphans_text` render them.

Only what the pass observed is searched: the policies' source filesystems (their filters) and
the targets' roots, with the holds of the snapshots whose details a pass reads
(`core/details.py`, which reads those of every cursor bookmark's snapshot for this). Pure.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from reconciler.core.desired import PolicyIntent, TargetIntent, source_filesystems
from reconciler.core.names import parse_hold_tag
from reconciler.core.render import JsonObject
from reconciler.core.state import FilesystemState, HostState, Observed

RETIRED_MESSAGE = "can be removed from the manifest"


@dataclass(frozen=True, slots=True)
class RetirementLeftovers:
    """What remains of a retiring target on one pair. `target_observed` False: the target's
    host could not be observed, so its holds there are unknown (and stay until it can be)."""

    holds: int
    bookmarks: int
    target_observed: bool

    @property
    def done(self) -> bool:
        return self.target_observed and not self.holds and not self.bookmarks


def retirement_leftovers(
    intent: PolicyIntent, target: TargetIntent, source: FilesystemState, target_host: HostState
) -> RetirementLeftovers:
    tag = target.hold_tag
    holds = sum(1 for v in source.snapshots if tag in v.holds)
    bookmarks = sum(
        1 for v in source.bookmarks if intent.parse_cursor(target.name, v.name) is not None
    )
    state = target_host.filesystem(target.target_filesystem(source.name))
    if state is not None:
        holds += sum(1 for v in state.snapshots if tag in v.holds)
    return RetirementLeftovers(holds, bookmarks, target_host.reachable)


def retirement_message(left: RetirementLeftovers, target: TargetIntent, host: HostState) -> str:
    """The status message of a retiring target's pair."""
    if left.done:
        return f"retired: no hold or cursor bookmark of {target.name} remains; {RETIRED_MESSAGE}"
    parts = [_count(left.holds, "hold"), _count(left.bookmarks, "cursor bookmark")]
    what = " and ".join(part for part in parts if not part.startswith("0 ")) or "nothing"
    if left.target_observed:
        return f"retiring: {what} left; the next pass releases and destroys them"
    return (
        f"retiring: {what} left on the source; host {target.host} could not be observed "
        f"({host.error}): the holds of {target.name} there, and its cursor bookmarks, stay "
        "until it can be"
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


# --- orphans ----------------------------------------------------------------------------------


class OrphanKind(StrEnum):
    HOLD = "hold"
    BOOKMARK = "bookmark"


@dataclass(frozen=True, slots=True)
class Orphan:
    """A hold (`version` is the held "@snapshot", `tag` its tag) or a cursor bookmark
    (`version` is "#bookmark") of `target`, which `policy` does not declare."""

    kind: OrphanKind
    host: str
    policy: str
    target: str
    filesystem: str
    version: str
    tag: str | None = None
    zfs_command: tuple[str, ...] = ("zfs",)  # the host's `zfsCommand`

    @property
    def argv(self) -> tuple[str, ...]:
        """The zfs command that cleans it up, run on `host` (with its `zfsCommand`)."""
        full = self.filesystem + self.version
        if self.kind is OrphanKind.HOLD:
            assert self.tag is not None
            return (*self.zfs_command, "release", self.tag, full)
        return (*self.zfs_command, "destroy", full)

    @property
    def command(self) -> str:
        """`argv` for a POSIX shell, every argument quoted where it must be."""
        return " ".join(shlex.quote(arg) for arg in self.argv)


def find_orphans(intents: Sequence[PolicyIntent], observed: Observed) -> tuple[Orphan, ...]:
    """The observed holds and cursor bookmarks of undeclared targets of declared policies,
    sorted by policy, target, host, filesystem, holds before bookmarks."""
    found = [*_orphan_holds(intents, observed), *_orphan_bookmarks(intents, observed)]
    commands = _zfs_commands(intents)
    return tuple(
        sorted((replace(o, zfs_command=commands.get(o.host, ("zfs",))) for o in found), key=_order)
    )


def _zfs_commands(intents: Sequence[PolicyIntent]) -> dict[str, tuple[str, ...]]:
    """Host → its `zfsCommand`, as the policies' intents carry it."""
    commands = {i.source_host: i.source_zfs_command for i in intents}
    commands |= {t.host: t.zfs_command for i in intents for t in i.targets}
    return commands


def _order(orphan: Orphan) -> tuple[str, str, str, str, bool, str]:
    return (
        orphan.policy,
        orphan.target,
        orphan.host,
        orphan.filesystem,
        orphan.kind is not OrphanKind.HOLD,
        orphan.version,
    )


def _declared(intent: PolicyIntent) -> frozenset[str]:
    return frozenset(t.name for t in intent.targets)


def _orphan_holds(intents: Sequence[PolicyIntent], observed: Observed) -> list[Orphan]:
    """Holds of ours on any observed filesystem (source or target side)."""
    declared = {(i.prefix, i.name): _declared(i) for i in intents}
    found: list[Orphan] = []
    for host in observed.hosts.values():
        for state in host.filesystems.values() if host.reachable else ():
            for version in state.snapshots:
                for tag in sorted(version.holds):
                    parsed = parse_hold_tag(tag)
                    if parsed is None or parsed[2] in declared.get(parsed[:2], {parsed[2]}):
                        continue  # not ours, a policy not declared, or a declared target
                    snapshot = "@" + version.name
                    _, policy, target = parsed
                    found.append(
                        Orphan(
                            OrphanKind.HOLD, host.host, policy, target, state.name, snapshot, tag
                        )
                    )
    return found


def _orphan_bookmarks(intents: Sequence[PolicyIntent], observed: Observed) -> list[Orphan]:
    """Cursor bookmarks on each policy's source filesystems."""
    found: list[Orphan] = []
    for intent in intents:
        host = observed.host(intent.source_host)
        if not host.reachable:
            continue
        targets = _declared(intent)
        for name in source_filesystems(intent, list(host.filesystems)):
            for version in host.filesystems[name].bookmarks:
                parsed = intent.parse_any_cursor(version.name)
                if parsed is not None and parsed[1] not in targets:
                    found.append(
                        Orphan(
                            OrphanKind.BOOKMARK,
                            host.host,
                            intent.name,
                            parsed[1],
                            name,
                            "#" + version.name,
                        )
                    )
    return found


def orphan_to_json(orphan: Orphan) -> JsonObject:
    return {
        "kind": orphan.kind.value,
        "host": orphan.host,
        "policy": orphan.policy,
        "target": orphan.target,
        "filesystem": orphan.filesystem,
        "version": orphan.version,
        "tag": orphan.tag,
        "argv": list(orphan.argv),
        "command": orphan.command,
    }


def orphans_text(orphans: Sequence[Orphan]) -> list[str]:
    """A warning line, then per (policy, target, host) the commands that clean them up."""
    if not orphans:
        return []
    what = (
        "1 managed hold or cursor bookmark belongs to a target"
        if len(orphans) == 1
        else f"{len(orphans)} managed holds and cursor bookmarks belong to targets"
    )
    lines = [f"warning: {what} no manifest declares (removed without retiring); clean up with:"]
    group: tuple[str, str, str] | None = None
    for orphan in orphans:
        key = (orphan.policy, orphan.target, orphan.host)
        if key != group:
            group = key
            lines.append(
                f"  policy {orphan.policy}, target {orphan.target}: run on host {orphan.host}:"
            )
        lines.append(f"    {orphan.command}")
    lines.append(
        "  or declare each target again with `retiring: true` (its host and root as before): "
        "the next pass releases and destroys them for you"
    )
    return [*lines, ""]
