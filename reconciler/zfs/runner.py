"""Command runners: the one boundary through which every zfs command reaches a host.

Owned here: the `CommandRunner` protocol, `Completed`, `LocalRunner` (runs argv here, no shell)
and `SshRunner` (OpenSSH with ControlMaster connection reuse; every argument quoted for the
remote POSIX shell). A runner turns the argv meant for its host into a local argv (`wrap`), so
that the send/receive pipeline (`zfs/pipeline.py`) can join two runners' processes with an OS
pipe, and it runs whole commands (`run`), each within the host's `commandTimeout` and logged
at debug level (argv, exit status, duration; stdin by its size only; docs/logging.md). The
driver (`zfs/driver.py`) is the only caller; the CLI builds runners from Host manifests
through `zfs/connect.py`.

Quoting: the remote side of ssh hands its command line to the login shell of the remote user,
which must be a POSIX shell (sh, bash, dash, zsh). Each argument is quoted with `shlex.quote`,
so spaces, quotes, `$`, `;` and backticks in dataset names reach zfs unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from loguru import logger

from reconciler.zfs.errors import CommandTimedOut, HostUnreachable

SSH_FAILURE = 255  # ssh's own exit status: it could not connect or the session broke
DEFAULT_COMMAND_TIMEOUT = 600.0
"""Seconds a command other than a transfer may run: a Host's `commandTimeout` (default 10m,
which a `zfs list` of 100k snapshots on a slow pool survives)."""
KILL_WAIT = 2.0  # seconds a killed command gets to end before it is left behind


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished command: its argv (as meant for the host), exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")


class CommandRunner(Protocol):
    """Runs commands on one host."""

    @property
    def host(self) -> str:
        """The host's name, for messages and errors."""
        ...

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The local argv that runs `argv` on the host, stdin/stdout/stderr passed through."""
        ...

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None
    ) -> Completed:
        """Run `argv` on the host to completion, within `timeout` seconds (None: the runner's
        own). Raises HostUnreachable if it cannot start, CommandTimedOut if it hangs."""
        ...


def run_local(
    host: str,
    local_argv: Sequence[str],
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float | None = None,
) -> Completed:
    """Run `local_argv` here; report it as `argv` (the command meant for `host`). With a
    `timeout`, a command still running then is killed with every process it started (`_kill`)
    and `CommandTimedOut` is raised. Every command is logged at debug level when it ends."""
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            list(local_argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as error:  # no such program, not executable, ...
        _log_command(host, argv, f"could not start ({error.strerror})", started, input)
        raise HostUnreachable(
            host, "", f"cannot run {local_argv[0]!r}: {error.strerror}", tuple(argv)
        ) from error
    try:
        stdout, stderr = process.communicate(input if input is not None else b"", timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        _log_command(host, argv, f"timed out after {timeout:g}s, killed", started, input)
        raise CommandTimedOut(host, tuple(argv), timeout or 0.0) from None
    except BaseException:
        _kill(process)
        raise
    _log_command(host, argv, f"exit {process.returncode}", started, input)
    return Completed(tuple(argv), process.returncode, stdout, stderr)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and every process below it, reap it and close its pipes.

    The command stays in our process group (a terminal's Ctrl-C reaches it, and `sudo` can
    still ask for a password), so what it started (`sudo`'s zfs, a shell's children) is found
    by parent pid in /proc and killed in the same instant; without /proc, only the process
    itself. Waits `KILL_WAIT` seconds at most: a process stuck in the kernel (uninterruptible
    sleep) cannot be killed and must not hang the pass; `subprocess` reaps it once it ends."""
    for pid in (process.pid, *_descendants(process.pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    try:
        process.wait(KILL_WAIT)
    except subprocess.TimeoutExpired:
        logger.warning("pid {} did not end after SIGKILL; left behind", process.pid)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, theirs, ...) by the parent pid in /proc/*/stat;
    empty where there is no /proc."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    text = stat.read()
            except OSError:  # it ended meanwhile
                continue
            fields = text[text.rfind(b")") + 2 :].split()  # after `pid (comm)`: state, ppid
            if len(fields) > 1 and fields[1].isdigit():
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), ()):
            found.append(child)
            queue.append(child)
    return found


def _log_command(
    host: str, argv: Sequence[str], outcome: str, started: float, input: bytes | None
) -> None:
    """One debug line per command: host, argv as a shell would read it, outcome, duration;
    of stdin only its size (a channel program can be large). Formatted only when shown."""
    seconds = time.monotonic() - started
    logger.opt(lazy=True).debug(
        "{}",
        lambda: (
            f"command on {host}: {shlex.join(argv)} -> {outcome} in {seconds:.3f}s"
            + (f" (stdin: {len(input)} bytes)" if input else "")
        ),
    )


@dataclass(frozen=True, slots=True)
class LocalRunner:
    """Runs commands on this machine, without a shell."""

    host: str = "local"
    timeout: float = DEFAULT_COMMAND_TIMEOUT  # seconds; transfers (`wrap`) have none

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None
    ) -> Completed:
        limit = self.timeout if timeout is None else timeout
        return run_local(self.host, argv, argv, input=input, timeout=limit)


def default_control_dir() -> Path:
    """Where ControlMaster sockets live: short (socket paths are limited to ~100 bytes)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path(tempfile.gettempdir())
    return base / f"zfs-reconciler-ssh-{os.getuid()}"


@dataclass(frozen=True, slots=True)
class SshRunner:
    """Runs commands on a remote host through OpenSSH, reusing one master connection.

    `options` are extra `-o Key=Value` settings (the Host manifest's `ssh.options`); ours come
    first only where the user did not set the same key (ssh takes the first value it sees, so
    the user's are placed before ours).
    """

    host: str
    address: str
    port: int = 22
    user: str | None = None
    identity_file: str | None = None
    options: tuple[str, ...] = ()
    control_dir: Path = field(default_factory=default_control_dir)
    connect_timeout: int = 15
    program: tuple[str, ...] = ("ssh",)
    timeout: float = DEFAULT_COMMAND_TIMEOUT  # seconds, for `run`; transfers (`wrap`) have none

    def ssh_argv(self) -> list[str]:
        """`ssh` and every option, up to and including the destination."""
        argv = [*self.program]
        user_keys = {option.split("=", 1)[0].strip().lower() for option in self.options}
        for option in self.options:
            argv += ["-o", option]
        for key, value in self._defaults():
            if key.lower() not in user_keys:
                argv += ["-o", f"{key}={value}"]
        if self.identity_file:
            argv += ["-i", self.identity_file]
        if self.user:
            argv += ["-l", self.user]
        argv += ["-p", str(self.port), self.address]
        return argv

    def _defaults(self) -> list[tuple[str, str]]:
        return [
            ("BatchMode", "yes"),
            ("ConnectTimeout", str(self.connect_timeout)),
            ("ServerAliveInterval", "15"),
            ("ServerAliveCountMax", "4"),
            ("ControlMaster", "auto"),
            ("ControlPath", str(self._control_path())),
            ("ControlPersist", "60"),
        ]

    def _control_path(self) -> Path:
        """One master connection per way of logging in, not per destination: the key and the
        options are part of it. Two Hosts that reach one `user@host:port` with different keys
        (one of them confined by a forced command, `reconcile serve`) must never share a
        session, or the confined key's commands would run in the other key's session."""
        who = "\0".join(
            [self.user or "", self.address, str(self.port), self.identity_file or "", *self.options]
        )
        digest = hashlib.sha256(who.encode()).hexdigest()[:16]
        return self.control_dir / digest

    def remote_command(self, argv: Sequence[str]) -> str:
        """The command line the remote shell parses back into exactly `argv`."""
        return " ".join(shlex.quote(arg) for arg in argv)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        self.control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return [*self.ssh_argv(), "--", self.remote_command(argv)]

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None
    ) -> Completed:
        limit = self.timeout if timeout is None else timeout
        done = run_local(self.host, self.wrap(argv), argv, input=input, timeout=limit)
        if done.returncode == SSH_FAILURE and looks_like_ssh_failure(done.stderr_text):
            raise HostUnreachable(self.host, "", done.stderr_text.strip(), tuple(argv))
        return done


SSH_FAILURE_WORDS = (
    "ssh:",
    "Permission denied (",  # also after `user@host: `, see looks_like_ssh_failure
    "Host key verification failed",
    "Connection closed by",
    "Connection reset by",
    "kex_exchange_identification",
    "Broken pipe",
    "mux_client",
    "Control socket",
)


def looks_like_ssh_failure(stderr: str) -> bool:
    """Exit 255 is ssh's own failure, but a remote command may exit 255 too: check the words.

    ssh starts its own messages at the beginning of a line; zfs quotes dataset names inside
    its messages, so a name cannot make a zfs refusal look like ssh's.
    """
    return any(
        line.startswith(SSH_FAILURE_WORDS) or _DENIED.match(line) for line in stderr.splitlines()
    )


_DENIED = re.compile(r"^\S+@\S+: Permission denied \(")
