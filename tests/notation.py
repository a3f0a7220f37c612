"""A compact notation for version lists in tests.

`versions("a b #b c")` → snapshots a, b, c and a bookmark of b, in createtxg order;
`versions("a #b c")` → a bookmark b whose snapshot is gone. A snapshot's
GUID derives from its name, so `a` on two sides is the same snapshot; `a'` is a snapshot named
`a` with another GUID (same name, different identity). `c~` has written > 0.
"""

from __future__ import annotations

import zlib

from reconciler.core.state import Version, VersionKind


def guid_of(name: str) -> int:
    return zlib.crc32(name.encode()) + 1


def versions(spec: str, *, txg_start: int = 10) -> tuple[Version, ...]:
    result: list[Version] = []
    txg = txg_start
    by_name: dict[str, Version] = {}
    for token in spec.split():
        if token.startswith("#"):
            name = token[1:]
            if name in by_name:  # a bookmark of a snapshot that still exists
                guid, at = by_name[name].guid, by_name[name].createtxg
            else:  # a bookmark whose snapshot is gone
                txg += 1
                guid, at = guid_of(name), txg
            result.append(Version(VersionKind.BOOKMARK, name, guid, at, creation=at))
            continue
        written = 1 if token.endswith("~") else 0
        token = token.rstrip("~")
        other = token.endswith("'")
        name = token.rstrip("'")
        guid = guid_of(token) if other else guid_of(name)
        txg += 1
        version = Version(VersionKind.SNAPSHOT, name, guid, txg, creation=txg, written=written)
        by_name[name] = version
        result.append(version)
    return tuple(sorted(result, key=lambda v: (v.createtxg, v.kind is VersionKind.BOOKMARK)))
