"""Observation of every host a pass needs, within its scope, each host in its own thread.

Owned here: `observe_hosts`, called by every pass (`apply/passes.py`) before planning, which
starts each pass with the collector's reset (`reconciler.collector.collect_frozen`) and then
observes the hosts at the same time, one thread each, so a pass waits for its slowest host
rather than for the sum of them. A host that fails to answer, or that could not even be
connected, becomes a `HostState` with `error` set, so the planner withholds every action on
it (guarantee 5) and names it in the plan (`Plan.unobserved_hosts`) instead of the whole pass
failing.

Given `needed` (a pass gives `core.details.needed_details` for its policies and `now`), each
host is observed in two steps: `list_versions` (every version by name, GUID and createtxg:
cheap), then `add_details` for the snapshots `needed` names in what all hosts listed. The
filesystems' own properties come with the details; when they change what is needed (a resume
token names a snapshot not asked for yet), the hosts concerned are asked once more for those.
Without `needed`, each host is observed whole in one step (`observe`). With a `cache` (the
control loop's `zfs/stamps.VersionCache`), the first step re-lists only the snapshots of
filesystems whose `snapshots_changed` moved; a filesystem the details step finds a snapshot
missing from is forgotten by the cache, so the next pass lists it again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.collector import collect_frozen
from reconciler.core.scope import ObservationScope
from reconciler.core.state import HostState, Observed
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.port import ZFS
from reconciler.zfs.stamps import VersionCache

Needed = Callable[[Observed], Mapping[str, Collection[str]]]


def observe_hosts(
    hosts: Mapping[str, ZFS],
    unconnected: Mapping[str, str] | None = None,
    scopes: Mapping[str, ObservationScope] | None = None,
    needed: Needed | None = None,
    cache: VersionCache | None = None,
) -> Observed:
    """Each host's state, within its scope (`scopes`; a host without one is listed whole);
    `unconnected` are the hosts that could not be connected, with why,
    which are unobserved like a host whose listing fails. First the objects frozen by the
    previous pass's listings (`reconciler.zfs.parse`) go back to the collector and one
    full collection runs (`collect_frozen`), so that a loop that runs forever reclaims any
    cyclic garbage frozen with them."""
    collect_frozen()

    def scope(name: str) -> ObservationScope | None:
        return None if scopes is None else scopes.get(name)

    if needed is None:
        states = _each(hosts, lambda name, host: host.observe(scope(name)))
        return _observed(states, unconnected)
    if cache is None:
        states = _each(hosts, lambda name, host: host.list_versions(scope(name)))
    else:
        states = _each(hosts, lambda name, host: cache.list_versions(host, scope(name)))
    listed = needed(_observed(states, unconnected))
    asked = {name: frozenset(names) for name, names in listed.items()}
    cheap = states
    states = _each(
        {name: host for name, host in hosts.items() if states[name].reachable},
        lambda name, host: host.add_details(states[name], asked.get(name, frozenset())),
        states,
    )
    if cache is not None:
        for name, state in states.items():
            if state.reachable and cheap[name].reachable:
                cache.forget(name, _shrunk(cheap[name], state))
    if not any(fs.resume_token for state in states.values() for fs in state.filesystems.values()):
        return _observed(states, unconnected)  # only a resume token can ask for more
    more = {
        name: frozenset(names) - asked.get(name, frozenset())
        for name, names in needed(_observed(states, unconnected)).items()
        if name in hosts and states[name].reachable
    }
    more = {name: names for name, names in more.items() if names}
    if more:
        states = _each(
            {name: hosts[name] for name in more},
            lambda name, host: host.add_details(states[name], more[name]),
            states,
        )
    return _observed(states, unconnected)


def _shrunk(listed: HostState, detailed: HostState) -> list[str]:
    """The filesystems of `listed` that `detailed` lacks or has fewer versions of: a snapshot
    destroyed between the two steps, or one a stale cache said was there."""
    return [
        name
        for name, state in listed.filesystems.items()
        if (found := detailed.filesystems.get(name)) is None
        or len(found.versions) < len(state.versions)
    ]


def _each(
    hosts: Mapping[str, ZFS],
    call: Callable[[str, ZFS], HostState],
    earlier: Mapping[str, HostState] | None = None,
) -> dict[str, HostState]:
    """`call` for every host, all at once; a host whose call fails gets its error instead.
    `earlier` are the states of hosts not called, kept as they were."""
    names = sorted(hosts)

    def one(name: str) -> HostState:
        try:
            return call(name, hosts[name])
        except ZFSError as error:
            return HostState(host=name, error=error.detail)

    if len(names) > 1:  # one listing per host, all at once: a pass waits for the slowest only
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="observe") as pool:
            found = list(pool.map(one, names))
    else:
        found = [one(name) for name in names]
    return {**(earlier or {}), **dict(zip(names, found, strict=True))}


def _observed(states: Mapping[str, HostState], unconnected: Mapping[str, str] | None) -> Observed:
    every = dict(states)
    for name, why in (unconnected or {}).items():
        every[name] = HostState(host=name, error=why)
    return Observed(hosts=dict(sorted(every.items())))
