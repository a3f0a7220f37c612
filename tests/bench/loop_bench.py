"""Control-loop benchmark: `reconcile watch` on in-memory ZFS hosts (no VM), three figures.

- `latency`: edit → pass start. A real `reconcile watch` runs in a child process (this module
  with `--child`: `reconciler.cli.main(["watch", ...])` with `Services(connect=...)` serving
  `ModelZFS` hosts), its JSON log (`--log-format json`) piped to this process. A manifest
  directory holds the hosts and 5 policies, one file each; `p000.yaml` is edited `--edits`
  times as an editor saves (a temporary file, then `os.replace` over the original), about 1 s
  apart, alternating `lastN: 4` / `lastN: 3` on the source retention. The latency of an edit
  is from `time.time()` just before the `os.replace` to the time the child's log record
  `policy p000: pass N starts` was made (loguru's `record.time.timestamp`, same machine
  clock), so the pipe's delay is left out; the time the line arrived here is reported too.
  Target: p95 < 1 s.
- `idle`: the CPU the loop burns when nothing happens. A child `reconcile watch` with
  `--policies` policies (one filesystem each, `tank/p000`..., interval 1h, replicated to a
  second host); once every policy's first pass has finished, the child's user + system CPU
  time (`/proc/PID/stat`, every thread) over `--window` seconds with no edit. Target: < 1% of
  one core.
- `memory`: in process, the real `Controller` with a `FakeClock` (`tests/loop_harness.py`), 3
  policies on one host replicated to another, `--resync` 300 s; the clock is moved to the
  earliest next wake-up in `controller.state()` and the loop left to go quiet, again and again,
  until `--passes` passes have run after a warm-up of `--warmup` passes (no manifest watcher:
  nothing is edited). Retention keeps both sides bounded (source `lastN: 3`, `--keep`; target
  `lastN: 5`: each policy snapshots every 15 minutes of fake time and prunes), so the ZFS
  state itself does not grow. RSS (`/proc/self/statm`, which includes tracemalloc's own
  tables) and `tracemalloc`'s current size (what was allocated since just before the
  controller was built and is still alive) after the warm-up and at the end, each after a
  full collection, and the `--top` source lines that grew most in between; target: RSS grows
  no more than 10% (tracemalloc's figure is the diagnostic of where Python allocations grew).

Run as `python -m tests.bench.loop_bench [--only latency|idle|memory]`. Each prints its result
lines and the target, with MISSED when a target is missed; the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from loguru import logger

from reconciler.cli import Services
from reconciler.cli import main as reconcile
from reconciler.loop.clock import FakeClock
from reconciler.loop.controller import Controller, LoopOptions, LoopServices
from reconciler.manifest.models import Host
from reconciler.zfs.model import ModelZFS
from tests.loop_harness import HOSTS, START

ROOT = Path(__file__).resolve().parents[2]
EDITED = "p000"
LATENCY_POLICIES = 5
TARGET_P95 = 1.0
TARGET_IDLE_PERCENT = 1.0
TARGET_GROWTH = 0.10
FINISHED = re.compile(r"^policy (\S+): pass (\d+) (ok|transient|permanent|cancelled): ")


def policy_text(name: str, last_n: int = 3, interval: str = "1h") -> str:
    """One Policy document: `tank/NAME` on nas, kept by lastN, replicated to backup."""
    return f"""\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: {name}}}
spec:
  source: {{host: nas, filesystems: {{'tank/{name}': true}}}}
  snapshots: {{prefix: zr_{name}_, interval: {interval}}}
  retention: {{keep: [{{lastN: {last_n}}}]}}
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      retention: {{keep: [{{lastN: 5}}]}}
"""


def names(count: int) -> list[str]:
    return [f"p{i:03d}" for i in range(count)]


def model_hosts(filesystems: list[str]) -> dict[str, ModelZFS]:
    """nas with `tank/NAME` for each name (some data in each), backup with an empty `vault`."""
    nas = ModelZFS("nas", seed=1)
    nas.create_pool("tank")
    for name in filesystems:
        nas.create(f"tank/{name}")
        nas.write(f"tank/{name}", 1 << 16)
    backup = ModelZFS("backup", seed=2)
    backup.create_pool("vault")
    return {"nas": nas, "backup": backup}


def connector(hosts: dict[str, ModelZFS], clock: Callable[[], float]) -> Callable[[Host], ModelZFS]:
    """A `Services.connect`: the model host of that name, stamping snapshots with `clock`."""

    def connect(host: Host) -> ModelZFS:
        model = hosts[host.metadata.name]
        model.clock = int(clock())
        return model

    return connect


# --- the child: a real `reconcile watch` on model hosts -----------------------------------------


def child(directory: str, lock_dir: str) -> int:
    policies = sorted(p.stem for p in Path(directory).glob("p*.yaml"))
    if not policies:  # one file holding them all (the idle benchmark)
        text = (Path(directory) / "policies.yaml").read_text()
        policies = re.findall(r"metadata: \{name: (p\d+)\}", text)
    connect = connector(model_hosts(policies), time.time)
    argv = ["watch", "-f", directory, "--lock-dir", lock_dir, "--log-format", "json"]
    return reconcile(argv, services=Services(connect=connect))


@dataclass(frozen=True)
class Line:
    arrived: float  # time.time() when the parent read it
    at: float  # the log record's own time (the child's time.time())
    level: str
    message: str


class Watch:
    """A child `reconcile watch` on `directory`, its stderr read line by line."""

    def __init__(self, directory: Path, lock_dir: Path) -> None:
        command = [sys.executable, "-m", "tests.bench.loop_bench", "--child", str(directory)]
        command += ["--lock-dir", str(lock_dir)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[Line] = []
        self.other: list[str] = []  # anything that is not a JSON record (a traceback)
        self._condition = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,))
        self._reader.start()

    def _read(self, stream: TextIO) -> None:
        for text in stream:
            arrived = time.time()
            try:
                record = json.loads(text)["record"]
                line = Line(
                    arrived,
                    record["time"]["timestamp"],
                    record["level"]["name"],
                    record["message"],
                )
            except (ValueError, KeyError, TypeError):
                self.other.append(text.rstrip("\n"))
                continue
            with self._condition:
                self.lines.append(line)
                self._condition.notify_all()
        with self._condition:
            self._condition.notify_all()

    def count(self) -> int:
        with self._condition:
            return len(self.lines)

    def wait(self, found: Callable[[list[Line]], object], timeout: float, what: str) -> object:
        """Wait until `found(lines)` is true-ish; return it."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                result = found(self.lines)
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    tail = "\n".join([line.message for line in self.lines[-5:]] + self.other[-20:])
                    raise RuntimeError(f"timed out waiting for {what}; last lines:\n{tail}")
                self._condition.wait(min(left, 0.5))

    def first_passes(self, policies: int, timeout: float) -> dict[str, str]:
        """Wait until `policies` policies have finished a pass; policy → outcome."""

        def outcomes(lines: list[Line]) -> dict[str, str] | None:
            seen: dict[str, str] = {}
            for line in lines:
                match = FINISHED.match(line.message)
                if match:
                    seen.setdefault(match[1], match[3])
            return seen if len(seen) >= policies else None

        found = self.wait(outcomes, timeout, f"the first pass of {policies} policies")
        assert isinstance(found, dict)
        return found

    def stop(self) -> int:
        self.process.terminate()
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        return code


def write_file(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 values: the 19th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


# --- (1) edit → pass start ---------------------------------------------------------------------


def bench_latency(edits: int, spacing: float) -> None:
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as temp:
        directory, lock_dir = Path(temp, "manifests"), Path(temp, "locks")
        directory.mkdir()
        (directory / "hosts.yaml").write_text(HOSTS)
        for name in names(LATENCY_POLICIES):
            (directory / f"{name}.yaml").write_text(policy_text(name))
        started = time.monotonic()
        watch = Watch(directory, lock_dir)
        try:
            outcomes = watch.first_passes(LATENCY_POLICIES, 120)
            print(
                f"latency: child up, first passes of {LATENCY_POLICIES} policies done in "
                f"{time.monotonic() - started:.2f} s ({_outcomes(outcomes)})"
            )
            time.sleep(spacing)
            by_record, by_arrival, reloads, passes = [], [], [], []
            for number in range(edits):
                last_n = 4 if number % 2 == 0 else 3
                path = directory / f"{EDITED}.yaml"
                temporary = path.with_name(f".{path.name}.tmp")
                temporary.write_text(policy_text(EDITED, last_n))
                mark = watch.count()
                written = time.time()
                temporary.replace(path)
                start, reload, finish = _edit_lines(watch, mark)
                by_record.append(start.at - written)
                by_arrival.append(start.arrived - written)
                reloads.append(reload.at - written)
                passes.append(finish.at - start.at)
                time.sleep(max(0.0, written + spacing - time.time()))
        finally:
            code = watch.stop()
    p50, p95 = percentile(by_record, 0.5), percentile(by_record, 0.95)
    print(
        f"latency: edit -> 'pass N starts' (log record time), {edits} edits: "
        f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"min {min(by_record) * 1000:.0f} ms, max {max(by_record) * 1000:.0f} ms"
    )
    print(
        f"latency: same, by arrival of the line in the parent: "
        f"p50 {percentile(by_arrival, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(by_arrival, 0.95) * 1000:.0f} ms, max {max(by_arrival) * 1000:.0f} ms"
    )
    print(
        f"latency: of which edit -> new generation in force (reload logged): "
        f"p50 {percentile(reloads, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(reloads, 0.95) * 1000:.0f} ms; the pass itself: "
        f"p50 {percentile(passes, 0.5) * 1000:.0f} ms"
    )
    print(f"latency: all (ms): {', '.join(f'{v * 1000:.0f}' for v in by_record)}")
    print(f"latency: watch exited {code}")
    print(
        f"latency: target p95 < {TARGET_P95:.0f} s: {verdict(p95 < TARGET_P95)} "
        f"(p95 {p95 * 1000:.0f} ms)"
    )


def _edit_lines(watch: Watch, mark: int) -> tuple[Line, Line, Line]:
    """After line `mark`: the reload that put the edit in force, the edited policy's pass
    start and that pass's end."""
    starts = re.compile(rf"^policy {EDITED}: pass (\d+) starts: .*manifests changed")

    def found(lines: list[Line]) -> tuple[Line, Line, Line] | None:
        reload = start = None
        pass_id = ""
        for line in lines[mark:]:
            if reload is None and "edit of" in line.message and "in force" in line.message:
                reload = line
            match = starts.match(line.message)
            if start is None and match:
                start, pass_id = line, match[1]
                continue
            finished = FINISHED.match(line.message)
            if start is not None and reload is not None and finished and finished[2] == pass_id:
                return reload, start, line
        return None

    result = watch.wait(found, 30, "the edited policy's pass")
    assert isinstance(result, tuple)
    reload, start, finish = result
    return start, reload, finish


def _outcomes(outcomes: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))


# --- (2) idle CPU -------------------------------------------------------------------------------


def cpu_ticks(pid: int | str) -> tuple[int, int]:
    """(utime, stime) in clock ticks of a process (all its threads) or of one task."""
    path = f"/proc/{pid}/stat"
    with open(path) as stat:
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)


def task_ticks(pid: int) -> dict[str, int]:
    ticks = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            ticks[task] = sum(cpu_ticks(f"{pid}/task/{task}"))
        except OSError:
            continue
    return ticks


def bench_idle(policies: int, window: float) -> None:
    hertz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as temp:
        directory, lock_dir = Path(temp, "manifests"), Path(temp, "locks")
        directory.mkdir()
        (directory / "hosts.yaml").write_text(HOSTS)
        text = "".join(policy_text(name) for name in names(policies))
        (directory / "policies.yaml").write_text(text)
        started = time.monotonic()
        watch = Watch(directory, lock_dir)
        try:
            outcomes = watch.first_passes(policies, 600)
            ready = time.monotonic() - started
            pid = watch.process.pid
            setup = sum(cpu_ticks(pid)) / hertz
            print(
                f"idle: {policies} policies, first passes done {ready:.1f} s after the start "
                f"({_outcomes(outcomes)}; CPU so far {setup:.1f} s)"
            )
            time.sleep(2.0)  # the last pass's log lines and collections
            mark = watch.count()
            tasks_before = task_ticks(pid)
            user_before, system_before = cpu_ticks(pid)
            began = time.monotonic()
            time.sleep(window)
            user_after, system_after = cpu_ticks(pid)
            elapsed = time.monotonic() - began
            tasks_after = task_ticks(pid)
            during = watch.lines[mark:]
        finally:
            code = watch.stop()
    user, system = (user_after - user_before) / hertz, (system_after - system_before) / hertz
    percent = (user + system) / elapsed * 100
    busiest = sorted(
        ((tasks_after[t] - tasks_before.get(t, 0), t) for t in tasks_after), reverse=True
    )
    print(
        f"idle: CPU over {elapsed:.1f} s with no edit: user {user:.2f} s + system {system:.2f} s "
        f"= {percent:.2f}% of one core ({len(tasks_after)} threads; ticks per thread, busiest "
        f"first: {', '.join(str(t) for t, _ in busiest[:6])}; {len(during)} log lines meanwhile)"
    )
    print(f"idle: watch exited {code}")
    print(
        f"idle: target < {TARGET_IDLE_PERCENT:.0f}% of one core: "
        f"{verdict(percent < TARGET_IDLE_PERCENT)} ({percent:.2f}%)"
    )


# --- (3) memory over many passes ----------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    passes: int
    rss: int
    traced: int
    versions: int


def bench_memory(warmup: int, passes: int, resync: int, keep: int, top: int) -> None:
    policies = names(3)
    hosts = model_hosts(policies)
    clock = FakeClock(START)
    logger.remove()
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    logger.add(sink, level="INFO", serialize=True)  # as `watch --log-format json` logs
    tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as temp:
        directory = Path(temp)
        text = HOSTS + "".join(policy_text(name, keep, "15m") for name in policies)
        (directory / "m.yaml").write_text(text)
        controller = Controller(
            LoopOptions(paths=(str(directory),), jobs=2, resync=resync),
            LoopServices(
                connect=connector(hosts, clock.time),
                clock=clock,
                cancel=threading.Event(),
                rng=random.Random(7),
            ),
        )
        began = time.monotonic()
        controller.start()
        samples: list[Sample] = []
        try:
            done = _quiet(controller, clock)
            goal, every = warmup, max(1, passes // 10)
            while True:
                if done >= goal:
                    if not samples:  # taken before the RSS, which then counts it every time
                        gc.collect()
                        warm = tracemalloc.take_snapshot()
                    samples.append(_sample(done, hosts))
                    if done >= warmup + passes:
                        break
                    goal = warmup + (len(samples)) * every
                state = controller.state()
                earliest = min(
                    p.next_wakeup.at for p in state.policies.values() if p.next_wakeup is not None
                )
                clock.advance(max(0.0, earliest - clock.time()))
                done = _quiet(controller, clock)
        finally:
            controller.stop()
            controller.join(5.0)
            logger.remove()
            sink.close()
        elapsed = time.monotonic() - began
        outcomes: dict[str, int] = {}
        for policy in controller.state().policies.values():
            final = policy.last_pass
            key = final.outcome.value if final is not None else "none"
            outcomes[key] = outcomes.get(key, 0) + 1
    growth = tracemalloc.take_snapshot().compare_to(warm, "lineno")
    tracemalloc.stop()
    first, last = samples[0], samples[-1]
    fake_hours = (clock.time() - START) / 3600
    print(
        f"memory: {last.passes} passes of {len(policies)} policies in {elapsed:.1f} s real, "
        f"{fake_hours:.1f} h of fake time (resync {resync} s, snapshots every 15 min, source "
        f"lastN {keep}, target lastN 5; last "
        f"outcomes: {', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))})"
    )
    for sample in samples:
        print(
            f"memory:   after {sample.passes:5d} passes: RSS {sample.rss / 2**20:6.1f} MiB, "
            f"tracemalloc {sample.traced / 2**20:6.2f} MiB, versions on both hosts "
            f"{sample.versions}"
        )
    rss_growth = (last.rss - first.rss) / first.rss
    traced_growth = (last.traced - first.traced) / first.traced
    print(
        f"memory: growth from pass {first.passes} to pass {last.passes}: "
        f"RSS {rss_growth * 100:+.1f}% ({(last.rss - first.rss) / 2**10:+.0f} KiB), "
        f"tracemalloc {traced_growth * 100:+.1f}% ({(last.traced - first.traced) / 2**10:+.0f} "
        f"KiB); ZFS versions {first.versions} -> {last.versions}"
    )
    per_pass = (last.traced - first.traced) / (last.passes - first.passes)
    print(f"memory: tracemalloc growth per pass: {per_pass:.0f} bytes; where it grew most:")
    for stat in growth[:top]:
        frame = stat.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        print(f"memory:   {where}: {stat.size_diff / 2**10:+.1f} KiB, {stat.count_diff:+d} blocks")
    # the target is on the process's memory (RSS); tracemalloc is the diagnostic that says
    # where Python allocations grew (e.g. a bounded cache still filling, names.py's lru_cache)
    print(
        f"memory: target RSS growth <= {TARGET_GROWTH * 100:.0f}% after warm-up: "
        f"{verdict(rss_growth <= TARGET_GROWTH)} (RSS {rss_growth * 100:+.1f}%; "
        f"tracemalloc {traced_growth * 100:+.1f}% of a {first.traced / 2**10:.0f} KiB base)"
    )


def _short(filename: str) -> str:
    path = Path(filename)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _quiet(controller: Controller, clock: FakeClock, timeout: float = 30.0) -> int:
    """Wait until no pass runs and every policy waits for a time after now; passes so far."""
    deadline = time.monotonic() + timeout
    while True:
        state = controller.state()
        now = clock.time()
        if state.policies and all(
            p.last_pass is not None
            and not p.running
            and p.next_wakeup is not None
            and p.next_wakeup.at > now
            for p in state.policies.values()
        ):
            return state.passes
        if time.monotonic() > deadline:
            raise RuntimeError(f"the loop did not go quiet: {state}")
        time.sleep(0.001)


def _sample(passes: int, hosts: dict[str, ModelZFS]) -> Sample:
    versions = sum(
        len(fs.versions) for model in hosts.values() for fs in model.observe().filesystems.values()
    )
    gc.collect()
    return Sample(passes, rss_bytes(), tracemalloc.get_traced_memory()[0], versions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["latency", "idle", "memory"])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=1.0, help="seconds between edits")
    parser.add_argument("--policies", type=int, default=100, help="idle: policies")
    parser.add_argument("--window", type=float, default=60.0, help="idle: seconds measured")
    parser.add_argument("--warmup", type=int, default=100, help="memory: passes before")
    parser.add_argument("--passes", type=int, default=1000, help="memory: passes measured")
    parser.add_argument("--resync", type=int, default=300, help="memory: resync seconds")
    parser.add_argument("--keep", type=int, default=3, help="memory: source lastN")
    parser.add_argument("--top", type=int, default=5, help="memory: growth sites shown")
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--lock-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.exit(child(args.child, args.lock_dir))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    if args.only in (None, "latency"):
        bench_latency(args.edits, args.spacing)
    if args.only in (None, "idle"):
        bench_idle(args.policies, args.window)
    if args.only in (None, "memory"):
        bench_memory(args.warmup, args.passes, args.resync, args.keep, args.top)


if __name__ == "__main__":
    main()
