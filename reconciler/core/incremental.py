"""Incremental path search: the common base of a sender and a receiver, and the send steps.

Pure functions over version lists in createtxg order (see `core/state.py`), called by the
planner. Identity is the GUID; order is createtxg; names and times never decide.

The common base is the newest receiver snapshot whose GUID matches a sender snapshot or
bookmark. From it, the steps deliver exactly the snapshots the receiver wants: `-I` over runs
of consecutive wanted snapshots, `-i` across snapshots that are not wanted (so they never reach
the receiver), and `-i` from a bookmark (ZFS accepts a bookmark only as an `-i` base).

Worked example (sender s1..s6, receiver has s1, s4 is foreign and not wanted):

    >>> # wanted = {s2, s3, s5, s6}
    >>> # steps: -I @s1 -> @s3 (delivers s2, s3), -i @s3 -> @s5, -I @s5 -> @s6
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from reconciler.core.plan import SendMode
from reconciler.core.state import Version, VersionKind


@dataclass(frozen=True, slots=True)
class CommonBase:
    """The newest common version: `source` is the sender's snapshot (preferred) or bookmark,
    `target` the receiver's snapshot with the same GUID."""

    source: Version
    target: Version


@dataclass(frozen=True, slots=True)
class SendStep:
    mode: SendMode
    from_version: str | None  # "@snap" or "#mark"; None for a full stream
    to_snapshot: str  # short name of the snapshot the step ends at
    delivers: tuple[str, ...]  # short names of the snapshots the step creates, oldest first


def guid_index(versions: Sequence[Version]) -> dict[int, Version]:
    """GUID → version, preferring the snapshot when a bookmark shares its GUID."""
    by_guid: dict[int, Version] = {}
    for version in versions:
        known = by_guid.get(version.guid)
        if known is None or (
            known.kind is VersionKind.BOOKMARK and version.kind is VersionKind.SNAPSHOT
        ):
            by_guid[version.guid] = version
    return by_guid


def find_common_base(
    source: Sequence[Version],
    target: Sequence[Version],
    source_lookup: Callable[[int], Version | None] | None = None,
) -> CommonBase | None:
    """The newest target snapshot (by the target's createtxg) whose GUID the source has.

    `source_lookup` finds a source version by GUID (snapshot preferred) when the caller has a
    faster way than indexing `source` here."""
    lookup = guid_index(source).get if source_lookup is None else source_lookup
    for version in reversed(target):
        if version.kind is not VersionKind.SNAPSHOT:
            continue
        match = lookup(version.guid)
        if match is not None:
            return CommonBase(source=match, target=version)
    return None


def versions_after(versions: Sequence[Version], base: Version | None) -> list[Version]:
    """The snapshots strictly newer (by createtxg) than `base`; all snapshots when base is None."""
    if base is None:
        return [v for v in versions if v.kind is VersionKind.SNAPSHOT]
    txg = base.createtxg
    return [v for v in versions if v.kind is VersionKind.SNAPSHOT and v.createtxg > txg]


def send_steps(
    after_base: Sequence[Version], wanted: Container[str], base: Version | None
) -> tuple[SendStep, ...]:
    """Steps from `base` (None: start with a full stream) delivering the wanted snapshots.

    `after_base` is EVERY sender snapshot newer than the base, in createtxg order, wanted or
    not: a snapshot that is not wanted breaks an `-I` run, so it is stepped over with `-i`.
    """
    steps: list[SendStep] = []
    cursor: Version | None = base
    run: list[Version] = []  # wanted snapshots directly after the cursor, no gap between
    gap = False  # an unwanted snapshot lies between the cursor and the next wanted one

    def flush() -> None:
        nonlocal cursor, run
        if not run:
            return
        assert cursor is not None
        steps.extend(_run_steps(cursor, run))
        cursor = run[-1]
        run = []

    for snapshot in after_base:
        if snapshot.name not in wanted:
            flush()
            gap = True
            continue
        if cursor is None:
            steps.append(SendStep(SendMode.FULL, None, snapshot.name, (snapshot.name,)))
            cursor = snapshot
        elif gap:
            flush()
            steps.append(
                SendStep(SendMode.INCREMENTAL, _ref(cursor), snapshot.name, (snapshot.name,))
            )
            cursor = snapshot
        else:
            run.append(snapshot)
        gap = False
    flush()
    return tuple(steps)


def _run_steps(cursor: Version, run: Sequence[Version]) -> list[SendStep]:
    first, last = run[0], run[-1]
    if len(run) == 1:
        return [SendStep(SendMode.INCREMENTAL, _ref(cursor), first.name, (first.name,))]
    if cursor.kind is VersionKind.BOOKMARK:  # -I takes no bookmark: one -i step, then -I
        return [
            SendStep(SendMode.INCREMENTAL, _ref(cursor), first.name, (first.name,)),
            *_run_steps(first, run[1:]),
        ]
    names = tuple(v.name for v in run)
    return [SendStep(SendMode.INTERMEDIATES, _ref(cursor), last.name, names)]


def _ref(version: Version) -> str:
    return version.sigil + version.name
