"""`reconciler.collector`: one pause of the cyclic garbage collector shared by every thread,
the freeze at its last exit, and `collect_frozen`. The parser's and the observer's use of it
are tested in tests/test_zfs_parse.py. Every test leaves the collector as it found it."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator

import pytest

from reconciler.collector import collect_frozen, collector_paused
from reconciler.manifest.loader import parse_manifests

TIMEOUT = 10.0


@pytest.fixture
def collector() -> Iterator[None]:
    """Each test starts with the collector enabled and nothing frozen, and ends restoring the
    state it found (enabled or not), nothing frozen. Every test here uses it (`pytestmark`);
    tests/test_zfs_parse.py's freeze tests too."""
    was_enabled = gc.isenabled()
    gc.unfreeze()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


pytestmark = pytest.mark.usefixtures("collector")


class _Node:
    """A container the collector tracks, which can be weakly referenced and put in a cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


class _Participant:
    """A thread that holds a pause from `enter()` until `leave()`."""

    def __init__(self, *, freeze: bool = False) -> None:
        self._freeze = freeze
        self._entered = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with collector_paused(freeze=self._freeze):
            self._entered.set()
            self._release.wait(TIMEOUT)

    def enter(self) -> None:
        self._thread.start()
        assert self._entered.wait(TIMEOUT)

    def leave(self) -> None:
        """Idempotent, and harmless for a participant that never entered."""
        self._release.set()
        if self._thread.ident is not None:
            self._thread.join(TIMEOUT)
            assert not self._thread.is_alive()


def _young(obj: object) -> bool:
    """Whether `obj` is in a generation a collection walks (not frozen)."""
    return any(o is obj for generation in (0, 1, 2) for o in gc.get_objects(generation))


def test_a_pause_turns_the_collector_off_and_back_on_without_freezing() -> None:
    with collector_paused():
        assert not gc.isenabled()
        node = _Node()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert _young(node)


def test_nested_pauses_turn_the_collector_back_on_at_the_outermost_exit_only() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_inner_freeze_request_freezes_once_at_the_outermost_exit() -> None:
    with collector_paused():
        with collector_paused(freeze=True):
            pass
        assert gc.get_freeze_count() == 0 and not gc.isenabled()
        built_after_the_inner_exit = _Node()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(built_after_the_inner_exit)
    assert not _young(built_after_the_inner_exit)


def test_a_freeze_request_does_not_outlive_its_pause() -> None:
    with collector_paused(freeze=True):
        pass
    gc.unfreeze()
    with collector_paused():
        node = _Node()
    assert gc.get_freeze_count() == 0
    assert _young(node)


def test_a_pause_begun_with_the_collector_off_leaves_it_off_and_freezes_nothing() -> None:
    gc.disable()
    with collector_paused(freeze=True), collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_thread_leaving_while_another_holds_a_pause_keeps_the_collector_off() -> None:
    first, second = _Participant(), _Participant()
    try:
        first.enter()
        second.enter()
        assert not gc.isenabled()
        first.leave()
        assert not gc.isenabled()
        second.leave()
        assert gc.isenabled()
    finally:
        first.leave()
        second.leave()


def test_the_last_thread_to_leave_freezes_what_another_asked_to_freeze() -> None:
    asking, last = _Participant(freeze=True), _Participant()
    try:
        last.enter()
        asking.enter()
        asking.leave()
        assert gc.get_freeze_count() == 0 and not gc.isenabled()
        node = _Node()
        last.leave()
        assert gc.isenabled()
        assert not _young(node)
    finally:
        asking.leave()
        last.leave()


def test_many_threads_pausing_at_once_never_see_the_collector_on() -> None:
    threads, rounds = 8, 40
    start = threading.Barrier(threads)
    seen_on: list[int] = []

    def pause_repeatedly(index: int) -> None:
        start.wait(TIMEOUT)
        for round_ in range(rounds):
            with collector_paused(freeze=(index + round_) % 5 == 0):
                time.sleep(0.0002)  # let the other threads enter and leave meanwhile
                if gc.isenabled():
                    seen_on.append(index)

    workers = [threading.Thread(target=pause_repeatedly, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT)
    assert not any(worker.is_alive() for worker in workers)
    assert seen_on == []
    assert gc.isenabled()


def test_collect_frozen_reclaims_a_cycle_frozen_with_the_parsed_values() -> None:
    with collector_paused(freeze=True):
        node = _Node()
        node.other = node
    alive = weakref.ref(node)
    del node
    gc.collect()
    assert alive() is not None  # frozen: no collection sees it
    collect_frozen()
    assert gc.get_freeze_count() == 0
    assert alive() is None


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def test_collect_frozen_runs_a_full_collection_only_when_something_is_frozen() -> None:
    gc.disable()  # no automatic collection between the counts
    before = _full_collections()
    collect_frozen()
    assert _full_collections() == before
    with collector_paused(freeze=True):
        pass  # the collector was off: nothing frozen
    collect_frozen()
    assert _full_collections() == before
    gc.enable()
    with collector_paused(freeze=True):
        pass
    gc.disable()
    assert gc.get_freeze_count() > 0
    before = _full_collections()
    collect_frozen()
    assert _full_collections() == before + 1
    assert gc.get_freeze_count() == 0


def test_a_manifest_load_pauses_the_collector_without_freezing() -> None:
    manifests = parse_manifests([("empty.yaml", "")])
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert not manifests.hosts and not manifests.policies
