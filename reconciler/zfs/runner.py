"""Command runners: the one boundary through which every zfs command reaches a host.

Owned here: the `CommandRunner` protocol, `Completed`, `LocalRunner` (runs argv here, no shell)
and `SshRunner` (OpenSSH with ControlMaster connection reuse; every argument quoted for the
remote POSIX shell). A runner turns the argv meant for its host into a local argv (`wrap`), so
that the send/receive pipeline (`zfs/pipeline.py`) can join two runners' processes with an OS
pipe, and it runs whole commands (`run`). The driver (`zfs/driver.py`) is the only caller; the
CLI builds runners from Host manifests through `zfs/connect.py`.

Quoting: the remote side of ssh hands its command line to the login shell of the remote user,
which must be a POSIX shell (sh, bash, dash, zsh). Each argument is quoted with `shlex.quote`,
so spaces, quotes, `$`, `;` and backticks in dataset names reach zfs unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler.zfs.errors import HostUnreachable

SSH_FAILURE = 255  # ssh's own exit status: it could not connect or the session broke


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
        """Run `argv` on the host to completion. Raises HostUnreachable if it cannot start."""
        ...


def run_local(
    host: str,
    local_argv: Sequence[str],
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float | None = None,
) -> Completed:
    """Run `local_argv` here; report it as `argv` (the command meant for `host`)."""
    try:
        done = subprocess.run(
            list(local_argv),
            input=input if input is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as error:
        raise HostUnreachable(
            host, "", f"cannot run {local_argv[0]!r}: {error.strerror}", tuple(argv)
        ) from error
    except subprocess.TimeoutExpired as error:
        raise HostUnreachable(
            host, "", f"no answer within {timeout:g}s: {shlex.join(argv)}", tuple(argv)
        ) from error
    return Completed(tuple(argv), done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True, slots=True)
class LocalRunner:
    """Runs commands on this machine, without a shell."""

    host: str = "local"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None
    ) -> Completed:
        return run_local(self.host, argv, argv, input=input, timeout=timeout)


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
        who = f"{self.user or ''}@{self.address}:{self.port}"
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
        done = run_local(self.host, self.wrap(argv), argv, input=input, timeout=timeout)
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
