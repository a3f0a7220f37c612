"""Command runners: local execution without a shell, and ssh quoting that survives any name.

The ssh runner is exercised here through a stand-in `ssh` program that does what sshd does
with the command line: hand it to a POSIX shell (`sh -c`). The real sshd is exercised in
`platform_tests/`.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.zfs.errors import HostUnreachable
from reconciler.zfs.runner import LocalRunner, SshRunner, looks_like_ssh_failure

FIXTURES = Path(__file__).parent / "fixtures" / "zfs" / "stderr"
AWKWARD = [
    "plain",
    "with space",
    "it's",
    'double "quoted"',
    "$HOME",
    "a;b",
    "`id`",
    "$(id)",
    "tab\there",
    "back\\slash",
    "*",
    "~",
    "-n",
    "",
]


@pytest.fixture
def fake_ssh(tmp_path: Path) -> tuple[str, ...]:
    """An `ssh` that runs the remote command line with `sh -c`, as sshd would."""
    script = tmp_path / "fake_ssh.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            args = sys.argv[1:]
            with open(os.environ["FAKE_SSH_LOG"], "w") as log:
                log.write("\\n".join(args))
            command = args[args.index("--") + 1]
            if os.environ.get("FAKE_SSH_FAIL"):
                sys.stderr.write("ssh: connect to host example port 22: Connection refused\\n")
                sys.exit(255)
            os.execvp("sh", ["sh", "-c", command])
            """
        )
    )
    return (sys.executable, str(script))


def test_local_runner_passes_arguments_without_a_shell() -> None:
    done = LocalRunner().run(["printf", "%s\\n", *AWKWARD])
    assert done.returncode == 0
    assert done.stdout.decode().split("\n")[:-1] == AWKWARD


def test_local_runner_reports_exit_status_and_stderr() -> None:
    done = LocalRunner().run(["sh", "-c", "echo oops >&2; exit 3"])
    assert (done.returncode, done.stderr_text) == (3, "oops\n")


def test_local_runner_feeds_stdin() -> None:
    assert LocalRunner().run(["cat"], input=b"data\x00more").stdout == b"data\x00more"


def test_a_missing_program_is_an_unreachable_host() -> None:
    with pytest.raises(HostUnreachable, match="no-such-zfs"):
        LocalRunner(host="here").run(["no-such-zfs", "list"])


def test_ssh_quoting_survives_awkward_arguments(
    fake_ssh: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_LOG", str(tmp_path / "log"))
    runner = SshRunner("backup", "example", program=fake_ssh, control_dir=tmp_path / "cm")
    done = runner.run(["printf", "%s\\n", *AWKWARD])
    assert done.returncode == 0, done.stderr_text
    assert done.stdout.decode().split("\n")[:-1] == AWKWARD
    assert done.argv == ("printf", "%s\\n", *AWKWARD)


def test_ssh_exit_255_with_ssh_words_is_an_unreachable_host(
    fake_ssh: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("FAKE_SSH_FAIL", "1")
    runner = SshRunner("backup", "example", program=fake_ssh, control_dir=tmp_path / "cm")
    with pytest.raises(HostUnreachable, match="Connection refused"):
        runner.run(["zfs", "list"])


def test_a_remote_command_exiting_255_is_not_an_ssh_failure(
    fake_ssh: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_LOG", str(tmp_path / "log"))
    runner = SshRunner("backup", "example", program=fake_ssh, control_dir=tmp_path / "cm")
    done = runner.run(["sh", "-c", "echo \"cannot resume send: 'ssh: x' is gone\" >&2; exit 255"])
    assert done.returncode == 255


def test_ssh_exit_words_must_start_a_line() -> None:
    assert looks_like_ssh_failure("ssh: Could not resolve hostname nowhere\n")
    assert looks_like_ssh_failure("Permission denied (publickey).\n")
    captured = (FIXTURES / "ssh-publickey-denied.txt").read_text().split("\n", 2)[2]
    assert looks_like_ssh_failure(captured)
    for name in ("ssh-connection-refused.txt", "ssh-unresolved-host.txt"):
        assert looks_like_ssh_failure((FIXTURES / name).read_text().split("\n", 2)[2])
    assert not looks_like_ssh_failure("cannot open 'tank/ssh: x': dataset does not exist\n")


def test_ssh_options_reuse_one_connection_and_never_prompt(tmp_path: Path) -> None:
    runner = SshRunner(
        "backup",
        "backup.example.org",
        port=2222,
        user="zrep",
        identity_file="/etc/key",
        control_dir=tmp_path,
    )
    argv = runner.wrap(["zfs", "list"])
    options = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]
    assert "BatchMode=yes" in options
    assert "ControlMaster=auto" in options
    control = next(o for o in options if o.startswith("ControlPath="))
    assert control.startswith(f"ControlPath={tmp_path}/")
    assert argv[-7:-1] == ["-l", "zrep", "-p", "2222", "backup.example.org", "--"]
    assert argv[-1] == "zfs list"
    assert argv[argv.index("-i") : argv.index("-i") + 2] == ["-i", "/etc/key"]


def test_user_ssh_options_win_over_ours(tmp_path: Path) -> None:
    runner = SshRunner(
        "b", "h", options=("ControlMaster=no", "Compression=yes"), control_dir=tmp_path
    )
    options = [a for i, a in enumerate(runner.ssh_argv()) if i and runner.ssh_argv()[i - 1] == "-o"]
    assert "ControlMaster=no" in options
    assert "ControlMaster=auto" not in options
    assert "Compression=yes" in options
    assert "BatchMode=yes" in options


def test_different_destinations_get_different_control_sockets(tmp_path: Path) -> None:
    a = SshRunner("a", "h1", control_dir=tmp_path).ssh_argv()
    b = SshRunner("b", "h1", port=2222, control_dir=tmp_path).ssh_argv()
    path = [o for o in a if o.startswith("ControlPath=")]
    assert path and path != [o for o in b if o.startswith("ControlPath=")]
    assert len(path[0]) < 100  # unix socket paths are short


def test_a_different_key_or_option_gets_its_own_control_socket(tmp_path: Path) -> None:
    """A confined key (forced command) must never ride on another key's master session to the
    same user@host:port."""

    def control(runner: SshRunner) -> str:
        return next(o for o in runner.ssh_argv() if o.startswith("ControlPath="))

    plain = SshRunner("a", "h1", user="zr", control_dir=tmp_path)
    confined = SshRunner("b", "h1", user="zr", identity_file="/k/serve", control_dir=tmp_path)
    other = SshRunner("c", "h1", user="zr", options=("IdentitiesOnly=yes",), control_dir=tmp_path)
    assert len({control(plain), control(confined), control(other)}) == 3
    again = SshRunner("d", "h1", user="zr", identity_file="/k/serve", control_dir=tmp_path)
    assert control(again) == control(confined)  # one session per way of logging in
