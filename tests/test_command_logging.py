"""Every command at the runner boundary: its debug line, and the timeout of commands other than
transfers (docs/logging.md). Hung commands are real processes (`sh -c 'sleep 30'`) given a
one-second timeout, so each such test takes about a second.
"""

from __future__ import annotations

import io
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from reconciler.cli import EXIT_ERROR, Console, main
from reconciler.core.plan import ReceiveOptions
from reconciler.manifest.models import Host
from reconciler.zfs.connect import runner_for
from reconciler.zfs.driver import ZfsDriver
from reconciler.zfs.errors import CommandTimedOut, HostUnreachable
from reconciler.zfs.pipeline import run_pipeline
from reconciler.zfs.port import SendRequest
from reconciler.zfs.runner import DEFAULT_COMMAND_TIMEOUT, LocalRunner, SshRunner
from tests.test_driver_local import fake_zfs  # noqa: F401  (a fixture)

HANG = ("sh", "-c", 'echo $$ > "$0"; exec sleep 30')  # writes its pid to the file named first


@pytest.fixture
def debug_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m).rstrip("\n")), level="DEBUG", format="{message}"
    )
    yield lines
    logger.remove(sink)


def _reaped(pid: int) -> bool:
    """The process no longer exists: killed and reaped, not even a zombie is left."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _dead(pid: int) -> bool:
    """The process is not running (gone, or a zombie its new parent has yet to reap)."""
    try:
        return _reaped(pid) or "(zombie)" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_each_command_is_logged_at_debug_with_argv_exit_code_and_duration(
    debug_lines: list[str],
) -> None:
    LocalRunner("nas").run(["sh", "-c", "exit 3", "it's a name"])
    (line,) = [x for x in debug_lines if x.startswith("command on nas:")]
    assert "sh -c 'exit 3' 'it'\"'\"'s a name'" in line  # as a shell would read it
    assert "-> exit 3 in " in line and line.endswith("s")


def test_stdin_is_logged_by_its_size_never_its_contents(debug_lines: list[str]) -> None:
    LocalRunner("nas").run(["cat"], input=b"secret program text")
    (line,) = [x for x in debug_lines if x.startswith("command on nas:")]
    assert "(stdin: 19 bytes)" in line and "secret" not in line


def test_no_command_line_is_logged_at_info(tmp_path: Path) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{message}")
    try:
        LocalRunner("nas").run(["true"])
    finally:
        logger.remove(sink)
    assert lines == []


def test_a_command_that_cannot_start_is_logged_and_unreachable(debug_lines: list[str]) -> None:
    with pytest.raises(HostUnreachable, match="no-such-zfs"):
        LocalRunner("nas").run(["/nonexistent/no-such-zfs", "list"])
    assert any("could not start" in x for x in debug_lines)


def test_a_command_that_hangs_is_killed_and_reaped_at_its_timeout(
    tmp_path: Path, debug_lines: list[str]
) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(CommandTimedOut) as timed_out:
        LocalRunner("nas", timeout=0.5).run([*HANG, str(pidfile), "list"])
    assert time.monotonic() - started < 5
    error = timed_out.value
    assert (error.host, error.seconds) == ("nas", 0.5)
    assert error.command == (*HANG, str(pidfile), "list")
    assert "no answer within 0.5s" in error.detail and "sleep 30" in error.detail
    assert isinstance(error, HostUnreachable)  # the pass treats it as a host it cannot reach
    assert _reaped(int(pidfile.read_text()))
    assert any("timed out after 0.5s, killed" in x for x in debug_lines)


def test_what_a_hung_command_started_is_killed_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = 'sleep 30 & echo $! > "$0"; wait'  # a child that would outlive a killed shell
    with pytest.raises(CommandTimedOut):
        LocalRunner("nas", timeout=0.5).run(["sh", "-c", script, str(pidfile)])
    deadline = time.monotonic() + 2
    while not _dead(int(pidfile.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dead(int(pidfile.read_text()))


def test_ssh_that_hangs_is_killed_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ssh = tmp_path / "ssh.py"
    fake_ssh.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            with open(os.environ["FAKE_SSH_PID"], "w") as f:
                f.write(str(os.getpid()))
            time.sleep(30)
            """
        )
    )
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("FAKE_SSH_PID", str(pidfile))
    runner = SshRunner(
        "backup",
        "example",
        program=(sys.executable, str(fake_ssh)),
        control_dir=tmp_path / "cm",
        timeout=1.0,
    )
    with pytest.raises(CommandTimedOut, match="backup: no answer within 1s"):
        runner.run(["zfs", "list"])
    assert _reaped(int(pidfile.read_text()))


def _host(spec: dict[str, object]) -> Host:
    return Host.model_validate(
        {
            "apiVersion": "zfs-reconciler.dev/v1alpha1",
            "kind": "Host",
            "metadata": {"name": "nas"},
            "spec": spec,
        }
    )


def test_the_timeout_comes_from_the_host_manifest() -> None:
    local = runner_for(_host({"commandTimeout": "90s"}))
    remote = runner_for(_host({"transport": "ssh", "ssh": {"host": "x"}, "commandTimeout": "2m"}))
    assert isinstance(local, LocalRunner) and local.timeout == 90
    assert isinstance(remote, SshRunner) and remote.timeout == 120
    default = runner_for(_host({}))
    assert isinstance(default, LocalRunner) and default.timeout == DEFAULT_COMMAND_TIMEOUT == 600


def test_a_transfer_is_logged_once_with_both_sides_when_it_ends(debug_lines: list[str]) -> None:
    result = run_pipeline(["sh", "-c", "echo data"], ["sh", "-c", "cat >/dev/null; exit 4"])
    assert result.receive_returncode == 4
    (line,) = [x for x in debug_lines if x.startswith("transfer:")]
    assert "sh -c 'echo data' | sh -c 'cat >/dev/null; exit 4'" in line
    assert "sender exit 0, receiver exit 4 in " in line


def test_a_transfer_between_hosts_is_logged_as_meant_for_each_host_with_its_bytes(
    fake_zfs: tuple[str, ...],  # noqa: F811
    debug_lines: list[str],
) -> None:
    source = ZfsDriver(LocalRunner("nas"), fake_zfs)
    target = ZfsDriver(LocalRunner("backup"), fake_zfs)
    received = target.receive(
        "vault/a", source.send(SendRequest("tank/a", "zr_1")), ReceiveOptions()
    )
    assert received == 3 << 20  # what the pipeline measured, for ActionResult.bytes
    (line,) = [x for x in debug_lines if x.startswith("transfer:")]
    assert "nas: " in line and " send " in line and "| backup: " in line and " receive " in line
    assert f"{3 << 20} bytes" in line


HUNG_HOST = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec:
  zfsCommand: [sh, -c, 'exec sleep 30', --]
  commandTimeout: 1s
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home<": true}}
  snapshots: {prefix: zr_, interval: 15m}
"""


def test_a_pass_on_a_hung_host_ends_within_seconds_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(HUNG_HOST)
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    code = main(["-f", str(tmp_path), "--lock-dir", str(tmp_path / "locks")], Console(out, err))
    assert time.monotonic() - started < 8
    assert code == EXIT_ERROR
    errors = [line for line in err.getvalue().splitlines() if " ERROR " in line]
    assert len(errors) == 1, err.getvalue()
    assert "host nas could not be observed: no answer within 1s (commandTimeout)" in errors[0]
    assert "1 host not observed: nas (no answer within 1s" in out.getvalue()
    assert "Traceback" not in err.getvalue()
