"""The send → receive pipeline on real local processes: data flow, failures, kills, progress."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.zfs import pipeline
from reconciler.zfs.pipeline import CANCELLED, TransferProgress, run_pipeline


def _progress(line: str) -> int | None:
    parts = line.rstrip("\n").split("\t")
    return int(parts[1]) if len(parts) == 3 and parts[0].count(":") == 2 else None


def _estimate(line: str) -> int | None:
    parts = line.rstrip("\n").split("\t")
    return int(parts[1]) if len(parts) == 2 and parts[0] == "size" else None


def test_data_flows_from_sender_to_receiver(tmp_path: Path) -> None:
    out = tmp_path / "count"
    result = run_pipeline(["head", "-c", "5000000", "/dev/zero"], ["sh", "-c", f"wc -c > '{out}'"])
    assert result.ok
    assert int(out.read_text()) == 5_000_000


def test_a_failing_receiver_ends_the_sender_and_its_error_is_kept() -> None:
    result = run_pipeline(["yes"], ["sh", "-c", "echo 'cannot receive: refused' >&2; exit 3"])
    assert result.receive_returncode == 3
    assert "cannot receive: refused" in result.receive_stderr
    assert result.send_returncode != 0  # yes died of the broken pipe


def test_a_failing_sender_is_reported_and_the_receiver_sees_end_of_stream() -> None:
    result = run_pipeline(["sh", "-c", "echo 'cannot send: gone' >&2; exit 2"], ["cat"])
    assert (result.send_returncode, result.receive_returncode) == (2, 0)
    assert "cannot send: gone" in result.send_stderr
    assert not result.ok


def test_a_receiver_that_ignores_the_end_is_terminated_after_the_grace() -> None:
    start = time.monotonic()
    result = run_pipeline(["sh", "-c", "exit 1"], ["sleep", "60"], grace=0.2)
    assert time.monotonic() - start < 10
    assert result.receive_returncode == -signal.SIGTERM
    assert result.stopped is not None and "receiver was terminated" in result.stopped


def test_a_killed_receiver_ends_the_sender() -> None:
    result = run_pipeline(["yes"], ["sh", "-c", "head -c 1000 >/dev/null; kill -9 $$"])
    assert result.receive_returncode == -signal.SIGKILL
    assert result.send_returncode != 0


def test_a_killed_sender_ends_the_receiver() -> None:
    result = run_pipeline(["sh", "-c", "head -c 1000 /dev/zero; kill -9 $$"], ["cat"])
    assert result.send_returncode == -signal.SIGKILL
    assert result.receive_returncode == 0  # cat saw the end of the stream


def test_progress_lines_become_callbacks_and_are_kept_out_of_stderr() -> None:
    sender = (
        "printf 'full\\tsrc/a@1\\t300\\nsize\\t300\\n' >&2; head -c 100 /dev/zero; "
        "printf '12:00:01\\t100\\tsrc/a@1\\n' >&2; head -c 200 /dev/zero; "
        "printf '12:00:02\\t300\\tsrc/a@1\\n' >&2; echo 'a warning' >&2"
    )
    seen: list[TransferProgress] = []
    result = run_pipeline(
        ["sh", "-c", sender],
        ["sh", "-c", "cat > /dev/null"],
        label="a → b",
        parse_progress=_progress,
        parse_estimate=_estimate,
        on_progress=seen.append,
    )
    assert result.ok
    assert [p.bytes_done for p in seen] == [100, 300, 300]
    assert seen[-1].finished and not seen[0].finished
    assert {p.bytes_total for p in seen} == {300}
    assert result.bytes_done == 300
    assert result.send_stderr == "full\tsrc/a@1\t300\na warning\n"


def test_rate_and_eta() -> None:
    progress = TransferProgress("x", 100, 400, 2.0)
    assert progress.rate == 50
    assert progress.eta == 6
    assert TransferProgress("x", 0, None, 0.0).eta is None


def test_an_interrupt_reaps_both_sides(tmp_path: Path) -> None:
    pids = [tmp_path / "send.pid", tmp_path / "recv.pid"]
    sender = ["sh", "-c", f"echo $$ > '{pids[0]}'; exec sleep 60"]
    receiver = ["sh", "-c", f"echo $$ > '{pids[1]}'; exec sleep 60"]

    def interrupt() -> None:
        while not all(p.exists() and p.read_text() for p in pids):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(sender, receiver)
    for pid_file in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)


def test_a_receiver_that_cannot_start_leaves_nothing_running() -> None:
    with pytest.raises(FileNotFoundError):
        run_pipeline(["yes"], ["no-such-receiver"])


def _running(argv: list[str]) -> bool:
    wanted = "\0".join(argv).encode() + b"\0"
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                return True
        except OSError:
            continue
    return False


def test_a_sender_that_cannot_start_stops_the_receiver() -> None:
    receiver = ["sleep", "61.25"]
    with pytest.raises(FileNotFoundError):
        run_pipeline(["no-such-sender"], receiver)
    assert not _running(receiver)


def test_cancelling_stops_both_sides_at_once() -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    result = run_pipeline(["sleep", "60"], ["sleep", "60"], cancel=cancel)
    assert time.monotonic() - start < 10
    assert result.stopped == CANCELLED
    assert result.send_returncode == result.receive_returncode == -signal.SIGTERM


def test_a_stream_that_ends_before_any_progress_line_is_reported_whole() -> None:
    seen: list[TransferProgress] = []
    result = run_pipeline(
        ["sh", "-c", "printf 'size\\t300\\n' >&2; head -c 300 /dev/zero"],
        ["sh", "-c", "cat > /dev/null"],
        parse_progress=_progress,
        parse_estimate=_estimate,
        on_progress=seen.append,
    )
    assert result.ok
    assert [(p.bytes_done, p.finished) for p in seen] == [(300, True)]


def test_a_failed_stream_is_not_reported_whole() -> None:
    seen: list[TransferProgress] = []
    run_pipeline(
        ["sh", "-c", "printf 'size\\t300\\n' >&2; head -c 100 /dev/zero; exit 1"],
        ["sh", "-c", "cat > /dev/null"],
        parse_progress=_progress,
        parse_estimate=_estimate,
        on_progress=seen.append,
    )
    assert [(p.bytes_done, p.finished) for p in seen] == [(0, True)]


def test_supervision_sleeps_until_a_process_ends() -> None:
    """The supervisor blocks on the processes' pidfds: no polling while a stream runs, and
    awake as soon as either side ends."""
    running = subprocess.Popen(["sleep", "5"])
    ending = subprocess.Popen(["sleep", "0.2"])
    watch = pipeline._ExitWatch(running, ending)
    try:
        assert len(watch.fds) == 2
        started = time.monotonic()
        watch.wait(0.5)  # wakes when `ending` ends, not after 0.5 s
        woke = time.monotonic() - started
        assert 0.1 <= woke < 0.45 and ending.poll() == 0 and len(watch.fds) == 1
        started = time.monotonic()
        watch.wait(0.3)  # `running` goes on: the full 0.3 s in one sleep
        assert time.monotonic() - started >= 0.25 and running.poll() is None
    finally:
        watch.close()
        running.kill()
        running.wait()
        ending.wait()
