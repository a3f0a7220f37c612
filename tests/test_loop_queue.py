"""`reconciler.loop.queue` (and the clocks it waits with): dedup, delays, processing, blocking.

Threads are joined with timeouts; negative checks ("nothing is handed out yet") use `look`, which
stops a getter only once it has gone to sleep on the fake clock, so they are not timing guesses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import pytest

from reconciler.loop.clock import FakeClock, SystemClock
from reconciler.loop.queue import WorkItem, WorkQueue

T0 = 1_700_000_000.0
JOIN = 2.0  # real seconds a thread gets to finish: generous, only reached when a test fails
K = TypeVar("K", bound=Hashable)


def wait_until(predicate: Callable[[], bool], timeout: float = JOIN) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting for the condition"
        time.sleep(0.002)


class Getter(threading.Thread, Generic[K]):
    """`queue.get` in a thread; `result()` joins it (with a timeout) and returns what it got."""

    def __init__(
        self,
        queue: WorkQueue[K],
        stop: threading.Event | None = None,
        blocked: Callable[[K, frozenset[K]], bool] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.queue = queue
        self.stop = stop if stop is not None else threading.Event()
        self.blocked = blocked
        self.got: list[WorkItem[K] | None] = []
        self.start()

    def run(self) -> None:
        self.got.append(self.queue.get(self.stop, self.blocked))

    def result(self, timeout: float = JOIN) -> WorkItem[K] | None:
        self.join(timeout)
        assert not self.is_alive(), "get() did not return"
        return self.got[0]


def look(
    queue: WorkQueue[K],
    clock: FakeClock,
    blocked: Callable[[K, frozenset[K]], bool] | None = None,
) -> WorkItem[K] | None:
    """What `get` hands out now: a getter that is stopped once it sleeps (None) or returns."""
    assert clock.waiting() == 0
    getter = Getter(queue, blocked=blocked)
    wait_until(lambda: clock.waiting() > 0 or not getter.is_alive())
    getter.stop.set()
    queue.wake()
    return getter.result()


def keys_in_order(queue: WorkQueue[str], clock: FakeClock) -> list[str]:
    """Drain the ready keys, marking each done, in the order `get` hands them out."""
    order = []
    while (item := look(queue, clock)) is not None:
        order.append(item.key)
        queue.done(item.key)
    return order


class RecordingClock(FakeClock):
    """A fake clock that never polls (only notifications wake a waiter) and records each wait."""

    def __init__(self, start: float = T0) -> None:
        super().__init__(start, poll=10.0)
        self.deadlines: list[float | None] = []

    def wait(self, condition: threading.Condition, deadline: float | None) -> None:
        self.deadlines.append(deadline)
        super().wait(condition, deadline)


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue(clock)


# --- adding: one entry per key ---------------------------------------------------------------


def test_a_key_added_twice_is_queued_once_with_the_earlier_time(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("tank/a", "timer", at=T0 + 60)
    queue.add("tank/a", "retry", at=T0 + 30)
    queue.add("tank/a", "timer", at=T0 + 90)
    assert queue.scheduled() == {"tank/a": (T0 + 30, ("retry",))}  # the timer is later
    queue.add("tank/a", "manifest changed")
    assert queue.scheduled() == {"tank/a": (T0, ("manifest changed",))}
    item = look(queue, clock)
    assert item == WorkItem("tank/a", ("manifest changed",))  # not yet the retry or timer
    assert look(queue, clock) is None  # handed out once, not twice


def test_a_key_handed_out_carries_every_reason_whose_time_has_come(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("tank/a", "snapshot due", at=T0 + 60)
    queue.add("tank/a", "retry", at=T0 + 30)
    queue.add("tank/a", "resync", at=T0 + 600)
    clock.advance(60)
    assert look(queue, clock) == WorkItem("tank/a", ("snapshot due", "retry"))


def test_reasons_merge_in_arrival_order_without_repeats(queue: WorkQueue[str]) -> None:
    for reason in ["b", "a", "b", "c", "a"]:
        queue.add("k", reason)
    assert queue.scheduled()["k"][1] == ("b", "a", "c")


# --- time ------------------------------------------------------------------------------------


def test_a_delayed_key_waits_for_its_time(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add("tank/a", "timer", at=T0 + 60)
    assert look(queue, clock) is None
    clock.advance(59.5)
    assert look(queue, clock) is None
    clock.advance(0.5)
    assert look(queue, clock) == WorkItem("tank/a", ("timer",))


def test_a_sleeping_getter_is_woken_by_the_clock(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add("tank/a", "timer", at=T0 + 60)
    getter = Getter(queue)
    wait_until(lambda: clock.waiting() == 1)
    assert getter.is_alive()
    clock.advance(60)
    assert getter.result() == WorkItem("tank/a", ("timer",))
    assert queue.processing() == {"tank/a"}
    assert queue.scheduled() == {}


def test_a_sleeping_getter_is_woken_by_an_add(queue: WorkQueue[str], clock: FakeClock) -> None:
    getter = Getter(queue)
    wait_until(lambda: clock.waiting() == 1)
    started = time.monotonic()
    queue.add("tank/a", "manifest changed")
    assert getter.result() == WorkItem("tank/a", ("manifest changed",))
    assert time.monotonic() - started < 1.0


def test_after_the_clock_jumps_back_every_key_is_due(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("now", "manifest changed")
    queue.add("later", "timer", at=T0 + 1)
    clock.set(T0 - 3600)
    # "later" was timed on the old clock: after a jump back it is due now, to be timed again
    first, second = look(queue, clock), look(queue, clock)
    assert {first, second} == {
        WorkItem("now", ("manifest changed",)),
        WorkItem("later", ("the clock went back 3600s",)),
    }


def test_the_clock_stepping_back_less_than_a_second_is_no_jump(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("later", "timer", at=T0 + 60)
    assert look(queue, clock) is None
    clock.set(T0 - 0.5)
    assert look(queue, clock) is None
    clock.set(T0 + 60)
    assert look(queue, clock) == WorkItem("later", ("timer",))


def test_ready_keys_come_earliest_time_first_then_in_arrival_order(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("c", "timer", at=T0 + 5)
    queue.add("a", "manifest changed")  # at T0
    queue.add("b", "manifest changed")  # at T0, after a
    queue.add("d", "timer", at=T0 + 1)
    queue.add("e", "timer", at=T0 + 1)  # same time as d, after it
    queue.add("f", "timer", at=T0 + 9)
    queue.add("f", "retry", at=T0 - 5)  # moves ahead of everyone, keeping its arrival number
    clock.advance(10)
    assert keys_in_order(queue, clock) == ["f", "a", "b", "d", "e", "c"]


def test_get_waits_until_the_earliest_time_not_a_busy_loop(
    queue: WorkQueue[str], clock: RecordingClock
) -> None:
    queue.add("late", "timer", at=T0 + 300)
    queue.add("soon", "timer", at=T0 + 20)
    getter = Getter(queue)
    wait_until(lambda: clock.waiting() == 1)
    time.sleep(0.05)  # a busy loop would call wait() many times meanwhile
    assert clock.deadlines == [T0 + 20]
    clock.advance(20)
    assert getter.result() == WorkItem("soon", ("timer",))
    assert clock.deadlines == [T0 + 20]  # woken at its time, handed out without waiting again


def test_a_getter_with_nothing_timed_waits_without_a_deadline(
    queue: WorkQueue[str], clock: RecordingClock
) -> None:
    queue.add("ready", "timer")
    assert look(queue, clock) is not None
    queue.add("ready", "again")  # queued, but processing: done() wakes the getter, not time
    assert look(queue, clock) is None
    assert clock.deadlines == [None]


# --- processing ------------------------------------------------------------------------------


def test_a_key_re_added_while_processing_waits_for_done(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("tank/a", "timer")
    first = look(queue, clock)
    assert first == WorkItem("tank/a", ("timer",))
    queue.add("tank/a", "manifest changed")
    assert queue.scheduled() == {"tank/a": (T0, ("manifest changed",))}
    assert look(queue, clock) is None
    getter = Getter(queue)
    wait_until(lambda: clock.waiting() == 1)
    assert getter.is_alive()
    queue.done("tank/a")
    assert getter.result() == WorkItem("tank/a", ("manifest changed",))
    assert queue.processing() == {"tank/a"}


def test_two_keys_are_processed_at_once_by_two_threads(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("tank/a", "timer")
    queue.add("tank/b", "timer")
    one, two = Getter(queue), Getter(queue)
    items = [one.result(), two.result()]
    assert {item.key for item in items if item is not None} == {"tank/a", "tank/b"}
    assert queue.processing() == {"tank/a", "tank/b"}
    queue.add("tank/b", "retry")
    third = Getter(queue)
    wait_until(lambda: clock.waiting() == 1)
    queue.done("tank/b")
    assert third.result() == WorkItem("tank/b", ("retry",))
    assert queue.processing() == {"tank/a", "tank/b"}


def test_blocked_keys_wait_for_the_key_blocking_them(
    clock: FakeClock,
) -> None:
    queue: WorkQueue[tuple[str, str]] = WorkQueue(clock)
    seen: list[tuple[tuple[str, str], frozenset[tuple[str, str]]]] = []

    def same_host(key: tuple[str, str], busy: frozenset[tuple[str, str]]) -> bool:
        seen.append((key, busy))
        return any(other[0] == key[0] for other in busy)

    queue.add(("h1", "tank/a"), "timer")
    queue.add(("h1", "tank/b"), "timer")
    queue.add(("h2", "tank/c"), "timer")
    assert look(queue, clock, same_host) == WorkItem(("h1", "tank/a"), ("timer",))
    assert look(queue, clock, same_host) == WorkItem(("h2", "tank/c"), ("timer",))
    assert (("h1", "tank/b"), frozenset({("h1", "tank/a")})) in seen
    assert look(queue, clock, same_host) is None
    assert look(queue, clock) == WorkItem(("h1", "tank/b"), ("timer",))  # without the rule
    queue.done(("h1", "tank/b"))
    queue.add(("h1", "tank/b"), "retry")
    getter = Getter(queue, blocked=same_host)
    wait_until(lambda: clock.waiting() == 1)
    assert getter.is_alive()
    queue.done(("h1", "tank/a"))
    assert getter.result() == WorkItem(("h1", "tank/b"), ("retry",))


def test_done_of_a_key_not_processing_is_harmless(queue: WorkQueue[str]) -> None:
    queue.done("never")
    assert queue.processing() == frozenset()


# --- remove, stop, shutdown ------------------------------------------------------------------


def test_remove_forgets_a_queued_key(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add("gone", "timer")
    queue.add("kept", "timer", at=T0 + 1)
    queue.remove("gone")
    queue.remove("never queued")
    assert queue.scheduled() == {"kept": (T0 + 1, ("timer",))}
    clock.advance(1)
    assert keys_in_order(queue, clock) == ["kept"]


class SignallingClock(SystemClock):
    """The real clock, telling the test when a thread has started waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, condition: threading.Condition, deadline: float | None) -> None:
        self.waiting.set()
        super().wait(condition, deadline)


@pytest.mark.parametrize("how", ["stop and wake", "shutdown"])
def test_stop_or_shutdown_ends_a_sleeping_get_promptly(how: str) -> None:
    clock = SignallingClock()  # waits up to 30 s: only a notification ends it in time
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("later", "timer", at=clock.time() + 3600)
    getter = Getter(queue)
    assert clock.waiting.wait(JOIN)
    started = time.monotonic()
    if how == "shutdown":
        queue.shutdown()
    else:
        getter.stop.set()
        queue.wake()
    assert getter.result(timeout=0.5) is None
    assert time.monotonic() - started < 0.5


def test_get_returns_none_at_once_when_stopped_or_shut_down(queue: WorkQueue[str]) -> None:
    queue.add("ready", "timer")
    stop = threading.Event()
    stop.set()
    assert queue.get(stop) is None
    queue.shutdown()
    assert queue.get(threading.Event()) is None
    assert queue.scheduled() == {"ready": (T0, ("timer",))}  # nothing was handed out


# --- the clocks ------------------------------------------------------------------------------


def test_system_clock_wait_returns_after_the_deadline_without_spinning() -> None:
    clock = SystemClock()
    condition = threading.Condition()
    started = time.monotonic()
    deadline = clock.time() + 0.05
    calls = 0
    with condition:
        while clock.time() < deadline:
            clock.wait(condition, deadline)
            calls += 1
    assert 0.04 <= time.monotonic() - started < 1.0
    assert calls <= 3  # returns at the deadline, not in a loop of early returns


def test_system_clock_caps_a_wait_with_no_deadline() -> None:
    clock = SystemClock(max_wait=0.05)
    condition = threading.Condition()
    started = time.monotonic()
    with condition:
        clock.wait(condition, None)
    assert 0.04 <= time.monotonic() - started < 1.0


def test_system_clock_sleep_sleeps() -> None:
    started = time.monotonic()
    SystemClock().sleep(0.05)
    assert time.monotonic() - started >= 0.045


def test_fake_clock_advance_wakes_a_waiter() -> None:
    clock = FakeClock(T0, poll=10.0)  # only a notification returns wait() within the test
    condition = threading.Condition()
    returned = threading.Event()

    def waiter() -> None:
        with condition:
            clock.wait(condition, T0 + 100)
        returned.set()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    wait_until(lambda: clock.waiting() == 1)
    clock.advance(1)
    assert returned.wait(JOIN)
    assert clock.waiting() == 0


def test_fake_clock_wait_returns_at_once_past_the_deadline() -> None:
    clock = FakeClock(T0, poll=10.0)
    condition = threading.Condition()
    started = time.monotonic()
    with condition:
        clock.wait(condition, T0)
        clock.wait(condition, T0 - 1)
    assert time.monotonic() - started < 1.0


def test_fake_clock_moves_both_ways_but_advance_only_forward() -> None:
    clock = FakeClock(T0)
    clock.advance(10)
    assert clock.time() == T0 + 10
    clock.set(T0 - 5)
    assert clock.time() == T0 - 5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_fake_clock_sleep_waits_for_the_clock_to_be_moved() -> None:
    clock = RecordingClock()
    slept = threading.Event()

    def sleeper() -> None:
        clock.sleep(10)
        slept.set()

    threading.Thread(target=sleeper, daemon=True).start()
    wait_until(lambda: clock.waiting() == 1)
    clock.advance(5)
    wait_until(lambda: len(clock.deadlines) == 2)  # woken, looked, and went back to sleep
    assert not slept.is_set()
    assert clock.deadlines == [T0 + 10, T0 + 10]
    assert clock.time() == T0 + 5  # sleep does not move the clock
    clock.advance(5)
    assert slept.wait(JOIN)


def test_fake_clock_counts_the_waiters_that_saw_its_last_move() -> None:
    clock = FakeClock(T0, poll=10.0)
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("later", "timer", at=T0 + 60)
    getter = Getter(queue)
    wait_until(lambda: clock.waiting_since_move() == 1)
    clock.advance(1)  # the getter wakes, looks at the time, and waits again
    wait_until(lambda: clock.waiting_since_move() == 1)
    assert clock.waiting() == 1
    getter.stop.set()
    queue.wake()
    assert getter.result() is None
