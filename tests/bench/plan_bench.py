"""Planner benchmark (`make bench`): plan 2,000 filesystems × 500 snapshots with one policy and
two targets, and report wall time and peak RSS, and the time of `needed_details` on the same
state (what a pass computes between its cheap listing and its details listing).

The observed state comes from `tests/bench/synthetic.py` (source plus two targets that lag two
snapshots behind, so the plan has a snapshot, sends, holds, bookmarks and retention destroys).
The manifests are YAML text loaded through the real loader. Run as
`python -m tests.bench.plan_bench [--filesystems N] [--snapshots N] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
from pathlib import Path

from reconciler.core.desired import intents
from reconciler.core.details import needed_details
from reconciler.core.planner import plan_intents
from reconciler.core.render import summary_line
from reconciler.manifest.loader import load_manifests
from tests.bench.synthetic import (
    SOURCE_HOST,
    SOURCE_ROOT,
    TARGET_HOSTS,
    TARGET_ROOT,
    synthetic_observed,
)

NOW = 1_795_694_400  # 2026-11-26T12:00:00Z

MANIFESTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: {source}}}
spec: {{transport: local}}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: {target1}}}
spec: {{transport: local}}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: {target2}}}
spec: {{transport: local}}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: data}}
spec:
  source: {{host: {source}, filesystems: {{"{root}<": true, "{root}": false}}}}
  snapshots: {{prefix: zr_, interval: 15m}}
  retention: {{keep: [{{grid: "{source_grid}"}}]}}
  replication:
    - name: one
      host: {target1}
      root: {target_root}
      retention: {{keep: [{{grid: "{target_grid}"}}, {{lastN: 3}}]}}
    - name: two
      host: {target2}
      root: {target_root}
      protection: incremental
      retention: {{keep: [{{grid: "{target_grid}"}}]}}
"""


# steady: the retention keeps the last 5 days (480 of the 500 snapshots) and thins the rest, as
# a pass does when it runs every 15 minutes; prune: a short grid meets 5 days of 15-minute
# snapshots for the first time and destroys most of them (2.8M destroys in one plan).
SCENARIOS = {
    "steady": {"source_grid": "1x5d(keep=all) | 14x1d", "target_grid": "1x5d(keep=all) | 35x1d"},
    "prune": {
        "source_grid": "1x1h(keep=all) | 24x1h | 14x1d",
        "target_grid": "1x1h(keep=all) | 24x1h | 35x1d",
    },
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--filesystems", type=int, default=2000)
    parser.add_argument("--snapshots", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="steady")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(
            MANIFESTS.format(
                source=SOURCE_HOST,
                target1=TARGET_HOSTS[0],
                target2=TARGET_HOSTS[1],
                root=SOURCE_ROOT,
                target_root=TARGET_ROOT,
                **SCENARIOS[args.scenario],
            )
        )
        manifests = load_manifests([path])
    started = time.perf_counter()
    observed = synthetic_observed(args.filesystems, args.snapshots, now=NOW)
    built = time.perf_counter() - started
    gc.freeze()  # the observed state lives for the whole pass: keep the collector off it
    versions = sum(
        len(fs.versions) for host in observed.hosts.values() for fs in host.filesystems.values()
    )
    rss_observed = _rss_mib()
    timings = []
    plan = None
    for _ in range(args.repeat):
        plan = None
        started = time.perf_counter()
        plan = plan_intents(intents(manifests), observed, NOW)  # fresh memos each run
        timings.append(time.perf_counter() - started)
    assert plan is not None
    needed_timings = []
    needed: dict[str, frozenset[str]] = {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        needed = needed_details(intents(manifests), observed, NOW)
        needed_timings.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "scenario": args.scenario,
                "filesystems": args.filesystems,
                "snapshots_per_filesystem": args.snapshots,
                "versions_observed": versions,
                "build_observed_s": round(built, 2),
                "peak_rss_after_observed_mib": round(rss_observed, 1),
                "plan_s": [round(t, 3) for t in timings],
                "plan_best_s": round(min(timings), 3),
                "peak_rss_mib": round(_rss_mib(), 1),
                "actions": len(plan.actions),
                "needed_details_s": [round(t, 3) for t in needed_timings],
                "needed_details_best_s": round(min(needed_timings), 3),
                "snapshots_detailed": sum(len(names) for names in needed.values()),
                "summary": summary_line(plan),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
