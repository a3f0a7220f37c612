"""The loop's version cache (`zfs/stamps.py`): it answers what a full cheap listing would, and
re-lists only the snapshots of filesystems whose `snapshots_changed` stamp moved.

The hosts are models whose clock (the seconds `snapshots_changed` is stamped with) runs with
the cache's own clock, as a real host's does with the machine's; the property test moves both
by fractions of a second between random changes and listings, so that changes land in the same
second as a listing, before and after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.scope import ObservationScope
from reconciler.core.state import HostState, Stamp, Version
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.observe import observe_hosts
from reconciler.zfs.port import StampedListing
from reconciler.zfs.stamps import VersionCache

EPOCH = 1_800_000_000


class Time:
    """The reconciler's monotonic clock and the host's wall clock, moved together."""

    def __init__(self, host: ModelZFS) -> None:
        self.now = 0.0
        self.host = host
        host.clock = EPOCH

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.host.clock = EPOCH + int(self.now)


class Counted:
    """A model host that records which filesystems each `list_snapshots` call named."""

    def __init__(self, model: ModelZFS) -> None:
        self.model = model
        self.snapshot_calls: list[list[str]] = []
        self.full_listings = 0
        self.stamps: dict[str, Stamp] = {}  # shown instead of the model's

    @property
    def host(self) -> str:
        return self.model.host

    def list_stamps(self, scope: ObservationScope | None = None) -> StampedListing:
        listed = self.model.list_stamps(scope)
        return StampedListing(listed.state, {**listed.stamps, **self.stamps})

    def list_snapshots(self, filesystems: Sequence[str]) -> dict[str, tuple[Version, ...]]:
        self.snapshot_calls.append(list(filesystems))
        return self.model.list_snapshots(filesystems)

    def list_versions(self, scope: ObservationScope | None = None) -> HostState:
        self.full_listings += 1
        return self.model.list_versions(scope)

    def add_details(self, state: HostState, snapshots: object) -> HostState:
        return self.model.add_details(state, snapshots)  # type: ignore[arg-type]


def setup(filesystems: int = 3) -> tuple[ModelZFS, Time, Counted]:
    model = ModelZFS("h")
    model.create_pool("tank")
    time = Time(model)
    for n in range(filesystems):
        model.create(f"tank/fs{n}")
        model.snapshot([f"tank/fs{n}"], "s0")
    return model, time, Counted(model)


SCOPE = ObservationScope.of(["tank"])


def settle(cache: VersionCache, time: Time, host: Counted) -> None:
    """Three listings 3 s apart: from then on the cache vouches for every unchanged stamp."""
    for _ in range(3):
        cache.list_versions(host, SCOPE)
        time.advance(3)


def test_snapshots_are_listed_again_until_a_listing_came_after_the_stamps_second() -> None:
    model, time, host = setup()
    cache = VersionCache(time)
    every = ["tank", "tank/fs0", "tank/fs1", "tank/fs2"]
    assert cache.list_versions(host, SCOPE) == model.list_versions(SCOPE)
    assert host.snapshot_calls == [every]  # `tank` has no snapshots: its stamp stays `-`
    time.advance(0.5)  # the stamps' second may not be over: listed again
    cache.list_versions(host, SCOPE)
    time.advance(5)
    cache.list_versions(host, SCOPE)  # 5.5 s after the stamps were first seen: listed again
    assert host.snapshot_calls == [every, every[1:], every[1:]]
    time.advance(5)
    assert cache.list_versions(host, SCOPE) == model.list_versions(SCOPE)
    assert host.snapshot_calls == [every, every[1:], every[1:]]  # none: every stamp vouches


def test_a_new_snapshot_moves_its_filesystems_stamp_and_only_that_one_is_listed() -> None:
    model, time, host = setup()
    cache = VersionCache(time)
    settle(cache, time, host)
    host.snapshot_calls.clear()
    model.snapshot(["tank/fs1"], "s1")
    model.bookmark("tank/fs2", "s0", "m0")  # bookmarks are listed every time anyway
    listed = cache.list_versions(host, SCOPE)
    assert listed == model.list_versions(SCOPE)
    assert host.snapshot_calls == [["tank/fs1"]]
    assert [v.name for v in listed.filesystems["tank/fs2"].versions] == ["s0", "m0"]


def test_a_change_in_the_same_second_as_the_listing_is_not_missed() -> None:
    model, time, host = setup(1)
    cache = VersionCache(time)
    cache.list_versions(host, SCOPE)
    time.advance(0.3)  # same host second: the stamp will not move
    model.snapshot(["tank/fs0"], "s1")
    time.advance(0.3)
    assert cache.list_versions(host, SCOPE) == model.list_versions(SCOPE)


@pytest.mark.parametrize(
    "change",
    [
        {"guid": 7},  # destroyed and made again in the same second
        {"origin": "tank/fs1@s0"},  # `zfs promote` gives snapshots without moving the stamp
    ],
)
def test_a_filesystem_with_another_guid_or_origin_is_listed_again(
    change: dict[str, object],
) -> None:
    _model, time, host = setup(1)
    cache = VersionCache(time)
    settle(cache, time, host)
    host.snapshot_calls.clear()
    cache.list_versions(host, SCOPE)
    assert host.snapshot_calls == []
    stamp = host.list_stamps(SCOPE).stamps["tank/fs0"]
    host.stamps["tank/fs0"] = stamp._replace(**change)  # type: ignore[arg-type]
    cache.list_versions(host, SCOPE)
    assert host.snapshot_calls == [["tank/fs0"]]


def test_a_filesystem_not_changed_is_listed_again_once_its_listing_is_an_hour_old() -> None:
    _model, time, host = setup(1)
    cache = VersionCache(time, max_age=100)
    settle(cache, time, host)
    host.snapshot_calls.clear()
    cache.list_versions(host, SCOPE)
    assert host.snapshot_calls == []
    time.advance(100)
    cache.list_versions(host, SCOPE)
    assert host.snapshot_calls == [["tank", "tank/fs0"]]  # both an hour old


def test_what_a_scope_no_longer_lists_is_dropped_once_of_no_use() -> None:
    """A filesystem gone from a scope's listing is dropped at once; one outside the scope of
    this call (another policy's) is kept until its listing is too old to vouch for it."""
    _model, time, host = setup(2)
    cache = VersionCache(time, max_age=100)
    cache.list_versions(host, SCOPE)
    assert cache.known("h") == {"tank", "tank/fs0", "tank/fs1"}
    time.advance(50)
    cache.list_versions(host, ObservationScope.of(["tank/fs0"]))
    assert cache.known("h") == {"tank", "tank/fs0", "tank/fs1"}
    time.advance(60)
    cache.list_versions(host, ObservationScope.of(["tank/fs0"]))
    assert cache.known("h") == {"tank/fs0"}


def test_a_host_without_snapshots_changed_is_listed_whole_each_time() -> None:
    model, time, host = setup(1)
    model.stamps_supported = False
    cache = VersionCache(time)
    for _ in range(3):
        assert cache.list_versions(host, SCOPE) == model.list_versions(SCOPE)
        time.advance(3)
    assert host.full_listings == 3 and host.snapshot_calls == []


def test_a_snapshot_the_details_miss_makes_the_pass_forget_its_filesystem() -> None:
    """A stamp that did not move (the host's clock was set back to the second of the stamp,
    beyond what the cache assumes): the cache vouches for a destroyed snapshot, the details
    step does not find it, the observation leaves it out, and the next listing names that
    filesystem again."""
    model, time, host = setup(2)
    cache = VersionCache(time)
    settle(cache, time, host)
    model.clock = model.list_stamps(SCOPE).stamps["tank/fs0"].changed
    model.destroy("tank/fs0", ["@s0"])  # stamped with the same second: no move
    time.now += 3
    host.snapshot_calls.clear()
    seen = observe_hosts(
        {"h": host},  # type: ignore[dict-item]
        scopes={"h": SCOPE},
        needed=lambda observed: {"h": {"tank/fs0@s0"}},
        cache=cache,
    )
    assert host.snapshot_calls == []  # the cache vouched for fs0's s0
    assert seen.host("h").filesystems["tank/fs0"].versions == ()
    time.now += 3
    assert cache.list_versions(host, SCOPE) == model.list_versions(SCOPE)
    assert host.snapshot_calls[-1] == ["tank/fs0"]


CHANGES = st.sampled_from(["snapshot", "destroy", "bookmark", "create", "destroy-all"])


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=3.0),
            st.lists(st.tuples(CHANGES, st.integers(0, 3)), max_size=3),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_cache_answers_what_a_full_listing_would(
    steps: list[tuple[float, list[tuple[str, int]]]],
) -> None:
    model, time, host = setup(2)
    cache = VersionCache(time)
    made = 0
    for pause, changes in steps:
        for change, n in changes:
            time.advance(pause / 4)
            fs = f"tank/fs{n}"
            state = model.list_versions(SCOPE).filesystems.get(fs)
            if change == "create" and state is None:
                model.create(fs)
            elif state is None:
                continue
            elif change == "snapshot":
                made += 1
                model.snapshot([fs], f"s{made}")
            elif change == "bookmark" and state.snapshots:
                made += 1
                model.bookmark(fs, state.snapshots[-1].name, f"m{made}")
            elif change == "destroy" and state.snapshots:
                model.destroy(fs, ["@" + state.snapshots[0].name])
            elif change == "destroy-all" and state.snapshots:
                model.destroy(fs, ["@" + v.name for v in state.snapshots])
        time.advance(pause)
        assert cache.list_versions(host, SCOPE) == model.list_versions(SCOPE)
