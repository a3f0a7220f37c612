"""The loop's work queue: which keys need reconciling, from when, and why.

Owned here: `WorkQueue` and `WorkItem`. Called by the watch loop: the manifest watcher, the
snapshot timers and the retry backoff `add` keys (with a reason, maybe a time); worker threads
`get` a key, reconcile it and call `done`; the status report reads `scheduled`/`processing`.

Semantics follow client-go's delaying workqueue:

- One entry per key. Adding a queued key again keeps the earlier of the two times and merges
  the reasons (in order of arrival, without repeats), each with the time it asked for: a key
  is handed out with the reasons whose time has come, and `scheduled` shows those of its
  time (a snapshot due in 14 minutes is not why an edit's pass runs now). A key added with
  `at=None` is ready now, whatever the wall clock does afterwards (even if it jumps back).
- A key handed out by `get` is *processing* until `done`; it is never handed out twice at once.
  Adding it meanwhile queues it again, to be handed out only after `done`.
- `get` hands out a key that is due (`time <= clock.time()`), not processing and not
  `blocked(key, processing)`; among those the earliest time first, then the order in which keys
  entered the queue.
- When the clock goes back by more than a second, every queued key becomes due at once (with
  the reason "the clock went back Ns"): its time was computed on the old clock, and a retry
  meant for "in 5 s" would otherwise wait as long as the jump. A jump forward needs nothing:
  what it passed is due.

Waiting: `get` sleeps on one `threading.Condition` through `clock.wait` until the earliest
future time, and is woken by `add`, `done`, `wake` and `shutdown`; it never busy-waits. A
`stop` event cannot notify the condition by itself, so whoever sets it calls `wake()` (safe in
a signal handler: it changes no state and the condition's lock is reentrant); a stop set without
`wake()` is still seen within the clock's longest wait (30 s for `SystemClock`). `shutdown()`
ends every `get` for good. The `blocked` callback runs with the queue's lock held, so it must be
quick and must not call the queue. Each `get` scans the queue (O(n)): n is the number of
policies, small.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from reconciler.loop.clock import Clock

K = TypeVar("K", bound=Hashable)
JUMP_BACK_TOLERANCE = 1.0  # seconds the clock may step back without counting as a jump


@dataclass(frozen=True, slots=True)
class WorkItem(Generic[K]):
    """A key handed out by `WorkQueue.get`, with why it was enqueued (merged, in order)."""

    key: K
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A queued key's time, its reasons each with the time it asked for (arrival order), its
    arrival number, and whether it is ready regardless of time."""

    at: float
    timed: tuple[tuple[str, float], ...]
    seq: int
    now: bool

    def merged(self, at: float, reason: str, now: bool) -> _Entry:
        timed = dict(self.timed)
        timed[reason] = min(at, timed.get(reason, at))
        return _Entry(min(self.at, at), tuple(timed.items()), self.seq, self.now or now)

    def due(self, now: float) -> bool:
        return self.now or self.at <= now

    def reasons(self, moment: float) -> tuple[str, ...]:
        """The reasons whose time has come at `moment` (a reason queued for later is not why
        the key runs now: its owner queues it again after the run if it still holds)."""
        return tuple(reason for reason, at in self.timed if at <= max(moment, self.at))


class WorkQueue(Generic[K]):
    """A de-duplicating, delaying queue of keys, safe for many adders and many getters."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._condition = threading.Condition()
        self._queued: dict[K, _Entry] = {}
        self._processing: set[K] = set()
        self._seq = 0
        self._shutdown = False
        self._seen = clock.time()  # the latest time seen, to notice the clock going back

    def add(self, key: K, reason: str, *, at: float | None = None) -> None:
        """Queue `key` for `at` (None: now), or merge into its entry (the earlier time wins)."""
        now = at is None
        when = self._clock.time() if at is None else at
        with self._condition:
            entry = self._queued.get(key)
            if entry is None:
                self._seq += 1
                self._queued[key] = _Entry(when, ((reason, when),), self._seq, now)
            else:
                self._queued[key] = entry.merged(when, reason, now)
            self._condition.notify_all()

    def get(
        self,
        stop: threading.Event,
        blocked: Callable[[K, frozenset[K]], bool] | None = None,
    ) -> WorkItem[K] | None:
        """Block until a key may be processed and hand it out; None once stopped or shut down."""
        with self._condition:
            while not (stop.is_set() or self._shutdown):
                now = self._clock.time()
                self._notice_jump_back(now)
                key = self._pick(now, blocked)
                if key is not None:
                    entry = self._queued.pop(key)
                    self._processing.add(key)
                    return WorkItem(key, entry.reasons(now))
                self._clock.wait(self._condition, self._next_time(now))
            return None

    def done(self, key: K) -> None:
        """`key` is no longer processed (no-op if it was not); it may be handed out again."""
        with self._condition:
            self._processing.discard(key)
            self._condition.notify_all()

    def remove(self, key: K) -> None:
        """Forget a queued `key` (a policy left the manifests); a processing key stays so."""
        with self._condition:
            self._queued.pop(key, None)

    def wake(self) -> None:
        """Make every waiting `get` look again (call after setting its `stop` event)."""
        with self._condition:
            self._condition.notify_all()

    def shutdown(self) -> None:
        """End every `get`, now and later: they return None."""
        with self._condition:
            self._shutdown = True
            self._condition.notify_all()

    def scheduled(self) -> dict[K, tuple[float, tuple[str, ...]]]:
        """Queued keys (including ones re-added while processing) → (time, the reasons that
        fall at that time)."""
        with self._condition:
            return {key: (e.at, e.reasons(e.at)) for key, e in self._queued.items()}

    def processing(self) -> frozenset[K]:
        """Keys handed out by `get` and not yet `done`."""
        with self._condition:
            return frozenset(self._processing)

    def _pick(self, now: float, blocked: Callable[[K, frozenset[K]], bool] | None) -> K | None:
        """The key to hand out now, if any: due, free, unblocked; earliest time, then arrival."""
        busy = frozenset(self._processing)
        ready = [
            (entry.at, entry.seq, key)
            for key, entry in self._queued.items()
            if entry.due(now) and key not in busy
        ]
        for _, _, key in sorted(ready, key=lambda item: item[:2]):
            if blocked is None or not blocked(key, busy):
                return key
        return None

    def _notice_jump_back(self, now: float) -> None:
        """When the clock went back (NTP, an operator's `date -s`), every queued time was
        computed on the old clock: all become due now, so their owners compute them again on
        the new one. Otherwise a retry planned for "in 5 s" would wait as long as the jump."""
        if now < self._seen - JUMP_BACK_TOLERANCE:
            why = f"the clock went back {self._seen - now:.0f}s"
            for key, entry in self._queued.items():
                if not entry.due(now):
                    self._queued[key] = entry.merged(now, why, False)
        self._seen = now

    def _next_time(self, now: float) -> float | None:
        """The earliest time a queued key falls due after `now`; None if none is waiting on time."""
        future = [entry.at for entry in self._queued.values() if not entry.due(now)]
        return min(future, default=None)
