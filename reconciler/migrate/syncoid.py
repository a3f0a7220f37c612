"""syncoid command lines, read as syncoid 2.1 reads its arguments, for `reconcile import sanoid`.

Owns `Endpoint` (a dataset, local or `[user@]host:dataset`), `SyncoidJob` (what one command
line replicates and how: the parts of a replication target and of the remote Host it implies)
and `read_syncoid`, which splits a line with shlex and reads its options as Getopt::Long does
(`--name=value`, `--name value`, `-r`, `-o VALUE`, `-c VALUE`, `--` ends the options). Every
option is either converted, or reported as a finding at `--syncoid[N]:1:COLUMN` (N: the
line's position among the --syncoid arguments, COLUMN: where the option starts). Called by
`reconciler.migrate.sanoid`, which attaches the job to a policy. Pure.
"""

from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from reconciler.migrate.report import Finding, Outcome

# option → takes a value; short aliases map to their long name
_OPTIONS: dict[str, bool] = {
    "recursive": False,
    "skip-parent": False,
    "exclude": True,
    "no-sync-snap": False,
    "keep-sync-snap": False,
    "create-bookmark": False,
    "no-rollback": False,
    "force-delete": False,
    "no-clone-rollback": False,
    "no-clone-handling": False,
    "compress": True,
    "source-bwlimit": True,
    "target-bwlimit": True,
    "mbuffer-size": True,
    "pv-options": True,
    "sendoptions": True,
    "recvoptions": True,
    "identifier": True,
    "no-privilege-elevation": False,
    "no-resume": False,
    "no-stream": False,
    "sshkey": True,
    "sshport": True,
    "sshcipher": True,
    "sshoption": True,
    "debug": False,
    "quiet": False,
    "dumpsnaps": False,
    "no-command-checks": False,
    "monitor-version": False,
    "preserve-recordsize": False,
    "delete-target-snapshots": False,
    "preserve-properties": False,
    "insecure-direct-connection": True,
    "include-snaps": True,
    "exclude-snaps": True,
    "use-hold": False,
}
_SHORT = {"r": "recursive", "c": "sshcipher", "o": "sshoption"}
_SEND_FLAGS = {
    "w": "raw",
    "c": "compressed",
    "L": "largeBlocks",
    "e": "embeddedData",
    "p": "properties",
}
_QUIET = ("debug", "quiet", "dumpsnaps", "no-command-checks", "monitor-version")
_DROPPED = {
    "no-clone-rollback": "clones on the target are never rolled back or recreated here",
    "no-clone-handling": "clones are replicated as ordinary filesystems (full sends)",
    "compress": "no compression in the pipe: add `Compression=yes` to the Host's ssh options",
    "source-bwlimit": "no bandwidth limit",
    "target-bwlimit": "no bandwidth limit",
    "mbuffer-size": "no mbuffer in the pipe",
    "pv-options": "progress is shown by reconcile itself",
    "preserve-recordsize": "set recordsize in receive.properties.override by hand",
    "insecure-direct-connection": "sends always go through ssh",
    "include-snaps": "every managed snapshot the target wants is sent",
    "exclude-snaps": "every managed snapshot the target wants is sent",
    "delete-target-snapshots": "target-only snapshots are never destroyed; the target's "
    "retention decides what it keeps",
}
_NOTES = {
    "identifier": "it only names syncoid's sync snapshots, which the policy does not take",
    "create-bookmark": "protection: resumable already bookmarks the newest replicated snapshot",
    "keep-sync-snap": "sync snapshots are not taken here; those left are shown by reconcile status",
    "no-resume": "receives are always resumable (zfs receive -s)",
    "no-stream": "a first send transfers the newest snapshot only (initialReplication: "
    "mostRecent); later sends carry every snapshot the target's retention wants",
    "use-hold": "protection: resumable holds the newest common snapshot",
    "preserve-properties": "send.properties: true (zfs send -p) sends them instead",
}
_ENDPOINT = re.compile(r"(?:(?P<user>[^@:/\s]+)@)?(?P<host>[^@:/\s]+):(?P<dataset>.+)")


@dataclass(frozen=True, slots=True)
class Endpoint:
    dataset: str
    host: str | None = None  # None: the local machine
    user: str | None = None


@dataclass(slots=True)
class SyncoidJob:
    """One syncoid command line, as far as it was read."""

    index: int
    line: str
    source: Endpoint | None = None
    target: Endpoint | None = None
    recursive: bool = False
    skip_parent: bool = False
    excludes: list[tuple[str, int]] = field(default_factory=list)  # regex, column
    send: dict[str, bool] = field(default_factory=dict)
    override: dict[str, str] = field(default_factory=dict)
    inherit: list[str] = field(default_factory=list)
    ssh: dict[str, Any] = field(default_factory=dict)
    sudo: bool = True
    options: dict[str, int] = field(default_factory=dict)  # option → column
    findings: list[Finding] = field(default_factory=list)

    @property
    def file(self) -> str:
        return f"--syncoid[{self.index}]"

    def add(
        self, column: int, path: str, why: str, *, dropped: bool, retention: bool = False
    ) -> None:
        outcome = Outcome.NOT_CONVERTED if dropped else Outcome.NOTE
        self.findings.append(Finding(self.file, 1, column, path, outcome, why, retention))


def read_syncoid(index: int, line: str) -> SyncoidJob:
    """The job of one command line; what cannot be read is a finding, never an exception."""
    job = SyncoidJob(index, line)
    try:
        words = _words(line)
    except ValueError as error:
        job.add(
            1, "syncoid", f"cannot split the command line: {error}", dropped=True, retention=True
        )
        return job
    if words and words[0][0].rsplit("/", 1)[-1] == "syncoid":
        words = words[1:]
    positional = _options(job, words)
    if len(positional) != 2:
        column = positional[2][1] if len(positional) > 2 else 1
        job.add(
            column,
            "syncoid",
            f"expected SOURCE and TARGET, got {len(positional)} "
            "argument(s): the line is not converted",
            dropped=True,
            retention=True,
        )
        return job
    job.source, job.target = (_endpoint(word) for word, _ in positional)
    return job


def _words(line: str) -> list[tuple[str, int]]:
    """The words of `line` and the 1-based column where each starts."""
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[tuple[str, int]] = []
    end = 0
    while True:
        start = end
        while start < len(line) and line[start].isspace():
            start += 1
        word = lexer.get_token()
        if word is None or word == lexer.eof:
            return words
        words.append((word, start + 1))
        end = stream.tell()


def _options(job: SyncoidJob, words: list[tuple[str, int]]) -> list[tuple[str, int]]:
    positional: list[tuple[str, int]] = []
    queue = list(words)
    while queue:
        word, column = queue.pop(0)
        if word == "--":
            positional.extend(queue)
            break
        if not word.startswith("-") or word == "-":
            positional.append((word, column))
            continue
        name, equals, value = word.lstrip("-").partition("=")
        name = _SHORT.get(name, name) if not word.startswith("--") else name
        if name not in _OPTIONS:
            job.add(
                column,
                word[:40],
                "an option syncoid 2.1 does not have, or one this "
                "importer does not know: not converted",
                dropped=True,
            )
            continue
        if _OPTIONS[name] and not equals:
            if not queue:
                job.add(column, f"--{name}", "needs a value", dropped=True)
                continue
            value = queue.pop(0)[0]
        _apply(job, name, value, column)
    return positional


def _apply(job: SyncoidJob, name: str, value: str, column: int) -> None:
    path = f"--{name}"
    job.options[name] = column
    if name == "recursive":
        job.recursive = True
    elif name == "skip-parent":
        job.skip_parent = True
    elif name == "exclude":
        job.excludes.append((value, column))
    elif name == "no-privilege-elevation":
        job.sudo = False
    elif name == "sendoptions":
        _send_options(job, value, column)
    elif name == "recvoptions":
        _receive_options(job, value, column)
    elif name in ("sshkey", "sshport", "sshcipher", "sshoption"):
        _ssh(job, name, value, column)
    elif name in _DROPPED:
        job.add(
            column,
            path,
            _DROPPED[name],
            dropped=True,
            retention=name in ("delete-target-snapshots", "include-snaps", "exclude-snaps"),
        )
    elif name in _NOTES:
        if name == "preserve-properties":
            job.send["properties"] = True
        job.add(column, path, _NOTES[name], dropped=False)
    elif name in _QUIET:
        job.add(column, path, "changes only syncoid's own output or checks", dropped=False)


def _send_options(job: SyncoidJob, value: str, column: int) -> None:
    for flag in "".join(value.split(" ")):
        if flag in _SEND_FLAGS:
            job.send[_SEND_FLAGS[flag]] = True
        else:
            job.add(
                column,
                f"--sendoptions={value[:40]}",
                f"zfs send -{flag}: no send setting matches it",
                dropped=True,
            )


def _receive_options(job: SyncoidJob, value: str, column: int) -> None:
    words = value.split(" ")
    path = f"--recvoptions={value[:40]}"
    while words:
        word = words.pop(0)
        for position, flag in enumerate(word):
            if flag in "ox":
                argument = words.pop(0) if words and position == len(word) - 1 else None
                if argument is None:
                    job.add(column, path, f"-{flag} needs a value", dropped=True)
                    return
                _receive_property(job, flag, argument, column, path)
                break
            if flag in "us":
                job.add(column, path, f"zfs receive -{flag} is always used", dropped=False)
            else:
                job.add(
                    column,
                    path,
                    f"zfs receive -{flag}: no receive setting matches it",
                    dropped=True,
                    retention=flag == "F",
                )


def _receive_property(job: SyncoidJob, flag: str, argument: str, column: int, path: str) -> None:
    if flag == "x":
        job.inherit.append(argument)
        return
    key, equals, value = argument.partition("=")
    if not equals:
        job.add(column, path, f"-o {argument[:40]}: not PROPERTY=VALUE", dropped=True)
        return
    job.override[key] = value


def _ssh(job: SyncoidJob, name: str, value: str, column: int) -> None:
    if name == "sshkey":
        job.ssh["identityFile"] = value
    elif name == "sshport":
        if value.isascii() and value.isdigit() and 1 <= int(value) <= 65535:
            job.ssh["port"] = int(value)
        else:
            job.add(column, "--sshport", f"{value[:40]!r} is not a port", dropped=True)
    elif name == "sshcipher":
        job.ssh.setdefault("options", []).append(f"Ciphers={value}")
    elif re.fullmatch(r"[A-Za-z][A-Za-z0-9]*=.+", value):
        job.ssh.setdefault("options", []).append(value)
    else:
        job.add(
            column,
            "--sshoption",
            f"{value[:40]!r}: only Key=Value options are converted",
            dropped=True,
        )


def _endpoint(word: str) -> Endpoint:
    match = _ENDPOINT.fullmatch(word)
    if match is None:
        return Endpoint(word)
    return Endpoint(match["dataset"], match["host"], match["user"])
