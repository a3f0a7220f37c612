"""`reconcile watch` through the CLI: it runs the loop on the main thread until SIGTERM or
SIGINT (exit 0), re-reads the manifests on SIGHUP, and rejects options it does not take.
Hosts are the in-memory ZFS model; signals are real, sent to this process."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.cli import EXIT_OK, EXIT_USAGE, Console, Services, main
from tests.test_cli import Fleet


def _when(
    condition: Callable[[], bool], then: Callable[[], None], timeout: float = 20
) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        then()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_watch_runs_until_a_signal_and_exits_0(manifest: Path, tmp_path: Path, stop: int) -> None:
    fleet = Fleet()
    out, err = io.StringIO(), io.StringIO()

    def replicated() -> bool:
        return bool(fleet.hosts["backup"].observe().filesystems.get("vault/nas/tank/home/alice"))

    def hup_then_stop() -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        _when(lambda: "SIGHUP: reading" in err.getvalue(), lambda: os.kill(os.getpid(), stop))

    _when(replicated, hup_then_stop)
    argv = ["watch", "-f", str(manifest), "--lock-dir", str(tmp_path / "locks"), "--resync", "1h"]
    before = signal.getsignal(stop)
    started = time.monotonic()
    code = main(argv, Console(out, err), Services(connect=fleet.connect))
    assert code == EXIT_OK, err.getvalue()
    assert time.monotonic() - started < 20
    log = err.getvalue()
    assert "policy home: pass 1 ok" in log
    assert "SIGHUP: reading the manifests again" in log
    assert f"{signal.Signals(stop).name}: stopping" in log
    assert log.rstrip().endswith("stopped")
    assert out.getvalue() == ""
    assert signal.getsignal(stop) is before  # the handlers are given back
    for path in (tmp_path / "locks").glob("*.lock"):  # and no lock is left held
        assert path.read_bytes() == b""


def test_watch_logs_json_records_with_the_policy_and_pass(manifest: Path, tmp_path: Path) -> None:
    fleet = Fleet()
    out, err = io.StringIO(), io.StringIO()
    _when(lambda: "pass 1 ok" in err.getvalue(), lambda: os.kill(os.getpid(), signal.SIGTERM))
    argv = ["watch", "-f", str(manifest), "--lock-dir", str(tmp_path / "locks"), "--log-format"]
    code = main([*argv, "json"], Console(out, err), Services(connect=fleet.connect))
    assert code == EXIT_OK
    records = [json.loads(line)["record"] for line in err.getvalue().splitlines()]
    ended = [r for r in records if r["message"].startswith("policy home: pass 1 ok")]
    assert len(ended) == 1
    assert ended[0]["extra"] == {"policy": "home", "pass_id": 1}
    assert ended[0]["level"]["name"] == "INFO"


@pytest.mark.parametrize(
    "argv",
    [
        ["watch", "--dry-run"],
        ["watch", "--now", "2026-12-04T00:00:00Z"],
        ["watch", "--output", "json"],
        ["watch", "--resync", "0s"],
        ["watch", "--resync", "soon"],
        ["watch", "--resync", "366d"],
        ["watch", "--resync", "9999999999w"],
        ["watch", "--jobs", "0"],
        ["watch", "--lock-wait", "5m"],
    ],
)
def test_watch_refuses_what_it_does_not_take(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exited:
        main(argv, Console(out, err))
    assert exited.value.code == EXIT_USAGE
