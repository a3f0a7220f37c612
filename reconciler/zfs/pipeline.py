"""The send → receive pipeline: two processes joined by an OS pipe, supervised until both end.

Owned here: `run_pipeline`, `PipelineResult` and `TransferProgress`. The driver calls it with
two local argvs (each already wrapped by its host's runner: `zfs send ...` here or through ssh,
`zfs receive ...` here or through ssh). The data never passes through Python: the sender's
stdout is the write end of a pipe whose read end is the receiver's stdin.

Supervision:
- both processes are always reaped, whatever happens (also on KeyboardInterrupt);
- when `cancel` is set (the pass is being interrupted), both sides are terminated;
- when one side fails while the other still runs, the other gets `grace` seconds to end on
  its own (EOF or a broken pipe normally ends it at once), then SIGTERM, then SIGKILL;
- the sender's stderr is read line by line: lines the `progress` parser recognises (zfs send
  `-v -P` prints bytes sent once per second) become `TransferProgress` callbacks, the rest is
  kept as the sender's stderr; the receiver's stderr is kept whole.
The caller decides what the failure means (`zfs/stderr.py` picks the first cause). When the
pipeline ends, one debug line names both sides, their exit status, the duration and the bytes
measured (docs/logging.md). Transfers have no timeout: a stream may rightly take days.
"""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from loguru import logger

POLL_SECONDS = 0.02  # where the platform has no pidfd: how often both sides are polled
WAKE_SECONDS = 0.2  # with pidfds: the longest sleep between looks at `cancel`
CANCELLED = "both sides were terminated: the pass was interrupted"
TERMINATE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """How far one transfer is: bytes so far, the expected total when known, seconds spent."""

    label: str
    bytes_done: int
    bytes_total: int | None
    elapsed: float
    finished: bool = False

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when the total is known and data is moving."""
        if self.bytes_total is None or self.rate <= 0:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / self.rate)


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """Both sides' exit status and stderr (the sender's without its progress lines)."""

    send_returncode: int
    receive_returncode: int
    send_stderr: str
    receive_stderr: str
    bytes_done: int | None  # the last progress figure, when the sender reported any
    seconds: float
    stopped: str | None = None  # which side the supervisor terminated, and why

    @property
    def ok(self) -> bool:
        return self.send_returncode == 0 and self.receive_returncode == 0


ProgressParser = Callable[[str], int | None]
EstimateParser = Callable[[str], int | None]
ProgressSink = Callable[[TransferProgress], None]


class _SenderLog:
    """Reads the sender's stderr: progress lines → callbacks, other lines kept."""

    def __init__(
        self,
        label: str,
        parse_progress: ProgressParser | None,
        parse_estimate: EstimateParser | None,
        estimate: int | None,
        sink: ProgressSink | None,
        started: float,
    ) -> None:
        self.label = label
        self.parse_progress = parse_progress
        self.parse_estimate = parse_estimate
        self.total = estimate
        self.sink = sink
        self.started = started
        self.kept: list[str] = []
        self.bytes_done: int | None = None

    def consume(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if not self._progress(line):
                self.kept.append(line)

    def _progress(self, line: str) -> bool:
        if self.parse_estimate is not None:
            total = self.parse_estimate(line)
            if total is not None:
                self.total = total
                return True
        if self.parse_progress is None:
            return False
        done = self.parse_progress(line)
        if done is None:
            return False
        self.bytes_done = done
        self.report(finished=False)
        return True

    def report(self, *, finished: bool, complete: bool = False) -> None:
        """One progress callback; `complete` (both sides succeeded) counts the whole stream as
        sent even when it ended before zfs printed its first per-second line."""
        if complete and self.total is not None:
            self.bytes_done = max(self.bytes_done or 0, self.total)
        if self.sink is None:
            return
        done = self.bytes_done or 0
        elapsed = time.monotonic() - self.started
        self.sink(TransferProgress(self.label, done, self.total, elapsed, finished))


def _collect(stream: IO[bytes], into: list[bytes]) -> None:
    into.append(stream.read())


def run_pipeline(
    send_argv: Sequence[str],
    receive_argv: Sequence[str],
    *,
    label: str = "",
    parse_progress: ProgressParser | None = None,
    parse_estimate: EstimateParser | None = None,
    estimate: int | None = None,
    on_progress: ProgressSink | None = None,
    grace: float = 5.0,
    cancel: threading.Event | None = None,
    shown_as: tuple[str, str] | None = None,
) -> PipelineResult:
    """Run `send_argv | receive_argv` (both local argvs) and supervise both until they end.
    `shown_as` is how the debug line names each side (the host and the argv meant for it);
    by default, the local argvs."""
    started = time.monotonic()
    read_end, write_end = os.pipe()
    receiver: subprocess.Popen[bytes] | None = None
    sender: subprocess.Popen[bytes] | None = None
    try:
        receiver = subprocess.Popen(
            list(receive_argv), stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        sender = subprocess.Popen(
            list(send_argv), stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE
        )
    except BaseException:
        if receiver is not None:
            _stop(receiver)
        raise
    finally:
        os.close(read_end)
        os.close(write_end)
    log = _SenderLog(label, parse_progress, parse_estimate, estimate, on_progress, started)
    received: list[bytes] = []
    readers = [
        threading.Thread(target=log.consume, args=(sender.stderr,), daemon=True),
        threading.Thread(target=_collect, args=(receiver.stderr, received), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        stopped = _supervise(sender, receiver, grace, cancel)
    finally:
        for process in (sender, receiver):
            if process.poll() is None:
                _stop(process)
    for reader in readers:
        reader.join()
    complete = _returncode(sender) == 0 and _returncode(receiver) == 0
    log.report(finished=True, complete=complete)
    result = PipelineResult(
        send_returncode=_returncode(sender),
        receive_returncode=_returncode(receiver),
        send_stderr="".join(log.kept),
        receive_stderr=b"".join(received).decode("utf-8", "replace"),
        bytes_done=log.bytes_done,
        seconds=time.monotonic() - started,
        stopped=stopped,
    )
    sides = shown_as or (shlex.join(send_argv), shlex.join(receive_argv))
    logger.opt(lazy=True).debug("{}", lambda: _described(sides, result))
    return result


def _described(sides: tuple[str, str], result: PipelineResult) -> str:
    """The debug line of a finished transfer: both sides, their exit status, duration."""
    amount = "" if result.bytes_done is None else f", {result.bytes_done} bytes"
    why = f" ({result.stopped})" if result.stopped else ""
    return (
        f"transfer: {sides[0]} | {sides[1]} -> sender exit {result.send_returncode}, "
        f"receiver exit {result.receive_returncode} in {result.seconds:.3f}s{amount}{why}"
    )


def _supervise(
    sender: subprocess.Popen[bytes],
    receiver: subprocess.Popen[bytes],
    grace: float,
    cancel: threading.Event | None,
) -> str | None:
    """Wait for both; when one fails, end the other after `grace` seconds. Returns why, if so.
    Sleeps until a process ends (pidfds), so supervising costs no CPU while the stream runs."""
    exits = _ExitWatch(sender, receiver)
    try:
        return _supervise_loop(sender, receiver, grace, cancel, exits)
    finally:
        exits.close()


def _supervise_loop(
    sender: subprocess.Popen[bytes],
    receiver: subprocess.Popen[bytes],
    grace: float,
    cancel: threading.Event | None,
    exits: _ExitWatch,
) -> str | None:
    failed_at: float | None = None
    while True:
        send_rc, receive_rc = sender.poll(), receiver.poll()
        if send_rc is not None and receive_rc is not None:
            return None
        if cancel is not None and cancel.is_set():
            for process in (sender, receiver):
                _stop(process)
            return CANCELLED
        failed = (send_rc is not None and send_rc != 0) or (
            receive_rc is not None and receive_rc != 0
        )
        if failed:
            failed_at = failed_at if failed_at is not None else time.monotonic()
            if time.monotonic() - failed_at >= grace:
                survivor, side = (sender, "sender") if send_rc is None else (receiver, "receiver")
                other = "receiver" if side == "sender" else "sender"
                _stop(survivor)
                return f"the {side} was terminated after the {other} failed"
            exits.wait(max(0.0, failed_at + grace - time.monotonic()))
        else:
            exits.wait(WAKE_SECONDS)


class _ExitWatch:
    """Sleeps until one of the processes ends, at most a given time: on `pidfd_open` file
    descriptors (Linux 5.3+) when the platform has them, else by polling every POLL_SECONDS."""

    def __init__(self, *processes: subprocess.Popen[bytes]) -> None:
        self.fds: list[int] = []
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return
        try:
            for process in processes:
                if process.returncode is None:
                    self.fds.append(pidfd_open(process.pid))
        except OSError:  # a kernel without pidfds, or a process already reaped
            self.close()

    def wait(self, seconds: float) -> None:
        if not self.fds:
            time.sleep(min(seconds, POLL_SECONDS))
            return
        ready, _, _ = select.select(self.fds, [], [], seconds)
        for fd in ready:  # that process has ended: poll() reaps it, later waits return at once
            self.fds.remove(fd)
            os.close(fd)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(TERMINATE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _returncode(process: subprocess.Popen[bytes]) -> int:
    return process.wait()
