"""Argument vectors for every `zfs` verb the real driver runs: pure builders, no I/O.

Owned here: one builder per verb (`list_versions` and `list_filesystems`, with the observe
columns or the cheap ones, `list_details`, `holds`, `snapshot`, `send`, `receive`,
`abort_resume`, `hold`, `release`, `hold_many`, `release_many`, `bookmark`, `bookmark_program`,
`destroy_snapshots`, `destroy_bookmark`, `rollback`, `create`, `get`, `set`), the observe
listing's columns (`LIST_COLUMNS` and the cheap `NAME_COLUMNS`, read back by `zfs/parse.py`)
and the argument budget `ARG_MAX_BYTES`. Called by the real driver, which prefixes the host's
`zfsCommand` (`("zfs",)`, `("sudo", "zfs")`, ...) and runs the result through a command runner.

Each builder returns the arguments after the program, as a tuple of strings passed as they
are: no shell quoting here (a name with spaces stays one element; a runner that goes through a
shell, such as ssh, quotes each element). Dataset names and hold tags that start with `-` are
refused (`ValueError`): zfs would read them as options.

Verified on OpenZFS 2.3.2 (docs/zfs-verified.md, "The real driver's commands"):
- `send -v -P` prints the size estimate (`full|incremental ...` lines and `size<TAB>N`) and
  then, once a second, `HH:MM:SS<TAB>bytes<TAB>snapshot` progress lines on stderr, without
  touching the stream on stdout. `-P` alone prints only the estimate. With `-n` the estimate
  goes to stdout and nothing is sent.
- `send -t TOKEN` takes `-n -v -P` (and `-w -c -L -e`, which the token's own flags override
  anyway) but refuses `-p` ("invalid flags combined with -t"): a resume uses the token's flags
  and only the output flags are given.
- `receive -o P=V` of a filesystem-only property into a volume stream is refused ("property
  'canmount' does not apply to datasets of this type"); `-x` of one only warns. The planner
  leaves both out for a volume (`core.plan.FILESYSTEM_ONLY_PROPERTIES`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.core.plan import ReceiveOptions
from reconciler.zfs.port import SendRequest

# Linux refuses a single argument longer than MAX_ARG_STRLEN (131072 bytes), and over ssh the
# whole remote command line travels as ONE argument (to ssh, then to the remote `sh -c`). So a
# batch keeps the bytes of all its arguments (each plus a separator) at 100,000: that leaves
# about 30 KiB for the zfsCommand prefix, ssh options and shell quoting. Locally, the total
# limit (ARG_MAX, 2 MiB by default, shared with the environment) is far above it.
ARG_MAX_BYTES = 100_000

# The one observe listing. Version columns first; the last two concern filesystems only:
# `receive_resume_token` is `-` without partial state; `encryptionroot` is `-` for an
# unencrypted dataset (and a bookmark) and names the encryption root otherwise (a raw-received
# copy is its own). It says "encrypted" as `encryption` does, and costs the parser nothing per
# unencrypted row: a lone `-` is a shared string, `off` would be a new one on every row.
LIST_COLUMNS: tuple[str, ...] = (
    "name",
    "type",
    "guid",
    "createtxg",
    "creation",
    "userrefs",
    "written",
    "referenced",
    "receive_resume_token",
    "encryptionroot",
)
LIST_TYPES = "filesystem,volume,snapshot,bookmark"

# The stamp listing of the control loop (`zfs/stamps.py`): filesystems with their
# `snapshots_changed` (OpenZFS >= 2.2; whole UNIX seconds, `-` before any change) and `origin`
# (which `zfs promote` changes without moving the stamp, §29), and their bookmarks, without
# their snapshots, whose cheap listing (`NAME_COLUMNS`, `-t snapshot -d 1`) then names only the
# filesystems whose stamp moved.
STAMP_COLUMNS: tuple[str, ...] = ("name", "guid", "createtxg", "snapshots_changed", "origin")
STAMP_TYPES = "filesystem,volume,bookmark"
SNAPSHOT_TYPES = "snapshot"
GET_COLUMNS = "name,property,value,source"

# The cheap listing: zfs answers these three columns without reading each version's property
# list (docs/zfs-verified.md §27: 0.93 s against 3.1 s for 1,000 snapshots with any other
# column). `zfs/parse.py` tells a snapshot (`@`), a bookmark (`#`) and a filesystem apart by
# the name; everything else comes from `list_details`.
NAME_COLUMNS: tuple[str, ...] = ("name", "guid", "createtxg")


def list_versions(
    roots: Sequence[str] = (),
    columns: Sequence[str] = LIST_COLUMNS,
    types: str = LIST_TYPES,
) -> tuple[str, ...]:
    """`zfs list -H -p -o LIST_COLUMNS -t filesystem,volume,snapshot,bookmark [-r ROOT...]`
    (or `columns`, such as `NAME_COLUMNS`, and `types`, such as `STAMP_TYPES`, instead).
    Without roots, zfs lists every pool. Roots inside another root are left out (zfs would
    list them twice)."""
    argv = ("list", "-H", "-p", "-o", ",".join(columns), "-t", types)
    kept = _outermost([_dataset(root) for root in roots])
    return (*argv, "-r", *kept) if kept else argv


def list_filesystems(
    filesystems: Sequence[str],
    max_bytes: int = ARG_MAX_BYTES,
    columns: Sequence[str] = LIST_COLUMNS,
    types: str = LIST_TYPES,
) -> list[tuple[str, ...]]:
    """`zfs list -H -p -o LIST_COLUMNS -t ... -d 1 fs1 fs2 ...`: those filesystems with their
    snapshots and bookmarks (and their children's own rows; of the `types` asked), in as many
    calls as the argument budget needs. zfs lists the ones that exist even when others do not
    (and then exits 1)."""
    fixed = ("list", "-H", "-p", "-o", ",".join(columns), "-t", types, "-d", "1")
    names = [_dataset(name) for name in dict.fromkeys(filesystems)]
    return _batches(fixed, names, max_bytes)


def list_details(
    filesystems: Sequence[str], snapshots: Sequence[str], max_bytes: int = ARG_MAX_BYTES
) -> list[tuple[str, ...]]:
    """`zfs list -H -p -o LIST_COLUMNS -t filesystem,volume,snapshot FS... FS@SNAP...`: the
    named filesystems and snapshots, each once, with every observe column (the listing
    `parse_listing` reads), in as many calls as the argument budget needs."""
    fixed = ("list", "-H", "-p", "-o", ",".join(LIST_COLUMNS), "-t", "filesystem,volume,snapshot")
    names = [_dataset(name) for name in dict.fromkeys(filesystems)]
    names.extend(_snapshot_name(name) for name in dict.fromkeys(snapshots))
    return _batches(fixed, names, max_bytes)


def holds(snapshots: Sequence[str], max_bytes: int = ARG_MAX_BYTES) -> list[tuple[str, ...]]:
    """`zfs holds -H -p fs@a fs@b ...`, in as many calls as the argument budget needs."""
    names = [_snapshot_name(name) for name in snapshots]
    return _batches(("holds", "-H", "-p"), names, max_bytes)


def snapshot(full_names: Sequence[str]) -> tuple[str, ...]:
    """`zfs snapshot fs1@name fs2@name ...`: one call, so one createtxg for all of them."""
    if not full_names:
        raise ValueError("zfs snapshot needs at least one name")
    return ("snapshot", *(_snapshot_name(name) for name in full_names))


def send(request: SendRequest, *, estimate: bool = False) -> tuple[str, ...]:
    """`zfs send` of a full stream, an incremental (`-i`/`-I` from `fs@snap` or `fs#mark`) or
    a resume (`-t TOKEN`). A real send carries `-v -P` (estimate, then progress on stderr);
    `estimate=True` gives `-n -v -P` instead (the estimate on stdout, nothing sent)."""
    output = ("-n", "-v", "-P") if estimate else ("-v", "-P")
    if request.resume_token is not None:
        if not request.resume_token or request.resume_token.startswith("-"):
            raise ValueError(f"not a resume token: {request.resume_token!r}")
        return ("send", *output, "-t", request.resume_token)
    if request.to_snapshot is None:
        raise ValueError("a send without a resume token needs to_snapshot")
    flags = _send_flags(request)
    to = _snapshot_name(f"{_dataset(request.filesystem)}@{request.to_snapshot}")
    if request.from_version is None:
        return ("send", *flags, *output, to)
    base = _version_name(request.filesystem, request.from_version)
    return ("send", *flags, *output, "-I" if request.intermediates else "-i", base, to)


def receive(filesystem: str, options: ReceiveOptions) -> tuple[str, ...]:
    """`zfs receive -s -u [-F] [-o P=V]... [-x P]... filesystem`, with the options as the plan
    gives them (for a volume, the planner has left out what a volume refuses:
    `ReceiveOptions.for_volume`)."""
    argv: list[str] = ["receive", "-s", "-u"]
    if options.force:
        argv.append("-F")
    for name, value in options.override:
        argv += ["-o", f"{_property(name)}={value}"]
    for name in options.inherit:
        argv += ["-x", _property(name)]
    return (*argv, _dataset(filesystem))


def abort_resume(filesystem: str) -> tuple[str, ...]:
    """`zfs receive -A filesystem`: discard the partial state of an interrupted receive."""
    return ("receive", "-A", _dataset(filesystem))


def hold(tag: str, full_snapshot: str) -> tuple[str, ...]:
    return ("hold", _tag(tag), _snapshot_name(full_snapshot))


def release(tag: str, full_snapshot: str) -> tuple[str, ...]:
    return ("release", _tag(tag), _snapshot_name(full_snapshot))


def hold_many(
    tag: str, full_snapshots: Sequence[str], max_bytes: int = ARG_MAX_BYTES
) -> list[tuple[str, ...]]:
    """`zfs hold TAG fs@a gs@b ...` (any filesystems of one host), in as many calls as the
    argument budget needs. zfs holds each snapshot in turn and goes on after one it cannot
    hold, with a `cannot hold snapshot 'NAME': why` line for each refusal."""
    names = [_snapshot_name(name) for name in full_snapshots]
    return _batches(("hold", _tag(tag)), names, max_bytes)


def release_many(
    tag: str, full_snapshots: Sequence[str], max_bytes: int = ARG_MAX_BYTES
) -> list[tuple[str, ...]]:
    """`zfs release TAG fs@a gs@b ...`, like `hold_many` (`cannot release hold from snapshot
    'NAME': why` for each refusal)."""
    names = [_snapshot_name(name) for name in full_snapshots]
    return _batches(("release", _tag(tag)), names, max_bytes)


# `zfs program -j POOL - SNAP1 MARK1 SNAP2 MARK2 ...` with this script on stdin: each pair
# becomes a bookmark, in one sync task; the JSON answer maps each new bookmark to the error
# number zfs.sync.bookmark returned (0: made). Verified on OpenZFS 2.3.2 (docs/zfs-verified.md).
BOOKMARK_PROGRAM = b"""\
local argv = (...)["argv"]
local made = {}
for i = 1, #argv, 2 do
  made[argv[i + 1]] = zfs.sync.bookmark(argv[i], argv[i + 1])
end
return made
"""


def bookmark_program(
    pool: str, pairs: Sequence[tuple[str, str]], max_bytes: int = ARG_MAX_BYTES
) -> list[tuple[str, ...]]:
    """`zfs program -j POOL - fs@snap fs#mark ...` for (full snapshot, full bookmark) pairs of
    one pool, in as many calls as the argument budget needs (a pair never split); the
    script (`BOOKMARK_PROGRAM`) goes on stdin. Channel programs need root."""
    fixed = ("program", "-j", _dataset(pool), "-")
    joined = [f"{_snapshot_name(snap)}\0{_bookmark_name(mark)}" for snap, mark in pairs]
    return [
        (*fixed, *(name for pair in chunk for name in pair.split("\0")))
        for chunk in _chunks(joined, max_bytes - _argv_bytes(fixed))
    ]


def bookmark(full_snapshot: str, full_bookmark: str) -> tuple[str, ...]:
    return ("bookmark", _snapshot_name(full_snapshot), _bookmark_name(full_bookmark))


def destroy_snapshots(
    filesystem: str, snapshots: Sequence[str], max_bytes: int = ARG_MAX_BYTES
) -> list[tuple[str, ...]]:
    """`zfs destroy fs@a,b,c` for short snapshot names, split into several calls when one
    argument would not fit the budget. Each call is all or nothing (zfs); together they are
    not."""
    prefix = f"{_dataset(filesystem)}@"
    names = [_short_name(name) for name in snapshots]
    # each name costs its bytes plus a comma; the last one's comma pays the separator
    budget = max_bytes - _argv_bytes(("destroy", prefix)) + 1
    return [("destroy", prefix + ",".join(chunk)) for chunk in _chunks(names, budget)]


def destroy_bookmark(full_bookmark: str) -> tuple[str, ...]:
    """`zfs destroy fs#mark` (bookmarks take no comma list: one call each)."""
    return ("destroy", _bookmark_name(full_bookmark))


def rollback(full_snapshot: str, destroy_newer: bool) -> tuple[str, ...]:
    """`zfs rollback [-r] fs@snap` (`-r` destroys the newer snapshots and bookmarks)."""
    flags = ("-r",) if destroy_newer else ()
    return ("rollback", *flags, _snapshot_name(full_snapshot))


def create(
    filesystem: str, parents: bool, properties: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """`zfs create -u [-p] [-o P=V]... filesystem`. `-u` (OpenZFS >= 2.1): the new filesystem
    is not mounted, as a receive (`-u`) leaves its filesystems; a user with delegated
    permissions cannot mount on Linux, and without `-u` zfs creates the filesystem but exits 1
    ("may only be mounted by root"). With `-p`, zfs still mounts the missing ancestors it
    creates (2.3.2): docs/security.md says how a non-root target avoids that."""
    argv: list[str] = ["create", "-u"]
    if parents:
        argv.append("-p")
    for name, value in (properties or {}).items():
        argv += ["-o", f"{_property(name)}={value}"]
    return (*argv, _dataset(filesystem))


def get(properties: Sequence[str], datasets: Sequence[str]) -> tuple[str, ...]:
    """`zfs get -H -p -o name,property,value,source P1,P2 dataset...`."""
    if not properties or not datasets:
        raise ValueError("zfs get needs properties and datasets")
    names = ",".join(_property(name) for name in properties)
    return ("get", "-H", "-p", "-o", GET_COLUMNS, names, *(_dataset(d) for d in datasets))


def set(filesystem: str, properties: Mapping[str, str]) -> tuple[str, ...]:
    """`zfs set P=V [P=V]... filesystem`."""
    if not properties:
        raise ValueError("zfs set needs at least one property")
    pairs = (f"{_property(name)}={value}" for name, value in properties.items())
    return ("set", *pairs, _dataset(filesystem))


def _send_flags(request: SendRequest) -> tuple[str, ...]:
    options = request.options
    chosen = (
        (options.raw, "-w"),
        (options.compressed, "-c"),
        (options.large_blocks, "-L"),
        (options.embedded_data, "-e"),
        (options.properties, "-p"),
    )
    return tuple(flag for wanted, flag in chosen if wanted)


def _batches(fixed: tuple[str, ...], names: Sequence[str], max_bytes: int) -> list[tuple[str, ...]]:
    """`fixed + names`, split so that each argv's arguments stay within max_bytes."""
    return [(*fixed, *chunk) for chunk in _chunks(names, max_bytes - _argv_bytes(fixed))]


def _chunks(names: Sequence[str], budget: int) -> list[list[str]]:
    """Consecutive runs of names whose costs (bytes + 1 each) add up to at most budget."""
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for name in names:
        cost = len(name.encode()) + 1
        if cost > budget:
            raise ValueError(f"argument too long for one call: {name!r}")
        if current and used + cost > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(name)
        used += cost
    if current:
        chunks.append(current)
    return chunks


def _argv_bytes(argv: Sequence[str]) -> int:
    return sum(len(arg.encode()) + 1 for arg in argv)


def _outermost(roots: Sequence[str]) -> list[str]:
    kept: list[str] = []
    for root in sorted(dict.fromkeys(roots)):
        if not any(root.startswith(f"{outer}/") for outer in kept):
            kept.append(root)
    return kept


def _version_name(filesystem: str, version: str) -> str:
    if version[:1] == "@":
        return _snapshot_name(f"{_dataset(filesystem)}{version}")
    if version[:1] == "#":
        return _bookmark_name(f"{_dataset(filesystem)}{version}")
    raise ValueError(f"a version starts with '@' or '#': {version!r}")


def _dataset(name: str) -> str:
    if not name or name.startswith("-") or "@" in name or "#" in name or _has_control(name):
        raise ValueError(f"not a filesystem name: {name!r}")
    return name


def _snapshot_name(full: str) -> str:
    filesystem, sign, short = full.partition("@")
    if not sign:
        raise ValueError(f"not a snapshot name: {full!r}")
    _dataset(filesystem)
    _short_name(short)
    return full


def _bookmark_name(full: str) -> str:
    filesystem, sign, short = full.partition("#")
    if not sign:
        raise ValueError(f"not a bookmark name: {full!r}")
    _dataset(filesystem)
    _short_name(short)
    return full


def _short_name(name: str) -> str:
    if not name or any(c in name for c in "@#,/") or _has_control(name):
        raise ValueError(f"not a snapshot or bookmark name: {name!r}")
    return name


def _tag(tag: str) -> str:
    if not tag or tag.startswith("-") or _has_control(tag):
        raise ValueError(f"not a hold tag: {tag!r}")
    return tag


def _property(name: str) -> str:
    if not name or name.startswith("-") or "=" in name or _has_control(name):
        raise ValueError(f"not a property name: {name!r}")
    return name


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or c == "\x7f" for c in text)
