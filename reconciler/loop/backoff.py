"""How long to wait before retrying something that keeps failing: capped exponential backoff.

Owned here: `Backoff`, which counts consecutive failures per key (a policy, a host: anything
hashable) and turns the count into a delay. Called by the watch loop when a reconcile of a key
fails (`failed` → the delay to re-enqueue it after) or succeeds (`succeeded` → start over).

The n-th consecutive failure waits `d = min(cap, base * factor**(n-1))`, jittered to a uniform
draw in `[d/2, d]` ("equal jitter"), so retries of keys that failed together spread out but
never come sooner than half the nominal delay: every delay lies in `[base/2, cap]`. With a
seeded `random.Random` the delays are deterministic. Thread-safe: workers report concurrently.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Hashable


class Backoff:
    """Consecutive failures per key, and the delay they earn."""

    def __init__(
        self,
        base: float = 5.0,
        cap: float = 300.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError(f"need 0 < base <= cap and factor >= 1: {base=}, {cap=}, {factor=}")
        self._base = base
        self._cap = cap
        self._factor = factor
        self._rng = rng if rng is not None else random.Random()
        self._failures: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def nominal(self, failures: int) -> float:
        """The delay before jitter after `failures` consecutive failures (at least 1)."""
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures}")
        try:
            return min(self._cap, self._base * self._factor ** (failures - 1))
        except OverflowError:
            return self._cap

    def failed(self, key: Hashable) -> float:
        """Count one more failure of `key`; the seconds to wait before its next attempt."""
        with self._lock:
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
            delay = self.nominal(count)
            return self._rng.uniform(delay / 2, delay)

    def succeeded(self, key: Hashable) -> None:
        """`key` worked: its next failure starts from `base` again."""
        self.forget(key)

    def failures(self, key: Hashable) -> int:
        """Consecutive failures of `key` so far (0 after a success)."""
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        """Drop `key` (it left the manifests)."""
        with self._lock:
            self._failures.pop(key, None)
