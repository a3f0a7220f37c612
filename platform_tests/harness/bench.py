"""Measure the harness on this machine: boot, command latency, streaming throughput, ssh.

Usage: .venv/bin/python -m platform_tests.harness.bench   (prints JSON; boots one guest)
The numbers in docs/platform-tests.md come from here. Load from other processes (another qemu
guest, a test run) slows every number: the JSON records the load average next to them.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .vm import Guest, start_guest

MIB = 1 << 20
STREAM_MIB = 200


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def latency(action: Callable[[], object], times: int) -> dict[str, float]:
    samples = sorted(timed(action) for _ in range(times))
    return {
        "median_ms": round(statistics.median(samples) * 1000, 1),
        "min_ms": round(samples[0] * 1000, 1),
        "max_ms": round(samples[-1] * 1000, 1),
    }


def stream(pipeline: str) -> dict[str, float]:
    """MiB/s of a shell pipeline that moves STREAM_MIB MiB and prints the byte count."""
    seconds = timed(
        lambda: subprocess.run(pipeline, shell=True, check=True, stdout=subprocess.DEVNULL)
    )
    return {"seconds": round(seconds, 2), "mib_per_s": round(STREAM_MIB / seconds, 1)}


def measure(guest: Guest) -> dict[str, Any]:
    size = STREAM_MIB * MIB
    cat = shlex.join(guest.exec_argv(["cat"]))
    sink = shlex.join(guest.exec_argv(["dd", "of=/dev/null", "bs=1M", "status=none"]))
    source = shlex.join(
        guest.exec_argv(["dd", "if=/dev/zero", "bs=1M", f"count={STREAM_MIB}", "status=none"])
    )
    ssh = guest.ssh_destination().argv("true")
    return {
        "run_true": latency(lambda: guest.run(["true"]), 20),
        "run_zfs_list": latency(lambda: guest.run(["zfs", "list"]).check(), 20),
        "exec_argv_true": latency(lambda: subprocess.run(guest.exec_argv(["true"])), 10),
        "ssh_true": latency(lambda: subprocess.run(ssh, check=True), 5),
        "exec_argv_cat_both_ways": stream(f"head -c {size} /dev/zero | {cat} | wc -c"),
        "exec_argv_into_guest": stream(f"head -c {size} /dev/zero | {sink}"),
        "exec_argv_out_of_guest": stream(f"{source} | wc -c"),
    }


def main() -> int:
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    guest = start_guest(f"zr-bench-{os.getpid()}", ["src", "dst"])
    try:
        result = {
            "load_average_1m_before": round(load_before, 2),
            "boot_seconds": round(time.monotonic() - started, 2),
            "accel": guest.accel,
            **measure(guest),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        }
    finally:
        guest.stop()
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
