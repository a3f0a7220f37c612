"""The per-host locks of the control loop: held only while one of its passes runs.

Owned here: `SharedHostLocks`, the loop's `Locker` (`apply/passes.py`). Several passes of one
loop may touch the same host at once (their filesystems are disjoint: the loop never runs
overlapping policies together), so each host's lock file (`apply/lock.py`, guarantee 8) is
taken by the first of them and released by the last; between passes the loop holds no lock,
so a one-shot `reconcile` or `--dry-run` can run beside it. A lock held by another process is
not waited for: `LockHeld` is raised at once and the loop retries the policy later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from reconciler.apply.lock import Holder, HostLock, LockSet, acquire_locks, lock_aliases
from reconciler.manifest.models import Host


class SharedHostLocks:
    """Counted locks: `with locks(hosts):` holds every host's lock file while any pass of this
    process that touches the host is inside such a block."""

    def __init__(self, lock_dir: Path, holder: Callable[[], Holder]) -> None:
        self.lock_dir = lock_dir
        self._holder = holder
        self._mutex = threading.Lock()
        self._held: dict[str, tuple[HostLock, int]] = {}  # key → (lock, passes holding it)

    def __call__(self, hosts: Sequence[Host]) -> AbstractContextManager[None]:
        return self._hold(sorted(lock_aliases(hosts)))

    @property
    def keys(self) -> frozenset[str]:
        """The lock keys held right now."""
        with self._mutex:
            return frozenset(self._held)

    @contextmanager
    def _hold(self, keys: list[str]) -> Iterator[None]:
        self._take(keys)
        try:
            yield
        finally:
            self._drop(keys)

    def _take(self, keys: list[str]) -> None:
        with self._mutex:
            missing = [key for key in keys if key not in self._held]
            taken = acquire_locks(missing, self.lock_dir, 0, holder=self._holder())
            for lock in taken.locks:
                self._held[lock.key] = (lock, 0)
            for key in keys:
                lock, count = self._held[key]
                self._held[key] = (lock, count + 1)

    def _drop(self, keys: list[str]) -> None:
        with self._mutex:
            released = []
            for key in keys:
                lock, count = self._held[key]
                if count == 1:
                    del self._held[key]
                    released.append(lock)
                else:
                    self._held[key] = (lock, count - 1)
            LockSet(released).release()
