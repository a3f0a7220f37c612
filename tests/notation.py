"""A compact notation for version lists and observed hosts in tests.

`versions("a b #b c")` → snapshots a, b, c and a bookmark of b, in createtxg order;
`versions("a #b c")` → a bookmark b whose snapshot is gone; `#m=b` is a bookmark named m made
from snapshot b (listed before it, or gone). A snapshot's GUID derives from its
name, so `a` on two sides is the same snapshot; `a'` is a snapshot named `a` with another GUID
(same name, different identity). `c~` has written > 0 (1 MiB); `c[tag1,tag2]` carries holds.

`observed_from(data)` builds an `Observed` from a mapping host → {filesystem: spec | {versions,
written, resume, kind}} or host → {"unreachable": "why"} (the golden cases' observed.yaml;
`kind: volume` for a zvol).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any

from reconciler.core.state import (
    FilesystemKind,
    FilesystemState,
    HostState,
    Observed,
    ResumeToken,
    Version,
    VersionKind,
)

MIB = 1 << 20
_TOKEN = re.compile(
    r"^(?P<mark>#?)(?P<name>[^'~\[\]=]+)(?:=(?P<of>[^'~\[\]=]+))?(?P<other>'?)"
    r"(?P<written>~?)(?:\[(?P<holds>[^\]]*)\])?$"
)


def guid_of(name: str) -> int:
    return zlib.crc32(name.encode()) + 1


def versions(spec: str, *, txg_start: int = 10) -> tuple[Version, ...]:
    result: list[Version] = []
    txg = txg_start
    by_name: dict[str, Version] = {}
    for token in spec.split():
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(f"bad version token {token!r}")
        name = match["name"]
        if match["mark"]:
            of = match["of"] or name
            if of in by_name:  # a bookmark of a snapshot listed before it
                guid, at = by_name[of].guid, by_name[of].createtxg
            else:  # a bookmark whose snapshot is gone
                txg += 1
                guid, at = guid_of(of), txg
            result.append(Version(VersionKind.BOOKMARK, name, guid, at, creation=at))
            continue
        guid = guid_of(name + "'") if match["other"] else guid_of(name)
        txg += 1
        holds = frozenset(t for t in (match["holds"] or "").split(",") if t)
        version = Version(
            VersionKind.SNAPSHOT,
            name,
            guid,
            txg,
            creation=txg,
            written=MIB if match["written"] else 0,
            referenced=4 * MIB,
            holds=holds,
        )
        by_name[name] = version
        result.append(version)
    return tuple(sorted(result, key=lambda v: (v.createtxg, v.kind is VersionKind.BOOKMARK)))


def filesystem_from(name: str, spec: str | Mapping[str, Any], txg_start: int) -> FilesystemState:
    if isinstance(spec, str):
        spec = {"versions": spec}
    resume = spec.get("resume")
    token = None
    if resume is not None:
        token = ResumeToken(
            token=f"token-{resume['to']}",
            to_guid=guid_of(resume["to"]),
            to_name=resume.get("to_name", resume["to"]),
            from_guid=guid_of(resume["from"]) if resume.get("from") else None,
            bytes_received=int(resume.get("bytes", 0)),
        )
    return FilesystemState(
        name=name,
        versions=versions(spec.get("versions", "") or "", txg_start=txg_start),
        written=int(spec.get("written", 0)),
        resume_token=token,
        kind=FilesystemKind(spec.get("kind", "filesystem")),
    )


def observed_from(data: Mapping[str, Mapping[str, Any]]) -> Observed:
    hosts: dict[str, HostState] = {}
    for host_index, (host, filesystems) in enumerate(sorted(data.items())):
        if "unreachable" in filesystems:
            hosts[host] = HostState(host=host, error=str(filesystems["unreachable"]))
            continue
        states = {
            name: filesystem_from(name, spec, txg_start=1000 * (host_index + 1))
            for name, spec in sorted(filesystems.items())
        }
        hosts[host] = HostState(host=host, filesystems=states)
    return Observed(hosts=hosts)
