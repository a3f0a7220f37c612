"""`zfs/observe.py`: every host of a pass is observed at the same time, and a host that fails
to answer is unobserved without holding up the others."""

from __future__ import annotations

import threading

from reconciler.core.scope import ObservationScope
from reconciler.core.state import HostState
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.observe import observe_hosts


class MeetingHost:
    """A host whose listing waits until every other host's listing has started too: only
    listings that run at the same time get past the barrier."""

    def __init__(self, model: ModelZFS, barrier: threading.Barrier) -> None:
        self.model = model
        self.barrier = barrier
        self.host = model.host

    def observe(self, scope: ObservationScope | None = None) -> HostState:
        self.barrier.wait(timeout=5)
        return self.model.observe(scope)


def _model(name: str) -> ModelZFS:
    model = ModelZFS(name, seed=1)
    model.create_pool("tank")
    return model


def test_the_hosts_of_a_pass_are_observed_at_the_same_time() -> None:
    barrier = threading.Barrier(3)
    hosts = {name: MeetingHost(_model(name), barrier) for name in ("c", "a", "b")}
    observed = observe_hosts(hosts)  # type: ignore[arg-type]
    assert list(observed.hosts) == ["a", "b", "c"]
    assert all(state.reachable and "tank" in state.filesystems for state in observed.hosts.values())


def test_an_unreachable_host_is_unobserved_and_the_others_are_seen() -> None:
    down = _model("down")
    down.set_unreachable("ssh: connect to host down: Connection refused")
    observed = observe_hosts({"up": _model("up"), "down": down}, {"gone": "no route to host"})
    assert observed.hosts["up"].reachable
    assert observed.hosts["down"].error == "ssh: connect to host down: Connection refused"
    assert observed.hosts["gone"].error == "no route to host"
    assert list(observed.hosts) == ["down", "gone", "up"]
