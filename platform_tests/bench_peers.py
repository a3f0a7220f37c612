"""zfs-reconciler side by side with its peers on real OpenZFS in the guest (`make bench-peers`).

One guest, pools `tank` (source) and `backup` (targets). N filesystems `tank/bench/fsNNN`, each
with a little data, shared by all tools as their source; each tool replicates into its own tree
under `backup/`. The tools, each configured as its documentation recommends for one job
(an hourly snapshot, keep the last 24 on the source and 48 on the target, replicate to the
second pool), in one periodic run each:

    zr      zfs-reconciler: `reconcile -f DIR` (a Host `local`, one Policy, cron @hourly)
    sanoid  `sanoid --cron`, then `syncoid -r --skip-parent --no-sync-snap --no-stream`
    bzfs    bzfs 1.25.0: create + replicate, prune the source, prune the target (3 runs)
    zab     zfs-autobackup 3.3: `zfs-autobackup bench backup/zab --keep-source=24 ...`

(the exact command lines are in `_tools` and in the docs section this writes).

Workloads: P1, the periodic run with nothing due and everything in sync (a no-op); P4, one new
snapshot on every filesystem taken by the tool and replicated. Time is the guest's own clock,
which every tool reads: before a P4 round (and before each untimed sync pass) it is moved
forward to one minute past the next full hour, so that each tool's hourly snapshot is due by
its own rule, and the same 64 KiB are written to every filesystem (zfs-autobackup snapshots
what changed); P1 runs only when the current hour leaves enough room for the run, so that no
hour boundary passes during it (checked afterwards). The clock never moves backwards. Before
P1, untimed sync passes (new hour, new data, each tool once) seed and align the tools.

Counting: a directory with `zfs` and `zpool` wrapper scripts first in PATH for every tool (and
the Host's `zfsCommand` for zfs-reconciler); each wrapper appends `zfs VERB` to the file named
by $ZR_BENCH_LOG, which is set per run and inherited by every child, `sh -c` included, then
execs the real program. Each run is timed inside the guest (/proc/uptime around the tool's
commands) and checked afterwards: P1 changed no snapshot anywhere; P4 left exactly one new
snapshot in the tool's naming scheme on every source filesystem, present on its target too.

`--tools zr,bzfs` runs zfs-reconciler and only the peers named, on the same workloads (the
source then carries only their naming schemes), for a quicker ratio to one peer; it writes no
docs section, whose table needs every tool.

Prints one JSON document (and writes it with --out); with --write-docs, replaces section
"(f)" of docs/benchmarks.md. Each run's stdout/stderr and zfs call log stay in the log
directory it prints. Run as
`python -m platform_tests.bench_peers [--filesystems N] [--rounds R] [--workloads p1,p4]
[--seed-hours H] [--large N] [--out FILE.json] [--write-docs [--note TEXT]]`, or
`--from-json FILE.json [--note TEXT]` to only write the docs section from an earlier run.
ZR_BENCH_PEERS_KEEP=2,3 (development only) makes every tool prune during the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from platform_tests.harness.vm import Guest, HarnessError, start_guest

REPO = Path(__file__).resolve().parent.parent
RECONCILE = str(Path(sys.executable).parent / "reconcile")
CACHE = Path(os.environ.get("ZFS_RECONCILER_VM_CACHE", "/var/cache/zfs-reconciler-vm"))
PEERS_VENV = CACHE / "peers-venv"
DOCS = REPO / "docs" / "benchmarks.md"
HEADING = "## (f) Side by side with the peers (`make bench-peers`)"
SOURCE = "tank/bench"
# snapshots kept on the source and on the target; ZR_BENCH_PEERS_KEEP=2,3 (a development
# knob) makes every tool prune during the runs, to check the retention settings themselves
SOURCE_KEEP, TARGET_KEEP = (
    int(n) for n in os.environ.get("ZR_BENCH_PEERS_KEEP", "24,48").split(",", 1)
)
DATA_BYTES = 64 * 1024  # written to every filesystem before each snapshot a tool takes
TOOL_ORDER = ("zr", "sanoid", "bzfs", "zab")  # "us" first; rotated round by round
# the untimed sync pass ends with sanoid + syncoid: with --no-stream, syncoid is in sync when
# the newest snapshot on the source (of any name) is sanoid's
SYNC_ORDER = ("zr", "bzfs", "zab", "sanoid")
WRAPPER = """#!/bin/sh
echo "{name} $1" >> "${{ZR_BENCH_LOG:-/dev/null}}"
exec {real} "$@"
"""
RUN_SCRIPT = """#!/bin/sh
export PATH={wrappers}:$PATH ZR_BENCH_LOG={calls}
cd {cwd}
clock0=$(date +%s)
read up0 _ < /proc/uptime
{{ {commands}; }} > {out} 2> {err}
rc=$?
read up1 _ < /proc/uptime
echo "$rc $up0 $up1 $clock0 $(date +%s)"
"""
HOSTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: local}}
spec: {{transport: local, zfsCommand: [{zfs}]}}
"""
POLICY = f"""\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: bench}}
spec:
  source:
    host: local
    filesystems: {{"{SOURCE}<": true, "{SOURCE}": false}}
  snapshots: {{prefix: zr_, cron: "@hourly"}}
  retention:
    keep: [{{lastN: {SOURCE_KEEP}}}]
  replication:
    - name: backup
      host: local
      root: backup/zr
      initialReplication: mostRecent
      retention:
        keep: [{{lastN: {TARGET_KEEP}}}]
"""
SANOID_CONF = f"""\
# sanoid's README: a template per policy, recursive with process_children_only for a tree of
# datasets; the target tree pruned by sanoid too, with a template that takes no snapshots
[{SOURCE}]
\tuse_template = bench
\trecursive = yes
\tprocess_children_only = yes

[backup/syncoid/bench]
\tuse_template = bench_backup
\trecursive = yes
\tprocess_children_only = yes

[template_bench]
\tfrequently = 0
\thourly = {SOURCE_KEEP}
\tdaily = 0
\tweekly = 0
\tmonthly = 0
\tyearly = 0
\tautosnap = yes
\tautoprune = yes

[template_bench_backup]
\tfrequently = 0
\thourly = {TARGET_KEEP}
\tdaily = 0
\tweekly = 0
\tmonthly = 0
\tyearly = 0
\tautosnap = no
\tautoprune = yes
"""
BZFS_SRC_PLAN = f"{{'bench':{{'onsite':{{'hourly':{SOURCE_KEEP}}}}}}}"
BZFS_DST_PLAN = f"{{'bench':{{'onsite':{{'hourly':{TARGET_KEEP}}}}}}}"


def _stage(message: str) -> None:
    print(f"bench-peers: {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# --- the tools ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    key: str
    label: str
    scheme: str  # a regex for the snapshot names this tool takes
    commands: tuple[str, ...]  # run in this order, each only if the one before succeeded
    target_root: str  # the tree under backup/ this tool replicates into
    target_of: Callable[[str], str]  # source filesystem -> its replica
    version_command: str


def _tools(workdir: Path) -> dict[str, Tool]:
    venv = PEERS_VENV / "bin"
    sanoid_dir = workdir / "sanoid"
    fs_tail = len(SOURCE) + 1
    return {
        "zr": Tool(
            "zr",
            "zfs-reconciler",
            r"^zr_\d{8}T\d{6}Z$",
            (f"{RECONCILE} -f {workdir / 'zr'}",),
            "backup/zr",
            lambda fs: f"backup/zr/{fs}",
            f"{RECONCILE} --version",
        ),
        "sanoid": Tool(
            "sanoid",
            "sanoid + syncoid",
            r"^autosnap_.*_hourly$",
            (
                f"/usr/sbin/sanoid --configdir={sanoid_dir} --cache-dir={sanoid_dir}/cache "
                f"--run-dir={sanoid_dir}/run --cron",
                f"/usr/sbin/syncoid -r --skip-parent --no-sync-snap --no-stream {SOURCE} "
                "backup/syncoid/bench",
            ),
            "backup/syncoid",
            lambda fs: f"backup/syncoid/bench/{fs[fs_tail:]}",
            "/usr/sbin/sanoid --version 2>&1 | head -n 1; /usr/sbin/syncoid --version 2>&1 "
            "| head -n 1",
        ),
        "bzfs": Tool(
            "bzfs",
            "bzfs",
            r"^bench_onsite_.*_hourly$",
            (
                # create the due snapshots, then replicate this tool's snapshots only
                f"{venv}/bzfs {SOURCE} backup/bzfs/bench --recursive --skip-parent "
                f'--create-src-snapshots --create-src-snapshots-plan "{BZFS_SRC_PLAN}" '
                f'--include-snapshot-plan "{BZFS_SRC_PLAN}"',
                # prune the source: the latest 24 of its own hourly snapshots stay (not
                # --delete-dst-snapshots-except-plan, which would delete every other name)
                f"{venv}/bzfs dummy {SOURCE} --recursive --skip-parent --skip-replication "
                "--delete-dst-snapshots --include-snapshot-regex 'bench_onsite_.*_hourly' "
                f"--include-snapshot-times-and-ranks notime 'all except latest {SOURCE_KEEP}'",
                # prune the target with its own plan (`dummy` source: an independent retention)
                f"{venv}/bzfs dummy backup/bzfs/bench --recursive --skip-parent "
                "--skip-replication --delete-dst-snapshots "
                f'--delete-dst-snapshots-except-plan "{BZFS_DST_PLAN}"',
            ),
            "backup/bzfs",
            lambda fs: f"backup/bzfs/bench/{fs[fs_tail:]}",
            f"{venv}/bzfs --version 2>&1 | head -n 1",
        ),
        "zab": Tool(
            "zab",
            "zfs-autobackup",
            r"^bench-\d{14}$",
            (
                f"{venv}/zfs-autobackup --verbose --keep-source={SOURCE_KEEP} "
                f"--keep-target={TARGET_KEEP} bench backup/zab",
            ),
            "backup/zab",
            lambda fs: f"backup/zab/{fs}",
            f"{venv}/zfs-autobackup --version 2>&1 | head -n 1",
        ),
    }


def _prepare_configs(workdir: Path, wrappers: Path) -> None:
    (workdir / "zr").mkdir()
    (workdir / "zr" / "hosts.yaml").write_text(HOSTS.format(zfs=wrappers / "zfs"))
    (workdir / "zr" / "policy.yaml").write_text(POLICY)
    sanoid = workdir / "sanoid"
    sanoid.mkdir()
    (sanoid / "sanoid.conf").write_text(SANOID_CONF)


# --- pure helpers (unit-tested in tests/test_bench_peers.py) -----------------------------------


def parse_calls(text: str) -> Counter[str]:
    """The wrapper log ("zfs list", "zpool get", one a line) as a count per `program verb`."""
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        calls[" ".join(words[:2]) if len(words) > 1 else f"{words[0]} (no verb)"] += 1
    return calls


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    return {
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def ratio(peer: float | None, ours: float | None) -> float | None:
    """peer / ours, or None when either is missing or ours is zero."""
    if peer is None or ours is None or ours == 0:
        return None
    return peer / ours


def rotated(order: Sequence[str], round_index: int) -> list[str]:
    """The tools' order in round round_index (0-based): order shifted left by round_index."""
    shift = round_index % len(order)
    return [*order[shift:], *order[:shift]]


def parse_listing(text: str) -> dict[str, set[str]]:
    """`zfs list -H -o name -t snapshot` output as filesystem -> set of snapshot names."""
    snapshots: dict[str, set[str]] = {}
    for line in text.splitlines():
        name = line.strip()
        if "@" in name:
            fs, _, snap = name.partition("@")
            snapshots.setdefault(fs, set()).add(snap)
    return snapshots


def new_snapshot_problems(
    before: dict[str, set[str]],
    after: dict[str, set[str]],
    sources: Iterable[str],
    scheme: str,
    target_of: Callable[[str], str],
) -> list[str]:
    """What is wrong with a P4 run: every source filesystem must have exactly one new snapshot
    matching scheme, and that snapshot must be on its replica."""
    pattern = re.compile(scheme)
    problems = []
    for fs in sources:
        new = {s for s in after.get(fs, set()) - before.get(fs, set()) if pattern.search(s)}
        if len(new) != 1:
            problems.append(f"{fs}: {len(new)} new snapshots of the tool ({sorted(new)[:3]})")
            continue
        (snap,) = new
        if snap not in after.get(target_of(fs), set()):
            problems.append(f"{fs}@{snap} is not on {target_of(fs)}")
    return problems


def listing_changes(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    """Every snapshot created or destroyed between two listings (for P1: must be empty)."""
    changes = []
    for fs in sorted(set(before) | set(after)):
        old, new = before.get(fs, set()), after.get(fs, set())
        changes += [f"+{fs}@{s}" for s in sorted(new - old)]
        changes += [f"-{fs}@{s}" for s in sorted(old - new)]
    return changes


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _processes(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def summarize(runs: Sequence[dict[str, object]]) -> dict[str, object]:
    """Figures of one tool in one workload from its timed runs (only the valid ones count)."""
    good = [r for r in runs if r.get("ok")]
    seconds = [float(r["seconds"]) for r in good]  # type: ignore[arg-type]
    processes = [int(r["processes"]) for r in good]  # type: ignore[call-overload]
    summary: dict[str, object] = {"runs": len(runs), "valid_runs": len(good)}
    if good:
        summary["verbs_first_valid_run"] = good[0].get("verbs", {})
        summary |= {f"{k}_seconds": round(v, 2) for k, v in spread(seconds).items()}
        summary |= {
            "processes_median": statistics.median(processes),
            "processes_min": min(processes),
            "processes_max": max(processes),
        }
    return summary


def render_table(workload: Mapping[str, object], labels: dict[str, str], us: str = "zr") -> str:
    """One workload's Markdown table: tool, median/min/max seconds, zfs+zpool processes and
    the ratios peer/us (seconds of the medians, processes of the medians)."""
    tools: dict[str, dict[str, object]] = workload["tools"]  # type: ignore[assignment]
    ours = tools.get(us, {})
    lines = [
        "| tool | median (s) | min (s) | max (s) | zfs+zpool processes | "
        "ratio peer/us (seconds) | ratio peer/us (processes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, figures in tools.items():
        if not figures.get("valid_runs"):
            lines.append(f"| {labels.get(key, key)} | – | – | – | – | – | – |")
            continue
        seconds = ratio(figures.get("median_seconds"), ours.get("median_seconds"))  # type: ignore[arg-type]
        procs = ratio(figures.get("processes_median"), ours.get("processes_median"))  # type: ignore[arg-type]
        is_us = key == us
        cells = [
            labels.get(key, key) + (" (us)" if is_us else ""),
            _fmt(figures["median_seconds"]),  # type: ignore[arg-type]
            _fmt(figures["min_seconds"]),  # type: ignore[arg-type]
            _fmt(figures["max_seconds"]),  # type: ignore[arg-type]
            _processes([int(figures["processes_min"]), int(figures["processes_max"])]),  # type: ignore[call-overload]
            "1" if is_us else _fmt(seconds),
            "1" if is_us else _fmt(procs),
        ]
        if figures.get("valid_runs") != figures.get("runs"):
            cells[0] += f" ({figures['valid_runs']} of {figures['runs']} runs valid)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_verbs(workload: Mapping[str, object], labels: dict[str, str]) -> str:
    """One line per tool: the zfs/zpool verbs of its first valid run, most frequent first."""
    tools: dict[str, dict[str, object]] = workload["tools"]  # type: ignore[assignment]
    lines = ["Processes by verb (each tool's first valid run):", ""]
    for key, figures in tools.items():
        verbs: dict[str, int] = figures.get("verbs_first_valid_run") or {}  # type: ignore[assignment]
        ranked = sorted(verbs.items(), key=lambda item: (-item[1], item[0]))
        text = ", ".join(f"`{verb}` {count}" for verb, count in ranked) or "–"
        lines.append(f"- {labels.get(key, key)}: {text}")
    return "\n".join(lines)


def replace_section(text: str, heading: str, body: str) -> str:
    """text with the section under heading (up to the next `## ` heading, or the end) replaced
    by body; appended at the end when the heading is not there yet."""
    section = f"{heading}\n\n{body.strip()}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else "")


# --- the guest side ----------------------------------------------------------------------------


@dataclass
class Bench:
    guest: Guest
    workdir: Path
    filesystems: int
    tools: dict[str, Tool]
    wrappers: Path
    zfs: str
    runs: list[dict[str, object]] = field(default_factory=list)
    synced: bool = False  # the last pass was a sync pass (syncoid then in sync with any name)
    last_seconds: dict[str, float] = field(default_factory=dict)

    def order(self, keys: Sequence[str]) -> list[str]:
        """keys, without the tools this run leaves out (`--tools`)."""
        return [key for key in keys if key in self.tools]

    @property
    def sources(self) -> list[str]:
        return [f"{SOURCE}/fs{i:0{self.width}d}" for i in range(self.filesystems)]

    @property
    def width(self) -> int:
        return max(3, len(str(self.filesystems - 1)))

    def sh(self, script: str, timeout: float = 7200) -> str:
        done = self.guest.sh(script, timeout=timeout)
        if done.returncode != 0:
            raise HarnessError(f"{script[:300]}: {done.stderr.decode(errors='replace')[-2000:]}")
        return str(done.stdout.decode())

    def clock(self) -> int:
        return int(self.sh("date +%s"))

    def next_hour(self) -> None:
        """Move the guest clock forward to one minute past the next full hour."""
        now = self.clock()
        self.sh(f"date -u -s @{(now // 3600 + 1) * 3600 + 60} > /dev/null")

    def listing(self) -> dict[str, set[str]]:
        return parse_listing(
            self.sh(f"{self.zfs} list -H -o name -t snapshot -r {SOURCE} backup", timeout=3600)
        )

    def write_data(self, tag: str) -> None:
        """The same bytes into every source filesystem (untimed)."""
        self.sh(
            f"set -e; for d in /{SOURCE}/fs*; do cp {self.workdir / 'blob'} $d/{tag}; done; "
            "zpool sync tank"
        )

    def run_tool(self, tool: Tool, label: str) -> dict[str, object]:
        """One timed run of tool inside the guest; its output and zfs call log in the logs."""
        logs = self.workdir / "logs"
        stem = f"{len(self.runs):03d}-{label}-{tool.key}"
        calls = logs / f"{stem}.calls"
        script = self.workdir / "scripts" / f"{stem}.sh"
        script.write_text(
            RUN_SCRIPT.format(
                wrappers=self.wrappers,
                calls=calls,
                cwd=REPO,
                commands=" && ".join(tool.commands),
                out=logs / f"{stem}.out",
                err=logs / f"{stem}.err",
            )
        )
        if tool.key == "sanoid":  # a cold cache, as for a cron run every 15 minutes
            self.sh(f"rm -rf {self.workdir / 'sanoid' / 'cache'}")
        words = self.sh(f"sh {script}", timeout=4 * 3600).split()
        code, up0, up1, clock0, clock1 = int(words[0]), *map(float, words[1:])
        verbs = parse_calls(calls.read_text() if calls.exists() else "")
        run: dict[str, object] = {
            "label": label,
            "tool": tool.key,
            "exit": code,
            "seconds": round(up1 - up0, 2),
            "processes": sum(verbs.values()),
            "verbs": dict(sorted(verbs.items())),
            "clock": [int(clock0), int(clock1)],
            "log": str(logs / stem),
        }
        self.runs.append(run)
        self.last_seconds[tool.key] = up1 - up0
        return run

    def sync_pass(self, why: str) -> None:
        """Untimed: a new hour, new data, each tool's periodic run (checked like a P4 run)."""
        self.next_hour()
        self.write_data(f"sync-{len(self.runs)}")
        for key in self.order(SYNC_ORDER):
            tool = self.tools[key]
            before = self.listing()
            run = self.run_tool(tool, f"sync-{why}")
            problems = new_snapshot_problems(
                before, self.listing(), self.sources, tool.scheme, tool.target_of
            )
            _stage(f"sync ({why}): {key} {run['seconds']} s, {run['processes']} processes")
            if run["exit"] != 0 or problems:
                raise HarnessError(
                    f"{key} did not sync (exit {run['exit']}, {problems[:5]}); see {run['log']}.*"
                )
        self.synced = True


def _setup(bench: Bench, seed_hours: int) -> None:
    n = bench.filesystems
    _stage(f"creating {n} filesystems with a little data each")
    (bench.workdir / "blob").write_bytes(os.urandom(DATA_BYTES))
    names = " ".join(fs.rpartition("/")[2] for fs in bench.sources)
    bench.sh(
        f"set -e; zfs set atime=off tank; zfs create {SOURCE}; for f in {names}; do "
        f"zfs create {SOURCE}/$f; head -c 262144 /dev/urandom > /{SOURCE}/$f/data; done; "
        "zpool sync tank; zfs create -p backup/zr; zfs create -p backup/syncoid/bench; "
        "zfs create -p backup/bzfs/bench; zfs create -p backup/zab; "
        f"zfs set autobackup:bench=child {SOURCE}",
        timeout=4 * 3600,
    )
    created = bench.listing()  # none yet; check the names instead
    listed = bench.sh(f"zfs list -H -o name -r {SOURCE}").split()
    if sorted(listed) != sorted([SOURCE, *bench.sources]) or created:
        raise RuntimeError(f"unexpected source tree: {listed[:5]}…")
    for hour in range(seed_hours):
        _stage(f"seeding: hour {hour + 1} of {seed_hours}")
        bench.sync_pass(f"seed{hour + 1}")


def run_p1(bench: Bench, rounds: int, name: str = "p1") -> dict[str, object]:
    runs: dict[str, list[dict[str, object]]] = {k: [] for k in bench.order(TOOL_ORDER)}
    retries = 0
    if not bench.synced:
        bench.sync_pass(f"{name}-start")
    for r in range(rounds):
        for key in rotated(bench.order(TOOL_ORDER), r):
            tool = bench.tools[key]
            for _attempt in range(2):
                margin = max(300.0, 3 * bench.last_seconds.get(key, 100.0))
                if 3600 - bench.clock() % 3600 < margin:
                    bench.sync_pass(f"{name}-hour")  # too close to the hour: start a new one
                before = bench.listing()
                run = bench.run_tool(tool, f"{name}-r{r + 1}")
                changes = listing_changes(before, bench.listing())
                clock = run["clock"]
                crossed = clock[0] // 3600 != clock[1] // 3600  # type: ignore[index]
                run["changes"] = changes[:20]
                run["ok"] = run["exit"] == 0 and not changes
                _stage(
                    f"{name} round {r + 1}: {key} {run['seconds']} s, {run['processes']} "
                    f"processes, exit {run['exit']}, {len(changes)} snapshot changes"
                )
                if run["ok"]:
                    break
                # back to a state where every tool is in sync before the next run
                bench.synced = False
                bench.sync_pass(f"{name}-repair")
                if not crossed:
                    break
                retries += 1  # an hour boundary passed during the run: not a fair no-op
            runs[key].append(run)
    return _workload(bench, runs, retries=retries)


def run_p4(bench: Bench, rounds: int) -> dict[str, object]:
    runs: dict[str, list[dict[str, object]]] = {k: [] for k in bench.order(TOOL_ORDER)}
    for r in range(rounds):
        bench.next_hour()
        bench.write_data(f"p4-{r + 1}")
        for key in rotated(bench.order(TOOL_ORDER), r):
            tool = bench.tools[key]
            before = bench.listing()
            run = bench.run_tool(tool, f"p4-r{r + 1}")
            problems = new_snapshot_problems(
                before, bench.listing(), bench.sources, tool.scheme, tool.target_of
            )
            run["problems"] = problems[:20]
            run["ok"] = run["exit"] == 0 and not problems
            _stage(
                f"p4 round {r + 1}: {key} {run['seconds']} s, {run['processes']} processes, "
                f"exit {run['exit']}, {len(problems)} problems"
            )
            runs[key].append(run)
        bench.synced = False
    return _workload(bench, runs)


def _workload(
    bench: Bench, runs: dict[str, list[dict[str, object]]], retries: int = 0
) -> dict[str, object]:
    result: dict[str, object] = {
        "filesystems": bench.filesystems,
        "tools": {key: summarize(tool_runs) for key, tool_runs in runs.items()},
        "runs": runs,
    }
    if retries:
        result["retried_for_an_hour_boundary"] = retries
    return result


def _versions(bench: Bench) -> dict[str, str]:
    versions = {key: bench.sh(tool.version_command).strip() for key, tool in bench.tools.items()}
    versions["zfs"] = bench.sh("zfs version | head -n 1").strip()
    return versions


def bench_guest(
    filesystems: int,
    rounds: int,
    workloads: Sequence[str],
    seed_hours: int,
    logroot: Path,
    tools: Sequence[str] = TOOL_ORDER,
) -> dict[str, object]:
    workdir = logroot / f"n{filesystems}"
    for sub in ("logs", "scripts", "wrappers"):
        (workdir / sub).mkdir(parents=True)
    wrappers = workdir / "wrappers"
    large = filesystems > 300
    started = time.monotonic()
    guest = start_guest(
        f"zr-peers-{os.getpid()}-{filesystems}",
        {"tank": "8G" if large else "4G", "backup": "24G" if large else "8G"},
        memory_mib=3072 if large else 2048,
        share=[str(workdir)],
    )
    result: dict[str, object] = {
        "filesystems": filesystems,
        "rounds": rounds,
        "seed_hours": seed_hours,
        "accel": guest.accel,
        "boot_seconds": guest.boot_seconds,
        "logs": str(workdir / "logs"),
    }
    try:
        zfs = guest.sh("command -v zfs", check=True).stdout.decode().strip()
        zpool = guest.sh("command -v zpool", check=True).stdout.decode().strip()
        for name, real in (("zfs", zfs), ("zpool", zpool)):
            (wrappers / name).write_text(WRAPPER.format(name=name, real=real))
            (wrappers / name).chmod(0o755)
        _prepare_configs(workdir, wrappers)
        chosen = {key: tool for key, tool in _tools(workdir).items() if key in tools}
        bench = Bench(guest, workdir, filesystems, chosen, wrappers, zfs)
        result["versions"] = _versions(bench)
        result["commands"] = {key: list(tool.commands) for key, tool in bench.tools.items()}
        t = time.monotonic()
        _setup(bench, seed_hours)
        result["setup_seconds"] = round(time.monotonic() - t, 1)
        for workload in workloads:
            t = time.monotonic()
            _stage(f"{workload} at {filesystems} filesystems, {rounds} rounds")
            if workload == "p1":
                result["p1"] = run_p1(bench, rounds)
            else:
                result["p4"] = run_p4(bench, rounds)
            result[workload]["seconds"] = round(time.monotonic() - t, 1)  # type: ignore[index]
        result["sync_runs"] = [r for r in bench.runs if str(r["label"]).startswith("sync")]
        final = bench.sh(
            f"zfs list -H -o name,creation -t snapshot -s createtxg -r {SOURCE} backup"
        )
        (workdir / "logs" / "final-snapshots.txt").write_text(final)
    except (HarnessError, RuntimeError, subprocess.TimeoutExpired) as error:
        result["error"] = str(error)
        _stage(f"error: {error}")
    finally:
        guest.stop()
    result["total_seconds"] = round(time.monotonic() - started, 1)
    return result


# --- the docs section --------------------------------------------------------------------------

LABELS = {
    "zr": "zfs-reconciler",
    "sanoid": "sanoid + syncoid",
    "bzfs": "bzfs",
    "zab": "zfs-autobackup",
}
NOT_THE_SAME = """\
What is not the same between the tools (read the figures with these in mind):

- **One source tree for all.** Every tool snapshots the same `tank/bench/fsNNN` (as the issue
  asks), so each one also sees the other tools' snapshots in its listings (4 naming schemes).
  Each replicates into its own tree: `backup/zr/tank/bench/fsNNN`, `backup/syncoid/bench/fsNNN`,
  `backup/bzfs/bench/fsNNN`, `backup/zab/tank/bench/fsNNN`.
- **syncoid** 2.1.0 (Debian bookworm's) has no filter on snapshot names (`--include-snaps`
  came later) and with `--no-sync-snap` replicates up to the newest snapshot of *any* name.
  So it runs with `--no-stream` (one `-i` from the last common snapshot to the newest), right
  after `sanoid --cron`, so that the newest is sanoid's own; and the untimed sync passes end
  with sanoid + syncoid, so that P1 finds it in sync. Without `--no-sync-snap`, syncoid's
  default, it would take a `syncoid_*` snapshot of every filesystem on every run, so its P1
  would not be a no-op (its README: `--no-sync-snap` "restrict[s] itself to existing
  snapshots", "especially useful in multi-target replication schemes"; here the snapshots
  to replicate are sanoid's).
- **sanoid** reads one `zfs get -Hrpt snapshot creation` of every pool; its listing cache
  (15 min) is emptied before each timed run, as for a cron job every 15 minutes.
- **bzfs** is three runs per period, as its README's "common setup" describes (create +
  replicate; prune the source; prune the target with a `dummy` source). The source prune
  names its own snapshots with `--include-snapshot-regex` and ranks instead of
  `--delete-dst-snapshots-except-plan`, which deletes every snapshot the plan does not name
  (the other tools' too, on a shared source). `bzfs_jobrunner` (which runs the same steps as
  bzfs subprocesses) was not used.
- **zfs-autobackup** has no schedule: each run snapshots every filesystem that changed since
  its own newest snapshot (`written@` that snapshot ≥ `--min-change`, default 1 byte). So its
  snapshot is "due" when new data is there, which is how P4 makes it due (64 KiB written to
  every filesystem once per round, before the first tool runs), and P1 is a no-op because
  nothing was written since. Its retention is by count (`--keep-source=24 --keep-target=48`),
  not by hour.
- zfs-reconciler, bzfs and zfs-autobackup take all their snapshots in one `zfs snapshot`
  call; sanoid takes one per filesystem. Replication is per filesystem for all four (a
  `zfs send | zfs receive` each, plus each tool's own checks: syncoid rolls the target back
  to the common snapshot, bzfs and zfs-autobackup estimate the size with `zfs send -n`,
  zfs-autobackup and zfs-reconciler hold and release, bzfs bookmarks each replicated
  snapshot, zfs-reconciler bookmarks all the new cursors in one `zfs program` and destroys
  each old cursor bookmark with a `zfs destroy` of its own).
- The retention rules keep 24/48, more than the runs create, so no tool prunes during the
  runs: P4 measures snapshot + replicate + the check that nothing is to prune. The retention
  settings themselves were checked in a development run with `ZR_BENCH_PEERS_KEEP=2,3`
  (3 filesystems, 5 snapshots per tool): every tool then destroyed its own oldest snapshot on
  both sides of every filesystem and nothing else (the other tools' checks kept passing).
"""


def render_section(
    results: Sequence[dict[str, object]], took: float, note: str = "", when: str = ""
) -> str:
    parts = [f"**{note.strip()}**"] if note.strip() else []
    first = results[0]
    versions: dict[str, str] = first.get("versions", {})  # type: ignore[assignment]
    parts.append(
        "`python -m platform_tests.bench_peers` (`make bench-peers`; `make peers-setup` installs "
        "the peers: Debian's `sanoid` package, and `bzfs`, `zfs-autobackup` from PyPI in "
        f"`{PEERS_VENV}`). Run {when or 'written ' + _utc()}; the "
        f"whole run took {took / 60:.0f} min. Versions: "
        + "; ".join(f"{k}: `{' / '.join(v.splitlines())}`" for k, v in versions.items())
        + "."
    )
    parts.append(
        "One guest (OpenZFS under TCG emulation here, so every `zfs` process costs ~0.13 s and "
        "every Python or perl start-up is slow), pools `tank` and `backup`; the tools run in "
        "the guest, one after the other, in an order rotated round by round. Seconds: wall "
        "time inside the guest around the tool's commands. Processes: `zfs` and `zpool` "
        "processes the tool started (a counting wrapper first in PATH, inherited by `sh -c`). "
        "Ratios: the peer's median over ours (above 1: the peer is slower / starts more). "
        "Each run is checked afterwards: P1 changed no snapshot anywhere; P4 left exactly one "
        "new snapshot of the tool's on every source filesystem and on its replica."
    )
    for result in results:
        n = result["filesystems"]
        if "error" in result:
            parts.append(f"**{n} filesystems: stopped on an error:** `{result['error'][:500]}`")  # type: ignore[index]
        setup = float(result.get("setup_seconds") or 0)  # type: ignore[arg-type]
        for key, title in (("p1", "P1 no-op"), ("p4", "P4 incremental")):
            workload = result.get(key)
            if not isinstance(workload, dict):
                continue
            parts.append(
                f"### {title}: {n:,} filesystems, {result['rounds']} rounds "
                f"({float(workload.get('seconds', 0)) / 60:.0f} min; setup and seeding "
                f"{setup / 60:.0f} min, {result['seed_hours']} snapshots per tool)"
            )
            parts.append(render_table(workload, LABELS))
            parts.append(render_verbs(workload, LABELS))
            if workload.get("retried_for_an_hour_boundary"):
                parts.append(
                    f"{workload['retried_for_an_hour_boundary']} run(s) crossed an hour "
                    "boundary and were repeated after a sync pass."
                )
            bad = [
                f"{r['tool']} {r['label']}: exit {r['exit']}, "
                f"{(r.get('changes') or r.get('problems') or [])[:2]}"
                for runs in workload["runs"].values()
                for r in runs
                if not r.get("ok")
            ]
            if bad:
                parts.append("Runs that did not do the job: " + "; ".join(bad))
    commands: dict[str, list[str]] = first.get("commands", {})  # type: ignore[assignment]
    config = ["Configuration (the exact commands of one periodic run, in the guest):", ""]
    for key, lines in commands.items():
        config.append(f"- {LABELS.get(key, key)}:")
        config += [f"  `{line}`" for line in lines]
    config.append(
        "- zfs-reconciler's manifests: a Host `local` with `zfsCommand` the counting wrapper, "
        f"and a Policy on `{SOURCE}<` (not `{SOURCE}` itself): `snapshots: {{prefix: zr_, "
        f'cron: "@hourly"}}`, source `lastN: {SOURCE_KEEP}`, one target `backup` into '
        f"`backup/zr` with `lastN: {TARGET_KEEP}`. sanoid.conf: `[{SOURCE}]` and "
        "`[backup/syncoid/bench]`, both `recursive = yes`, `process_children_only = yes`; "
        f"templates `hourly = {SOURCE_KEEP}` (autosnap) and `hourly = {TARGET_KEEP}` (autosnap "
        "no, autoprune yes), every other period 0. zfs-autobackup: `zfs set "
        f"autobackup:bench=child {SOURCE}`."
    )
    parts.append("\n".join(config))
    parts.append(
        "The clock: before each P4 round and each untimed sync pass the guest's clock moves "
        "forward to one minute past the next full hour, so that every tool's hourly snapshot "
        "is due by its own rule (sanoid and bzfs: the hour's anchor at minute 0; zfs-reconciler: "
        "cron `@hourly`; zfs-autobackup: data written since its newest snapshot; the same "
        "64 KiB are written to every filesystem once per P4 round and sync pass). P1 runs "
        "only when the hour has room left for it; a P1 run that crossed an hour boundary "
        "is repeated. Seeding: that many sync passes (new hour, new data, each tool once), "
        "the first one a full send per tool."
    )
    parts.append(NOT_THE_SAME)
    return "\n\n".join(parts)


def _utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write_docs(
    results: Sequence[dict[str, object]],
    took: float,
    note: str = "",
    when: str = "",
    path: Path = DOCS,
) -> None:
    body = render_section(results, took, note, when)
    path.write_text(replace_section(path.read_text(), HEADING, body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--filesystems", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", default="p1,p4")
    parser.add_argument("--seed-hours", type=int, default=3, help="snapshots per tool before P1")
    parser.add_argument(
        "--large", type=int, default=0, help="then P1 again at this many filesystems (0: no)"
    )
    parser.add_argument("--large-seed-hours", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="log directory (default: new)")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--note", default="", help="a line heading the docs section")
    parser.add_argument(
        "--tools",
        default=",".join(TOOL_ORDER),
        help="the tools to run (default: all; zfs-reconciler always): " + ",".join(TOOL_ORDER),
    )
    parser.add_argument(
        "--from-json", type=Path, default=None, help="only write the docs from this result"
    )
    options = parser.parse_args(argv)
    if options.from_json:  # no guest: the docs section from an earlier run's JSON
        earlier = json.loads(options.from_json.read_text())
        when = earlier.get("started", "")
        write_docs(earlier["results"], earlier["total_seconds"], options.note, when)
        _stage(f"wrote {DOCS} from {options.from_json}")
        return 0
    workloads = [w.strip() for w in options.workloads.split(",") if w.strip()]
    if not workloads or set(workloads) - {"p1", "p4"} or options.rounds < 1:
        parser.error("--workloads takes p1 and/or p4; --rounds at least 1")
    tools = ["zr", *(t.strip() for t in options.tools.split(",") if t.strip() not in ("", "zr"))]
    if set(tools) - set(TOOL_ORDER):
        parser.error(f"--tools takes {', '.join(TOOL_ORDER)}")
    if options.write_docs and set(tools) != set(TOOL_ORDER):
        parser.error("--write-docs writes the table of all the tools: not with --tools")
    logroot = options.logs or Path(f"/tmp/zr-bench-peers-{time.strftime('%Y%m%dT%H%M%S')}")
    logroot.mkdir(parents=True, exist_ok=True)
    _stage(f"logs in {logroot}")
    started, when = time.monotonic(), _utc()
    results = [
        bench_guest(
            options.filesystems, options.rounds, workloads, options.seed_hours, logroot, tools
        )
    ]
    if options.large:
        results.append(
            bench_guest(
                options.large, options.rounds, ["p1"], options.large_seed_hours, logroot, tools
            )
        )
    took = time.monotonic() - started
    document = {
        "started": when,
        "logs": str(logroot),
        "total_seconds": round(took, 1),
        "results": results,
    }
    text = json.dumps(document, indent=2, default=sorted)
    print(text)
    (logroot / "result.json").write_text(text)
    if options.out:
        options.out.write_text(text)
    if options.write_docs:
        write_docs(results, took, options.note, when)
        _stage(f"wrote {DOCS}")
    _stage(f"logs in {logroot}; took {took / 60:.1f} min")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
