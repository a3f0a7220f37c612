"""Validation benchmark: manifest sets of 0.25, 0.5, 1 and 2 MB, validated through the real
loader, with the time per MB so that linear growth (or its absence) shows.

Each size is generated as YAML text in one of several shapes (`SHAPES`): `distinct` is the
issue's set (every policy with its own filter and prefix, every target into backup:vault/nas);
the others are adversarial for the checks between documents. For each set: the whole
`parse_manifests` (YAML reading, models, semantic validation, errors), best of `--repeat`; and
the semantic part alone, `validate_manifests` on the documents the loader passed it (captured
once), best of `--repeat`. Run as `python -m tests.bench.validate_bench [--parts shapes,fleet]
[--shapes distinct,same] [--sizes 0.25,1] [--repeat N]`.

The fleet part (`--parts fleet`, issue 11 item 5) measures what a user waits for: a fleet's
manifests (`tests/bench/fleet.py`: N Hosts over ssh and N Policies, each replicating to the next
host) of 0.25, 0.5, 1 and 2 MB, written in one file and split in files of 20 documents, validated
end to end by `reconcile validate -f DIR` in a subprocess (wall time, best of `--repeat`, every
run listed), and in process by `load_manifests` (the same without the start-up). The example
(`manifests/`) is run the same way: its time is the start-up that every size pays once, so the
time per MB is given whole and after the start-up (linear growth: the latter stays flat). The
fleet part prints one JSON document; the shapes part, a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from reconciler.manifest import loader
from reconciler.manifest.loader import ManifestErrors, load_manifests, parse_manifests
from reconciler.manifest.validate import validate_manifests
from reconciler.manifest.yamldoc import read_documents
from tests.bench.fleet import fleet_count, write_fleet

MB = 1_000_000

HOSTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: backup}
spec:
  transport: ssh
  ssh: {host: backup.example.org, user: zrep}
"""

POLICY = """\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: p{i}, labels: {{tier: gold}}}}
spec:
  source:
    host: nas
    filesystems: {{{filesystems}}}
  snapshots: {{prefix: {prefix}, interval: 15m}}
  retention:
    keep:
      - grid: "1x1h(keep=all) | 24x1h | 14x1d"
      - regex: "T000000Z$"
  replication:
{targets}"""

TARGET = """\
    - name: offsite
      host: backup
      root: vault/nas
      protection: resumable
      initialReplication: mostRecent
      send: {raw: true, compressed: true, largeBlocks: true}
      receive:
        properties: {override: {readonly: "on", canmount: "noauto"}, inherit: [mountpoint]}
      retention:
        keep:
          - grid: "1x1h(keep=all) | 24x1h | 35x1d | 12x30d"
          - lastN: 3
"""


def _entries(mapping: dict[str, bool]) -> str:
    return ", ".join(f'"{path}": {str(include).lower()}' for path, include in mapping.items())


def _policy(i: int, filesystems: dict[str, bool], prefix: str, targets: str = TARGET) -> str:
    return POLICY.format(i=i, filesystems=_entries(filesystems), prefix=prefix, targets=targets)


def distinct(i: int) -> str:
    """The issue's set: own filter, own prefix, every target into backup:vault/nas."""
    return _policy(i, {f"tank/p{i}<": True, f"tank/p{i}/scratch<": False}, f"zr{i}_")


def same(i: int) -> str:
    """Every policy selects the same filesystems with the same prefix into the same root: each
    collides with the first (n - 1 problems of each kind; all pairs would be n(n - 1)/2)."""
    return _policy(i, {"tank/home<": True, "tank/home/scratch<": False}, "zr_")


def nested(i: int) -> str:
    """Chains of nested filters (`tank0/n<`, `tank0/n/n<`, ... 100 deep), one prefix, one
    root: each policy takes one level and excludes the next, so none overlaps though every
    one is an ancestor of the later ones in its chain."""
    path = f"tank{i // 100}" + "/n" * (i % 100 + 1)
    return _policy(i, {f"{path}<": True, f"{path}/n<": False}, "zr_")


def wide(i: int) -> str:
    """40 filter entries per policy (20 subtrees, 20 exclusions below them), one prefix."""
    filesystems: dict[str, bool] = {}
    for j in range(20):
        filesystems[f"tank/p{i}/d{j}<"] = True
        filesystems[f"tank/p{i}/d{j}/tmp"] = False
    return _policy(i, filesystems, "zr_")


def targets(i: int) -> str:
    """16 targets per policy (the limit): 8 on backup, into vault and vault/tJ (roots shared by
    every policy and nested, so every backup target is compared in one group), and 8 on the
    source host under tank/bJ (checked for replication into itself)."""
    roots = ["vault", *(f"vault/t{j}" for j in range(1, 8))]
    lines = [f"    - {{name: b{j}, host: backup, root: {root}}}\n" for j, root in enumerate(roots)]
    lines += [f"    - {{name: l{j}, host: nas, root: tank/b{j}}}\n" for j in range(8)]
    return _policy(i, {f"tank/p{i}<": True}, "zr_", "".join(lines))


SHAPES: dict[str, Callable[[int], str]] = {
    "distinct": distinct,
    "same": same,
    "nested": nested,
    "wide": wide,
    "targets": targets,
}
ONE_BIG = "one-big"  # one policy excluding every other policy's filesystems (built apart)


def manifest_text(shape: str, size: int) -> str:
    """About `size` bytes of manifests of `shape` (whole policies, so a little more)."""
    if shape == ONE_BIG:
        return _one_big(size)
    parts = [HOSTS]
    length, i = len(HOSTS), 0
    while length < size:
        parts.append(SHAPES[shape](i))
        length += len(parts[-1])
        i += 1
    return "".join(parts)


def _one_big(size: int) -> str:
    """`tank<` minus every `tank/pI<`, and every `tank/pI<` alone, one prefix, one root: each
    small policy meets the big one (a check costing what the big filter holds, each time, in
    the old all-pairs loop) and overlaps none."""

    def small(i: int) -> str:
        return _policy(i, {f"tank/p{i}<": True}, "zr_")

    each = len(small(99_999)) + len('"tank/p99999<": false, ')  # a small one and its exclusion
    count = max(1, (size - len(HOSTS)) // each)
    big = {"tank<": True} | {f"tank/p{i}<": False for i in range(1, count + 1)}
    return HOSTS + _policy(0, big, "zr_") + "".join(small(i) for i in range(1, count + 1))


def _best(repeat: int, run: Callable[[], Any]) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def _parse(text: str) -> int:
    """Errors reported by the whole load (0 when the set is valid)."""
    try:
        parse_manifests([("bench.yaml", text)])
    except ManifestErrors as caught:
        return len(caught.errors)
    return 0


def _semantic_inputs(text: str) -> tuple[list[str], list[Any], set[str]]:
    """What the loader hands `validate_manifests` for `text` (as `loader._check_semantics`)."""
    loaded = loader._Loaded()
    documents, _ = read_documents("bench.yaml", text)
    for document in documents:
        loader._load_document(document, loaded)
    policies = [policy for policy, _ in loaded.policies.values()]
    return list(loaded.hosts), policies, loaded.invalid_hosts


def measure(shape: str, size: int, repeat: int) -> dict[str, Any]:
    text = manifest_text(shape, size)
    errors = _parse(text)
    hosts, policies, unchecked = _semantic_inputs(text)
    problems = validate_manifests(hosts, policies, unchecked)
    return {
        "shape": shape,
        "mb": len(text.encode()) / MB,
        "policies": len(policies),
        "targets": sum(len(policy.spec.replication) for policy in policies),
        "problems": len(problems),
        "errors": errors,
        "semantic": _best(repeat, lambda: validate_manifests(hosts, policies, unchecked)),
        "whole": _best(repeat, lambda: _parse(text)),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        "| shape | MB | policies | targets | problems | semantic best | semantic per MB "
        "| whole load best | whole per MB |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        mb = row["mb"]
        lines.append(
            f"| {row['shape']} | {mb:.2f} | {row['policies']:,} | {row['targets']:,} "
            f"| {row['problems']:,} | {row['semantic']:.3f} s | {row['semantic'] / mb:.3f} s "
            f"| {row['whole']:.2f} s | {row['whole'] / mb:.2f} s |"
        )
    return "\n".join(lines)


def _runs(repeat: int, run: Callable[[], Any]) -> dict[str, Any]:
    """Wall times of `repeat` runs: all of them and the best."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return {"runs": [round(timing, 4) for timing in timings], "best": round(min(timings), 4)}


def _command() -> list[str]:
    """`reconcile validate` as a user runs it: the installed script beside this interpreter."""
    script = Path(sys.executable).with_name("reconcile")
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


def _validate(directory: Path) -> Callable[[], None]:
    argv = [*_command(), "validate", "-f", str(directory)]

    def run() -> None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")

    return run


def fleet_rows(sizes: Sequence[float], repeat: int, work: Path) -> dict[str, Any]:
    """The fleet part: the example, then each size in one file and split, end to end and in
    process."""
    example = Path(__file__).resolve().parents[2] / "manifests"
    startup = _runs(repeat, _validate(example))
    rows = []
    for size in sizes:
        count = fleet_count(int(size * MB))
        for layout in ("one file", "split"):
            directory = work / f"{size}-{layout.replace(' ', '-')}"
            total = write_fleet(directory, count, split=layout == "split")
            files = len(list(directory.rglob("*.yaml")))
            end_to_end = _runs(repeat, _validate(directory))
            in_process = _runs(repeat, partial(load_manifests, [directory]))
            mb = total / MB
            rows.append(
                {
                    "layout": layout,
                    "mb": round(mb, 3),
                    "bytes": total,
                    "files": files,
                    "documents": 2 * count,
                    "hosts": count,
                    "policies": count,
                    "end_to_end": end_to_end,
                    "end_to_end_per_mb": round(end_to_end["best"] / mb, 4),
                    "after_startup_per_mb": round((end_to_end["best"] - startup["best"]) / mb, 4),
                    "in_process": in_process,
                    "in_process_per_mb": round(in_process["best"] / mb, 4),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            shutil.rmtree(directory)
    return {
        "command": " ".join([*_command(), "validate", "-f", "DIR"]),
        "repeat": repeat,
        "example": {"path": "manifests/", "end_to_end": startup},
        "fleet": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="shapes,fleet", help="shapes, fleet or both")
    parser.add_argument("--shapes", default=",".join([*SHAPES, ONE_BIG]))
    parser.add_argument("--sizes", default="0.25,0.5,1,2", help="MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [float(size) for size in args.sizes.split(",")]
    parts = args.parts.split(",")
    if "shapes" in parts:
        rows = []
        for shape in args.shapes.split(","):
            for size in sizes:
                rows.append(measure(shape, int(size * MB), args.repeat))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
        print()
        print(table(rows))
    if "fleet" in parts:
        with tempfile.TemporaryDirectory(prefix="validate-bench-") as work:
            print(json.dumps(fleet_rows(sizes, args.repeat, Path(work)), indent=2))


if __name__ == "__main__":
    main()
