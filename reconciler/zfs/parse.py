"""Parsers of `zfs` output (`-H -p`: tab-separated, exact numbers): pure functions, no I/O.

Owned here: `parse_listing` / `ListingParser` (the one observe listing of
`commands.list_versions` → `Listing`), `parse_names` (the cheap listing of
`commands.list_versions` with `NAME_COLUMNS`: names, GUIDs and createtxgs) and `with_details`
(it completed by `commands.list_details`), `parse_holds` and `apply_holds` (the follow-up `zfs
holds` call for the snapshots the listing shows as held), `parse_send_estimate` (the `size`
line of `send -v -P` / `-n -v -P`), `parse_send_progress`, `parse_send_progress_line`,
`parse_send_sizes` and `SendProgressTracker` (what a `send -v -P` prints on stderr while it
runs), and `ListingParseError`. Called by the real driver; the values it builds are the same as
the in-memory model's for the same situation (`zfs/model/zfs.py`, `_filesystem_state`).

What the listing looks like (OpenZFS 2.3.2, fixtures `tests/fixtures/zfs/zfs-list-*.txt`):
- zfs sorts it by dataset name, each filesystem's snapshots right after it in createtxg order,
  and its bookmarks (`fs#mark`) where `#` sorts among the names, so not always next to it.
  The parser relies on none of this for correctness: versions are put in `sort_versions`
  order, and rows in an unexpected place take a slower path.
- Bookmarks list `-` as `userrefs` and `written` (written is 0 here, as in the model); their
  `referenced` is their snapshot's.
- A partial receive leaves its token on the filesystem (`receive_resume_token`); the hidden
  `fs/%recv` child is not listed by `zfs list -r`, and any name with `%` is skipped anyway.
  An interrupted full receive into a new filesystem lists that filesystem with no snapshots,
  its token, and `written` = what has arrived so far: the model's `FilesystemState` exactly.
- `encryptionroot` is `-` when unencrypted, the encryption root otherwise (`-` on bookmarks).

Speed (tests/bench/parse_bench.py, docs/benchmarks.md): 1,000,000 versions in 1.3 s (best
run) on the 2-core reference machine, most of it creating the values themselves (the split fields,
the ints, the Versions) and the memory they take. The output is parsed as bytes (zfs names
are ASCII), in chunks of whole lines; each chunk is split once into a flat list of fields with
a marker between rows (which also proves every row has the right column count); columns are
strided slices of it. The userrefs column, joined, tells in two searches which rows have holds
and which are not snapshots. A run of snapshot rows of one filesystem is built column by
column: its short names are most often those of a recent run of another filesystem (one `zfs
snapshot` call names many alike), proven by one comparison of the joined names, and otherwise
cut off the `fs@` prefix by one join and split; numbers many rows share (createtxg and
creation: one `zfs snapshot` call gives all its snapshots the same) are converted once, and a
run that is a stretch of a recent run reuses a slice of its numbers; each `Version` (a named
tuple) is made by `tuple.__new__` in C. The result equals, field by field, what `Version(...)`
builds (tests/test_zfs_parse.py). `ListingParser` parses while zfs is still writing, which
hides most of this behind zfs's own listing time.

The cyclic garbage collector is paused while the values are built, and they are frozen
(`gc.freeze`) before it is turned back on: `collector_paused(freeze=True)` of
`reconciler.collector`, whose outermost pause (of any thread) freezes. They hold no cycles;
without the pause a million new tracked objects would trigger a dozen full collections, each
walking every object built so far, and without the freeze the first collection after it would
still walk them all once (and every later full collection again). Frozen objects are freed by
their reference counts as usual; `observe_hosts` runs `collect_frozen` once per pass, so
cyclic garbage frozen along with them is reclaimed then.
"""

from __future__ import annotations

import dataclasses
import json
from bisect import bisect_right
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import compress, islice, repeat
from operator import attrgetter, lt

from reconciler.collector import collector_paused
from reconciler.core.state import (
    FilesystemKind,
    FilesystemState,
    ResumeToken,
    Stamp,
    Version,
    VersionKind,
    completed,
    short_names_by_filesystem,
    sort_versions,
)
from reconciler.zfs.commands import LIST_COLUMNS
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.token import ResumeTokenCorrupt, decode_resume_token

_COLUMNS = len(LIST_COLUMNS)
_STRIDE = _COLUMNS + 1  # the fields of one row, then the row marker
_MARK = b"\n"
CHUNK_BYTES = 1 << 16  # ~600 rows: a chunk's fields stay in the CPU cache
_NAME, _TYPE, _GUID, _TXG, _CREATION, _USERREFS, _WRITTEN, _REFERENCED, _TOKEN, _ENCRYPTION_ROOT = (
    range(_COLUMNS)
)
_SNAPSHOT = b"snapshot"
_BOOKMARK = b"bookmark"
_FILESYSTEM_KINDS = {b"filesystem": FilesystemKind.FILESYSTEM, b"volume": FilesystemKind.VOLUME}
_UNSET = frozenset({b"-", b""})
_NOT_HELD = frozenset({b"0", b"-"})
_NO_HOLDS: frozenset[str] = frozenset()
_TXG_OF = attrgetter("createtxg")
_NEW_TUPLE = tuple.__new__  # tuple.__new__(Version, fields): Version._make without its checks


class ListingParseError(ZFSError):
    """zfs printed something the parser does not understand. `line` is the 1-based line of
    the output (0 when the problem is not one line's); the pass treats the host as not
    observed, like any other ZFSError of `observe()`."""

    def __init__(self, host: str, line: int, detail: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(host, "", f"cannot parse zfs output: {where}{detail}")
        self.line = line


@dataclass(frozen=True, slots=True)
class Listing:
    """The observe listing: every filesystem and volume (by name, sorted) with its versions,
    and the full names of the snapshots that have holds (`userrefs` > 0), whose tags the
    follow-up `zfs holds` call fetches (`apply_holds`)."""

    filesystems: dict[str, FilesystemState]
    held: tuple[str, ...] = ()
    # the stamp listing's (`parse_stamps`): filesystem → (its GUID, `snapshots_changed` or None)
    stamps: dict[str, Stamp] = field(default_factory=dict)

    def only(self, filesystems: Collection[str]) -> Listing:
        """This listing restricted to `filesystems` (and the held snapshots of those)."""
        return Listing(
            {name: state for name, state in self.filesystems.items() if name in filesystems},
            tuple(full for full in self.held if full.partition("@")[0] in filesystems),
            {name: stamp for name, stamp in self.stamps.items() if name in filesystems},
        )


def merged(listings: Sequence[Listing]) -> Listing:
    """One listing of several (of disjoint parts of a host; a filesystem listed twice keeps
    its first listing), its filesystems sorted by name."""
    if len(listings) == 1:
        return listings[0]
    filesystems: dict[str, FilesystemState] = {}
    held: dict[str, None] = {}
    stamps: dict[str, Stamp] = {}
    for listing in listings:
        for name, state in listing.filesystems.items():
            filesystems.setdefault(name, state)
        held.update(dict.fromkeys(listing.held))
        for name, stamp in listing.stamps.items():
            stamps.setdefault(name, stamp)
    return Listing(dict(sorted(filesystems.items())), tuple(held), stamps)


@dataclass(frozen=True, slots=True)
class SendProgress:
    """One progress line of `zfs send -v -P`: `HH:MM:SS<TAB>bytes<TAB>snapshot`. `sent`
    counts the bytes of the snapshot's own substream: it starts again at 0 for each snapshot
    of a `-I` stream, and a resumed send counts from the resume point."""

    time: str
    sent: int
    snapshot: str


def parse_listing(
    output: bytes | str, host: str = "", *, chunk_bytes: int = CHUNK_BYTES
) -> Listing:
    """`zfs list -H -p -o LIST_COLUMNS -t filesystem,volume,snapshot,bookmark` → Listing,
    from zfs's stdout as it came (bytes) or decoded. Raises ListingParseError (with `host`)
    for a row with the wrong column count, a number that is not one, an unknown type, or a
    resume token zfs cannot have written. `chunk_bytes` is how much is split at once."""
    with collector_paused(freeze=True):
        parser = ListingParser(host, chunk_bytes=chunk_bytes)
        parser.feed(output)
        return parser.finish()


class ListingParser:
    """`parse_listing` in pieces, for output read while zfs is still writing it: `feed` the
    pieces in order (cut anywhere, even inside a line), then `finish`. Parsing a piece while
    the next is on its way hides most of the parse time behind zfs's own listing time. Same
    result and errors as parse_listing."""

    def __init__(self, host: str = "", *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._builder = _ListingBuilder(host)
        self._chunk_bytes = chunk_bytes
        self._pending = b""  # the last, incomplete line
        self._line = 1  # the number of the pending line

    def feed(self, output: bytes | str) -> None:
        piece = output.encode() if isinstance(output, str) else output
        _refuse_non_ascii(piece, self._builder.host, self._line + self._pending.count(b"\n"))
        data = self._pending + piece if self._pending else piece
        cut = data.rfind(b"\n")
        if cut < 0:
            self._pending = data
            return
        self._pending = data[cut + 1 :]
        self._parse(data, cut + 1)

    def finish(self) -> Listing:
        if self._pending:
            self._parse(self._pending, len(self._pending))
            self._pending = b""
        with collector_paused(freeze=True):
            return self._builder.finish()

    def _parse(self, data: bytes, end: int) -> None:
        """The whole lines of data[:end] (end just after a newline, or the end of data)."""
        line = self._line
        with collector_paused(freeze=True):
            for chunk in _chunks(data, self._chunk_bytes, end):
                line += self._builder.add_chunk(line, chunk)
        self._line = line


def parse_stamps(output: bytes | str, host: str = "") -> Listing:
    """`zfs list -H -p -o name,guid,createtxg,snapshots_changed,origin -t
    filesystem,volume,bookmark` → the Listing `parse_names` makes of the first three columns
    (filesystems with their bookmarks), with each filesystem's `Stamp` in `stamps` (None for a
    `-`). Raises ListingParseError as `parse_names` does, and for a stamp that is not a number
    or `-`."""
    data = output.encode() if isinstance(output, str) else output
    _refuse_non_ascii(data, host, 1)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    rows = [line.split(b"\t") for line in lines]
    stamps: dict[str, Stamp] = {}
    for number, row in enumerate(rows, 1):
        if len(row) != 5:
            raise ListingParseError(
                host,
                number,
                f"expected 5 tab-separated columns, found {len(row)}: {_text(lines[number - 1])!r}",
            )
        name, guid, _, stamp, origin = row
        if b"@" in name or b"#" in name or b"%" in name:
            continue
        digits = guid.isdigit() and (stamp.isdigit() or stamp == b"-")
        try:
            if not digits:
                raise ValueError(stamp)
            stamps[name.decode()] = Stamp(
                int(guid),
                int(stamp) if stamp != b"-" else None,
                origin.decode() if origin not in _UNSET else None,
            )
        except ValueError:  # not digits, or more digits than int() takes
            raise ListingParseError(
                host, number, f"not a number in {_text(lines[number - 1])!r}"
            ) from None
    listing = parse_names(b"".join(b"\t".join(row[:3]) + b"\n" for row in rows), host)
    return Listing(listing.filesystems, listing.held, stamps)


def parse_names(output: bytes | str, host: str = "") -> Listing:
    """`zfs list -H -p -o name,guid,createtxg -t filesystem,volume,snapshot,bookmark` → a
    Listing of every filesystem and its versions by name, GUID and createtxg only (the kind of
    a filesystem, its properties and every version's other fields keep their defaults until
    `with_details`). A name with `@` is a snapshot, with `#` a bookmark, otherwise a
    filesystem or volume. Raises ListingParseError (with `host`) for a row with the wrong
    column count, a number that is not one, or a version name without its filesystem part."""
    data = output.encode() if isinstance(output, str) else output
    _refuse_non_ascii(data, host, 1)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    with collector_paused(freeze=True):
        rows = [line.split(b"\t") for line in lines]
        if any(len(row) != 3 for row in rows):
            number = next(n for n, row in enumerate(rows, 1) if len(row) != 3)
            found = len(rows[number - 1])
            raise ListingParseError(
                host,
                number,
                f"expected 3 tab-separated columns, found {found}: {_text(lines[number - 1])!r}",
            )
        try:
            guids = [int(row[1]) for row in rows]
            txgs = [int(row[2]) for row in rows]
        except ValueError:
            number = next(
                n for n, row in enumerate(rows, 1) if not (row[1].isdigit() and row[2].isdigit())
            )
            raise ListingParseError(
                host, number, f"not a number in {_text(lines[number - 1])!r}"
            ) from None
        return _names_listing(host, rows, guids, txgs)


def _names_listing(
    host: str, rows: list[list[bytes]], guids: list[int], txgs: list[int]
) -> Listing:
    snapshots: dict[bytes, list[Version]] = {}
    bookmarks: dict[bytes, list[Version]] = {}
    short_names: dict[bytes, str] = {}
    snapshot, bookmark = VersionKind.SNAPSHOT, VersionKind.BOOKMARK
    for number, (row, guid, txg) in enumerate(zip(rows, guids, txgs, strict=True), 1):
        name = row[0]
        filesystem, at, short = name.partition(b"@")
        kind = snapshot
        if not at:
            filesystem, at, short = name.partition(b"#")
            kind = bookmark
            if not at:
                snapshots.setdefault(name, [])
                continue
        if not filesystem or not short:
            raise ListingParseError(host, number, f"not a version name: {_text(name)!r}")
        text = short_names.get(short)
        if text is None:
            text = short_names[short] = _text(short)
        version = _NEW_TUPLE(Version, (kind, text, guid, txg, 0, 0, 0, _NO_HOLDS))
        (snapshots if kind is snapshot else bookmarks).setdefault(filesystem, []).append(version)
    for filesystem in bookmarks:
        snapshots.setdefault(filesystem, [])
    states: dict[str, FilesystemState] = {}
    for raw in sorted(snapshots):
        if b"%" in raw:
            continue
        versions = snapshots[raw]
        marks = bookmarks.get(raw)
        ascending = all(map(lt, map(_TXG_OF, versions), map(_TXG_OF, islice(versions, 1, None))))
        if marks or not ascending:
            ordered = sort_versions([*versions, *(marks or ())])
        else:
            ordered = tuple(versions)
        text = raw.decode()
        states[text] = FilesystemState(name=text, versions=ordered)
    return Listing(filesystems=states)


def with_details(names: Listing, details: Listing, asked: Collection[str]) -> Listing:
    """The cheap listing `names` completed by `details` (`list_details` of its filesystems and
    of the snapshots `asked`, full names): each filesystem takes its properties from
    `details` and each asked snapshot its fields; a filesystem `details` does not have is gone
    and left out, as is an asked snapshot it does not have with the same GUID (destroyed
    between the two listings). `held` is the details' own."""
    by_filesystem = short_names_by_filesystem(asked)
    states: dict[str, FilesystemState] = {}
    for name, listed in names.filesystems.items():
        detailed = details.filesystems.get(name)
        if detailed is not None:
            states[name] = completed(listed, detailed, by_filesystem.get(name, set()))
    return Listing(filesystems=states, held=details.held)


def parse_holds(text: str, host: str = "") -> dict[str, frozenset[str]]:
    """`zfs holds -H -p` (`snapshot<TAB>tag<TAB>creation`) → full snapshot name → tags.
    A tag may contain spaces (and tabs: the name is the first field, the time the last)."""
    tags: dict[str, set[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        name, _, rest = line.partition("\t")
        tag, _, _created = rest.rpartition("\t")
        if not name or not _ or "@" not in name:
            raise ListingParseError(host, number, f"expected snapshot, tag, time: {line!r}")
        tags.setdefault(name, set()).add(tag)
    return {name: frozenset(found) for name, found in tags.items()}


def apply_holds(
    listing: Listing, holds: Mapping[str, frozenset[str]]
) -> dict[str, FilesystemState]:
    """The listing's filesystems with each snapshot's hold tags filled in. Snapshots missing
    from `holds` keep no tags; holds of snapshots the listing does not have are ignored."""
    by_filesystem: dict[str, dict[str, frozenset[str]]] = {}
    for full_name, tags in holds.items():
        filesystem, _, short = full_name.partition("@")
        if tags:
            by_filesystem.setdefault(filesystem, {})[short] = tags
    result = dict(listing.filesystems)
    for filesystem, tags_by_name in by_filesystem.items():
        state = result.get(filesystem)
        if state is not None:
            result[filesystem] = _with_holds(state, tags_by_name)
    return result


def parse_program_answer(output: bytes, names: Collection[str]) -> dict[str, int] | None:
    """The answer of a `zfs program -j` whose script returns {name: error number}: exactly
    the given names, each with an integer; None for anything else (not JSON, other keys, a
    missing name, a value that is no integer)."""
    try:
        document = json.loads(output)
    except ValueError:
        return None
    answer = document.get("return") if isinstance(document, dict) else None
    if not isinstance(answer, dict) or set(answer) != set(names):
        return None
    if not all(type(code) is int for code in answer.values()):
        return None
    return answer


def parse_send_estimate(text: str) -> int | None:
    """The total of a `zfs send -n -v -P` estimate (its `size<TAB>bytes` line), or None when
    there is none. Resume token contents and the per-snapshot lines are skipped."""
    total = None
    for line in text.splitlines():
        if line.startswith("size\t"):
            value = line[5:].strip()
            total = int(value) if value.isdigit() else None
    return total


def parse_send_progress(line: str) -> int | None:
    """The bytes sent so far from one progress line of `zfs send -v -P`, None for any other
    line (estimates, resume token contents, warnings). See SendProgress for what it counts."""
    progress = parse_send_progress_line(line)
    return None if progress is None else progress.sent


def parse_send_progress_line(line: str) -> SendProgress | None:
    """One stderr line of `zfs send -v -P` as SendProgress, or None if it is not progress."""
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != 3 or not parts[1].isdigit() or not _is_clock(parts[0]):
        return None
    return SendProgress(time=parts[0], sent=int(parts[1]), snapshot=parts[2])


def parse_send_sizes(text: str) -> dict[str, int]:
    """The per-snapshot estimates of `zfs send -v -P` (`full<TAB>to<TAB>bytes`,
    `incremental<TAB>from<TAB>to<TAB>bytes`): full to-snapshot name → bytes. With
    SendProgress lines, this tells how much of a `-I` stream the finished snapshots took."""
    sizes: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] in ("full", "incremental") and len(parts) >= 3 and parts[-1].isdigit():
            sizes[parts[-2]] = int(parts[-1])
    return sizes


class SendProgressTracker:
    """Bytes of the whole stream sent so far, fed the stderr lines of one `zfs send -v -P`
    one by one (a callable: line → bytes so far, None for lines that are not progress).

    zfs counts each snapshot of a `-I` stream from 0 again; this adds the finished
    snapshots' bytes (their estimate, or what their last progress line said if more), so the
    figure only grows. One tracker per transfer; it does no I/O."""

    def __init__(self) -> None:
        self._sizes: dict[str, int] = {}
        self._finished = 0
        self._current: str | None = None
        self._current_sent = 0

    def __call__(self, line: str) -> int | None:
        self._sizes.update(parse_send_sizes(line))
        progress = parse_send_progress_line(line)
        if progress is None:
            return None
        if progress.snapshot != self._current:
            if self._current is not None:
                size = self._sizes.get(self._current, 0)
                self._finished += max(size, self._current_sent)
            self._current = progress.snapshot
        self._current_sent = progress.sent
        return self._finished + progress.sent


def _is_clock(text: str) -> bool:
    hours, _, rest = text.partition(":")
    minutes, _, seconds = rest.partition(":")
    return all(part.isdigit() and len(part) == 2 for part in (hours, minutes, seconds))


def _with_holds(
    state: FilesystemState, tags_by_name: Mapping[str, frozenset[str]]
) -> FilesystemState:
    versions = tuple(
        version._replace(holds=tags_by_name[version.name])
        if version.kind is VersionKind.SNAPSHOT and version.name in tags_by_name
        else version
        for version in state.versions
    )
    return dataclasses.replace(state, versions=versions)


def _chunks(data: bytes, chunk_bytes: int, stop: int) -> Iterator[bytes]:
    """Chunks of whole lines, without their last newline, of data[:stop], which ends with a
    newline or is the end of the output."""
    start = 0
    size = stop - 1 if stop and data[stop - 1] == 10 else stop  # 10: "\n"
    while stop and start <= size:
        end = data.find(b"\n", start + max(chunk_bytes, 1), size)
        if end < 0:
            end = size
        yield data[start:end]
        start = end + 1


@dataclass(frozen=True, slots=True)
class _Run:
    """The numbers of one column of a run of snapshot rows, and whether they strictly
    increase (which a stretch of a run inherits from it)."""

    numbers: list[int]
    ascending: bool


@dataclass(frozen=True, slots=True)
class _SeenRun:
    texts: list[bytes]
    run: _Run
    position: dict[bytes, int]  # first row of each text


@dataclass(frozen=True, slots=True)
class _SeenNames:
    texts: list[bytes]  # short names, as listed
    names: list[str]  # the same as str
    position: dict[bytes, int]  # first row of each short name


@dataclass(slots=True)
class _Filesystem:
    """What the listing said about one filesystem so far."""

    row: tuple[bytes, ...] | None = None  # its own row (kind, written, token, encryption root)
    line: int = 0
    snapshots: list[Version] = field(default_factory=list)
    bookmarks: list[Version] = field(default_factory=list)
    ascending: bool = True  # the snapshots' createtxgs strictly increase, as listed
    last_txg: int = -1

    def add_snapshots(self, versions: list[Version], txgs: _Run) -> None:
        """Snapshots in listing order, with their createtxgs."""
        if self.ascending:
            self.ascending = self.last_txg < txgs.numbers[0] and txgs.ascending
        self.last_txg = txgs.numbers[-1]
        self.snapshots.extend(versions)


class _ListingBuilder:
    """Accumulates the chunks of one listing; `finish` builds the Listing. Works on bytes:
    zfs names are ASCII, and splitting bytes is cheaper than splitting str."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.filesystems: dict[bytes, _Filesystem] = {}
        self.held: list[str] = []
        self.current = b""  # the filesystem whose snapshots are expected next
        self.shared: dict[bytes, int] = {}  # numbers many rows share (createtxg, creation)
        self.short_names: dict[bytes, str] = {}  # one str per distinct short name
        self.recent: list[_SeenRun] = []  # the last runs of shared numbers
        self.recent_names: list[_SeenNames] = []  # the last runs of short names

    # -- one chunk --------------------------------------------------------------------------

    def add_chunk(self, first_line: int, chunk: bytes) -> int:
        """Adds the rows of a chunk of whole lines (`first_line` is the number of its first);
        returns how many lines it had."""
        marked = chunk.replace(b"\n", b"\t\n\t")
        rows = (len(marked) - len(chunk)) // 2 + 1  # each newline grew by two bytes
        fields = marked.split(b"\t")
        del marked
        if len(fields) != rows * _STRIDE - 1 or fields[_COLUMNS::_STRIDE].count(_MARK) != rows - 1:
            raise self._column_error(first_line, chunk)
        try:
            self._add_rows(first_line, fields, rows)
        except ValueError as error:
            raise self._value_error(first_line, fields, rows, error) from error
        return rows

    def _add_rows(self, first_line: int, fields: list[bytes], rows: int) -> None:
        """Runs of snapshot rows are built together; the rows between them one by one."""
        userrefs = fields[_USERREFS::_STRIDE]
        joined = b"".join(userrefs)  # one byte per row: `-`, or a snapshot's 0 to 9 holds
        by_byte = len(joined) == rows and b"" not in userrefs
        self._collect_held(fields, joined if by_byte else userrefs)
        others = _other_rows(fields, rows, joined if by_byte else None)
        start = 0
        for end in [*others, rows]:
            if start < end:
                self._add_snapshots(fields, start, end)
            if end < rows:
                row = fields[end * _STRIDE : end * _STRIDE + _COLUMNS]
                self._add_other_row(first_line + end, row)
            start = end + 1

    def _add_snapshots(self, fields: list[bytes], start: int, end: int) -> None:
        names = _column(fields, _NAME, start, end)
        shorts = self._short_names(names, self.current + b"@") if self.current else None
        if shorts is not None:
            versions, txgs = self._snapshot_versions(fields, start, end, shorts)
            self._filesystem(self.current).add_snapshots(versions, txgs)
            return
        parts = [name.partition(b"@") for name in names]  # rows out of zfs's usual order
        if not all(sign and short for _, sign, short in parts):
            raise ValueError("a snapshot row without a snapshot name")
        shorts = self._names([short for _, _, short in parts])
        versions, txgs = self._snapshot_versions(fields, start, end, shorts)
        for (filesystem, _, _), version, txg in zip(parts, versions, txgs.numbers, strict=True):
            self._filesystem(filesystem).add_snapshots([version], _Run([txg], True))

    def _snapshot_versions(
        self, fields: list[bytes], start: int, end: int, shorts: list[str]
    ) -> tuple[list[Version], _Run]:
        """The Versions of snapshot rows start..end, built column-wise in C: each equals
        `Version(SNAPSHOT, short, guid, createtxg, creation, written, referenced)`; and
        their createtxgs."""
        count = end - start
        txgs = self._shared_numbers(_column(fields, _TXG, start, end))
        rows = zip(
            repeat(VersionKind.SNAPSHOT, count),
            shorts,
            map(int, _column(fields, _GUID, start, end)),
            txgs.numbers,
            self._shared_numbers(_column(fields, _CREATION, start, end)).numbers,
            map(int, _column(fields, _WRITTEN, start, end)),
            map(int, _column(fields, _REFERENCED, start, end)),
            repeat(_NO_HOLDS, count),
            strict=True,
        )
        versions: list[Version] = list(map(_NEW_TUPLE, repeat(Version), rows))
        return versions, txgs

    def _short_names(self, names: list[bytes], prefix: bytes) -> list[str] | None:
        """The names without `prefix` (`fs@`) as str, or None when one of them does not start
        with it. Most runs have the same short names as a stretch of a recent run of another
        filesystem (one `zfs snapshot` call names the snapshots of many alike): then one
        comparison of the joined names proves it and that run's strs are reused. Otherwise the
        names, which hold no newline, are joined by newlines and split at newline + prefix,
        which gives one part more than there are names exactly when every name starts with
        the prefix."""
        joined = b"\n" + b"\n".join(names)
        glue = b"\n" + prefix
        if names[0].startswith(prefix):
            first, count = names[0][len(prefix) :], len(names)
            for seen in self.recent_names:
                at = seen.position.get(first)
                if at is not None and glue + glue.join(seen.texts[at : at + count]) == joined:
                    return seen.names[at : at + count]
        shorts = joined.split(glue)
        if len(shorts) != len(names) + 1:
            return None
        del shorts[0]
        strs = self._names(shorts)
        self.recent_names = [_SeenNames(shorts, strs, _first_rows(shorts)), *self.recent_names[:3]]
        return strs

    def _names(self, shorts: list[bytes]) -> list[str]:
        """The short names as str, one object per distinct name."""
        known = self.short_names
        names = list(map(known.get, shorts))
        if None in names:
            for short in shorts:
                if short not in known:
                    known[short] = short.decode()
            names = list(map(known.__getitem__, shorts))
        return names  # type: ignore[return-value]

    def _shared_numbers(self, texts: list[bytes]) -> _Run:
        """int of each text, one int object per distinct text. Filesystems snapshotted
        together share createtxg and creation, so a run is most often a stretch of one of
        the last runs (a whole one, or cut by a chunk's end): then its numbers are a slice of
        that run's, with no lookup per row."""
        count = len(texts)
        for seen in self.recent:
            at = seen.position.get(texts[0])
            if at is not None and seen.texts[at : at + count] == texts:
                return _Run(seen.run.numbers[at : at + count], seen.run.ascending)
        numbers = self._numbers(texts)
        ascending = all(map(lt, numbers, islice(numbers, 1, None)))
        run = _Run(numbers, ascending)
        self.recent = [_SeenRun(texts, run, _first_rows(texts)), *self.recent[:3]]
        return run

    def _numbers(self, texts: list[bytes]) -> list[int]:
        shared = self.shared
        numbers = list(map(shared.get, texts))
        if None in numbers:
            for text in texts:
                if text not in shared:
                    shared[text] = int(text)
            numbers = list(map(shared.__getitem__, texts))
        return numbers  # type: ignore[return-value]

    def _collect_held(self, fields: list[bytes], userrefs: list[bytes] | bytes) -> None:
        """Names of snapshot rows whose userrefs is neither 0 nor `-` (snapshots with holds).
        `userrefs` is the chunk's column, or that column joined when each is one byte."""
        if isinstance(userrefs, bytes):
            held = set(userrefs.translate(None, b"0-"))
            rows = sorted(row for refs in held for row in _positions(userrefs, bytes([refs])))
        else:
            texts = set(userrefs).difference(_NOT_HELD)
            rows = sorted(row for text in texts for row in _positions(userrefs, text))
        names = (fields[row * _STRIDE + _NAME] for row in rows)
        self.held.extend(name.decode() for name in names if b"@" in name and b"%" not in name)

    def _add_other_row(self, line: int, row: list[bytes]) -> None:
        name, kind = row[_NAME], row[_TYPE]
        if kind == _BOOKMARK:
            filesystem, sign, short = name.partition(b"#")
            if not sign or not short:
                raise ListingParseError(self.host, line, f"not a bookmark name: {_text(name)!r}")
            self._filesystem(filesystem).bookmarks.append(_bookmark(row, short.decode()))
            return
        if kind not in _FILESYSTEM_KINDS or b"@" in name or b"#" in name:
            detail = f"unexpected {_text(kind)!r} row: {_text(name)!r}"
            raise ListingParseError(self.host, line, detail)
        entry = self._filesystem(name)
        entry.row, entry.line = tuple(row), line
        self.current = name

    def _filesystem(self, name: bytes) -> _Filesystem:
        entry = self.filesystems.get(name)
        if entry is None:
            entry = self.filesystems[name] = _Filesystem()
        return entry

    # -- errors -----------------------------------------------------------------------------

    def _column_error(self, first_line: int, chunk: bytes) -> ListingParseError:
        for offset, line in enumerate(chunk.split(b"\n")):
            found = line.count(b"\t") + 1
            if found != _COLUMNS:
                detail = f"expected {_COLUMNS} tab-separated columns, found {found}"
                return ListingParseError(
                    self.host, first_line + offset, f"{detail}: {_text(line)!r}"
                )
        return ListingParseError(self.host, first_line, "malformed output")

    def _value_error(
        self, first_line: int, fields: list[bytes], rows: int, error: ValueError
    ) -> ListingParseError:
        """The first row of the chunk with a field that should be a number and is not."""
        for offset in range(rows):
            row = fields[offset * _STRIDE : offset * _STRIDE + _COLUMNS]
            numeric = [_GUID, _TXG, _CREATION, _REFERENCED]
            if row[_TYPE] != _BOOKMARK:
                numeric.append(_WRITTEN)
            bad = [row[index] for index in numeric if not row[index].isdigit()]
            if bad or (row[_TYPE] == _SNAPSHOT and b"@" not in row[_NAME]):
                what = f"not a number: {_text(bad[0])!r}" if bad else "not a snapshot name"
                line = _text(b"\t".join(row))
                detail = f"{what} in {line!r}"
                return ListingParseError(self.host, first_line + offset, detail)
        return ListingParseError(self.host, first_line, str(error))

    # -- the result -------------------------------------------------------------------------

    def finish(self) -> Listing:
        states: dict[str, FilesystemState] = {}
        for raw_name in sorted(self.filesystems):
            if b"%" not in raw_name:
                name = raw_name.decode()
                states[name] = self._state(name, self.filesystems[raw_name])
        return Listing(filesystems=states, held=tuple(self.held))

    def _state(self, name: str, entry: _Filesystem) -> FilesystemState:
        versions = _ordered(entry)
        row = entry.row
        if row is None:  # versions without their filesystem's row: not from list_versions
            return FilesystemState(name=name, versions=versions)
        return FilesystemState(
            name=name,
            versions=versions,
            kind=_FILESYSTEM_KINDS[row[_TYPE]],
            written=int(row[_WRITTEN]),
            resume_token=self._token(row[_TOKEN], entry.line),
            encrypted=row[_ENCRYPTION_ROOT] not in _UNSET,
        )

    def _token(self, text: bytes, line: int) -> ResumeToken | None:
        if text in _UNSET:
            return None
        try:
            return decode_resume_token(_text(text))
        except ResumeTokenCorrupt as error:
            raise ListingParseError(self.host, line, str(error)) from error


def _other_rows(fields: list[bytes], rows: int, userrefs: bytes | None) -> list[int]:
    """The rows of a chunk that are not snapshots, in order. Filesystems and bookmarks list
    `-` as userrefs and snapshots a number: given the userrefs joined (when each is one
    byte), the `-` in it are the candidates, and counting the snapshot types proves it (a
    search and a count instead of one comparison per row); otherwise each type is compared."""
    types = fields[_TYPE::_STRIDE]
    if userrefs is not None:
        candidates = _positions(userrefs, b"-")
        snapshots = types.count(_SNAPSHOT)
        if snapshots + len(candidates) == rows and _SNAPSHOT not in map(
            types.__getitem__, candidates
        ):
            return candidates
    return list(compress(range(rows), map(_SNAPSHOT.__ne__, types)))


def _first_rows(texts: list[bytes]) -> dict[bytes, int]:
    """The first row of each text (a recent run's index, to find a stretch of it again)."""
    return dict(zip(reversed(texts), range(len(texts) - 1, -1, -1), strict=True))


def _column(fields: list[bytes], index: int, start: int, end: int) -> list[bytes]:
    """Field `index` of rows start..end of a chunk's flat field list."""
    return fields[start * _STRIDE + index : end * _STRIDE : _STRIDE]


def _refuse_non_ascii(data: bytes, host: str, first_line: int) -> None:
    """zfs names (and resume tokens, and numbers) are ASCII: other bytes are not zfs's."""
    if data.isascii():
        return
    lines = data.split(b"\n")
    number = next(n for n, line in enumerate(lines) if not line.isascii())
    detail = f"not ASCII: {_text(lines[number])!r}"
    raise ListingParseError(host, first_line + number, detail)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _positions(values: bytes | list[bytes], value: bytes) -> list[int]:
    """Every index of `value` in `values` (a byte in a bytes, or an item of a list), in order."""
    find = values.find if isinstance(values, bytes) else partial(_index, values)
    found: list[int] = []
    at = find(value, 0)
    while at >= 0:
        found.append(at)
        at = find(value, at + 1)
    return found


def _index(values: list[bytes], value: bytes, start: int) -> int:
    try:
        return values.index(value, start)
    except ValueError:
        return -1


def _bookmark(row: Sequence[bytes], short: str) -> Version:
    return Version(
        kind=VersionKind.BOOKMARK,
        name=short,
        guid=int(row[_GUID]),
        createtxg=int(row[_TXG]),
        creation=int(row[_CREATION]),
        written=0,
        referenced=int(row[_REFERENCED]),
    )


def _ordered(entry: _Filesystem) -> tuple[Version, ...]:
    """`sort_versions` order. zfs lists a filesystem's snapshots by createtxg already; when
    their createtxgs strictly increase, the bookmarks are merged in after the snapshots of
    their txg (where sort_versions puts them) instead of sorting everything again."""
    snapshots, bookmarks = entry.snapshots, entry.bookmarks
    if not entry.ascending:
        return sort_versions([*snapshots, *bookmarks])
    if not bookmarks:
        return tuple(snapshots)
    merged: list[Version] = []
    start = 0
    for mark in sort_versions(bookmarks):
        end = bisect_right(snapshots, mark.createtxg, start, key=_TXG_OF)
        merged.extend(snapshots[start:end])
        merged.append(mark)
        start = end
    merged.extend(snapshots[start:])
    return tuple(merged)
