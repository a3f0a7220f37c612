"""The audit log (`--audit-log PATH`, docs/audit-log.md): one JSON line per applied action,
appended, never rewritten; and the rule that a report printed on a terminal is not repeated
line for line by the log (docs/logging.md).

`git` is a stand-in put first on PATH: the tests decide what the manifests' commit is.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.audit import AuditError, AuditLog, git_state
from reconciler.apply.passes import Dependencies, run_pass
from reconciler.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Console, Services, main
from reconciler.manifest.changes import generation
from reconciler.manifest.loader import load_manifests
from tests.test_cli import NOW, Fleet

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LATER = "2026-11-26T13:00:00Z"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Terminal(io.StringIO):
    """A console stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH: HEAD is COMMIT; `status` prints what the file `dirty` holds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    state = tmp_path / "git-state"
    state.mkdir()
    git.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{state}/calls"\n'
        'case "$3" in\n'
        f"  rev-parse) echo {COMMIT} ;;\n"
        f'  status) cat "{state}/dirty" 2>/dev/null; exit 0 ;;\n'
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    git.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return state


def _run(fleet: Fleet, *argv: str, stdout: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err), Services(connect=fleet.connect))
    return code, out.getvalue(), err.getvalue()


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pass(
    fleet: Fleet, manifest: Path, tmp_path: Path, *more: str, stdout: io.StringIO | None = None
) -> tuple[int, str, str]:
    locks = str(tmp_path / "locks")
    argv = ["-f", str(manifest), "--lock-dir", locks, "--now", NOW, *more]
    return _run(fleet, *argv, stdout=stdout)


def test_each_applied_action_is_one_record_with_what_was_done_and_why(
    manifest: Path, tmp_path: Path, fake_git: Path
) -> None:
    fleet = Fleet()
    planned = _run(fleet, "--dry-run", "-f", str(manifest), "--now", NOW, "--output", "json")[1]
    audit = tmp_path / "audit.jsonl"
    code, out, _ = _pass(fleet, manifest, tmp_path, "--audit-log", str(audit))
    assert code == EXIT_OK, out
    records = sorted(_records(audit), key=lambda r: int(r["id"]))  # in order of finishing
    plan = json.loads(planned)
    assert [r["id"] for r in records] == [a["id"] for a in plan["actions"]]
    for record, action in zip(records, plan["actions"], strict=True):
        assert record["action"] == action  # id, kind, filesystem(s), versions, reason...
        assert (record["kind"], record["host"], record["policy"]) == (
            action["kind"],
            action["host"],
            action["policy"],
        )
        assert (record["target"], record["reason"]) == (action["target"], action["reason"])
        assert record["status"] == "ok" and record["error"] is None
        assert TIME.match(str(record["time"]))
        assert isinstance(record["seconds"], float)
        assert record["plan_sha256"] == hashlib.sha256(planned.encode()).hexdigest()
        assert record["generation"] == generation(load_manifests([str(manifest)]))
        assert record["git"] == {"commit": COMMIT, "dirty": False}
    sends = [r for r in records if r["kind"] == "send"]
    assert sends and all(isinstance(r["bytes"], int) for r in sends)
    alice = [r for r in sends if r["action"]["filesystem"] == "tank/home/alice"]
    assert [r["bytes"] for r in alice] == [1 << 20]  # what the stream carried
    assert all(r["bytes"] is None for r in records if r["kind"] != "send")
    assert "took @zr_20261126T120000Z" in str(records[0]["message"])
    assert f"-C {tmp_path} rev-parse" in (fake_git / "calls").read_text()


def test_records_of_later_passes_are_appended_and_earlier_ones_kept(
    manifest: Path, tmp_path: Path, fake_git: Path
) -> None:
    fleet = Fleet()
    audit = tmp_path / "audit.jsonl"
    assert _pass(fleet, manifest, tmp_path, "--audit-log", str(audit))[0] == EXIT_OK
    first = audit.read_bytes()
    (fake_git / "dirty").write_text(" M manifests.yaml\n")
    locks = str(tmp_path / "locks")
    code, out, _ = _run(
        fleet, "-f", str(manifest), "--lock-dir", locks, "--now", LATER, "--audit-log", str(audit)
    )
    assert code == EXIT_OK, out
    assert audit.read_bytes().startswith(first)
    later = _records(audit)[len(first.splitlines()) :]
    assert later and all(r["git"] == {"commit": COMMIT, "dirty": True} for r in later)
    assert audit.stat().st_mode & 0o777 == 0o640 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_outside_a_git_work_tree_the_commit_is_null(tmp_path: Path) -> None:
    assert git_state([str(tmp_path)], git=("/nonexistent/git",)) is None
    assert git_state([str(tmp_path)], git=("sh", "-c", "exit 128", "git")) is None
    assert git_state([], git=("git",)) is None


@pytest.mark.parametrize("kind", ["directory", "symlink to a directory", "fifo", "no parent"])
def test_a_path_that_cannot_be_an_audit_log_applies_nothing(
    manifest: Path, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "audit"
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink to a directory":
        (tmp_path / "dir").mkdir()
        path.symlink_to(tmp_path / "dir")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path = tmp_path / "missing" / "audit.jsonl"
    fleet = Fleet()
    code, out, err = _pass(fleet, manifest, tmp_path, "--audit-log", str(path))
    assert code == EXIT_ERROR
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"error: --audit-log '{path}': "), err
    assert not fleet.hosts["nas"].observe().filesystems["tank/home/alice"].snapshots


def test_audit_log_is_refused_with_dry_run(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(Fleet(), "--dry-run", "-f", str(manifest), "--audit-log", str(tmp_path / "a"))
    assert exited.value.code == EXIT_USAGE


def test_two_writers_at_once_leave_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog.open(str(path)), AuditLog.open(str(path))]
    long = "x" * 20000  # far above PIPE_BUF

    def write(log: AuditLog, writer: int) -> None:
        for n in range(200):
            log.write({"writer": writer, "n": n, "message": long})

    threads = [threading.Thread(target=write, args=(log, i)) for i, log in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    records = _records(path)
    assert len(records) == 400 and all(r["message"] == long for r in records)
    assert sorted((r["writer"], r["n"]) for r in records) == [
        (w, n) for w in range(2) for n in range(200)
    ]


def test_a_record_that_cannot_be_written_is_counted_never_raised(tmp_path: Path) -> None:
    log = AuditLog.open(str(tmp_path / "audit.jsonl"))
    os.close(log.fd)  # as if the disk went away
    log.write({"n": 1})
    log.sync()
    assert len(log.failures) == 2 and "cannot write to" in log.failures[0]


def test_an_existing_log_is_opened_for_appending_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"old": true}\n')
    log = AuditLog.open(str(path))
    log.write({"new": True})
    log.close()
    assert _records(path) == [{"old": True}, {"new": True}]
    with pytest.raises(AuditError, match="is a directory"):
        AuditLog.open(str(tmp_path))


def test_skipped_actions_changed_nothing_and_are_not_recorded(
    manifest: Path, tmp_path: Path
) -> None:
    fleet = Fleet()
    log = AuditLog.open(str(tmp_path / "audit.jsonl"), git=("/nonexistent/git",))
    stopped = threading.Event()
    stopped.set()  # the pass is cancelled: every action is skipped
    deps = Dependencies(connect=fleet.connect, cancel=stopped, audit=log.for_pass)
    result = run_pass(load_manifests([str(manifest)]), None, 1_800_000_000, deps)
    log.close()
    assert result.report is not None and result.report.results
    assert (tmp_path / "audit.jsonl").read_text() == ""


def test_watch_records_the_actions_of_its_passes(manifest: Path, tmp_path: Path) -> None:
    fleet = Fleet()
    audit = tmp_path / "audit.jsonl"
    out, err = io.StringIO(), io.StringIO()

    def stop_after_the_first_pass() -> None:
        deadline = time.monotonic() + 20
        while "pass 1 ok" not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_after_the_first_pass, daemon=True).start()
    argv = ["watch", "-f", str(manifest), "--lock-dir", str(tmp_path / "locks")]
    code = main([*argv, "--audit-log", str(audit)], Console(out, err), Services(fleet.connect))
    assert code == EXIT_OK, err.getvalue()
    records = _records(audit)
    assert {r["kind"] for r in records} >= {"snapshot", "send"}
    assert all(r["policy"] == "home" and r["status"] == "ok" for r in records)


def test_watch_refuses_a_directory_as_audit_log(manifest: Path, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["watch", "-f", str(manifest), "--audit-log", str(tmp_path)]
    assert main(argv, Console(out, err), Services(Fleet().connect)) == EXIT_ERROR
    assert err.getvalue() == f"error: --audit-log '{tmp_path}': is a directory\n"


# --- no line twice on a terminal --------------------------------------------------------------


def _action_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if re.search(r" INFO action \d+ ", line)]


def test_on_a_terminal_the_report_is_not_repeated_by_the_log(
    manifest: Path, tmp_path: Path
) -> None:
    code, out, err = _pass(Fleet(), manifest, tmp_path, stdout=Terminal())
    assert code == EXIT_OK
    assert "[1] ok in" in out
    assert _action_lines(err) == []


def test_when_stdout_is_no_terminal_the_log_keeps_every_action(
    manifest: Path, tmp_path: Path
) -> None:
    code, out, err = _pass(Fleet(), manifest, tmp_path)
    assert code == EXIT_OK
    assert len(_action_lines(err)) == out.count("] ok in ") > 0


@pytest.mark.parametrize("more", [["--log-level", "DEBUG"], ["--output", "json"]])
def test_debug_logs_and_json_reports_keep_the_action_lines(
    manifest: Path, tmp_path: Path, more: list[str]
) -> None:
    code, _, err = _pass(Fleet(), manifest, tmp_path, *more, stdout=Terminal())
    assert code == EXIT_OK
    assert _action_lines(err)
