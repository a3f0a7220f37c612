"""The framed protocol between the host and the command agent in the guest.

Owned here: frame kinds, framing over a TCP socket (`Channel`), the start request, and the two
client helpers the host side shares (`open_call`, `send_stdin`). Used by `vm.py` (commands whose
output is collected), `exec.py` (commands streamed through a local process) and, copied into the
initramfs, by `guest/agent.py`. Standard library only: it runs under `python3 -I -S` on both ends.

One TCP connection carries one command. Every frame is `kind (1 byte) | length (4 bytes, big
endian) | payload`:

    host -> guest   START  JSON {"argv": [...], "env": {...}, "cwd": str, "stdin": bool}
                    STDIN  bytes for the command's stdin; an empty payload means end of file
    guest -> host   STDOUT, STDERR  output bytes
                    EXIT   the ASCII return code, Popen-style (negative: killed by that signal)

When the host side disconnects before EXIT, the agent kills the command's process group.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

START = b"S"
STDIN = b"I"
STDOUT = b"O"
STDERR = b"E"
EXIT = b"X"

HEADER = struct.Struct(">cI")
CHUNK = 256 * 1024
MAX_PAYLOAD = 64 * 1024 * 1024
_SMALL = 64 * 1024


class ProtocolError(OSError):
    """The peer sent something that is not a frame, or the connection ended inside one."""


class Channel:
    """Frames over one connected socket. `send` is safe to call from several threads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def send(self, kind: bytes, payload: bytes | memoryview = b"") -> None:
        header = HEADER.pack(kind, len(payload))
        with self._send_lock:
            if len(payload) < _SMALL:
                self.sock.sendall(header + bytes(payload))
            else:
                self.sock.sendall(header)
                self.sock.sendall(payload)

    def recv(self) -> tuple[bytes, bytes] | None:
        """The next frame, or None when the peer closed the connection between frames."""
        header = self._recv_exact(HEADER.size, eof_ok=True)
        if header is None:
            return None
        kind, length = HEADER.unpack(header)
        if length > MAX_PAYLOAD:
            raise ProtocolError(f"frame of {length} bytes is too large")
        payload = self._recv_exact(length, eof_ok=False) if length else b""
        return kind, payload or b""

    def _recv_exact(self, size: int, *, eof_ok: bool) -> bytes | None:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self.sock.recv_into(view[got:])
            if n == 0:
                if got == 0 and eof_ok:
                    return None
                raise ProtocolError("connection closed inside a frame")
            got += n
        return bytes(buf)

    def half_close(self) -> None:
        """Tell the peer we will send nothing more (best effort)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        """Drop the connection in both directions; the agent then kills the command."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def encode_start(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, stdin: bool
) -> bytes:
    request: dict[str, Any] = {"argv": list(argv), "stdin": stdin}
    if env:
        request["env"] = dict(env)
    if cwd:
        request["cwd"] = cwd
    return json.dumps(request).encode()


def decode_start(payload: bytes) -> dict[str, Any]:
    request = json.loads(payload)
    argv = request.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("START needs a non-empty argv of strings")
    return dict(request)


def open_call(
    port: int,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: bool = False,
    host: str = "127.0.0.1",
    connect_timeout: float = 10.0,
) -> Channel:
    """Connect to the agent and start argv; the caller then reads frames until EXIT."""
    sock = socket.create_connection((host, port), timeout=connect_timeout)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    channel = Channel(sock)
    channel.send(START, encode_start(argv, env, cwd, stdin))
    return channel


def send_stdin(channel: Channel, chunks: Iterable[bytes | memoryview]) -> None:
    """Send chunks as the command's stdin, then end of file. Errors of the source propagate; a
    closed connection ends the sending quietly (the command has exited, and the reader of EXIT
    sees why)."""
    for chunk in chunks:
        if chunk and not _try_send(channel, STDIN, chunk):
            return
    _try_send(channel, STDIN, b"")


def _try_send(channel: Channel, kind: bytes, payload: bytes | memoryview) -> bool:
    try:
        channel.send(kind, payload)
    except OSError:
        return False
    return True


def split(data: bytes) -> Iterable[memoryview]:
    """data as CHUNK-sized views (no copies)."""
    view = memoryview(data)
    for offset in range(0, len(view), CHUNK):
        yield view[offset : offset + CHUNK]
