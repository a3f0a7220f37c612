"""Smoke tests of the platform-test harness itself: the guest runs commands faithfully, streams
through `exec_argv` like a local process, has its pools, its sshd and the runtime directories
the reconciler needs, and reports a failed boot with its serial console."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from platform_tests.conftest import Roots
from platform_tests.harness.vm import Guest, HarnessError, run_dir_of, start_guest

MIB = 1 << 20


def wait_until_gone(guest: Guest, pid_file: str, seconds: float = 15) -> None:
    """Wait until the guest process whose pid is in pid_file has ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if guest.sh(f'kill -0 "$(cat {pid_file})"').returncode != 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"the guest process in {pid_file} is still running")


def wait_for_file(guest: Guest, path: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while guest.run(["test", "-s", path]).returncode != 0:
        assert time.monotonic() < deadline, f"{path} never appeared in the guest"
        time.sleep(0.1)


def test_run_returns_status_stdout_and_stderr_apart(guest: Guest) -> None:
    done = guest.run(["sh", "-c", "printf out; printf err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out", b"err")


def test_run_passes_argv_without_a_shell(guest: Guest) -> None:
    words = ["a b", "$(id -u)", "'q'", '"d"', ";", "*", "tab\there"]
    done = guest.run(["printf", "%s\\n", *words])
    assert done.stdout.decode().splitlines() == words


def test_run_feeds_input_and_honours_env_and_cwd(guest: Guest) -> None:
    data = os.urandom(3 * MIB)
    digest = guest.run(["sha256sum"], input=data).check().stdout.split()[0].decode()
    assert digest == hashlib.sha256(data).hexdigest()
    done = guest.run(["sh", "-c", 'echo "$ZR_WORD"; pwd'], env={"ZR_WORD": "x y"}, cwd="/src")
    assert done.stdout == b"x y\n/src\n"


def test_run_times_out_and_sh_check_reports_stderr(guest: Guest) -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        guest.run(["sleep", "60"], timeout=1)
    assert time.monotonic() - started < 10
    with pytest.raises(HarnessError, match="no such pool here"):
        guest.sh("echo 'no such pool here' >&2; exit 1", check=True)


def test_pools_exist_on_openzfs_2_3(guest: Guest) -> None:
    pools = guest.run(["zpool", "list", "-H", "-o", "name,health"]).check().stdout.decode()
    assert sorted(pools.splitlines()) == ["dst\tONLINE", "src\tONLINE"]
    assert "zfs-kmod-2.3" in guest.run(["zfs", "version"]).check().stdout.decode()


def test_roots_are_fresh_filesystems(guest: Guest, roots: Roots) -> None:
    listed = guest.run(["zfs", "list", "-H", "-r", "-o", "name", roots.src, roots.dst]).check()
    assert sorted(listed.stdout.decode().split()) == sorted([roots.src, roots.dst])


def test_exec_argv_streams_before_end_of_input(guest: Guest) -> None:
    script = "read -r line; echo got:$line; cat >/dev/null; echo bye >&2; exit 5"
    proc = subprocess.Popen(
        guest.exec_argv(["sh", "-c", script]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"hello\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"got:hello\n"  # answered while stdin is still open
    out, err = proc.communicate(b"more" * 1000, timeout=60)
    assert (proc.returncode, out, err) == (5, b"", b"bye\n")


def test_exec_argv_joins_send_and_receive_with_an_os_pipe(guest: Guest, roots: Roots) -> None:
    guest.sh(
        f"head -c {8 * MIB} /dev/urandom > /{roots.src}/blob && zfs snapshot {roots.src}@one",
        check=True,
    )
    send = subprocess.Popen(
        guest.exec_argv(["zfs", "send", f"{roots.src}@one"]), stdout=subprocess.PIPE
    )
    receive = subprocess.run(
        guest.exec_argv(["zfs", "recv", "-u", f"{roots.dst}/copy"]),
        stdin=send.stdout,
        capture_output=True,
        timeout=300,
    )
    assert send.wait(60) == 0
    assert receive.returncode == 0, receive.stderr
    guids = guest.sh(f"zfs get -H -p -o value guid {roots.src}@one {roots.dst}/copy@one").stdout
    first, second = guids.split()
    assert first == second


def test_killing_the_local_process_kills_the_guest_command(guest: Guest) -> None:
    pid_file = "/run/zr-test-sleep.pid"
    proc = subprocess.Popen(guest.exec_argv(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"]))
    wait_for_file(guest, pid_file)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == -signal.SIGTERM
    wait_until_gone(guest, pid_file)


def test_a_broken_stdout_kills_the_guest_command(guest: Guest) -> None:
    pid_file = "/run/zr-test-yes.pid"
    proc = subprocess.Popen(
        guest.exec_argv(["sh", "-c", f"echo $$ > {pid_file}; exec yes"]), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stdout.read(1000) == b"y\n" * 500
    proc.stdout.close()
    assert proc.wait(30) == -signal.SIGPIPE
    wait_until_gone(guest, pid_file)


def test_openssh_reaches_the_guest(guest: Guest) -> None:
    destination = guest.ssh_destination()
    assert (destination.host, destination.user) == ("127.0.0.1", "root")
    done = subprocess.run(
        destination.argv("zfs", "list", "-H", "-o", "name", "src"),
        capture_output=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"src\n", b"")


def test_guest_runs_the_project_venv_with_lock_and_shm_dirs(guest: Guest) -> None:
    code = "import reconciler, sys; print(sys.prefix)"
    done = guest.run([sys.executable, "-c", code]).check()
    assert done.stdout.decode().strip() == sys.prefix
    lock = guest.run(["sh", "-c", "touch /run/lock/zr && touch /var/lock/zr2 && echo ok"])
    assert lock.stdout == b"ok\n"
    mounts = guest.run(["sh", "-c", "grep -E ' /dev/shm | /run ' /proc/mounts"]).stdout.decode()
    assert " /dev/shm tmpfs " in mounts and " /run tmpfs " in mounts


def test_share_is_live_both_ways(guest: Guest, guest_share: Path) -> None:
    (guest_share / "from-host").write_text("host\n")
    assert guest.run(["cat", str(guest_share / "from-host")]).stdout == b"host\n"
    guest.run(["sh", "-c", f"echo guest > {guest_share}/from-guest"]).check()
    assert (guest_share / "from-guest").read_text() == "guest\n"


def test_missing_setup_names_the_make_target(tmp_path: Path) -> None:
    code = "from platform_tests.harness.vm import ensure_setup; ensure_setup()"
    env = {**os.environ, "ZFS_RECONCILER_VM_CACHE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "HarnessError" in done.stderr and "make vm-setup" in done.stderr


def test_a_failed_boot_reports_the_serial_console() -> None:
    name = f"zr-pytest-bad-{os.getpid()}"
    try:
        with pytest.raises(HarnessError) as failure:
            start_guest(name, ["mirror"], timeout=300)  # a reserved pool name (slow: a busy CPU)
    finally:
        shutil.rmtree(run_dir_of(name), ignore_errors=True)
    message = str(failure.value)
    assert "did not start" in message and "serial console" in message
    assert "zpool create mirror" in message
