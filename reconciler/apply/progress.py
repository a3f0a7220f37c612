"""Progress of running transfers, for people: a live line on a terminal and periodic log lines.

Owned here: `ProgressReporter`, the `on_progress` sink the CLI hands to the drivers. It receives
`TransferProgress` values from the pipeline's stderr reader (never from the data path) and
shows bytes, rate and ETA. On a terminal the line is rewritten in place; in logs one line per
transfer every `log_every` seconds and one when it ends, so long sends are visible in journald
too. Thread-safe: parallel transfers report through one reporter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from loguru import logger

from reconciler.core.render import format_bytes
from reconciler.zfs.pipeline import TransferProgress


def describe(progress: TransferProgress) -> str:
    """`src:tank/a → b:backup/a: 1.2 GiB of 3.4 GiB (35%), 95.0 MiB/s, ETA 0:00:23`."""
    done = format_bytes(progress.bytes_done)
    if progress.bytes_total:
        share = min(100, round(100 * progress.bytes_done / progress.bytes_total))
        amount = f"{done} of {format_bytes(progress.bytes_total)} ({share}%)"
    else:
        amount = done
    rate = f"{format_bytes(round(progress.rate))}/s"
    if progress.finished:
        return f"{progress.label}: {amount} in {progress.elapsed:.1f}s, {rate}"
    eta = progress.eta
    left = f", ETA {_clock(eta)}" if eta is not None else ""
    return f"{progress.label}: {amount}, {rate}{left}"


def _clock(seconds: float) -> str:
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class ProgressReporter:
    """Shows transfer progress on a terminal stream and in the log."""

    def __init__(
        self,
        stream: TextIO | None,
        *,
        log_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream  # None: not a terminal, log lines only
        self.log_every = log_every
        self.clock = clock
        self._lock = threading.Lock()
        self._logged: dict[str, float] = {}
        self._width = 0

    def __call__(self, progress: TransferProgress) -> None:
        line = describe(progress)
        with self._lock:
            if self.stream is not None:
                self._show(line, progress.finished)
            self._log(progress, line)

    def _show(self, line: str, finished: bool) -> None:
        assert self.stream is not None
        padding = " " * max(0, self._width - len(line))
        self.stream.write(f"\r{line}{padding}")
        self._width = 0 if finished else len(line)
        if finished:
            self.stream.write("\n")
        self.stream.flush()

    def _log(self, progress: TransferProgress, line: str) -> None:
        now = self.clock()
        last = self._logged.get(progress.label)
        if progress.finished:
            self._logged.pop(progress.label, None)
            logger.info("transfer done: {}", line)
        elif last is None or now - last >= self.log_every:
            self._logged[progress.label] = now
            logger.info("transfer: {}", line)
