"""One reconciler per host at a time (guarantee 8): a `flock` per host, held for a whole pass.

Owned here: `lock_key` (where a host's ZFS really is, so two aliases of one machine share a
lock), `lock_file_name`, `default_lock_dir`, `Holder` (who holds a lock, recorded in the lock
file), `acquire_locks` → `LockSet` (a context manager) and the typed errors `LockError` and
`LockHeld`. Called by the CLI's apply pass before it observes any host; `--dry-run`, `status`,
`validate` and `schema` change nothing and take no lock.

Locks are `fcntl.flock` on one file per key in the lock directory, taken in sorted key order (so
two reconcilers never deadlock) with non-blocking attempts retried until the wait is over. The
kernel drops a flock when its holder dies, so a crash or `kill -9` leaves no stale lock; the
lock files themselves are never deleted (deleting a locked file would let a third process lock
a new file of the same name while the second still waits on the old one).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from reconciler.core.names import iso_time
from reconciler.manifest.models import Host, Transport

LOCK_DIR_ENV = "ZFS_RECONCILER_LOCK_DIR"
SYSTEM_LOCK_DIR = Path("/run/zfs-reconciler")
POLL_SECONDS = 0.2
HOLDER_READS = 5  # reads of a holder record that cannot be decoded yet (`_holder`)
HOLDER_RETRY_SECONDS = 0.02
_RECORD_LIMIT = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --- keys and places --------------------------------------------------------------------------


def lock_key(host: Host, default_user: str | None = None) -> str:
    """`local` for transport local; `ssh:user@host:port` for ssh, with ssh's defaults filled in
    (the user is `default_user`, else the controller's login name, as ssh does)."""
    ssh = host.spec.ssh
    if host.spec.transport is Transport.LOCAL or ssh is None:
        return "local"
    user = ssh.user or default_user or getpass.getuser()
    return f"ssh:{user}@{ssh.host.lower()}:{ssh.port}"


def lock_aliases(hosts: Sequence[Host]) -> dict[str, list[str]]:
    """Lock key → the names of the hosts that share it (two Host manifests can name one
    machine), in the order given."""
    aliases: dict[str, list[str]] = {}
    for host in hosts:
        aliases.setdefault(lock_key(host), []).append(host.metadata.name)
    return aliases


def lock_file_name(key: str) -> str:
    """A file name for `key`: its safe characters, then a hash of the whole key (unique)."""
    readable = _UNSAFE.sub("-", key).strip("-.")[:64] or "host"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{readable}-{digest}.lock"


def default_lock_dir(
    env: Mapping[str, str] | None = None,
    uid: int | None = None,
    writable: Callable[[Path], bool] | None = None,
) -> Path:
    """`$ZFS_RECONCILER_LOCK_DIR`; else `/run/zfs-reconciler` when it can be written (root);
    else `$XDG_RUNTIME_DIR/zfs-reconciler`; else `/tmp/zfs-reconciler-<uid>`."""
    env = os.environ if env is None else env
    uid = os.getuid() if uid is None else uid
    writable = _writable if writable is None else writable
    if env.get(LOCK_DIR_ENV):
        return Path(env[LOCK_DIR_ENV])
    if writable(SYSTEM_LOCK_DIR):
        return SYSTEM_LOCK_DIR
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "zfs-reconciler"
    return Path(f"/tmp/zfs-reconciler-{uid}")


def _writable(directory: Path) -> bool:
    """Whether `directory` can hold our lock files, or be created where it is missing."""
    if directory.is_dir():
        return os.access(directory, os.W_OK | os.X_OK)
    parent = directory.parent
    return not directory.exists() and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


# --- who holds a lock -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock: written into the lock file, read back by the one that has to wait."""

    pid: int
    hostname: str  # the controller the holder runs on
    since: str  # ISO 8601 UTC
    manifests: tuple[str, ...] = ()

    @classmethod
    def current(cls, manifests: Sequence[str], now: float) -> Holder:
        """This process, started at `now` (UNIX seconds), with these manifest paths."""
        return cls(os.getpid(), socket.gethostname(), iso_time(int(now)), tuple(manifests))

    def encode(self) -> bytes:
        record = {
            "pid": self.pid,
            "hostname": self.hostname,
            "since": self.since,
            "manifests": list(self.manifests),
        }
        return (json.dumps(record) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes) -> Holder | None:
        """The holder recorded in a lock file; None when empty or unreadable."""
        try:
            record = json.loads(data.decode())
            return cls(
                pid=int(record["pid"]),
                hostname=str(record["hostname"]),
                since=str(record["since"]),
                manifests=tuple(str(m) for m in record.get("manifests", ())),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        """E.g. "pid 1234 on ctl1, since 2026-11-26T08:30:00Z, manifests: /etc/zr"."""
        text = f"pid {self.pid} on {self.hostname}, since {self.since}"
        if self.manifests:
            text += f", manifests: {', '.join(self.manifests)}"
        return text


class LockError(Exception):
    """A lock could not be taken (the lock directory or file is unusable, or it is held)."""


class LockHeld(LockError):
    """Another process holds the lock of `key`; `holder` is who, when its record was readable."""

    def __init__(self, key: str, path: Path, holder: Holder | None, waited: float) -> None:
        self.key = key
        self.path = path
        self.holder = holder
        self.waited = waited
        who = holder.describe() if holder is not None else "holder unknown"
        super().__init__(f"another reconciler holds the lock of {key} ({who}): {path}")


# --- the locks --------------------------------------------------------------------------------


class HostLock:
    """One acquired lock: an open file descriptor holding an exclusive flock."""

    def __init__(self, key: str, path: Path, fd: int) -> None:
        self.key = key
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Forget the holder record and drop the lock (closing the descriptor unlocks)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


class LockSet:
    """The locks of a pass, released together (in reverse order) when the `with` block ends."""

    def __init__(self, locks: Sequence[HostLock]) -> None:
        self.locks = tuple(locks)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(lock.key for lock in self.locks)

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self) -> LockSet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


def acquire_locks(
    keys: Sequence[str],
    lock_dir: Path,
    wait_seconds: float,
    *,
    holder: Holder | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[LockHeld], None] | None = None,
) -> LockSet:
    """Lock every key (each once, in sorted order), waiting at most `wait_seconds` in all.

    `on_wait` is told once per key that has to be waited for, with who holds it. Raises
    `LockHeld` when a key stays locked by another process past the wait (the locks taken so
    far are released), `LockError` when the lock directory or a file is unusable."""
    _make_dir(lock_dir)
    record = (holder or Holder.current((), time.time())).encode()
    deadline = clock() + max(0.0, wait_seconds)
    started = clock()
    timing = _Timing(deadline, started, clock, sleep, on_wait or _ignore)
    taken: list[HostLock] = []
    try:
        for key in sorted(set(keys)):
            taken.append(_acquire(key, lock_dir, record, timing))
    except BaseException:
        LockSet(taken).release()
        raise
    return LockSet(taken)


def _make_dir(lock_dir: Path) -> None:
    try:
        lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise LockError(f"cannot create the lock directory {lock_dir}: {error.strerror}") from error
    if not lock_dir.is_dir():
        raise LockError(f"the lock directory {lock_dir} is not a directory")


def _ignore(_: LockHeld) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Timing:
    deadline: float
    started: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    on_wait: Callable[[LockHeld], None]


def _acquire(key: str, lock_dir: Path, record: bytes, timing: _Timing) -> HostLock:
    path = lock_dir / lock_file_name(key)
    fd = _open(path)
    try:
        _wait_for(fd, key, path, timing)
        os.pwrite(fd, record, 0)  # then cut what an older, longer record left after it:
        os.ftruncate(fd, len(record))  # the file is never empty while the lock is held
    except BaseException:
        os.close(fd)
        raise
    return HostLock(key, path, fd)


def _wait_for(fd: int, key: str, path: Path, timing: _Timing) -> None:
    """Try until the lock is ours; tell `on_wait` at the first refusal, raise `LockHeld` once
    the deadline has passed."""
    told = False
    while not _try_lock(fd):
        remaining = timing.deadline - timing.clock()
        if remaining <= 0 or not told:
            holder = _holder(fd, timing)
            held = LockHeld(key, path, holder, waited=timing.clock() - timing.started)
            if remaining <= 0:
                raise held
            timing.on_wait(held)
            told = True
        timing.sleep(min(POLL_SECONDS, remaining))


def _holder(fd: int, timing: _Timing) -> Holder | None:
    """The holder's record; read again a few times when it cannot be decoded, since the holder
    writes it just after taking the lock (a refused process may look in between)."""
    for _ in range(HOLDER_READS - 1):
        holder = Holder.decode(os.pread(fd, _RECORD_LIMIT, 0))
        if holder is not None:
            return holder
        timing.sleep(HOLDER_RETRY_SECONDS)
    return Holder.decode(os.pread(fd, _RECORD_LIMIT, 0))


def _open(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, 0o644)
    except OSError as error:
        raise LockError(f"cannot open the lock file {path}: {error.strerror}") from error


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True
