"""The per-host lock (guarantee 8): keys, file names and the default directory; contention in
one process with an injected clock (fast, exact waits); and real contention between processes
with the real `flock` in a temporary directory (a second one is refused and told who holds the
lock, waits when asked to, and a holder killed with SIGKILL leaves no stale lock)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.apply.lock import (
    SYSTEM_LOCK_DIR,
    Holder,
    LockError,
    LockHeld,
    LockSet,
    acquire_locks,
    default_lock_dir,
    lock_file_name,
    lock_key,
)
from reconciler.manifest.models import Host

ROOT = Path(__file__).resolve().parent.parent
ME = Holder(pid=4242, hostname="ctl1", since="2026-11-26T08:30:00Z", manifests=("/etc/zr",))

# A second process that takes the locks of argv[2:] in argv[1], says "locked", then holds them
# until a line arrives on stdin (or for HOLD_SECONDS when that is set).
HOLDER_SCRIPT = """
import os, sys, time
from pathlib import Path
from reconciler.apply.lock import Holder, acquire_locks
holder = Holder.current(["/srv/manifests"], time.time())
locks = acquire_locks(sys.argv[2:], Path(sys.argv[1]), 0, holder=holder)
print("locked", flush=True)
hold = os.environ.get("HOLD_SECONDS")
time.sleep(float(hold)) if hold else sys.stdin.readline()
locks.release()
print("released", flush=True)
"""


@contextmanager
def held_by_another_process(
    lock_dir: Path, *keys: str, hold_seconds: float | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A real second process holding the locks of `keys` in `lock_dir` while the block runs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if hold_seconds is not None:
        env["HOLD_SECONDS"] = str(hold_seconds)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(lock_dir), *keys],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def host(spec: str) -> Host:
    transport, _, rest = spec.partition(" ")
    data: dict[str, object] = {"transport": transport}
    if transport == "ssh":
        ssh: dict[str, object] = dict(item.split("=", 1) for item in rest.split())
        if "port" in ssh:
            ssh["port"] = int(str(ssh["port"]))
        data["ssh"] = ssh
    return Host.model_validate(
        {
            "apiVersion": "zfs-reconciler.dev/v1alpha1",
            "kind": "Host",
            "metadata": {"name": "h"},
            "spec": data,
        }
    )


class FakeTime:
    """A clock that only moves when slept on; releases `release_at_third_sleep` then."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.release_at_third_sleep: LockSet | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if len(self.sleeps) == 3 and self.release_at_third_sleep is not None:
            self.release_at_third_sleep.release()


# --- keys, names, places ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("local", "local"),
        ("ssh host=backup.example.org user=zrep", "ssh:zrep@backup.example.org:22"),
        ("ssh host=Backup.Example.ORG user=zrep port=2222", "ssh:zrep@backup.example.org:2222"),
        ("ssh host=10.0.0.7", "ssh:operator@10.0.0.7:22"),
    ],
)
def test_lock_key_is_where_the_zfs_is(spec: str, key: str) -> None:
    assert lock_key(host(spec), default_user="operator") == key


def test_two_aliases_of_one_machine_share_a_key_and_ports_do_not() -> None:
    a = lock_key(host("ssh host=backup user=zrep port=22"))
    b = lock_key(host("ssh host=BACKUP user=zrep"))
    c = lock_key(host("ssh host=backup user=zrep port=2222"))
    assert a == b != c


def test_lock_file_names_are_safe_and_unique() -> None:
    keys = ["local", "ssh:zrep@backup:22", "ssh-zrep-backup-22", "ssh:../../etc@x:22"]
    names = [lock_file_name(k) for k in keys]
    assert len(set(names)) == len(keys)
    for name in names:
        assert name.endswith(".lock") and "/" not in name and ":" not in name
        assert not name.startswith(".")
    assert names[1].startswith("ssh-zrep-backup-22-")
    assert lock_file_name("local") == names[0]  # stable


def test_default_lock_dir_order() -> None:
    def never(_: Path) -> bool:
        return False

    def always(_: Path) -> bool:
        return True

    env = {"ZFS_RECONCILER_LOCK_DIR": "/srv/locks", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert default_lock_dir(env, 1000, always) == Path("/srv/locks")
    del env["ZFS_RECONCILER_LOCK_DIR"]
    assert default_lock_dir(env, 1000, always) == SYSTEM_LOCK_DIR
    assert default_lock_dir(env, 1000, never) == Path("/run/user/1000/zfs-reconciler")
    assert default_lock_dir({}, 1000, never) == Path("/tmp/zfs-reconciler-1000")


def test_holder_record_round_trips_and_garbage_reads_as_unknown() -> None:
    assert Holder.decode(ME.encode()) == ME
    assert Holder.decode(b"") is None
    assert Holder.decode(b"{not json") is None
    assert Holder.decode(b'{"pid": "x"}') is None


# --- one process, injected clock --------------------------------------------------------------


def test_a_second_lock_is_refused_at_once_and_told_who_holds_it(tmp_path: Path) -> None:
    fake = FakeTime()
    key = "ssh:zrep@backup:22"
    with acquire_locks([key], tmp_path, 0, holder=ME), pytest.raises(LockHeld) as caught:
        acquire_locks([key], tmp_path, 0, clock=fake.clock, sleep=fake.sleep)
    held = caught.value
    assert held.holder == ME
    assert held.key == "ssh:zrep@backup:22"
    assert held.path == tmp_path / lock_file_name("ssh:zrep@backup:22")
    assert held.waited == 0 and fake.sleeps == []
    assert "pid 4242 on ctl1, since 2026-11-26T08:30:00Z, manifests: /etc/zr" in str(held)


def test_a_refused_process_reads_a_record_written_just_after_the_lock_was_taken(
    tmp_path: Path,
) -> None:
    """The holder writes its record right after taking the lock; a process refused in between
    reads it again (it once said "holder unknown" in a platform test under load)."""
    path = tmp_path / lock_file_name("local")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        path.write_bytes(ME.encode())  # the holder's write lands during the first pause

    with acquire_locks(["local"], tmp_path, 0, holder=ME):
        path.write_bytes(b"")  # as between taking the lock and writing the record
        with pytest.raises(LockHeld) as caught:
            acquire_locks(["local"], tmp_path, 0, sleep=sleep)
    assert caught.value.holder == ME and sleeps == [0.02]


def test_a_waiting_lock_gives_up_exactly_at_the_deadline(tmp_path: Path) -> None:
    fake = FakeTime()
    with acquire_locks(["local"], tmp_path, 0, holder=ME), pytest.raises(LockHeld) as caught:
        acquire_locks(["local"], tmp_path, 5, clock=fake.clock, sleep=fake.sleep)
    assert sum(fake.sleeps) == pytest.approx(5)
    assert caught.value.waited == pytest.approx(5)


def test_a_waiting_lock_is_taken_once_the_holder_releases(tmp_path: Path) -> None:
    fake = FakeTime()
    first = acquire_locks(["local"], tmp_path, 0, holder=ME)
    fake.release_at_third_sleep = first
    told: list[LockHeld] = []
    with acquire_locks(
        ["local"], tmp_path, 60, clock=fake.clock, sleep=fake.sleep, on_wait=told.append
    ) as second:
        assert second.keys == ("local",)
        assert len(fake.sleeps) == 3
    assert not first.locks[0].held
    assert [(t.key, t.holder, t.waited) for t in told] == [("local", ME, 0)]  # told once


def test_locks_are_taken_in_sorted_order_and_given_back_when_one_is_held(tmp_path: Path) -> None:
    with acquire_locks(["b"], tmp_path, 0, holder=ME):
        with pytest.raises(LockHeld) as caught:
            acquire_locks(["c", "b", "a", "a"], tmp_path, 0)
        assert caught.value.key == "b"
        with acquire_locks(["a", "c"], tmp_path, 0) as others:  # "a" was given back
            assert others.keys == ("a", "c")


def test_release_clears_the_record_and_keeps_the_file(tmp_path: Path) -> None:
    with acquire_locks(["local"], tmp_path, 0, holder=ME) as locks:
        path = locks.locks[0].path
        assert Holder.decode(path.read_bytes()) == ME
    assert path.exists() and path.read_bytes() == b""
    with acquire_locks(["local"], tmp_path, 0):
        pass


def test_the_lock_dir_is_created_and_an_unusable_one_is_a_lock_error(tmp_path: Path) -> None:
    lock_dir = tmp_path / "run" / "zfs-reconciler"
    with acquire_locks(["local"], lock_dir, 0):
        assert lock_dir.is_dir()
        assert stat.S_IMODE(lock_dir.stat().st_mode) & ~0o755 == 0
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LockError) as caught:
        acquire_locks(["local"], blocker / "locks", 0)
    assert not isinstance(caught.value, LockHeld)
    assert str(blocker / "locks") in str(caught.value)


# --- two processes, the real flock ------------------------------------------------------------


def test_a_second_process_is_refused_and_named_the_first_pid(tmp_path: Path) -> None:
    with held_by_another_process(tmp_path, "local") as first:
        with pytest.raises(LockHeld) as caught:
            acquire_locks(["local"], tmp_path, 0)
        holder = caught.value.holder
        assert holder is not None
        assert holder.pid == first.pid
        assert holder.manifests == ("/srv/manifests",)


def test_a_second_process_waits_and_gets_the_lock_after_the_first(tmp_path: Path) -> None:
    with held_by_another_process(tmp_path, "local", hold_seconds=0.5) as first:
        started = time.monotonic()
        with acquire_locks(["local"], tmp_path, 10):
            waited = time.monotonic() - started
        assert first.stdout is not None and first.stdout.readline() == "released\n"
    assert 0.2 < waited < 10


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    with held_by_another_process(tmp_path, "local") as first:
        first.kill()
        first.wait(timeout=10)
        path = tmp_path / lock_file_name("local")
        assert Holder.decode(path.read_bytes()) is not None  # its record is still there
        with acquire_locks(["local"], tmp_path, 0, holder=ME):
            assert Holder.decode(path.read_bytes()) == ME


def test_different_hosts_do_not_contend(tmp_path: Path) -> None:
    with (
        held_by_another_process(tmp_path, "ssh:zrep@backup:22"),
        acquire_locks(["local", "ssh:zrep@other:22"], tmp_path, 0) as mine,
    ):
        assert mine.keys == ("local", "ssh:zrep@other:22")
