"""Progress display: terminal line rewriting, throttled log lines, rate and ETA wording."""

from __future__ import annotations

import io

from loguru import logger

from reconciler.apply.progress import ProgressReporter, describe
from reconciler.zfs.pipeline import TransferProgress

MIB = 1024 * 1024


def test_describe_shows_share_rate_and_eta() -> None:
    text = describe(TransferProgress("a:x → b:y", 50 * MIB, 200 * MIB, 5.0))
    assert text == "a:x → b:y: 50.0 MiB of 200.0 MiB (25%), 10.0 MiB/s, ETA 0:00:15"


def test_describe_without_an_estimate_and_when_finished() -> None:
    assert describe(TransferProgress("t", 3 * MIB, None, 1.0)) == "t: 3.0 MiB, 3.0 MiB/s"
    done = describe(TransferProgress("t", 4 * MIB, 4 * MIB, 2.0, finished=True))
    assert done == "t: 4.0 MiB of 4.0 MiB (100%) in 2.0s, 2.0 MiB/s"


def test_terminal_line_is_rewritten_in_place_then_ended() -> None:
    screen = io.StringIO()
    reporter = ProgressReporter(screen)
    reporter(TransferProgress("t", 10 * MIB, None, 1.0))
    reporter(TransferProgress("t", 20, None, 1.0))
    reporter(TransferProgress("t", 30, None, 1.0, finished=True))
    frames = screen.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert len(frames[1]) == len(frames[0])  # a shorter line pads over the longer one
    assert frames[2].endswith("\n")


def test_log_lines_are_throttled_per_transfer() -> None:
    now = [0.0]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), format="{message}")
    try:
        reporter = ProgressReporter(None, log_every=10, clock=lambda: now[0])
        for second in range(25):
            now[0] = float(second)
            reporter(TransferProgress("t", second, 100, float(second)))
        reporter(TransferProgress("t", 100, 100, 25.0, finished=True))
    finally:
        logger.remove(sink)
    assert len([x for x in lines if x.startswith("transfer: ")]) == 3  # at 0, 10 and 20 s
    assert lines[-1].startswith("transfer done: t: ")
