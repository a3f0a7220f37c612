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
6. `zfs list` of what is now on both pools.

The guest is stopped at the end unless `--keep` is given. Exit status: 0 when every step did
what it should, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from platform_tests.harness.vm import Guest, HarnessError, start_guest

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
    return ok and _replicated(guest)


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
