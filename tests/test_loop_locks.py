"""`loop/locks.py`: the loop's host locks are counted across its concurrent passes, held only
while a pass runs, and never waited for when another process holds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.apply.lock import Holder, LockHeld, acquire_locks, lock_key
from reconciler.loop.locks import SharedHostLocks
from tests.test_lock import held_by_another_process, host

NAS = host("ssh host=nas user=zr")
BACKUP = host("ssh host=backup user=zr")


def _locks(lock_dir: Path) -> SharedHostLocks:
    return SharedHostLocks(lock_dir, lambda: Holder.current(["/etc/zr"], 0))


def _free(lock_dir: Path, key: str) -> bool:
    """Whether another opener could take the lock now (a separate open file: flock is per
    open file, so this process counts as another holder)."""
    try:
        acquire_locks([key], lock_dir, 0).release()
    except LockHeld:
        return False
    return True


def test_a_lock_is_held_while_any_pass_on_the_host_runs(tmp_path: Path) -> None:
    locks = _locks(tmp_path)
    key = lock_key(NAS)
    with locks([NAS]):
        assert locks.keys == {key} and not _free(tmp_path, key)
        with locks([NAS, BACKUP]):
            assert locks.keys == {key, lock_key(BACKUP)}
        assert locks.keys == {key} and not _free(tmp_path, key)
    assert locks.keys == frozenset() and _free(tmp_path, key)


def test_a_lock_held_by_another_process_is_not_waited_for(tmp_path: Path) -> None:
    locks = _locks(tmp_path)
    with held_by_another_process(tmp_path, lock_key(BACKUP)):
        with pytest.raises(LockHeld) as raised, locks([NAS, BACKUP]):
            pass
        assert raised.value.key == lock_key(BACKUP)
        assert locks.keys == frozenset()  # nothing half-taken stays held
        with locks([NAS]):
            assert locks.keys == {lock_key(NAS)}
