"""Observation of every host a pass needs: one `observe(scope)` per host, within its scope.

Owned here: `observe_hosts`, called by every pass (`apply/passes.py`) before planning, which
starts each pass with the collector's reset (`reconciler.collector.collect_frozen`) and then
observes the hosts at the same time, one thread each, so a pass waits for its slowest host
rather than for the sum of them. A host that fails
to answer, or that could not even be connected, becomes a `HostState` with `error` set, so the
planner withholds every action on it (guarantee 5) and names it in the plan
(`Plan.unobserved_hosts`) instead of the whole pass failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.collector import collect_frozen
from reconciler.core.scope import ObservationScope
from reconciler.core.state import HostState, Observed
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.port import ZFS


def observe_hosts(
    hosts: Mapping[str, ZFS],
    unconnected: Mapping[str, str] | None = None,
    scopes: Mapping[str, ObservationScope] | None = None,
) -> Observed:
    """Each host's state, within its scope (`scopes`; a host without one is listed whole);
    `unconnected` are the hosts that could not be connected, with why,
    which are unobserved like a host whose listing fails. First the objects frozen by the
    previous pass's listings (`reconciler.zfs.parse`) go back to the collector and one
    full collection runs (`collect_frozen`), so that a loop that runs forever reclaims any
    cyclic garbage frozen with them."""
    collect_frozen()
    names = sorted(hosts)

    def scope(name: str) -> ObservationScope | None:
        return None if scopes is None else scopes.get(name)

    if len(names) > 1:  # one listing per host, all at once: a pass waits for the slowest only
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="observe") as pool:
            found = list(pool.map(lambda name: _observe(name, hosts[name], scope(name)), names))
    else:
        found = [_observe(name, hosts[name], scope(name)) for name in names]
    states = dict(zip(names, found, strict=True))
    for name, why in (unconnected or {}).items():
        states[name] = HostState(host=name, error=why)
    return Observed(hosts=dict(sorted(states.items())))


def _observe(name: str, host: ZFS, scope: ObservationScope | None) -> HostState:
    try:
        return host.observe(scope)
    except ZFSError as error:
        return HostState(host=name, error=error.detail)
