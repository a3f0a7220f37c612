"""Run one command in a guest as if it were a local process (the argv of `Guest.exec_argv`).

Usage: python3 -I -S exec.py --port PORT [--host HOST] -- ARGV...

Owned here: streaming this process's stdin to the guest command and the command's stdout and
stderr back, in both directions at once and in chunks (never the whole stream in memory), and
mirroring the command's end: its exit status becomes ours; killed by signal N there, we kill
ourselves with N here. When we are told to stop (SIGTERM, SIGINT, SIGHUP) or our stdout breaks,
we drop the connection, and the agent kills the guest command's process group. Code that joins
two subprocesses with an OS pipe can therefore use the guest like a local host.
Standard library only: it starts with `-I -S` for speed and finds `wire.py` next to itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wire

USAGE = "usage: exec.py --port PORT [--host HOST] -- ARGV..."
LOST_AGENT = 255


def parse(args: list[str]) -> tuple[str, int, list[str]]:
    """(host, port, argv) from our command line; exits with status 2 on misuse."""
    host, port = "127.0.0.1", 0
    while args and args[0] != "--":
        if len(args) < 2 or args[0] not in ("--port", "--host"):
            sys.exit(f"exec.py: {USAGE}")
        if args[0] == "--port":
            port = int(args[1])
        else:
            host = args[1]
        args = args[2:]
    if not args or len(args) < 2 or port <= 0:
        sys.exit(f"exec.py: {USAGE}")
    return host, port, args[1:]


def die_by(signum: int) -> None:
    """End this process the way a local command killed by signum would end."""
    sys.stdout.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def stdin_chunks() -> Iterator[bytes]:
    """Our stdin in chunks until end of file. A closed fd 0 counts as empty input."""
    while True:
        try:
            data = os.read(0, wire.CHUNK)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                return
            raise
        if not data:
            return
        yield data


def pump_stdin(channel: wire.Channel) -> None:
    try:
        wire.send_stdin(channel, stdin_chunks())
    except OSError:  # our stdin broke: stop the guest command
        channel.abort()


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pump_output(channel: wire.Channel) -> int:
    """Copy output frames to fds 1 and 2 until EXIT; returns the guest's return code."""
    while True:
        frame = channel.recv()
        if frame is None:
            os.write(2, b"exec.py: lost the connection to the guest agent\n")
            return LOST_AGENT
        kind, payload = frame
        if kind == wire.STDOUT:
            try:
                write_all(1, payload)
            except OSError:  # nobody reads our stdout any more: like SIGPIPE locally
                channel.abort()
                return -signal.SIGPIPE
        elif kind == wire.STDERR:
            with contextlib.suppress(OSError):
                write_all(2, payload)
        elif kind == wire.EXIT:
            return int(payload)


def main() -> None:
    host, port, argv = parse(sys.argv[1:])
    try:
        channel = wire.open_call(port, argv, stdin=True, host=host)
    except OSError as exc:
        os.write(2, f"exec.py: cannot reach the guest agent at {host}:{port}: {exc}\n".encode())
        os._exit(LOST_AGENT)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        channel.abort()
        die_by(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    threading.Thread(target=pump_stdin, args=(channel,), daemon=True).start()
    try:
        returncode = pump_output(channel)
    except OSError as exc:
        os.write(2, f"exec.py: connection to the guest agent failed: {exc}\n".encode())
        returncode = LOST_AGENT
    channel.abort()
    if returncode < 0:
        die_by(-returncode)
    os._exit(returncode)


if __name__ == "__main__":
    main()
