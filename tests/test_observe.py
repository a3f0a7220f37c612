"""`zfs/observe.py`: every host of a pass is observed at the same time, and a host that fails
to answer is unobserved without holding up the others."""

from __future__ import annotations

import threading

from reconciler.core.scope import ObservationScope
from reconciler.core.state import FilesystemState, HostState, Observed, ResumeToken
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


class DetailingHost:
    """A host of two-step observation: fixed filesystems, one of them with a resume token
    when asked; it records what each `add_details` call asked for."""

    def __init__(self, *, token: bool) -> None:
        self.host = "h"
        self.token = token
        self.asked: list[frozenset[str]] = []

    def list_versions(self, scope: ObservationScope | None = None) -> HostState:
        return HostState(host="h", filesystems={"tank/a": FilesystemState(name="tank/a")})

    def add_details(self, state: HostState, snapshots: frozenset[str]) -> HostState:
        self.asked.append(frozenset(snapshots))
        token = ResumeToken(token="1-x", to_guid=7, to_name="src@s2") if self.token else None
        return HostState(
            host="h", filesystems={"tank/a": FilesystemState(name="tank/a", resume_token=token)}
        )


def _needed(observed: Observed) -> dict[str, frozenset[str]]:
    """Asks for @s1, and for @s2 too once a resume token is seen."""
    state = observed.host("h").filesystem("tank/a")
    extra = {"tank/a@s2"} if state is not None and state.resume_token else set()
    return {"h": frozenset({"tank/a@s1", *extra})}


def test_details_are_asked_once_without_a_resume_token_and_again_for_what_one_adds() -> None:
    calm = DetailingHost(token=False)
    observe_hosts({"h": calm}, needed=_needed)  # type: ignore[dict-item]
    assert calm.asked == [frozenset({"tank/a@s1"})]
    resuming = DetailingHost(token=True)
    observed = observe_hosts({"h": resuming}, needed=_needed)  # type: ignore[dict-item]
    assert resuming.asked == [frozenset({"tank/a@s1"}), frozenset({"tank/a@s2"})]
    assert observed.host("h").reachable
