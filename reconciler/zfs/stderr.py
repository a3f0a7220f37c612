"""What zfs (or ssh) wrote on stderr → the typed `ZFSError` the port promises: pure, no I/O.

Owned here: `classify` (one command's stderr), `classify_pipeline` (a failed `zfs send | zfs
receive`: which side's message is the first cause) and the rule table they share. Called by the
real driver (`zfs/driver.py`) whenever a command exits non-zero.

The class comes from the words, never from the exit status (1 or 2 for most refusals, 255 for
`send -t` refusals and for ssh itself). The words are OpenZFS 2.3.2's own, captured in
`tests/fixtures/zfs/stderr/` (every file there has an expected class in the tests), with the
traps docs/zfs-verified.md lists:
- the first significant line decides: later lines only explain it ("must specify -F ...",
  usage text after a "missing" error, the resume hint after an interrupted receive). Only the
  receiver's generic `cannot receive: failed to read from stream` yields to anything after it;
- "does not exist" is not always DatasetNotFound: `send -I` words a base *newer* than the
  to-snapshot as `WARNING: could not send ...` / `incremental source (...) does not exist`,
  which stays a plain ZFSError (as in the model);
- "dataset is busy" is SnapshotHeld after `cannot destroy 'fs@snap'` (a `rollback -r` meeting a
  hold) but ReceiveRefused after `cannot receive ... stream` (a `-F` receive over a held
  snapshot); "contains partially-complete state" and "kernel modules must be upgraded" (a
  resume that needs `-F`) are ReceiveRefused;
- every held snapshot has its own line, in no useful order: SnapshotHeld.held names each one
  as `@snap` (the contract's form), in the order zfs printed them;
- ssh's own failures (exit 255: "ssh: Could not resolve hostname", "Connection refused",
  "Permission denied (publickey,...)", "Host key verification failed.") are HostUnreachable;
  zfs's "permission denied" (delegation) and "must be run as root" are PermissionDenied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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

_RECEIVE = r"^cannot receive (?:new filesystem|incremental|resume) stream: "


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    error: type[ZFSError]
    weak: bool = False  # yields to any significant line after it


def _rule(pattern: str, error: type[ZFSError], *, weak: bool = False) -> _Rule:
    return _Rule(re.compile(pattern), error, weak)


# In order: the first rule that matches a line classifies it. A named group `dataset`, when
# present, names the dataset the error is about; `snapshot` names a held snapshot.
RULES: tuple[_Rule, ...] = (
    # ssh itself: the host was not reached (or the session broke)
    _rule(r"^ssh: ", HostUnreachable),
    _rule(
        r"Permission denied \((?:publickey|password|keyboard-interactive|hostbased)",
        HostUnreachable,
    ),
    _rule(r"^Host key verification failed\.", HostUnreachable),
    _rule(r"^(?:kex_exchange_identification|ssh_exchange_identification): ", HostUnreachable),
    _rule(r"^Connection (?:closed|reset|timed out)", HostUnreachable),
    _rule(r"^client_loop: send disconnect", HostUnreachable),
    # rights
    _rule(r"^Permission denied the ZFS utilities must be run as root", PermissionDenied),
    _rule(r"^Channel program execution failed:$", ZFSError, weak=True),  # the next line says why
    _rule(r"^Permission denied\. Channel programs must be run as root", PermissionDenied),
    _rule(r": permission denied$", PermissionDenied),
    _rule(
        r"^sudo: (?:a password is required|a terminal is required|.* not in the sudoers)",
        PermissionDenied,
    ),
    # space
    _rule(r": out of space$|space quota exceeded|No space left on device", NoSpace),
    # resume tokens the sender cannot use (gone, replaced, base gone, corrupt)
    _rule(r"^cannot resume send: ", ResumeTokenStale),
    # holds and clones in the way of a destroy
    _rule(r"^cannot destroy snapshot (?P<snapshot>.+@.+): it's being held\.", SnapshotHeld),
    _rule(
        r"^cannot destroy '(?P<snapshot>[^']+@[^']+)': snapshot has dependent clones", SnapshotHeld
    ),
    _rule(r"^cannot destroy '(?P<snapshot>[^']+@[^']+)': dataset is busy", SnapshotHeld),
    _rule(r"no such tag on this dataset", HoldNotFound),
    # already there
    _rule(r"tag already exists on this dataset", DatasetExists),
    _rule(r"^cannot create bookmark '(?P<dataset>[^']+)': bookmark exists", DatasetExists),
    _rule(
        r"^cannot create (?:snapshot )?'(?P<dataset>[^']+)': dataset already exists", DatasetExists
    ),
    _rule(r"^cannot restore to (?P<dataset>.+): destination already exists", DatasetExists),
    # a send refusal worded "does not exist" about a base that exists (newer than the target)
    _rule(r"^WARNING: could not send ", ZFSError),
    # not there
    _rule(r"^cannot open '(?P<dataset>[^']+)': dataset does not exist", DatasetNotFound),
    _rule(r"^could not find any snapshots to destroy", DatasetNotFound),
    _rule(r"^bookmark '(?P<dataset>[^']+)' does not exist", DatasetNotFound),
    _rule(r"^cannot [a-z ]+ '(?P<dataset>[^']+)': dataset does not exist", DatasetNotFound),
    _rule(
        r"^cannot create '(?P<dataset>[^']+)': (?:parent does not exist|no such pool)",
        DatasetNotFound,
    ),
    _rule(r"^'(?P<dataset>[^']+)' does not have any resumable receive state", DatasetNotFound),
    _rule(_RECEIVE + r"destination '(?P<dataset>[^']+)' does not exist", DatasetNotFound),
    _rule(
        r"^warning: cannot send '[^']+': incremental source \((?P<dataset>[^)]+)\) does not exist",
        DatasetNotFound,
    ),
    # the same refusal under `send -v -P` (what the driver runs): zfs prints ESRCH's strerror
    _rule(r"^warning: cannot send '(?P<dataset>[^']+)': No such process", DatasetNotFound),
    # receives
    _rule(_RECEIVE + r"destination (?P<dataset>.+) has been modified", ModifiedSinceSnapshot),
    _rule(r"checksum mismatch or incomplete stream", StreamInterrupted),
    _rule(r"^cannot receive: failed to read from stream", StreamInterrupted, weak=True),
    _rule(_RECEIVE, ReceiveRefused),
    _rule(r"^cannot receive: ", ReceiveRefused),
)

# Lines that explain or accompany an error, or are not errors at all.
_NOISE = re.compile(
    r"^(?:\s*$|\t|usage:|For (?:the property list|the delegated permission list|further help)"
    r"|resume token contents:|nvlist version:|(?:full|incremental|size)\t"
    r"|\d\d:\d\d:\d\d\t\d+\t|Warning: Permanently added |Warning: .*: property '.*' does not apply"
    r"|TIME +SENT +SNAPSHOT)"
)


class PipelineOutcome(Protocol):
    """What `classify_pipeline` reads of a finished `send | receive` (zfs/pipeline.py's
    PipelineResult has these fields): exit statuses, and the sender's stderr without its
    progress lines."""

    @property
    def send_returncode(self) -> int: ...

    @property
    def receive_returncode(self) -> int: ...

    @property
    def send_stderr(self) -> str: ...

    @property
    def receive_stderr(self) -> str: ...


def classify(host: str, dataset: str, stderr: str, command: Sequence[str] = ()) -> ZFSError:
    """The typed error for what one failed command wrote on stderr (a plain ZFSError when
    nothing more specific applies). `detail` is the stderr as written, without the usage text
    and other lines that carry no meaning."""
    lines = significant_lines(stderr)
    detail = "\n".join(lines) if lines else stderr.strip() or "failed without a message"
    chosen = _decisive(lines)
    if chosen is None:
        return ZFSError(host, dataset, detail, tuple(command))
    rule, match = chosen
    named = match.groupdict().get("dataset") or dataset
    if rule.error is SnapshotHeld:
        return SnapshotHeld(host, named, detail, held=_held(lines), command=tuple(command))
    return rule.error(host, named, detail, tuple(command))


_MISSING = re.compile(r"^cannot open '(?P<dataset>[^']+)': dataset does not exist$")


def missing_datasets(stderr: str) -> list[str] | None:
    """The datasets a command could not open because they do not exist, when that is all its
    stderr says (`zfs list a b` lists the ones that exist and exits 1); None when it says
    anything else (or nothing)."""
    lines = significant_lines(stderr)
    matches = [_MISSING.match(line) for line in lines]
    if not lines or None in matches:
        return None
    return [match["dataset"] for match in matches if match is not None]


def classify_pipeline(
    *,
    send_host: str,
    receive_host: str,
    dataset: str,
    result: PipelineOutcome,
    send_command: Sequence[str] = (),
    receive_command: Sequence[str] = (),
) -> ZFSError:
    """The first cause of a failed `zfs send | zfs receive`. A send refusal reaches the
    receiver only as `cannot receive: failed to read from stream`: then (or when the receiver
    said nothing, or succeeded) the sender's message is the cause. Otherwise, when the receiver
    failed, its error wins (a sender that only lost its pipe says nothing useful)."""
    send_lines = significant_lines(result.send_stderr)
    receive_error = None
    if result.receive_returncode != 0:
        receive_error = classify(receive_host, dataset, result.receive_stderr, receive_command)
    sender_first = receive_error is None or _only_lost_its_input(result.receive_stderr)
    if result.send_returncode != 0 and send_lines and sender_first:
        return classify(send_host, dataset, result.send_stderr, send_command)
    if receive_error is not None:
        return receive_error
    if result.send_returncode != 0:
        return classify(send_host, dataset, result.send_stderr, send_command)
    return ZFSError(receive_host, dataset, "send | receive failed", tuple(receive_command))


def significant_lines(stderr: str) -> list[str]:
    """The lines of stderr that carry meaning (no usage text, progress, estimates, token
    contents, blank lines, or ssh's known-hosts notice)."""
    return [line.rstrip() for line in stderr.splitlines() if not _NOISE.match(line)]


def _decisive(lines: list[str]) -> tuple[_Rule, re.Match[str]] | None:
    """The first significant line's rule; a weak one yields to any line after it."""
    for index, line in enumerate(lines):
        found = _match(line)
        if found is None:
            return None  # an unknown first cause: a plain ZFSError
        if found[0].weak and index + 1 < len(lines):
            continue
        return found
    return None


def _match(line: str) -> tuple[_Rule, re.Match[str]] | None:
    for rule in RULES:
        match = rule.pattern.search(line)
        if match is not None:
            return rule, match
    return None


def _held(lines: list[str]) -> tuple[str, ...]:
    """Every snapshot a destroy was refused for, as `@snap`, in zfs's order, once each."""
    held: dict[str, None] = {}
    for line in lines:
        found = _match(line)
        if found is not None and found[0].error is SnapshotHeld:
            snapshot = found[1].group("snapshot")
            held["@" + snapshot.rpartition("@")[2]] = None
    return tuple(held)


def _only_lost_its_input(receive_stderr: str) -> bool:
    """The receiver failed only because its input stopped (or said nothing at all)."""
    lines = significant_lines(receive_stderr)
    if not lines:
        return True
    found = _match(lines[0])
    return found is not None and found[0].weak and len(lines) == 1
