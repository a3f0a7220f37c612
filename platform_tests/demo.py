"""The demo: the example manifests in `manifests/` applied to real pools in the guest.

Run by `make demo` (after `make install vm-setup`). It boots a guest with pools `tank` and
`backup`, creates `tank/home` with two users' data and a `scratch` filesystem the policy
excludes, and then runs the real `reconcile` inside the guest (transport local, exactly as on
a host with those pools), printing each command and its output:

1. `reconcile validate`,
2. `reconcile --dry-run` (the plan: snapshot, initial replication, holds, cursors),
3. `reconcile` (applies it),
4. `reconcile --dry-run --detailed-exitcode` (steady state: no changes, exit 0),
5. `reconcile status`,
6. `zfs list` of what is now on both pools,
7. the control loop: `reconcile watch` on a copy of the manifests (in the guest's /tmp, so
   the repository's are never edited), its log shown as it comes; an edit of that copy (the
   policy now backs up `tank/home/scratch` too) is applied by the running loop without a
   restart; then SIGTERM, and the loop exits 0,
8. `zfs list` of what the edit brought to the backup pool.

The guest is stopped at the end unless `--keep` is given. Exit status: 0 when every step did
what it should, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from platform_tests.harness.vm import Guest, HarnessError, start_guest
from platform_tests.watch_process import LogLine, WatchLog

REPO = Path(__file__).resolve().parent.parent
POOLS = {"tank": "1G", "backup": "1G"}
SETUP = """\
set -e
for d in alice bob scratch; do
  zfs create -p tank/home/$d
  dd if=/dev/urandom of=/tank/home/$d/file bs=64k count=64 status=none
done
zpool sync
"""
REPLICA = "backup/tank-replica/tank/home"
# after the pass: what must be on the backup pool, and what must not
EXPECTED = (f"{REPLICA}/alice", f"{REPLICA}/bob")
EXCLUDED = (f"{REPLICA}/scratch",)
# the control loop's part: a copy of the manifests in the guest, and the edit made to it
WATCH_DIR = "/tmp/zr-demo-watch"
WATCHED = f"{WATCH_DIR}/manifests"
WATCH_PID = f"{WATCH_DIR}/watch.pid"
EDIT = (
    f'sed -i \'s|"tank/home/scratch<": false|"tank/home/scratch<": true|\' {WATCHED}/example.yaml'
)


def _reconcile() -> str:
    return str(Path(sys.executable).parent / "reconcile")


def _show(guest: Guest, title: str, argv: list[str], expect: tuple[int, ...] = (0,)) -> bool:
    print(f"\n=== {title}\n$ {shlex.join(argv)}", flush=True)
    started = time.monotonic()
    done = guest.run(argv, cwd=str(REPO), timeout=600)
    sys.stdout.write(done.stdout.decode("utf-8", "replace"))
    sys.stdout.write(done.stderr.decode("utf-8", "replace"))
    took = time.monotonic() - started
    ok = done.returncode in expect
    print(f"--- exit {done.returncode} in {took:.1f}s{'' if ok else ' (unexpected)'}", flush=True)
    return ok


def run_demo(guest: Guest) -> bool:
    manifests = str(REPO / "manifests")
    reconcile = _reconcile()
    print("=== pools tank and backup; tank/home with alice, bob and scratch (excluded)")
    guest.sh(SETUP, check=True)
    steps = [
        ("validate the manifests", [reconcile, "validate", "-f", manifests], (0,)),
        ("what would happen (nothing is changed)", [reconcile, "--dry-run", "-f", manifests], (0,)),
        ("apply: one pass", [reconcile, "-f", manifests], (0,)),
        (
            "steady state: nothing left to do",
            [reconcile, "--dry-run", "--detailed-exitcode", "-f", manifests],
            (0,),
        ),
        ("is my backup current?", [reconcile, "status", "-f", manifests], (0,)),
        (
            "what is on the pools now",
            ["zfs", "list", "-t", "all", "-o", "name,used,userrefs", "-r", "tank", "backup"],
            (0,),
        ),
    ]
    ok = all(_show(guest, title, argv, expect) for title, argv, expect in steps)
    return ok and _replicated(guest) and _watch(guest)


def _replicated(guest: Guest) -> bool:
    """The alice and bob filesystems, with a snapshot each, reached the backup pool; scratch
    (excluded by the policy) did not."""
    listed = guest.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", "backup"])
    names = listed.stdout.decode().split()
    missing = [fs for fs in EXPECTED if not any(n.startswith(fs + "@zr_") for n in names)]
    leaked = [fs for fs in EXCLUDED if any(n.startswith(fs + "@") for n in names)]
    for fs in missing:
        print(f"demo: {fs} has no replicated snapshot", file=sys.stderr)
    for fs in leaked:
        print(f"demo: {fs} was replicated although the policy excludes it", file=sys.stderr)
    return not missing and not leaked


def _watch(guest: Guest) -> bool:
    """`reconcile watch` in the guest on a copy of the manifests: an edit of the copy is
    applied without a restart, and SIGTERM ends the loop with exit 0."""
    print("\n=== the control loop: reconcile watch, on a copy of the manifests", flush=True)
    guest.sh(
        f"rm -rf {WATCH_DIR} && mkdir -p {WATCHED} && cp {REPO}/manifests/*.yaml {WATCHED}/",
        check=True,
    )
    argv = [_reconcile(), "watch", "-f", WATCHED, "--resync", "1h"]
    print(f"$ {shlex.join(argv)} &", flush=True)
    # `sh` notes the loop's pid for the SIGTERM, then becomes the loop (exec)
    started = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', WATCH_PID, *argv]
    process = subprocess.Popen(
        guest.exec_argv(started),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    log = WatchLog(process.stderr, echo=_echo)
    try:
        return _drive(guest, process, log)
    except (AssertionError, subprocess.TimeoutExpired) as failure:
        print(f"demo: {str(failure).splitlines()[0]}", file=sys.stderr, flush=True)
        return False
    finally:
        if process.poll() is None:
            process.kill()  # exec.py drops the connection: the agent ends the guest command
            process.wait()


def _echo(line: LogLine) -> None:
    print(f"  | {line.text}", flush=True)


def _drive(guest: Guest, process: subprocess.Popen[str], log: WatchLog) -> bool:
    # Python and the first pass under emulation take a while: up to a minute or two
    log.expect(r"^policy home: pass 1 ok: ", timeout=300)
    log.expect(r"^policy home: condition Ready", timeout=10)
    print("\n=== edit the copy while the loop runs: back up tank/home/scratch too", flush=True)
    print(f"$ {EDIT}", flush=True)
    # the guest's own clock, which stamps the loop's log lines (the host's may differ by ~1 s)
    written = float(guest.sh(f"date +%s.%N && {EDIT}", check=True).stdout.split()[0])
    log.expect(r'^manifest change: policy home: spec\.source\.filesystems\["tank/home/scratch<"\]')
    start, found = log.expect(r"^policy home: pass (\d+) starts: .*manifests changed", timeout=60)
    log.expect(rf"^policy home: pass {found[1]} ok: ", timeout=300)
    seen = f"{start.time - written:.1f}s" if start.time is not None else "?"
    print(f"--- applied by the running loop: its pass started {seen} after `sed` did", flush=True)
    print("\n=== stop the loop: SIGTERM", flush=True)
    print(f"$ kill -TERM $(cat {WATCH_PID})", flush=True)
    stopping = time.monotonic()
    guest.sh(f"kill -TERM $(cat {WATCH_PID})", check=True)
    code = process.wait(timeout=60)
    took = time.monotonic() - stopping
    log.expect(r"^stopped$", timeout=10)
    print(f"--- exit {code} in {took:.1f}s{'' if code == 0 else ' (unexpected)'}", flush=True)
    listing = ["zfs", "list", "-t", "all", "-o", "name,used,userrefs", "-r", EXCLUDED[0]]
    shown = _show(guest, "what the edit brought to the backup pool", listing)
    return code == 0 and shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the guest running")
    options = parser.parse_args(argv)
    name = f"zr-demo-{os.getpid()}"
    print(f"=== starting guest {name} (real OpenZFS in qemu; ~10-20 s)", flush=True)
    try:
        guest = start_guest(name, POOLS)
    except HarnessError as error:
        print(f"demo: the guest did not start:\n{error}", file=sys.stderr)
        return 1
    try:
        ok = run_demo(guest)
    finally:
        if options.keep:
            print(f"\nguest {name} left running: python -m platform_tests.harness stop {name}")
        else:
            guest.stop()
    print("\ndemo: done" if ok else "\ndemo: a step did not do what it should", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
