"""A `reconcile watch` process and its log, for the platform tests, the demo and the benchmark.

Owned here: `LogLine` and `parse_line` (loguru's text format), `WatchLog` (a stream read by a
thread into a queue, waited on line by line with timeouts), `Watch` (a `reconcile watch`
process on a scenario's manifests, on this machine) and `watch_hosts` (the scenario's Host
manifests: the guest's sshd, each with its own zfsCommand). Used by
`platform_tests/test_watch.py`, `platform_tests/demo.py` and `platform_tests/bench_watch.py`.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from platform_tests.scenario import REPO, Scenario, ssh_host_document

_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d) ([A-Z]+) (.*)$")


# --- the log of a watch process ----------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One line of loguru's text format: `TIMESTAMP LEVEL message` (`time` None, `level` ""
    for a line in another shape, such as a traceback's)."""

    text: str
    time: float | None  # UNIX seconds of the line's own timestamp
    level: str
    message: str
    received: float  # UNIX seconds when the reader thread got it


def parse_line(text: str, received: float) -> LogLine:
    found = _LINE.match(text)
    if found is None:
        return LogLine(text, None, "", text, received)
    stamp = datetime.fromisoformat(found[1]).timestamp()
    return LogLine(text, stamp, found[2], found[3], received)


class WatchLog:
    """A process's stderr, read line by line by a thread into a queue. `expect(pattern)` takes
    lines off the queue until one whose message matches; every line taken is kept in `lines`,
    so a test can look at what came between two expectations."""

    def __init__(self, stream: IO[str], echo: Callable[[LogLine], None] | None = None) -> None:
        self._queue: queue.Queue[LogLine | None] = queue.Queue()
        self._echo = echo
        self.lines: list[LogLine] = []
        self.ended = False  # the stream reached its end
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for text in stream:
                line = parse_line(text.rstrip("\n"), time.time())
                if self._echo is not None:
                    self._echo(line)
                self._queue.put(line)
        finally:
            self._queue.put(None)

    def _take(self, timeout: float) -> LogLine | None:
        """The next line, None at the end of the stream; raises queue.Empty on timeout."""
        if self.ended:
            return None
        line = self._queue.get(timeout=max(0.0, timeout))
        if line is None:
            self.ended = True
            return None
        self.lines.append(line)
        return line

    def expect(self, pattern: str, timeout: float = 60.0) -> tuple[LogLine, re.Match[str]]:
        """Wait for the next line whose message matches `pattern` (re.search)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._take(deadline - time.monotonic())
            except queue.Empty:
                raise AssertionError(
                    f"no log line matching {pattern!r} within {timeout:.0f}s\n{self.tail()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"the log ended before a line matching {pattern!r}\n{self.tail()}"
                )
            found = regex.search(line.message)
            if found is not None:
                return line, found

    def collect(self, seconds: float) -> list[LogLine]:
        """Every line that arrives within `seconds` (fewer if the stream ends)."""
        deadline = time.monotonic() + seconds
        taken: list[LogLine] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._take(left)
            except queue.Empty:
                break
            if line is None:
                break
            taken.append(line)
        return taken

    def mark(self) -> int:
        """A position in `lines`, for `since`."""
        return len(self.lines)

    def since(self, mark: int) -> list[str]:
        """The messages taken since `mark`."""
        return [line.message for line in self.lines[mark:]]

    def tail(self, count: int = 60) -> str:
        """The last lines, for a failure message (what has arrived so far is taken first)."""
        self.collect(0.5)
        shown = "\n".join(line.text for line in self.lines[-count:])
        return f"--- the watch log, last {min(count, len(self.lines))} lines ---\n{shown}"


class Watch:
    """A `reconcile watch` process on the scenario's manifests and its log."""

    def __init__(self, s: Scenario, *, echo: bool = True, resync: str = "1h") -> None:
        self.argv = [
            sys.executable, "-m", "reconciler", "watch",
            "-f", str(s.directory / "manifests"),
            "--lock-dir", str(s.directory / "locks"),
            "--resync", resync,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=s.process_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        pid = self.process.pid
        # with echo, every line is also printed: pytest shows them with a failure (or with -s)
        shown = (lambda line: print(f"[{pid}] {line.text}")) if echo else None
        self.log = WatchLog(self.process.stderr, shown)

    def expect(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        return self.log.expect(pattern, timeout)[1]

    def running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; (exit status, seconds until the process had exited)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"watch still running 30s after SIGTERM\n{self.log.tail()}"
            ) from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.running():
            self.process.kill()
        self.process.wait()


def watch_hosts(s: Scenario, src: Sequence[str] = ("zfs",), dst: Sequence[str] = ("zfs",)) -> None:
    """Hosts `src` and `dst`: the guest's sshd, each with its own zfsCommand."""
    destination = s.guest.ssh_destination()
    documents = [ssh_host_document("src", destination, src)]
    documents.append(ssh_host_document("dst", destination, dst))
    text = "---\n".join(json.dumps(document, indent=1) + "\n" for document in documents)
    (s.directory / "manifests" / "hosts.yaml").write_text(text)
