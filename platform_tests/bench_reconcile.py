"""Benchmarks of `reconcile` on real OpenZFS in the guest (part of `make bench`).

(a) no-op pass: 100 filesystems × 100 snapshots, each filesystem's newest replicated (the
    target keeps the last one) and protected; one more `reconcile` pass (apply, nothing to
    do): wall time and how many `zfs` processes it started per host. The count comes from
    the Host's `zfsCommand`, pointed at a wrapper that logs each call and then runs zfs.
    Then the same no-op in `reconcile watch` (in the guest), whose passes after the first
    two list no snapshot (`zfs/stamps.py`): each pass's seconds and zfs calls.
(b) 1 GiB full send: one filesystem with 1 GiB of random data, replicated by `reconcile`
    (its send action's own duration, from the JSON report) versus a bare `zfs send | zfs receive` of
    the same snapshot in the same guest, in the same run.

`reconcile` runs inside the guest with transport local, as on a real host (the guest runs
the host's Python under TCG emulation, so planning there is several times slower than on
hardware; the zfs process count does not depend on that). The no-op pass runs a second time
from the host machine over ssh to the guest's sshd: planning at native speed, zfs in the
guest. Prints one JSON document.
(c) `--jobs` for an incremental round: `bench_jobs`.
Run as `python -m platform_tests.bench_reconcile [--only noop|send|jobs]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from platform_tests.harness.vm import Guest, HarnessError, start_guest
from platform_tests.scenario import ssh_host_document
from reconciler.zfs.commands import LIST_COLUMNS

REPO = Path(__file__).resolve().parent.parent
RECONCILE = str(Path(sys.executable).parent / "reconcile")
FILESYSTEMS = 100
SNAPSHOTS = 100
GIB = 1 << 30
COUNTING_ZFS = """#!/bin/sh
echo "$1" >> {log}
exec zfs "$@"
"""
HOSTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: local}}
spec: {{zfsCommand: [{zfs}]}}
"""
POLICY = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: {name}}}
spec:
  source:
    host: local
    filesystems: {{{filesystems}}}
  snapshots: {{prefix: zr_, interval: 1d}}
  retention:
    keep: [{{lastN: {keep}}}]
  replication:
    - name: backup
      host: local
      root: {root}
      initialReplication: {initial}
      retention:
        keep: [{{lastN: {target_keep}}}]
"""


def _stage(message: str) -> None:
    print(f"bench: {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _sh(guest: Guest, script: str, timeout: float = 3600) -> str:
    done = guest.sh(script, timeout=timeout)
    if done.returncode != 0:
        raise HarnessError(f"{script[:200]}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def _reconcile(guest: Guest, *args: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = guest.run([RECONCILE, *args], cwd=str(REPO), timeout=7200)
    took = time.monotonic() - started
    return done.returncode, done.stdout.decode(), done.stderr.decode(), took


def _snapshot_names(count: int) -> list[str]:
    base = 1_795_000_000  # 2026-11-18
    return [time.strftime("zr_%Y%m%dT%H%M%SZ", time.gmtime(base + 3600 * i)) for i in range(count)]


def bench_noop(guest: Guest, workdir: Path) -> dict[str, object]:
    source, root = "src/noop", "dst/noop"
    names = _snapshot_names(SNAPSHOTS)
    started = time.monotonic()
    _stage(f"noop: creating {FILESYSTEMS} filesystems")
    _sh(
        guest,
        f"set -e; zfs create {source}; zfs create {root}; "
        f"for i in $(seq -w 0 {FILESYSTEMS - 1}); do zfs create {source}/fs$i; done",
    )
    _stage(f"noop: taking {SNAPSHOTS} recursive snapshots")
    # one `zfs snapshot -r` per snapshot name (all filesystems at once), in one script
    _sh(guest, "set -e; " + "; ".join(f"zfs snapshot -r {source}@{name}" for name in names))
    # the target holds each filesystem's newest snapshot (one full send each): receiving all
    # 10,000 snapshots takes about 1.2 s each under TCG (3 h 20 min, measured: 21 filesystems
    # in 39 min), so the target keeps lastN 1 and the source all 100
    _stage("noop: one full send per filesystem of its newest snapshot")
    _sh(
        guest,
        f"set -e; zfs create -p {root}/{source}; "
        f"for i in $(seq -w 0 {FILESYSTEMS - 1}); do "
        f"zfs send {source}/fs$i@{names[-1]} | zfs receive -u {root}/{source}/fs$i; done",
    )
    setup_seconds = time.monotonic() - started
    wrapper, log = _zfs_wrapper(workdir, "zfs-counting", COUNTING_ZFS)
    manifests = _manifest_dir(workdir / "noop", wrapper)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_795_000_000 + 3600 * SNAPSHOTS))
    (manifests / "policy.yaml").write_text(
        POLICY.format(
            name="noop",
            filesystems=f'"{source}<": true, "{source}": false',
            root=root,
            initial="mostRecent",
            keep=SNAPSHOTS + 1,
            target_keep=1,
        )
    )
    args = ("-f", str(manifests), "--now", now, "--output", "json")
    _stage("noop: converging pass (holds, cursor bookmarks)")
    code, _, err, converge = _reconcile(guest, *args)  # adds holds and cursor bookmarks
    if code != 0:
        raise HarnessError(f"converging pass failed ({code}): {err[-2000:]}")
    calls_before = _lines(log)
    _stage("noop: the measured no-op pass")
    code, out, err, noop = _reconcile(guest, *args)
    calls = _lines(log)[len(calls_before) :]
    actions = len(json.loads(out)["plan"]["actions"]) if code == 0 else None
    _stage("noop: the same no-op pass from the host, over ssh")
    over_ssh = workdir / "noop-ssh"
    over_ssh.mkdir()
    (over_ssh / "policy.yaml").write_text((manifests / "policy.yaml").read_text())
    (over_ssh / "hosts.yaml").write_text(_ssh_host(guest, wrapper))
    ssh_args = ("-f", str(over_ssh), "--now", now, "--output", "json")
    calls_before = _lines(log)
    ssh_code, ssh_out, ssh_err, ssh_seconds = _reconcile_on_host(*ssh_args)
    ssh_calls = _lines(log)[len(calls_before) :]
    ssh_actions = len(json.loads(ssh_out)["plan"]["actions"]) if ssh_code == 0 else ssh_err[-500:]
    _stage(f"noop: the loop, `reconcile watch --resync {WATCH_RESYNC}` for {WATCH_SECONDS} s")
    loop = _watch_noop(guest, workdir, manifests)
    _stage("noop: the listing alone, with the observe columns and with the fast ones")
    listings = {
        columns: round(_timed_listing(guest, columns, f"{source} {root}"), 1)
        for columns in (",".join(LIST_COLUMNS), "name,guid,createtxg")
    }
    return {
        "filesystems": FILESYSTEMS,
        "snapshots_per_filesystem": SNAPSHOTS,
        "target_snapshots_per_filesystem": 1,
        "setup_seconds": round(setup_seconds, 1),
        "converging_pass_seconds": round(converge, 1),
        "noop_pass_exit": code,
        "noop_pass_actions": actions,
        "noop_pass_seconds": round(noop, 2),
        "noop_zfs_processes": len(calls),
        "noop_zfs_verbs": calls,
        "from_host_over_ssh": {
            "exit": ssh_code,
            "actions": ssh_actions,
            "seconds": round(ssh_seconds, 2),
            "zfs_processes": len(ssh_calls),
            "zfs_verbs": ssh_calls,
        },
        "hosts": 1,
        "loop": loop,
        "zfs_list_seconds_by_columns": listings,
    }


WATCH_RESYNC = "5s"
WATCH_SECONDS = 150
LOGGING_ZFS = """#!/bin/sh
echo "$*" >> {log}
exec zfs "$@"
"""


def _watch_noop(guest: Guest, workdir: Path, manifests: Path) -> dict[str, object]:
    """The same no-op, passed again and again by `reconcile watch` in the guest (a snapshot
    interval of a year, so none falls due): each pass's seconds from the loop's log, and its
    zfs calls, told apart by what they list (the stamp listing opens every pass)."""
    wrapper, log = _zfs_wrapper(workdir, "zfs-logging", LOGGING_ZFS)
    loop = _manifest_dir(workdir / "noop-watch", wrapper)
    policy = (manifests / "policy.yaml").read_text().replace("interval: 1d", "interval: 365d")
    (loop / "policy.yaml").write_text(policy)
    done = guest.run(
        [
            *("timeout", "--signal=TERM", str(WATCH_SECONDS), RECONCILE, "watch"),
            *("-f", str(loop), "--resync", WATCH_RESYNC, "--lock-dir", str(workdir / "locks")),
        ],
        cwd=str(REPO),
        timeout=WATCH_SECONDS + 120,
    )
    text = done.stderr.decode(errors="replace")
    passes = [
        {"pass": int(n), "outcome": outcome, "actions": int(actions), "seconds": float(took)}
        for n, outcome, actions, took in re.findall(
            r"policy noop: pass (\d+) (\w+): (\d+) actions.* in ([0-9.]+)s", text
        )
    ]
    calls = log.read_text().splitlines() if log.exists() else []
    per_pass: list[list[str]] = []
    for call in calls:
        if "snapshots_changed" in call:
            per_pass.append([])
        if per_pass:
            words = call.split()
            kind = "snapshots" if "-t snapshot -d 1" in call else words[0]
            per_pass[-1].append("stamps" if "snapshots_changed" in call else kind)
    return {"passes": passes, "zfs_calls_per_pass": per_pass}


def _zfs_wrapper(workdir: Path, name: str, template: str) -> tuple[Path, Path]:
    """A zfs wrapper script made from `template` (which logs each call to `{log}`, then runs
    zfs): (the script, its log)."""
    log = workdir / f"{name}.log"
    wrapper = workdir / name
    wrapper.write_text(template.format(log=log))
    wrapper.chmod(0o755)
    return wrapper, log


def _manifest_dir(directory: Path, zfs: Path | str) -> Path:
    """A new manifest directory holding the Host `local`, whose zfsCommand is `zfs`."""
    directory.mkdir()
    (directory / "hosts.yaml").write_text(HOSTS.format(zfs=zfs))
    return directory


def _timed_listing(guest: Guest, columns: str, roots: str) -> float:
    """Seconds of one `zfs list` of every version under the roots, timed inside the guest."""
    timed = _sh(
        guest,
        "start=$(date +%s.%N); "
        f"zfs list -H -p -o {columns} -t filesystem,volume,snapshot,bookmark -r {roots} "
        '> /dev/null; end=$(date +%s.%N); echo "$start $end"',
    ).split()
    return float(timed[1]) - float(timed[0])


def _ssh_host(guest: Guest, zfs: Path) -> str:
    """The Host `local` reached over ssh from the host machine (the guest's sshd)."""
    document = ssh_host_document("local", guest.ssh_destination(), [str(zfs)])
    return json.dumps(document, indent=1) + "\n"


def _reconcile_on_host(*args: str) -> tuple[int, str, str, float]:
    """`reconcile` as a process on the host machine (native speed, not emulated); ssh's
    control sockets in a short runtime directory of its own."""
    with tempfile.TemporaryDirectory(prefix="zr-run-") as runtime:
        started = time.monotonic()
        done = subprocess.run(
            [RECONCILE, *args],
            cwd=str(REPO),
            env={**os.environ, "XDG_RUNTIME_DIR": runtime},
            capture_output=True,
            timeout=3600,
            check=False,
        )
        took = time.monotonic() - started
    return done.returncode, done.stdout.decode(), done.stderr.decode(), took


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


ROUNDS = 5
SETTLE = "zpool wait -t free dst; sync; echo 3 > /proc/sys/vm/drop_caches"
SNAPSHOT = "zr_20261118T000000Z"


def bench_send(guest: Guest, workdir: Path) -> dict[str, object]:
    """ROUNDS rounds, each a bare pipe then the same send through `reconcile`, both from a
    cold cache into a new filesystem once the pool has freed the previous copy; the bare
    pipe timed inside the guest (no harness overhead), the reconcile send by its own report
    (the send action alone)."""
    source = "src/big"
    _stage("send: writing 1 GiB")
    _sh(guest, f"set -e; for fs in {source} dst/bare dst/viarec; do zfs create $fs; done")
    _sh(
        guest,
        f"dd if=/dev/urandom of=/{source}/data bs=1M count={GIB >> 20} status=none && zpool sync",
    )
    _sh(guest, f"zfs snapshot {source}@{SNAPSHOT}")
    size = int(_sh(guest, f"zfs get -H -p -o value referenced {source}@{SNAPSHOT}"))
    manifests = _manifest_dir(workdir / "send", "zfs")
    (manifests / "policy.yaml").write_text(
        POLICY.format(
            name="big",
            filesystems=f'"{source}": true',
            root="dst/viarec",
            initial="mostRecent",
            keep=5,
            target_keep=5,
        )
    )
    args = ("-f", str(manifests), "--now", "2026-11-18T00:00:00Z", "--jobs", "1")
    bare: list[float] = []
    through: list[float] = []
    for round_number in range(1, ROUNDS + 1):
        _stage(f"send: round {round_number}: bare pipe")
        _sh(guest, SETTLE)
        timed = _sh(
            guest,
            "start=$(date +%s.%N); "
            f"zfs send {source}@{SNAPSHOT} | zfs receive -u dst/bare/big; "
            'end=$(date +%s.%N); echo "$start $end"',
        ).split()
        bare.append(float(timed[1]) - float(timed[0]))
        _sh(guest, f"zfs destroy -r dst/bare/big; {SETTLE}")
        _stage(f"send: round {round_number}: through reconcile")
        code, out, err, _ = _reconcile(guest, *args, "--output", "json")
        if code != 0:
            raise HarnessError(f"reconcile send failed ({code}): {err[-2000:]}")
        document = json.loads(out)
        sends = [a["id"] for a in document["plan"]["actions"] if a["kind"] == "send"]
        results = {r["id"]: r for r in document["results"]}
        if len(sends) != 1 or results[sends[0]]["status"] != "ok":
            raise HarnessError(f"expected one successful send: {out[-2000:]}")
        through.append(float(results[sends[0]]["seconds"]))
        # back to the start: no target, no hold, no cursor bookmark
        _sh(
            guest,
            f"zfs holds -H {source}@{SNAPSHOT} dst/viarec/{source}@{SNAPSHOT} | "
            "while IFS=\"$(printf '\\t')\" read -r s t _; "
            'do zfs release "$t" "$s"; done; '
            f"zfs list -H -o name -t bookmark -r {source} | xargs -r -n1 zfs destroy; "
            f"zfs destroy -r dst/viarec/src; {SETTLE}",
        )
    best_bare, best_through = min(bare), min(through)
    middle_bare, middle_through = statistics.median(bare), statistics.median(through)
    return {
        "bytes": size,
        "rounds": ROUNDS,
        "bare_pipe_seconds": [round(t, 2) for t in bare],
        "reconcile_send_seconds": [round(t, 2) for t in through],
        "bare_pipe_best_mib_s": round(size / best_bare / (1 << 20), 1),
        "reconcile_send_best_mib_s": round(size / best_through / (1 << 20), 1),
        "ratio_of_medians": round(middle_bare / middle_through, 3),
        "ratio_of_bests": round(best_bare / best_through, 3),
        "ratio_of_totals": round(sum(bare) / sum(through), 3),
    }


JOBS = (1, 2, 4, 8)
JOBS_FILESYSTEMS = 24
JOBS_ROUNDS = 2
JOBS_WRITE_MIB = int(os.environ.get("ZR_BENCH_JOBS_MIB", "2"))  # a knob: bigger sends


def bench_jobs(guest: Guest, workdir: Path) -> dict[str, object]:
    """(c) `--jobs` for an incremental round: JOBS_FILESYSTEMS filesystems, each with
    JOBS_WRITE_MIB MiB of new data before every pass, one pass per `--jobs` value per round
    (the values in turn, reversed every other round); each pass takes a due snapshot of every
    filesystem and sends it. Wall time of each pass, and the sum of its sends' own durations
    (from the JSON report: above the wall time when sends overlap)."""
    source, root = "src/jobs", "dst/jobs"
    _stage(f"jobs: creating {JOBS_FILESYSTEMS} filesystems")
    _sh(
        guest,
        f"set -e; zfs create {source}; zfs create {root}; "
        f"for i in $(seq -w 0 {JOBS_FILESYSTEMS - 1}); do zfs create {source}/fs$i; done",
    )
    manifests = _manifest_dir(workdir / "jobs", "zfs")
    (manifests / "policy.yaml").write_text(
        POLICY.format(
            name="jobs",
            filesystems=f'"{source}<": true, "{source}": false',
            root=root,
            initial="mostRecent",
            keep=100,
            target_keep=100,
        )
    )
    day = [0]

    def one_pass(jobs: int) -> dict[str, float]:
        _sh(
            guest,
            f"for i in $(seq -w 0 {JOBS_FILESYSTEMS - 1}); do dd if=/dev/urandom "
            f"of=/{source}/fs$i/data.$RANDOM bs=1M count={JOBS_WRITE_MIB} status=none; done; "
            f"zpool sync; {SETTLE}",
        )
        day[0] += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_795_000_000 + 86400 * day[0]))
        args = ("-f", str(manifests), "--now", now, "--jobs", str(jobs), "--output", "json")
        code, out, err, took = _reconcile(guest, *args)
        if code != 0:
            raise HarnessError(f"reconcile --jobs {jobs} failed ({code}): {err[-2000:]}")
        document = json.loads(out)
        kinds = {a["id"]: a["kind"] for a in document["plan"]["actions"]}
        sends = [r for r in document["results"] if kinds[r["id"]] == "send"]
        if len(sends) != JOBS_FILESYSTEMS or any(r["status"] != "ok" for r in sends):
            raise HarnessError(f"expected {JOBS_FILESYSTEMS} successful sends: {out[-2000:]}")
        return {"pass": took, "sends": sum(float(r["seconds"]) for r in sends)}

    _stage("jobs: first replication (full sends, not timed)")
    one_pass(4)
    passes: dict[int, list[dict[str, float]]] = {jobs: [] for jobs in JOBS}
    for round_number in range(1, JOBS_ROUNDS + 1):
        order = JOBS if round_number % 2 else tuple(reversed(JOBS))
        for jobs in order:
            _stage(f"jobs: round {round_number}: --jobs {jobs}")
            passes[jobs].append(one_pass(jobs))
    return {
        "filesystems": JOBS_FILESYSTEMS,
        "write_mib_per_filesystem": JOBS_WRITE_MIB,
        "rounds": JOBS_ROUNDS,
        "pass_seconds": {j: [round(p["pass"], 2) for p in ps] for j, ps in passes.items()},
        "summed_send_seconds": {j: [round(p["sends"], 2) for p in ps] for j, ps in passes.items()},
        "median_pass_seconds": {
            j: round(statistics.median(p["pass"] for p in ps), 2) for j, ps in passes.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["noop", "send", "jobs"], default=None)
    options = parser.parse_args(argv)
    name = f"zr-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="zr-bench-") as tmp:
        share = Path(tmp)  # read-write in the guest at the same path (the call log lives here)
        guest = start_guest(name, {"src": "3G", "dst": "4G"}, memory_mib=1536, share=[tmp])
        result: dict[str, object] = {"accel": guest.accel, "boot_seconds": guest.boot_seconds}
        benches = {"noop": bench_noop, "send_1gib": bench_send, "jobs": bench_jobs}
        failed = False
        try:
            for key, bench in benches.items():
                if options.only not in (None, key.partition("_")[0]):
                    continue
                try:
                    result[key] = bench(guest, share)
                except HarnessError as error:  # the other benchmark still runs
                    result[key] = {"error": str(error)}
                    failed = True
                _stage(f"{key}: {json.dumps(result[key])}")
        finally:
            guest.stop()
    print(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
