"""stderr → typed ZFSError, table-tested on every captured refusal in
tests/fixtures/zfs/stderr/ (a fixture without an expected class fails the suite), and the
choice of the first cause in a failed `send | receive`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.zfs.errors import (
    DatasetExists,
    DatasetNotFound,
    HoldNotFound,
    HostUnreachable,
    ModifiedSinceSnapshot,
    NoSpace,
    PermissionDenied,
    ReceiveRefused,
    ResumeTokenStale,
    SnapshotHeld,
    StreamInterrupted,
    ZFSError,
)
from reconciler.zfs.stderr import (
    classify,
    classify_pipeline,
    missing_datasets,
    significant_lines,
)

STDERR = Path(__file__).parent / "fixtures" / "zfs" / "stderr"

EXPECTED: dict[str, type[ZFSError]] = {
    "bookmark-exists.txt": DatasetExists,
    "create-out-of-space.txt": NoSpace,
    "create-parent-missing.txt": DatasetNotFound,
    "destroy-bookmark-missing.txt": DatasetNotFound,
    "destroy-cloned-by-partial-receive.txt": SnapshotHeld,
    "destroy-held.txt": SnapshotHeld,
    "destroy-none-found.txt": DatasetNotFound,
    "hold-snapshot-missing.txt": DatasetNotFound,
    "hold-tag-exists.txt": DatasetExists,
    "permission-denied-destroy.txt": PermissionDenied,
    "permission-denied-hold.txt": PermissionDenied,
    "permission-denied-not-root.txt": PermissionDenied,
    "program-not-root.txt": PermissionDenied,
    "permission-denied-receive.txt": PermissionDenied,
    "permission-denied-snapshot.txt": PermissionDenied,
    "recv-abort-nothing.txt": DatasetNotFound,
    "recv-base-missing.txt": ReceiveRefused,
    "recv-force-encrypted.txt": ReceiveRefused,
    "recv-forced-busy.txt": ReceiveRefused,
    "recv-full-exists.txt": ReceiveRefused,
    "recv-full-has-snapshots.txt": ReceiveRefused,
    "recv-interrupted-full.txt": StreamInterrupted,
    "recv-interrupted-incremental.txt": StreamInterrupted,
    "recv-modified.txt": ModifiedSinceSnapshot,
    "recv-out-of-space.txt": NoSpace,
    "recv-parent-missing.txt": DatasetNotFound,
    "recv-partial-state.txt": ReceiveRefused,
    "recv-property-not-for-volume.txt": ReceiveRefused,
    "recv-quota-exceeded.txt": NoSpace,
    "recv-raw-onto-unencrypted.txt": ReceiveRefused,
    "recv-snapshot-name-taken.txt": DatasetExists,
    "recv-target-missing.txt": DatasetNotFound,
    "release-no-such-tag.txt": HoldNotFound,
    "release-snapshot-missing.txt": DatasetNotFound,
    "resume-forced-modified.txt": ModifiedSinceSnapshot,
    "resume-forced-without-F.txt": ReceiveRefused,
    "resume-full-existing-without-F.txt": ReceiveRefused,
    "rollback-newer-versions.txt": ZFSError,
    "rollback-r-held.txt": SnapshotHeld,
    "send-base-missing.txt": DatasetNotFound,
    "send-vP-bookmark-base-missing.txt": DatasetNotFound,
    "send-vP-bookmark-base-not-earlier.txt": ZFSError,
    "send-base-not-earlier.txt": ZFSError,
    "send-bookmark-base-missing.txt": DatasetNotFound,
    "send-bookmark-intermediates.txt": ZFSError,
    "send-bookmark-not-earlier.txt": ZFSError,
    "send-encrypted-with-properties.txt": ZFSError,
    "send-key-not-loaded.txt": ZFSError,
    "send-token-base-gone.txt": ResumeTokenStale,
    "send-token-corrupt.txt": ResumeTokenStale,
    "send-token-snapshot-gone.txt": ResumeTokenStale,
    "send-token-snapshot-replaced.txt": ResumeTokenStale,
    "snapshot-exists.txt": DatasetExists,
    "snapshot-filesystem-missing.txt": DatasetNotFound,
    "list-depth1-missing.txt": DatasetNotFound,
    "list-invalid-property.txt": ZFSError,  # the driver then raises StampsUnsupported
    "snapshot-out-of-space.txt": NoSpace,
    "ssh-connection-refused.txt": HostUnreachable,
    "ssh-publickey-denied.txt": HostUnreachable,
    "ssh-unresolved-host.txt": HostUnreachable,
}
HELD = {
    "destroy-held.txt": ("@c", "@a", "@b"),
    "destroy-cloned-by-partial-receive.txt": ("@s2",),
    "rollback-r-held.txt": ("@s2",),
}


@dataclass(frozen=True)
class Capture:
    command: str
    status: int
    stderr: str


def _capture(name: str) -> Capture:
    lines = (STDERR / name).read_text().splitlines(keepends=True)
    assert lines[0].startswith("# command: ") and lines[1].startswith("# exit status: ")
    return Capture(lines[0][11:].strip(), int(lines[1][15:]), "".join(lines[2:]))


def test_every_fixture_has_an_expected_class() -> None:
    assert sorted(p.name for p in STDERR.glob("*.txt")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_classified(name: str) -> None:
    capture = _capture(name)
    assert capture.status != 0
    error = classify("nas", "tank/fs", capture.stderr, ("zfs", "x"))
    assert type(error) is EXPECTED[name]
    assert error.host == "nas" and error.command == ("zfs", "x")
    assert error.detail.splitlines()[0] == capture.stderr.splitlines()[0].rstrip()
    if isinstance(error, SnapshotHeld):
        assert error.held == HELD[name]


def test_missing_datasets_are_named_when_that_is_all_zfs_said() -> None:
    assert missing_datasets(_capture("list-depth1-missing.txt").stderr) == ["src/depth/missing"]
    usage_too = _capture("snapshot-filesystem-missing.txt").stderr
    assert missing_datasets(usage_too) == ["src/e7/missing"]
    assert missing_datasets(_capture("hold-snapshot-missing.txt").stderr) is None
    assert missing_datasets(_capture("permission-denied-not-root.txt").stderr) is None
    assert missing_datasets("") is None
    other = "cannot open 'p/a': dataset does not exist\ncannot open 'p/b': permission denied\n"
    assert missing_datasets(other) is None


def test_usage_text_is_left_out_of_the_detail() -> None:
    capture = _capture("snapshot-filesystem-missing.txt")
    error = classify("nas", "", capture.stderr)
    assert error.detail == "cannot open 'src/e7/missing': dataset does not exist"
    assert error.dataset == "src/e7/missing"


def test_held_snapshots_with_spaces_in_their_filesystem() -> None:
    stderr = (
        "cannot destroy snapshot tank/with space@a: it's being held. "
        "Run 'zfs holds -r tank/with space@a' to see holders.\n"
        "cannot destroy snapshot tank/with space@b c: it's being held. "
        "Run 'zfs holds -r tank/with space@b c' to see holders.\n"
    )
    error = classify("nas", "tank/with space", stderr)
    assert isinstance(error, SnapshotHeld) and error.held == ("@a", "@b c")


def test_a_newer_intermediates_base_worded_missing_is_not_dataset_not_found() -> None:
    # docs/zfs-verified.md §6: `zfs send -I @s2 fs@s1` with s2 newer than s1
    stderr = (
        "WARNING: could not send src/e5/fs@s1:\nincremental source (src/e5/fs@s2) does not exist\n"
    )
    assert type(classify("nas", "src/e5/fs", stderr)) is ZFSError


def test_busy_is_held_for_a_destroy_but_refused_for_a_receive() -> None:
    assert isinstance(classify("n", "", _capture("rollback-r-held.txt").stderr), SnapshotHeld)
    refused = classify("n", "", _capture("recv-forced-busy.txt").stderr)
    assert type(refused) is ReceiveRefused


@pytest.mark.parametrize(
    "stderr",
    [
        "Host key verification failed.\n",
        "kex_exchange_identification: read: Connection reset by peer\n",
        "ssh: connect to host backup port 22: No route to host\n",
        "Connection closed by 192.0.2.1 port 22\n",
        "zrep@backup: Permission denied (password).\n",
    ],
)
def test_other_ssh_failures_are_host_unreachable(stderr: str) -> None:
    assert type(classify("backup", "", stderr)) is HostUnreachable


def test_sudo_refusal_is_permission_denied() -> None:
    stderr = "sudo: a password is required\n"
    assert type(classify("backup", "", stderr)) is PermissionDenied


def test_an_empty_or_unknown_stderr_is_a_plain_error() -> None:
    assert type(classify("n", "d", "")) is ZFSError
    assert classify("n", "d", "").detail == "failed without a message"
    unknown = classify("n", "d", "internal error: something new\n")
    assert type(unknown) is ZFSError and unknown.detail == "internal error: something new"


def test_progress_and_estimates_are_not_significant() -> None:
    text = (
        "full\tp/a@s\t100\nsize\t100\n12:00:01\t50\tp/a@s\nresume token contents:\n\tbytes = 0x1\n"
    )
    assert significant_lines(text + "real problem\n") == ["real problem"]


# --- send | receive --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    send_returncode: int
    receive_returncode: int
    send_stderr: str
    receive_stderr: str


def _split_pipeline(name: str) -> tuple[str, str]:
    """A pipeline fixture's stderr: the sender's lines, and the receiver's last line."""
    lines = _capture(name).stderr.splitlines(keepends=True)
    assert lines[-1].startswith("cannot receive: failed to read from stream")
    return "".join(lines[:-1]), lines[-1]


def _pipeline(outcome: Outcome) -> ZFSError:
    return classify_pipeline(
        send_host="nas",
        receive_host="backup",
        dataset="vault/a",
        result=outcome,
        send_command=("zfs", "send"),
        receive_command=("zfs", "receive"),
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("send-key-not-loaded.txt", ZFSError),
        ("send-encrypted-with-properties.txt", ZFSError),
        ("send-token-base-gone.txt", ResumeTokenStale),
        ("send-token-snapshot-gone.txt", ResumeTokenStale),
        ("send-token-snapshot-replaced.txt", ResumeTokenStale),
    ],
)
def test_a_send_refusal_is_the_cause_when_the_receiver_lost_its_input(
    name: str, expected: type[ZFSError]
) -> None:
    send_stderr, receive_stderr = _split_pipeline(name)
    error = _pipeline(Outcome(1, 1, send_stderr, receive_stderr))
    assert type(error) is expected
    assert error.host == "nas" and error.command == ("zfs", "send")
    assert "failed to read from stream" not in error.detail


def test_the_receiver_error_wins_when_it_refused() -> None:
    receive_stderr = _capture("recv-modified.txt").stderr
    error = _pipeline(
        Outcome(141, 1, "warning: cannot send 'p/a@s2': signal received\n", receive_stderr)
    )
    assert type(error) is ModifiedSinceSnapshot
    assert error.host == "backup" and error.command == ("zfs", "receive")


def test_an_interrupted_stream_is_the_receivers_error() -> None:
    receive_stderr = _capture("recv-interrupted-full.txt").stderr
    error = _pipeline(Outcome(0, 1, "full\tp/a@s\t100\nsize\t100\n", receive_stderr))
    assert type(error) is StreamInterrupted and "zfs send -t 1-" in error.detail


def test_a_sender_host_lost_before_the_stream_is_host_unreachable() -> None:
    send_stderr = _capture("ssh-connection-refused.txt").stderr
    error = _pipeline(Outcome(255, 1, send_stderr, "cannot receive: failed to read from stream\n"))
    assert type(error) is HostUnreachable and error.host == "nas"


def test_a_silent_receiver_failure_falls_back_to_the_sender() -> None:
    error = _pipeline(
        Outcome(1, 1, "warning: cannot send 'p/a@s': dataset key must be loaded\n", "")
    )
    assert error.host == "nas" and "key must be loaded" in error.detail


def test_a_receiver_failing_alone_is_classified_as_the_receiver() -> None:
    receive_stderr = _capture("recv-full-exists.txt").stderr
    error = _pipeline(Outcome(0, 1, "", receive_stderr))
    assert type(error) is ReceiveRefused and error.host == "backup"


def test_both_succeeding_is_still_an_error_if_asked() -> None:
    assert type(_pipeline(Outcome(0, 0, "", ""))) is ZFSError
