"""The fingerprint of observed state a plan depends on: pure, a function of (policies, observed).

Owned here: `fingerprint(policies, observed)` → a JSON-ready object, saved with a plan
(`core/saved_plan.py`) and computed again when that plan is applied, so that a plan made from
one state is never applied to another. Called by `apply/saved_plan.py`. No I/O, no clock.

It holds, for every host the policies touch (their sources and targets), whether the host was
observed and, for each filesystem observed there (the pass observes only the policies'
observation scopes, `core/scope.py`): its kind, whether it is encrypted, its partial receive
(`receive_resume_token`), and each version (snapshot `@name` or bookmark `#name`) with its
GUID, createtxg and hold tags; on filesystems inside a target root also whether it was written
to since its newest snapshot (what decides a `target_modified` conflict or a rollback).

Left out on purpose, because they move without changing what a plan does: the error text of an
unobserved host (two failed attempts rarely fail alike), byte counts (`written`,
`referenced`: only size estimates read them, and a busy source is written to all the time) and
`creation` (the order is createtxg's). GUIDs are decimal strings: JSON readers that store
numbers as doubles would round a 64-bit GUID.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from reconciler.core.desired import PolicyIntent
from reconciler.core.state import FilesystemState, Observed, Version

FingerprintValue: TypeAlias = (
    "str | int | bool | list[FingerprintValue] | dict[str, FingerprintValue] | None"
)
Fingerprint: TypeAlias = "dict[str, FingerprintValue]"


def fingerprint(policies: Sequence[PolicyIntent], observed: Observed) -> Fingerprint:
    """Host name → what was observed there that the plan of `policies` reads (module doc)."""
    roots: dict[str, set[str]] = {}
    for policy in policies:
        roots.setdefault(policy.source_host, set())
        for target in policy.targets:
            roots.setdefault(target.host, set()).add(target.root)
    result: Fingerprint = {}
    for host in sorted(roots):
        state = observed.host(host)
        filesystems: Fingerprint = {}
        if state.reachable:
            for name in sorted(state.filesystems):
                modified = _in_any(name, roots[host])
                filesystems[name] = _filesystem(state.filesystems[name], modified)
        result[host] = {"observed": state.reachable, "filesystems": filesystems}
    return result


def _filesystem(state: FilesystemState, with_modified: bool) -> Fingerprint:
    token = state.resume_token
    entry: Fingerprint = {
        "kind": state.kind.value,
        "encrypted": state.encrypted,
        "resume_token": token.token if token is not None else None,
        "versions": {version.sigil + version.name: _version(version) for version in state.versions},
    }
    if with_modified:
        entry["modified"] = state.written > 0
    return entry


def _version(version: Version) -> Fingerprint:
    return {
        "guid": str(version.guid),
        "createtxg": version.createtxg,
        "holds": list(sorted(version.holds)),
    }


def _in_any(filesystem: str, roots: set[str]) -> bool:
    return any(filesystem == root or filesystem.startswith(root + "/") for root in roots)
