"""The allow-list of `reconcile serve`, the forced command of a confined target: pure, no I/O.

Owned here: `ServeRules` (the roots a key may touch, `--allow-rollback`, `--append-only`),
`check_command` (the raw SSH_ORIGINAL_COMMAND bytes → the zfs arguments to run, or
`Refused`), `check_argv` (the same from an argv) and the name checks they use. Called by
`reconciler.cli.serve`, which logs the verdict and runs the real zfs; tested by
tests/test_serve.py against every argv `zfs/commands.py` builds for a target.

The client's command line is split like a POSIX shell would (our SshRunner quotes each word
with `shlex.quote`), and must then be exactly one of the zfs invocations the reconciler sends
to a TARGET host, with options matched one by one (never passed through) and every dataset
operand the root or below it (docs/security-serve.md has the table). Nothing here runs a shell:
the words are executed as they are, so `;`, `$(...)` and the like only matter as characters
that no dataset name may contain.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# Linux refuses one environment string longer than MAX_ARG_STRLEN: SSH_ORIGINAL_COMMAND never
# legitimately exceeds it (the driver's batches stay under 100,000 bytes, zfs/commands.py).
MAX_COMMAND_BYTES = 131_072
MAX_NAME_LENGTH = 255
REFUSED_EXIT = 126  # "command found but not executable": a refusal, not a zfs failure

_COMPONENT = re.compile(r"[A-Za-z0-9_.: -]+")
_SHORT_NAME = re.compile(r"[A-Za-z0-9_.: -]+")
_PROPERTY = re.compile(r"[a-z0-9_][a-z0-9_:.-]*")
_TAG = re.compile(r"[\x20-\x7e]+")
_TYPES = frozenset({"filesystem", "volume", "snapshot", "bookmark"})
GET_COLUMNS = "name,property,value,source"

# `receive -o P=V` values a compromised sender could use to mount or share the received data
# outside the target's control: only these values are accepted for these properties.
RESTRICTED_PROPERTIES: Mapping[str, frozenset[str]] = {
    "mountpoint": frozenset({"none"}),
    "canmount": frozenset({"off", "noauto"}),
    "sharenfs": frozenset({"off"}),
    "sharesmb": frozenset({"off"}),
    "zoned": frozenset({"off"}),
}


class Refused(Exception):
    """A request `reconcile serve` does not run: why, and the words it saw (if it split)."""

    def __init__(self, reason: str, argv: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.argv = tuple(argv)


@dataclass(frozen=True, slots=True)
class ServeRules:
    roots: tuple[str, ...]
    allow_rollback: bool = False
    append_only: bool = False

    def __post_init__(self) -> None:
        if not self.roots:
            raise ValueError("serve needs at least one --root")
        for root in self.roots:
            if not is_filesystem_name(root):
                raise ValueError(f"not a filesystem name: {root!r}")

    def covers(self, filesystem: str) -> bool:
        return any(filesystem == r or filesystem.startswith(f"{r}/") for r in self.roots)


def check_command(line: bytes, rules: ServeRules) -> tuple[str, ...]:
    """The zfs arguments (after `zfs`) that the raw command line asks for, if allowed."""
    if len(line) > MAX_COMMAND_BYTES:
        raise Refused(f"command line longer than {MAX_COMMAND_BYTES} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused("command line is not UTF-8") from error
    try:
        argv = shlex.split(text, comments=False, posix=True)
    except ValueError as error:
        raise Refused(f"command line does not split into words: {error}") from error
    return check_argv(argv, rules)


def check_argv(argv: Sequence[str], rules: ServeRules) -> tuple[str, ...]:
    if not argv:
        raise Refused("empty command: this key only runs zfs (see docs/security-serve.md)")
    if argv[0] != "zfs":
        raise Refused(f"only zfs runs here, not {argv[0]!r} (keep zfsCommand: [zfs])", argv)
    if len(argv) < 2:
        raise Refused("zfs without a subcommand", argv)
    verb, args = argv[1], tuple(argv[2:])
    check = _VERBS.get(verb)
    if check is None:
        raise Refused(f"zfs {verb!r} is not allowed here", argv)
    try:
        check(args, rules)
    except Refused as refused:
        raise Refused(f"zfs {verb}: {refused.reason}", argv) from None
    return (verb, *args)


# --- names ------------------------------------------------------------------------------------


def is_filesystem_name(name: str) -> bool:
    """docs/manifests.md "filesystem name": components of `A-Z a-z 0-9 _ . : -` and space
    (not `.` or `..`) separated by single `/`, at most 255 characters, no leading `-`."""
    if not name or len(name) > MAX_NAME_LENGTH or name.startswith("-"):
        return False
    return all(_COMPONENT.fullmatch(c) and c not in {".", ".."} for c in name.split("/"))


def _short_name(name: str) -> str:
    if not _SHORT_NAME.fullmatch(name):
        raise Refused(f"not a snapshot or bookmark name: {name!r}")
    return name


def _filesystem(name: str, rules: ServeRules) -> str:
    if not is_filesystem_name(name):
        raise Refused(f"not a filesystem name: {name!r}")
    if not rules.covers(name):
        raise Refused(f"{name!r} is outside {', '.join(rules.roots)}")
    return name


def _version(name: str, rules: ServeRules, signs: str) -> str:
    """`fs@snap` or `fs#mark` (whichever `signs` allows) under the roots."""
    for sign in signs:
        filesystem, found, short = name.partition(sign)
        if found:
            _filesystem(filesystem, rules)
            _short_name(short)
            if len(name) > MAX_NAME_LENGTH:
                raise Refused(f"name longer than {MAX_NAME_LENGTH} characters: {name!r}")
            return name
    kinds = {"@": "snapshot", "#": "bookmark"}
    raise Refused(f"not a {' or '.join(kinds[s] for s in signs)} name: {name!r}")


def _dataset_or_snapshot(name: str, rules: ServeRules) -> str:
    return _version(name, rules, "@") if "@" in name else _filesystem(name, rules)


def _tag(tag: str) -> str:
    if not _TAG.fullmatch(tag) or tag.startswith("-") or len(tag) > MAX_NAME_LENGTH:
        raise Refused(f"not a hold tag: {tag!r}")
    return tag


def _property(name: str) -> str:
    if not _PROPERTY.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise Refused(f"not a property name: {name!r}")
    return name


def _properties(text: str) -> str:
    for name in text.split(","):
        _property(name)
    return text


def _types(text: str) -> str:
    if not set(text.split(",")) <= _TYPES:
        raise Refused(f"not a list of dataset types: {text!r}")
    return text


def _one(text: str) -> str:
    if text != "1":
        raise Refused(f"only -d 1 is allowed, not -d {text!r}")
    return text


def _get_columns(text: str) -> str:
    if text != GET_COLUMNS:
        raise Refused(f"only -o {GET_COLUMNS} is allowed, not {text!r}")
    return text


def _received_property(pair: str) -> str:
    name, equals, value = pair.partition("=")
    _property(name)
    if not equals or not value or any(ord(c) < 32 or c == "\x7f" for c in value):
        raise Refused(f"not a property assignment: {pair!r}")
    allowed = RESTRICTED_PROPERTIES.get(name)
    if allowed is not None and value not in allowed:
        raise Refused(f"-o {name}={value} is refused (allowed: {', '.join(sorted(allowed))})")
    return pair


# --- options ----------------------------------------------------------------------------------

Validator = Callable[[str], str]
Flags = Mapping[str, Validator | None]  # flag → its value's check, or None for a bare flag


def _parse(
    args: Sequence[str], flags: Flags, repeatable: frozenset[str] = frozenset()
) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """Options (each exactly one of `flags`, separate words, each once unless `repeatable`)
    then operands, none of which may look like an option (zfs's getopt would permute it)."""
    seen: dict[str, list[str]] = {}
    index = 0
    while index < len(args) and args[index].startswith("-"):
        flag = args[index]
        if flag not in flags:
            raise Refused(f"option {flag!r} is not allowed")
        if flag in seen and flag not in repeatable:
            raise Refused(f"option {flag} given twice")
        validate = flags[flag]
        if validate is None:
            seen.setdefault(flag, []).append("")
            index += 1
            continue
        if index + 1 >= len(args):
            raise Refused(f"option {flag} needs a value")
        seen.setdefault(flag, []).append(validate(args[index + 1]))
        index += 2
    operands = tuple(args[index:])
    for operand in operands:
        if operand.startswith("-"):
            raise Refused(f"option-like operand {operand!r}")
    return seen, operands


def _no_flags(args: Sequence[str], count: int) -> tuple[str, ...]:
    _, operands = _parse(args, {})
    if len(operands) != count:
        raise Refused(f"expected {count} operand(s), got {len(operands)}")
    return operands


# --- verbs ------------------------------------------------------------------------------------


def _list(args: Sequence[str], rules: ServeRules) -> None:
    flags: Flags = {"-H": None, "-p": None, "-o": _properties, "-t": _types, "-r": None, "-d": _one}
    seen, operands = _parse(args, flags)
    if "-r" in seen and "-d" in seen:
        raise Refused("-r and -d together")
    if not {"-H", "-p"} <= set(seen):
        raise Refused("only scripted listings (-H -p) are allowed")
    if not operands:
        raise Refused("a listing must name the datasets it lists")
    for name in operands:
        _dataset_or_snapshot(name, rules)


def _get(args: Sequence[str], rules: ServeRules) -> None:
    seen, operands = _parse(args, {"-H": None, "-p": None, "-o": _get_columns})
    if len(operands) < 2 or len(seen) != 3:
        raise Refused(f"expected -H -p -o {GET_COLUMNS} PROPERTIES DATASET...")
    _properties(operands[0])
    for name in operands[1:]:
        _filesystem(name, rules)


def _holds(args: Sequence[str], rules: ServeRules) -> None:
    _, operands = _parse(args, {"-H": None, "-p": None})
    if not operands:
        raise Refused("expected snapshots")
    for name in operands:
        _version(name, rules, "@")


def _hold_or_release(args: Sequence[str], rules: ServeRules) -> None:
    _, operands = _parse(args, {})
    if len(operands) < 2:
        raise Refused("expected TAG SNAPSHOT...")
    _tag(operands[0])
    for name in operands[1:]:
        _version(name, rules, "@")


def _receive(args: Sequence[str], rules: ServeRules) -> None:
    if tuple(args[:1]) == ("-A",):
        (filesystem,) = _no_flags(args[1:], 1)
        _filesystem(filesystem, rules)
        return
    flags: dict[str, Validator | None] = {
        "-s": None,
        "-u": None,
        "-o": _received_property,
        "-x": _property,
    }
    if rules.allow_rollback and not rules.append_only:
        flags["-F"] = None
    seen, operands = _parse(args, flags, frozenset({"-o", "-x"}))
    if not {"-s", "-u"} <= set(seen):
        raise Refused("a receive must be resumable and unmounted (-s -u)")
    if len(operands) != 1:
        raise Refused("expected one filesystem")
    _filesystem(operands[0], rules)


def _create(args: Sequence[str], rules: ServeRules) -> None:
    seen, operands = _parse(args, {"-p": None, "-u": None})
    if "-u" not in seen:  # the reconciler never mounts what it creates (a target's parents)
        raise Refused("a create must leave the filesystem unmounted (-u)")
    if len(operands) != 1:
        raise Refused("expected one filesystem")
    _filesystem(operands[0], rules)


def _destroy(args: Sequence[str], rules: ServeRules) -> None:
    if rules.append_only:
        raise Refused("this target is append-only: nothing is destroyed through this key")
    (name,) = _no_flags(args, 1)
    if "#" in name:
        _version(name, rules, "#")
        return
    filesystem, at, shorts = name.partition("@")
    if not at:
        raise Refused(f"only snapshots and bookmarks are destroyed here, not {name!r}")
    _filesystem(filesystem, rules)
    for short in shorts.split(","):
        _short_name(short)


def _rollback(args: Sequence[str], rules: ServeRules) -> None:
    if rules.append_only or not rules.allow_rollback:
        raise Refused("rollback is not allowed here (reconcile serve --allow-rollback)")
    _, operands = _parse(args, {"-r": None})
    if len(operands) != 1:
        raise Refused("expected one snapshot")
    _version(operands[0], rules, "@")


def _bookmark(args: Sequence[str], rules: ServeRules) -> None:
    snapshot, bookmark = _no_flags(args, 2)
    _version(snapshot, rules, "@")
    _version(bookmark, rules, "#")


_VERBS: Mapping[str, Callable[[Sequence[str], ServeRules], None]] = {
    "list": _list,
    "get": _get,
    "holds": _holds,
    "hold": _hold_or_release,
    "release": _hold_or_release,
    "receive": _receive,
    "create": _create,
    "destroy": _destroy,
    "rollback": _rollback,
    "bookmark": _bookmark,
}
