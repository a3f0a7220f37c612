"""A small command line over the harness, for looking into a guest by hand.

    python -m platform_tests.harness start NAME [--pool P]... [--disk-size 1G]
    python -m platform_tests.harness exec NAME -- ARGV...     (stdin/stdout streamed)
    python -m platform_tests.harness ssh NAME [-- COMMAND...]
    python -m platform_tests.harness console NAME
    python -m platform_tests.harness stop NAME

Guests started here outlive this command (as with ZFS_RECONCILER_VM_KEEP=1, which also keeps the
pytest session's guest, named zr-pytest-<pid>, running for these commands to reach).
"""

from __future__ import annotations

import argparse
import os
import sys

from .vm import HarnessError, attach, run_dir_of, start_guest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_tests.harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["start", "exec", "ssh", "console", "stop"])
    parser.add_argument("name")
    parser.add_argument("--pool", action="append", help="start: a pool (default: src, dst)")
    parser.add_argument("--disk-size", default="1G", help="start: size of each pool's disk")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="exec/ssh: -- ARGV...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        return act(args.action, args.name, args.pool or ["src", "dst"], args.disk_size, command)
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 2


def act(action: str, name: str, pools: list[str], disk_size: str, command: list[str]) -> int:
    if action == "start":
        os.environ["ZFS_RECONCILER_VM_KEEP"] = "1"
        guest = start_guest(name, pools, disk_size=disk_size)
        print(f"{name}: up in {guest.boot_seconds}s ({guest.accel}), agent 127.0.0.1:"
              f"{guest.agent_port}, ssh 127.0.0.1:{guest.ssh_port}")  # fmt: skip
        return 0
    if action == "console":
        sys.stdout.write((run_dir_of(name) / "console.log").read_text(errors="replace"))
        return 0
    guest = attach(name)
    if action == "stop":
        guest.stop()
        print(f"{name}: stopped")
        return 0
    if not command and action == "exec":
        raise HarnessError("exec needs a command: exec NAME -- ARGV...")
    line = guest.ssh_destination().argv(*command) if action == "ssh" else guest.exec_argv(command)
    os.execvp(line[0], line)


if __name__ == "__main__":
    sys.exit(main())
