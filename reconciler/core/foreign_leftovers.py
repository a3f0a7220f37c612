"""What the tools a fleet ran before the reconciler (zrepl, syncoid) left on its filesystems.

Owned here, for `reconcile status` (`core/status.py`, rendered by `core/status_render.py`):
- the names those tools give their holds, bookmarks and snapshots (`recognise_hold`,
  `recognise_bookmark`, `recognise_snapshot`), as their sources spell them
  (docs/migrating-leftovers.md):
  zrepl's replication cursors `zrepl_CURSOR_G_<guid, 16 hex>_J_<job>` (and the v1 name
  `zrepl_replication_cursor`), tentative cursors `zrepl_CURSORTENTATIVE__G_<guid>_J_<job>`,
  step bookmarks `zrepl_STEP_G_<guid>_J_<job>`, step holds `zrepl_STEP_J_<job>` and the
  receiver's last-received hold `zrepl_last_received_J_<job>`; syncoid's sync snapshots
  `syncoid_<identifier_><hostname>_<date>`, the bookmarks `--create-bookmark` makes (named
  after the snapshot, in practice sanoid's `autosnap_...`) and holds tagged `syncoid_...`;
- `find_foreign_leftovers`: those found on the policies' source filesystems and on the
  filesystems their targets receive into, each with the `zfs` command that cleans it up,
  quoted for a POSIX shell with the host's `zfsCommand`; `foreign_to_json` and
  `foreign_text` render them.

They are information: no pass destroys or releases any of them (none parses as ours,
`core/names.py`), and they change no condition and no exit code. A snapshot or bookmark that
is still the newest common base of a pair is marked `in_use`: destroying it before the
reconciler has replicated a snapshot of its own would cost a full send. Holds are seen on the
snapshots whose details a pass reads (`core/details.py` adds those of zrepl's bookmarks and
syncoid's sync snapshots). Pure.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.core.desired import PolicyIntent, source_filesystems
from reconciler.core.incremental import find_common_base
from reconciler.core.render import JsonObject
from reconciler.core.state import FilesystemState, Observed, Version


class ForeignTool(StrEnum):
    ZREPL = "zrepl"
    SYNCOID = "syncoid"


class ForeignKind(StrEnum):
    HOLD = "hold"
    BOOKMARK = "bookmark"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class Recognised:
    """Which tool made a name, and what the thing is to that tool ("replication cursor")."""

    tool: ForeignTool
    what: str


_GUID_JOB = r"_G_[0-9a-f]{16}_J_.+"
_ZREPL_BOOKMARKS = (
    (re.compile(r"zrepl_CURSOR" + _GUID_JOB), "replication cursor"),
    (re.compile(r"zrepl_CURSORTENTATIVE_" + _GUID_JOB), "tentative replication cursor"),
    (re.compile(r"zrepl_replication_cursor"), "replication cursor (v1)"),
    (re.compile(r"zrepl_STEP" + _GUID_JOB), "step bookmark"),
)
_ZREPL_HOLDS = (
    (re.compile(r"zrepl_STEP_J_.+"), "step hold"),
    (re.compile(r"zrepl_last_received_J_.+"), "last-received hold"),
)
_SYNCOID_SNAPSHOT = re.compile(r"syncoid_.+")
_SYNCOID_BOOKMARK = re.compile(r"(syncoid|autosnap)_.+")


def recognise_hold(tag: str) -> Recognised | None:
    for pattern, what in _ZREPL_HOLDS:
        if pattern.fullmatch(tag):
            return Recognised(ForeignTool.ZREPL, what)
    if _SYNCOID_SNAPSHOT.fullmatch(tag):
        return Recognised(ForeignTool.SYNCOID, "hold")
    return None


def recognise_bookmark(name: str) -> Recognised | None:
    for pattern, what in _ZREPL_BOOKMARKS:
        if pattern.fullmatch(name):
            return Recognised(ForeignTool.ZREPL, what)
    if _SYNCOID_BOOKMARK.fullmatch(name):
        return Recognised(ForeignTool.SYNCOID, "bookmark (--create-bookmark)")
    return None


def recognise_snapshot(name: str) -> Recognised | None:
    if _SYNCOID_SNAPSHOT.fullmatch(name):
        return Recognised(ForeignTool.SYNCOID, "sync snapshot")
    return None


def is_zrepl_bookmark(name: str) -> bool:
    """A bookmark of zrepl's: its GUID names the snapshot zrepl's holds sit on, on both
    sides (`core/details.py` reads that snapshot's holds)."""
    if not name.startswith("zrepl_"):  # cheap first: called for every bookmark of a pass
        return False
    found = recognise_bookmark(name)
    return found is not None and found.tool is ForeignTool.ZREPL


def is_syncoid_snapshot(name: str) -> bool:
    """A syncoid sync snapshot (cheap: called for every snapshot of a pair)."""
    return name.startswith("syncoid_") and len(name) > len("syncoid_")


@dataclass(frozen=True, slots=True)
class ForeignLeftover:
    """A hold (`name` is the held snapshot, `tag` its tag), bookmark or snapshot of `tool`
    on `filesystem` of `host`. `in_use`: still the newest common base of a pair."""

    tool: ForeignTool
    kind: ForeignKind
    what: str
    host: str
    filesystem: str
    name: str
    tag: str | None = None
    in_use: bool = False
    zfs_command: tuple[str, ...] = ("zfs",)  # the host's `zfsCommand`

    @property
    def full_name(self) -> str:
        sigil = "#" if self.kind is ForeignKind.BOOKMARK else "@"
        return f"{self.filesystem}{sigil}{self.name}"

    @property
    def argv(self) -> tuple[str, ...]:
        """The zfs command that cleans it up, run on `host` (with its `zfsCommand`); `--`
        ends the options when an operand could be read as one."""
        operands: tuple[str, ...]
        if self.kind is ForeignKind.HOLD:
            assert self.tag is not None
            verb, operands = "release", (self.tag, self.full_name)
        else:
            verb, operands = "destroy", (self.full_name,)
        guard = ("--",) if any(arg.startswith("-") for arg in operands) else ()
        return (*self.zfs_command, verb, *guard, *operands)

    @property
    def command(self) -> str:
        """`argv` for a POSIX shell, every argument quoted where it must be."""
        return " ".join(shlex.quote(arg) for arg in self.argv)


_KIND_ORDER = {ForeignKind.HOLD: 0, ForeignKind.BOOKMARK: 1, ForeignKind.SNAPSHOT: 2}


def _order(found: ForeignLeftover) -> tuple[str, str, str, int, str, str]:
    return (
        found.tool,
        found.host,
        found.filesystem,
        _KIND_ORDER[found.kind],
        found.name,
        found.tag or "",
    )


def find_foreign_leftovers(
    intents: Sequence[PolicyIntent], observed: Observed
) -> tuple[ForeignLeftover, ...]:
    """The old tools' holds, bookmarks and snapshots on the observed source filesystems of
    `intents` and on the filesystems their targets receive into; each filesystem once, sorted
    by tool, host, filesystem, holds then bookmarks then snapshots, name."""
    found: dict[tuple[str, str, str, str, str | None], ForeignLeftover] = {}
    for intent, host, state, zfs_command, bases in _searched(intents, observed):
        for leftover in _on_filesystem(intent, host, state, zfs_command, bases):
            key = (leftover.host, leftover.kind, leftover.filesystem, leftover.name, leftover.tag)
            earlier = found.get(key)
            if earlier is None or (leftover.in_use and not earlier.in_use):
                found[key] = leftover
    return tuple(sorted(found.values(), key=_order))


def _searched(
    intents: Sequence[PolicyIntent], observed: Observed
) -> Iterator[tuple[PolicyIntent, str, FilesystemState, tuple[str, ...], frozenset[int]]]:
    """(policy, host, filesystem, the host's zfsCommand, GUIDs of the pairs' newest common bases on
    that side) for every filesystem searched; a filesystem of several pairs comes once per
    pair."""
    for intent in intents:
        source_host = observed.host(intent.source_host)
        if not source_host.reachable:
            continue
        for name in source_filesystems(intent, list(source_host.filesystems)):
            source = source_host.filesystems[name]
            source_bases: set[int] = set()
            for target in intent.targets:
                target_host = observed.host(target.host)
                state = target_host.filesystem(target.target_filesystem(name))
                if not target_host.reachable or state is None:
                    continue
                base = find_common_base(source.versions, state.versions)
                guids = frozenset() if base is None else frozenset({base.target.guid})
                source_bases |= guids
                yield intent, target.host, state, target.zfs_command, guids
            bases = frozenset(source_bases)
            yield intent, intent.source_host, source, intent.source_zfs_command, bases


def _on_filesystem(
    intent: PolicyIntent,
    host: str,
    state: FilesystemState,
    zfs_command: tuple[str, ...],
    bases: frozenset[int],
) -> Iterator[ForeignLeftover]:
    """The leftovers on one filesystem; what the policy owns is never one (a snapshot it
    adopted, a cursor bookmark of its own on an adopted `autosnap_` snapshot)."""
    snapshot_guids = {v.guid for v in state.snapshots}
    for version in state.versions:
        if version.is_snapshot:
            yield from _holds(host, state.name, version, zfs_command)
            owned = intent.snapshot_time(version.name) is not None
            recognised = None if owned else recognise_snapshot(version.name)
            kind, in_use = ForeignKind.SNAPSHOT, version.guid in bases
        else:
            owned = intent.parse_any_cursor(version.name) is not None
            recognised = None if owned else recognise_bookmark(version.name)
            in_use = version.guid in bases and version.guid not in snapshot_guids
            kind = ForeignKind.BOOKMARK
        if recognised is not None:
            yield ForeignLeftover(
                recognised.tool,
                kind,
                recognised.what,
                host,
                state.name,
                version.name,
                in_use=in_use,
                zfs_command=zfs_command,
            )


def _holds(
    host: str, filesystem: str, version: Version, zfs_command: tuple[str, ...]
) -> Iterator[ForeignLeftover]:
    for tag in sorted(version.holds):
        recognised = recognise_hold(tag)
        if recognised is not None:
            yield ForeignLeftover(
                recognised.tool,
                ForeignKind.HOLD,
                recognised.what,
                host,
                filesystem,
                version.name,
                tag=tag,
                zfs_command=zfs_command,
            )


def foreign_to_json(found: ForeignLeftover) -> JsonObject:
    return {
        "tool": found.tool.value,
        "kind": found.kind.value,
        "what": found.what,
        "host": found.host,
        "filesystem": found.filesystem,
        "name": found.name,
        "tag": found.tag,
        "in_use": found.in_use,
        "argv": list(found.argv),
        "command": found.command,
    }


IN_USE_NOTE = "# not yet: still the newest common snapshot of a pair"


def foreign_text(leftovers: Sequence[ForeignLeftover]) -> list[str]:
    """A note line, then per (tool, host) the commands that clean them up."""
    if not leftovers:
        return []
    tools = " and ".join(sorted({found.tool.value for found in leftovers}))
    count = len(leftovers)
    what = "hold, bookmark or snapshot" if count == 1 else "holds, bookmarks and snapshots"
    lines = [
        f"note: {count} {what} left by {tools}, run before the reconciler: they belong to "
        f"{'that tool' if ' and ' not in tools else 'those tools'}, and the reconciler never "
        "destroys or releases them. Once no old tool runs any more, clean up with "
        "(docs/migrating-leftovers.md):"
    ]
    group: tuple[str, str] | None = None
    for found in leftovers:
        if (found.tool, found.host) != group:
            group = (found.tool, found.host)
            lines.append(f"  {found.tool.value}, run on host {found.host}:")
        note = f"  {IN_USE_NOTE}" if found.in_use else ""
        lines.append(f"    {found.command}{note}")
    return [*lines, ""]
