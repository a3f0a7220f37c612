"""The one owner of pauses of Python's cyclic garbage collector, safe across threads.

Owned here: `collector_paused` (the collector off while a large batch of acyclic values is
built, optionally frozen out of it afterwards) and `collect_frozen` (the frozen values handed
back to the collector, and one full collection). Called by `reconciler.manifest.loader` (a
manifest load), `reconciler.zfs.parse` (a listing parse, which freezes what it built) and
`reconciler.zfs.observe` (`collect_frozen`, once per pass). Below every layer: imports only the
standard library.

The collector is process-wide state, and the control loop runs passes in threads and loads
manifests in a watcher thread, so the pauses of all threads are one pause: a lock and a depth
counter. The first entry records whether the collector was on and turns it off; the last exit
turns it back on only if it was on at that first entry, after `gc.freeze()` if any participant
asked for it. A thread leaving while another is still inside never turns it back on. A pause
that began with the collector already off freezes nothing (whoever turned it off decides).
The lock is reentrant: a finalizer run by a collection inside `collect_frozen` may pause too.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pause:
    """The shared pause: how many participants are inside, and what the last exit must do."""

    __slots__ = ("depth", "freeze", "was_enabled")

    def __init__(self) -> None:
        self.depth = 0
        self.was_enabled = False
        self.freeze = False


_LOCK = threading.RLock()
_PAUSE = _Pause()


@contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """The cyclic collector off for the block, for this thread and every other one inside a
    pause. `freeze`: the objects alive at the last exit are frozen (`gc.freeze`) before the
    collector is turned back on, so no later collection walks them; they are still freed by
    their reference counts, and `collect_frozen` returns them to the collector."""
    _enter(freeze)
    try:
        yield
    finally:
        _leave()


def collect_frozen() -> None:
    """If anything is frozen: unfreeze it and run one full collection, so that a process that
    runs forever reclaims cyclic garbage frozen along with parsed values. Holds the pause lock,
    so it never runs between another thread's last exit deciding to freeze and the freeze."""
    with _LOCK:
        if gc.get_freeze_count():
            gc.unfreeze()
            gc.collect()


def _enter(freeze: bool) -> None:
    with _LOCK:
        if _PAUSE.depth == 0:
            _PAUSE.was_enabled = gc.isenabled()
            _PAUSE.freeze = False
            gc.disable()
        _PAUSE.depth += 1
        _PAUSE.freeze = _PAUSE.freeze or freeze


def _leave() -> None:
    with _LOCK:
        _PAUSE.depth -= 1
        if _PAUSE.depth == 0 and _PAUSE.was_enabled:
            if _PAUSE.freeze:
                gc.freeze()
            gc.enable()
