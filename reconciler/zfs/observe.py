"""Observation of every host a pass needs: one `observe()` (one listing) per host.

Owned here: `observe_hosts`, called by the CLI and the loop before planning. A host that fails
to answer becomes a `HostState` with `error` set, so the planner withholds every destructive
action on it (guarantee 5) instead of the whole pass failing.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.state import HostState, Observed
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.port import ZFS


def observe_hosts(hosts: Mapping[str, ZFS]) -> Observed:
    states: dict[str, HostState] = {}
    for name in sorted(hosts):
        try:
            states[name] = hosts[name].observe()
        except ZFSError as error:
            states[name] = HostState(host=name, error=error.detail)
    return Observed(hosts=states)
