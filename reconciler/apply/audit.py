"""The audit log: one JSON line per applied action, appended to a file, never rewritten.

Owned here: `AuditLog` (`AuditLog.open(path, manifest_paths)`, `for_pass`, `sync`, `close`),
`AuditError` (the path cannot serve as an audit log) and `git_state` (the manifests' git
commit). The CLI opens the log for `--audit-log PATH` before anything is applied (a pass or
`watch`) and hands `for_pass` to the passes as `Dependencies.audit`; `apply/passes.py` calls
it with the manifests and the plan of each pass about to apply, and feeds the sink it returns
every action's result as it finishes. The record format is docs/audit-log.md.

How the file is written: opened once with O_WRONLY|O_APPEND|O_CREAT (mode 0640), so every
write lands at the end whoever else appends; each record is one `os.write` of the whole
encoded line (POSIX makes no promise for writes above PIPE_BUF, but a single write to a
regular file on a local filesystem is not interleaved with another: that is what we rely on,
and why the path must be a regular file); `fsync` once a pass has reported its last action.
Nothing is ever truncated or rewritten. A record that cannot be written is logged as an error
and counted in `failures` (the CLI exits 1): it never stops the pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from reconciler.apply.executor import ActionResult, ActionStatus, EventSink
from reconciler.core.plan import Action, Plan
from reconciler.core.render import action_to_json, dump_plan_json
from reconciler.manifest.changes import generation
from reconciler.manifest.models import Manifests

GIT_TIMEOUT = 10.0  # seconds for each git command; then the commit is unknown (null)
FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
MODE = 0o640


class AuditError(Exception):
    """The audit log cannot be opened: `path` and why, in one line."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"--audit-log {path!r}: {reason}")


@dataclass(frozen=True, slots=True)
class GitState:
    """The commit checked out where the manifests lie, and whether they differ from it."""

    commit: str
    dirty: bool | None  # None: git could not tell


def git_state(paths: Sequence[str], git: Sequence[str] = ("git",)) -> GitState | None:
    """`git rev-parse HEAD` in the directory of the first manifest path, and `git status`
    of every manifest path; None when that is no git work tree or git cannot run."""
    if not paths:
        return None
    first = Path(paths[0])
    directory = str(first if first.is_dir() else first.parent)
    head = _git([*git, "-C", directory, "rev-parse", "--verify", "HEAD"])
    commit = head.strip() if head is not None else ""
    if not (len(commit) in (40, 64) and all(c in "0123456789abcdef" for c in commit)):
        return None
    resolved = [str(Path(p).resolve()) for p in paths]
    status = _git([*git, "-C", directory, "status", "--porcelain", "--", *resolved])
    return GitState(commit, None if status is None else bool(status.strip()))


def _git(argv: Sequence[str]) -> str | None:
    """git's stdout, or None when it fails, hangs or is missing: never an exception."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


class AuditLog:
    """An open audit log. Thread-safe: concurrent passes (`watch`) write through one."""

    def __init__(
        self,
        fd: int,
        path: str,
        manifest_paths: Sequence[str] = (),
        *,
        clock: Callable[[], float] = time.time,
        git: Sequence[str] = ("git",),
    ) -> None:
        self.fd = fd
        self.path = path
        self.manifest_paths = tuple(manifest_paths)
        self.clock = clock
        self.git = tuple(git)
        self.failures: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: str,
        manifest_paths: Sequence[str] = (),
        *,
        clock: Callable[[], float] = time.time,
        git: Sequence[str] = ("git",),
    ) -> AuditLog:
        """Open `path` for appending, creating it (mode 0640) if needed. Raises AuditError
        when it is a directory (or a symlink to one), not a regular file, or not writable."""
        try:
            found = os.stat(path) if os.path.lexists(path) else None
            if found is not None:
                _check_regular(path, found.st_mode)
            fd = os.open(path, FLAGS, MODE)
        except (OSError, ValueError) as error:  # ValueError: a NUL in the path
            raise AuditError(path, _why(error)) from error
        try:
            _check_regular(path, os.fstat(fd).st_mode)
        except AuditError:
            os.close(fd)
            raise
        return cls(fd, path, manifest_paths, clock=clock, git=git)

    def for_pass(self, manifests: Manifests, plan: Plan) -> EventSink:
        """The sink of one applying pass: each result it is given becomes a record (skipped
        actions changed nothing and are left out); after the plan's last action, fsync."""
        return _PassRecorder(self, manifests, plan)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line, in one write; a failure is logged and counted."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                written = os.write(self.fd, line)
                while written < len(line):  # a short write (a full disk): finish the line
                    written += os.write(self.fd, line[written:])
            except OSError as error:
                self._failed(f"cannot write to {self.path}: {_why(error)}")

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as error:
            with self._lock:
                self._failed(f"cannot sync {self.path}: {_why(error)}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.fsync(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def _failed(self, why: str) -> None:
        self.failures.append(why)
        logger.error("audit log: {}", why)


class _PassRecorder:
    """The records of one pass. Its facts (plan hash, generation, git commit) are found on
    the first record, so a pass that applies nothing costs nothing."""

    def __init__(self, log: AuditLog, manifests: Manifests, plan: Plan) -> None:
        self.log = log
        self.manifests = manifests
        self.plan = plan
        self.actions = {action.id: action for action in plan.actions}
        self.seen = 0
        self.facts: dict[str, Any] | None = None

    def __call__(self, result: ActionResult) -> None:
        self.seen += 1
        action = self.actions.get(result.action_id)
        if action is not None and result.status is not ActionStatus.SKIPPED:
            self.log.write(self._record(action, result))
        if self.seen == len(self.actions):
            self.log.sync()

    def _record(self, action: Action, result: ActionResult) -> dict[str, Any]:
        if self.facts is None:
            self.facts = self._facts()
        moment = datetime.fromtimestamp(self.log.clock(), UTC)
        return {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "host": action.host,
            "policy": action.policy,
            "target": action.target,
            "kind": action.kind.value,
            "id": action.id,
            "reason": action.reason.value,
            "status": result.status.value,
            "message": result.message,
            "error": type(result.error).__name__ if result.error is not None else None,
            "seconds": round(result.duration, 3),
            "bytes": result.bytes,
            "action": action_to_json(action),
            **self.facts,
        }

    def _facts(self) -> dict[str, Any]:
        digest = hashlib.sha256(dump_plan_json(self.plan).encode()).hexdigest()
        found = git_state(self.log.manifest_paths, self.log.git)
        return {
            "plan_sha256": digest,
            "generation": generation(self.manifests),
            "git": None if found is None else {"commit": found.commit, "dirty": found.dirty},
        }


def _check_regular(path: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise AuditError(path, "is a directory")
    if not stat.S_ISREG(mode):
        raise AuditError(path, "is not a regular file")


def _why(error: OSError | ValueError) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower() if error.strerror[:1].isupper() else error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__
