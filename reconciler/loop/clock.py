"""Time for the control loop: what time it is, and waiting on a condition until a deadline.

Owned here: the `Clock` protocol, `SystemClock` (the real wall clock) and `FakeClock` (a clock
tests move by hand). Called by the loop's work queue (`loop/queue.py`) and the watch loop; the
CLI hands a `SystemClock` in, tests a `FakeClock`.

Times are UNIX seconds on the wall clock (UTC): snapshot schedules name wall-clock minutes, so a
monotonic clock would drift from them across a suspend. The price is that the wall clock jumps
(NTP, suspend, an operator's `date -s`): `SystemClock` never waits longer than `max_wait` (30 s)
in one go, so a jump is noticed within that time even if nobody notifies the waiter.

`wait` is called with its condition held and may return early (notified, spuriously, or at the
cap): callers loop, re-checking their state and the time, as with `threading.Condition.wait`.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

MAX_WAIT = 30.0  # SystemClock: the longest single wait, so wall-clock jumps are noticed
FAKE_POLL = 0.05  # FakeClock: real seconds between re-checks in wait(), a safety net only


class Clock(Protocol):
    """The time, and a way to wait for it."""

    def time(self) -> float:
        """Now, in UNIX seconds (wall clock, UTC)."""
        ...

    def wait(self, condition: threading.Condition, deadline: float | None) -> None:
        """With `condition` held: return when notified, at `deadline` (or soon after it), or
        spuriously. `deadline=None` waits for a notification (or a spurious return)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...


def _sleep(clock: Clock, seconds: float) -> None:
    """`sleep` for any clock: wait on a private condition until the clock reaches the end."""
    end = clock.time() + seconds
    condition = threading.Condition()
    with condition:
        while clock.time() < end:
            clock.wait(condition, end)


class SystemClock:
    """The real wall clock (`time.time`). Waits are capped at `max_wait` real seconds."""

    def __init__(self, max_wait: float = MAX_WAIT) -> None:
        if max_wait <= 0:
            raise ValueError(f"max_wait must be positive, not {max_wait}")
        self._max_wait = max_wait

    def time(self) -> float:
        return time.time()

    def wait(self, condition: threading.Condition, deadline: float | None) -> None:
        timeout = self._max_wait if deadline is None else deadline - self.time()
        if timeout <= 0:
            return
        condition.wait(min(timeout, self._max_wait))

    def sleep(self, seconds: float) -> None:
        _sleep(self, seconds)


class FakeClock:
    """A clock for tests: it stands still until `advance` or `set` moves it (either way).

    Moving the clock wakes every thread in `wait`: the clock keeps a registry of the conditions
    being waited on and notifies each under its own lock. A waiter registers while it holds its
    condition, and the mover notifies only after taking that condition, so no wake-up is lost;
    `poll` real seconds bound each wait anyway. `waiting()` tells tests how many threads are
    waiting, so they can move the clock once a thread has gone to sleep instead of guessing with
    a real sleep.
    """

    def __init__(self, start: float, *, poll: float = FAKE_POLL) -> None:
        self._now = start
        self._poll = poll
        self._lock = threading.Lock()
        self._waiting: list[tuple[threading.Condition, int]] = []  # (condition, move seen)
        self._moves = 0  # how many times the clock was moved

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (not negative: use `set` to jump back)."""
        if seconds < 0:
            raise ValueError(f"advance() moves forward only, not by {seconds}; use set()")
        with self._lock:
            self._now += seconds
            self._moves += 1
            waiting = [condition for condition, _ in self._waiting]
        _notify(waiting)

    def set(self, now: float) -> None:
        """Jump to `now`, forward or backward (a wall-clock jump)."""
        with self._lock:
            self._now = now
            self._moves += 1
            waiting = [condition for condition, _ in self._waiting]
        _notify(waiting)

    def waiting(self) -> int:
        """How many threads are inside `wait()` right now."""
        with self._lock:
            return len(self._waiting)

    def waiting_since_move(self) -> int:
        """How many threads went into `wait()` after the clock was last moved: they have
        looked at the time as it is now (a test's way to know a move was seen)."""
        with self._lock:
            return sum(1 for _, move in self._waiting if move == self._moves)

    def wait(self, condition: threading.Condition, deadline: float | None) -> None:
        with self._lock:
            if deadline is not None and deadline <= self._now:
                return
            entry = (condition, self._moves)
            self._waiting.append(entry)
        try:
            condition.wait(self._poll)
        finally:
            with self._lock:
                self._waiting.remove(entry)

    def sleep(self, seconds: float) -> None:
        """Return once the clock has been moved `seconds` past now (sleep never moves it)."""
        _sleep(self, seconds)


def _notify(conditions: list[threading.Condition]) -> None:
    for condition in conditions:
        with condition:
            condition.notify_all()
