"""The command agent inside the guest: runs argv sent by the host and streams its I/O back.

Owned here: accepting connections on the agent port, starting each command (no shell: argv is
exec'd as given) in its own session, pumping stdin/stdout/stderr frames, and killing the
command's process group when the host disconnects. The framing is `wire.py`, which the
initramfs places next to this file. Started early by stage2.sh (and restarted if it dies); once
it listens it creates LISTENING, which stage2.sh waits for before declaring the guest ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wire

PORT = 7100
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
LINGER_SECONDS = 30.0
LISTENING = "/run/zr/agent.listening"  # stage2.sh waits for it before declaring the guest ready


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def kill_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signum)


def pump_output(channel: wire.Channel, fd: int, kind: bytes) -> None:
    """Copy one output pipe of the command into frames until end of file."""
    try:
        while data := os.read(fd, wire.CHUNK):
            channel.send(kind, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def pump_input(channel: wire.Channel, proc: subprocess.Popen[bytes], stdin_fd: int | None) -> None:
    """Apply the host's frames (stdin data, end of file) until it disconnects."""
    while True:
        try:
            frame = channel.recv()
        except OSError:
            frame = None
        if frame is None:
            break
        kind, payload = frame
        if kind == wire.STDIN and stdin_fd is not None:
            stdin_fd = feed(stdin_fd, payload)
    if proc.poll() is None:
        kill_group(proc, signal.SIGKILL)
    if stdin_fd is not None:
        os.close(stdin_fd)


def feed(stdin_fd: int, payload: bytes) -> int | None:
    """Write one STDIN frame; returns the fd, or None once stdin is closed."""
    if payload:
        try:
            write_all(stdin_fd, payload)
            return stdin_fd
        except OSError:  # the command closed its stdin: the rest is discarded
            pass
    os.close(stdin_fd)
    return None


def spawn(request: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = dict(BASE_ENV)
    env.update(request.get("env") or {})
    return subprocess.Popen(
        request["argv"],
        stdin=subprocess.PIPE if request.get("stdin") else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=request.get("cwd") or "/",
        start_new_session=True,
        bufsize=0,
    )


def detach_fd(stream: Any) -> int | None:
    """Take the fd out of a Popen file object, so that only we close it."""
    if stream is None:
        return None
    fd = os.dup(stream.fileno())
    stream.close()
    return int(fd)


def run_command(channel: wire.Channel, request: dict[str, Any]) -> threading.Thread | None:
    """Run the command to its end and send EXIT; returns the thread still reading the host's
    frames (None when nothing could be started)."""
    try:
        proc = spawn(request)
    except OSError as exc:
        channel.send(wire.STDERR, f"agent: cannot run {request['argv'][0]!r}: {exc}\n".encode())
        channel.send(wire.EXIT, b"126" if isinstance(exc, PermissionError) else b"127")
        return None
    stdin_fd = detach_fd(proc.stdin)
    proc.stdin = None
    pumps = [
        threading.Thread(target=pump_output, args=(channel, detach_fd(s), k), daemon=True)
        for s, k in ((proc.stdout, wire.STDOUT), (proc.stderr, wire.STDERR))
    ]
    proc.stdout = proc.stderr = None
    for pump in pumps:
        pump.start()
    reader = threading.Thread(target=pump_input, args=(channel, proc, stdin_fd), daemon=True)
    reader.start()
    returncode = proc.wait()
    for pump in pumps:
        pump.join()
    channel.send(wire.EXIT, str(returncode).encode())
    return reader


def serve(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    channel = wire.Channel(sock)
    try:
        frame = channel.recv()
        if frame is None or frame[0] != wire.START:
            return
        try:
            request = wire.decode_start(frame[1])
        except ValueError as exc:
            channel.send(wire.STDERR, f"agent: bad request: {exc}\n".encode())
            channel.send(wire.EXIT, b"2")
            return
        reader = run_command(channel, request)
        linger(channel, reader)
    except OSError:
        pass
    finally:
        channel.abort()


def linger(channel: wire.Channel, reader: threading.Thread | None) -> None:
    """Half-close, then let the reader drain until the host closes first: closing with unread
    stdin frames in the buffer would reset the connection and could destroy the EXIT frame."""
    channel.half_close()
    if reader is not None:
        reader.join(LINGER_SECONDS)
    channel.abort()


def main() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", PORT))
    server.listen(128)
    with open("/proc/uptime") as f:
        uptime = f.read().split()[0]
    print(f"zr-agent: listening on {PORT} (uptime {uptime}s)", file=sys.stderr, flush=True)
    with open(LISTENING, "w") as f:
        f.write(f"{PORT}\n")
    while True:
        sock, _ = server.accept()
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
