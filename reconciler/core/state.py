"""Observed state: what a pass saw on each host, as frozen values.

Owned here: `Version` (a snapshot or bookmark), `FilesystemState`, `HostState`, `Observed`,
`ResumeToken` (a decoded `receive_resume_token`) and `Stamp` (a filesystem's
`snapshots_changed`). Produced by the zfs layer's observers
(the real driver or the in-memory model) and consumed by the pure planner.

Versions of a filesystem are kept ordered by createtxg (never by name or time). A snapshot and
a bookmark made from it share GUID and createtxg; in that case the snapshot sorts first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class VersionKind(StrEnum):
    SNAPSHOT = "snapshot"
    BOOKMARK = "bookmark"


class Version(NamedTuple):
    """One snapshot (`fs@name`) or bookmark (`fs#name`) of a filesystem.

    A named tuple rather than a frozen dataclass: a pass observes up to millions of them, and
    the listing parser builds each in one C call (`tuple.__new__`) instead of a dataclass
    `__init__` (docs/benchmarks.md, section (c)). Compare Versions only with Versions: as a
    tuple it would also equal a plain tuple of the same fields."""

    kind: VersionKind
    name: str  # the short name, after '@' or '#'
    guid: int
    createtxg: int
    creation: int  # UNIX seconds, as ZFS reports it (informational: never used for order)
    written: int = 0  # bytes written between the previous snapshot and this one (0 for bookmarks)
    referenced: int = 0  # bytes the snapshot refers to (a full stream's size, roughly)
    holds: frozenset[str] = frozenset()  # hold tags (snapshots only)

    @property
    def is_snapshot(self) -> bool:
        return self.kind is VersionKind.SNAPSHOT

    @property
    def sigil(self) -> str:
        return "@" if self.kind is VersionKind.SNAPSHOT else "#"

    def full_name(self, filesystem: str) -> str:
        return f"{filesystem}{self.sigil}{self.name}"


def sort_versions(versions: Iterable[Version]) -> tuple[Version, ...]:
    """Versions in createtxg order, snapshots before bookmarks of the same txg, then by name."""
    return tuple(
        sorted(versions, key=lambda v: (v.createtxg, v.kind is VersionKind.BOOKMARK, v.name))
    )


@dataclass(frozen=True, slots=True)
class ResumeToken:
    """A decoded `receive_resume_token` left by an interrupted `zfs receive -s`."""

    token: str
    to_guid: int
    to_name: str  # full snapshot name on the sender, e.g. "tank/home@zr_20261126T041500Z"
    from_guid: int | None = None  # None for a full stream
    bytes_received: int = 0
    raw: bool = False


class FilesystemKind(StrEnum):
    FILESYSTEM = "filesystem"
    VOLUME = "volume"


@dataclass(frozen=True, slots=True)
class FilesystemState:
    """A filesystem or zvol and its versions as observed."""

    name: str
    versions: tuple[Version, ...] = ()  # createtxg order (see sort_versions)
    kind: FilesystemKind = FilesystemKind.FILESYSTEM
    written: int = 0  # bytes written since the newest snapshot: > 0 means modified
    resume_token: ResumeToken | None = None
    encrypted: bool = False

    @property
    def snapshots(self) -> tuple[Version, ...]:
        return tuple(v for v in self.versions if v.kind is VersionKind.SNAPSHOT)

    @property
    def bookmarks(self) -> tuple[Version, ...]:
        return tuple(v for v in self.versions if v.kind is VersionKind.BOOKMARK)

    def newest_snapshot(self) -> Version | None:
        for version in reversed(self.versions):
            if version.kind is VersionKind.SNAPSHOT:
                return version
        return None


def bare(state: FilesystemState) -> FilesystemState:
    """What the cheap listing (`ZFS.list_versions`) shows of a filesystem: its name, and its
    versions by kind, name, GUID and createtxg."""
    return FilesystemState(
        name=state.name,
        versions=tuple(
            v._replace(creation=0, written=0, referenced=0, holds=frozenset())
            for v in state.versions
        ),
    )


def short_names_by_filesystem(full_names: Iterable[str]) -> dict[str, set[str]]:
    """`fs@snap` names → {fs: {snap, ...}}."""
    grouped: dict[str, set[str]] = {}
    for full in full_names:
        filesystem, _, short = full.partition("@")
        grouped.setdefault(filesystem, set()).add(short)
    return grouped


def completed(
    listed: FilesystemState, detailed: FilesystemState, asked: Collection[str]
) -> FilesystemState:
    """The cheaply `listed` filesystem completed by a `detailed` listing of it and of its
    snapshots `asked` (short names): the filesystem's properties come from `detailed`, and each
    asked snapshot its fields; an asked snapshot `detailed` does not have with the same GUID
    is left out (destroyed in between, perhaps made again: then a snapshot not listed)."""
    found = {v.name: v for v in detailed.versions if v.kind is VersionKind.SNAPSHOT}
    versions = []
    for version in listed.versions:
        if version.kind is VersionKind.SNAPSHOT and version.name in asked:
            same = found.get(version.name)
            if same is None or same.guid != version.guid:
                continue
            version = same
        versions.append(version)
    return FilesystemState(
        name=listed.name,
        versions=tuple(versions),
        kind=detailed.kind,
        written=detailed.written,
        resume_token=detailed.resume_token,
        encrypted=detailed.encrypted,
    )


class Stamp(NamedTuple):
    """A filesystem's GUID, `snapshots_changed` (UNIX seconds, whole; None while zfs shows
    `-`) and `origin` (None for `-`) as one listing saw them. The stamp moves to the second of
    every snapshot created, destroyed, renamed or received in it, but not when `zfs promote`
    hands it its origin's snapshots: then its origin changes (docs/zfs-verified.md §29)."""

    guid: int
    changed: int | None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class HostState:
    """One host as observed in a pass. `error` set means it could not be observed."""

    host: str
    filesystems: Mapping[str, FilesystemState] = field(default_factory=dict)
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None

    def filesystem(self, name: str) -> FilesystemState | None:
        return self.filesystems.get(name)


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything a pass observed, by host name."""

    hosts: Mapping[str, HostState]

    def host(self, name: str) -> HostState:
        state = self.hosts.get(name)
        if state is None:
            return HostState(host=name, error="host was not observed")
        return state
