"""Benchmarks of `reconcile` on real OpenZFS in the guest (part of `make bench`).

(a) no-op pass: 100 filesystems × 100 snapshots, each filesystem's newest replicated (the
    target keeps the last one) and protected; one more `reconcile` pass (apply, nothing to
    do): wall time and how many `zfs` processes it started per host. The count comes from
    the Host's `zfsCommand`, pointed at a wrapper that logs each call and then runs zfs.
(b) 1 GiB full send: one filesystem with 1 GiB of random data, replicated by `reconcile`
    (its send action's own duration, from the JSON report) versus a bare `zfs send | zfs receive` of
    the same snapshot in the same guest, in the same run.

`reconcile` runs inside the guest with transport local, as on a real host (the guest runs
the host's Python under TCG emulation, so planning there is several times slower than on
hardware; the zfs process count does not depend on that). The no-op pass runs a second time
from the host machine over ssh to the guest's sshd: planning at native speed, zfs in the
guest. Prints one JSON document.
Run as `python -m platform_tests.bench_reconcile [--only noop|send]`.
"""

from __future__ import annotations

import argparse
import json
import os
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
    log = workdir / "zfs-calls.log"
    wrapper = workdir / "zfs-counting"
    wrapper.write_text(COUNTING_ZFS.format(log=log))
    wrapper.chmod(0o755)
    manifests = workdir / "noop"
    manifests.mkdir()
    (manifests / "hosts.yaml").write_text(HOSTS.format(zfs=wrapper))
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
        "zfs_list_seconds_by_columns": listings,
    }


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
    manifests = workdir / "send"
    manifests.mkdir()
    (manifests / "hosts.yaml").write_text(HOSTS.format(zfs="zfs"))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["noop", "send"], default=None)
    options = parser.parse_args(argv)
    name = f"zr-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="zr-bench-") as tmp:
        share = Path(tmp)  # read-write in the guest at the same path (the call log lives here)
        guest = start_guest(name, {"src": "3G", "dst": "4G"}, memory_mib=1536, share=[tmp])
        result: dict[str, object] = {"accel": guest.accel, "boot_seconds": guest.boot_seconds}
        benches = {"noop": bench_noop, "send_1gib": bench_send}
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
