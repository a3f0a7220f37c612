"""zrepl's pruning keep rules as our retention rules: `convert_keep_rules`.

Owns the conversion of one zrepl `keep`, `keep_sender` or `keep_receiver` list, as loaded from
YAML (plain lists, dicts, strings and numbers; anything may have the wrong type), into our
manifest rule mappings (`{grid: ..., match: ...}`, `{lastN: N, match: ...}`,
`{regex: ..., negate: true}`), each validated by our own models, with a `RuleProblem` for every
rule that is not converted or is converted with a change. Pure: no I/O, and it never raises.
Called by the zrepl importer (`reconcile import zrepl`). The mapping and every difference are
explained in docs/migrating-zrepl-pruning.md.

Safety first: dropping a rule that cannot be converted would make the union keep LESS than
zrepl did. So one unconvertible rule turns the whole list into "keep everything" (`keep_all`,
no rules), and its problem says so: what is kept is then a superset of what zrepl kept.

zrepl sources followed: config/retentiongrid.go (interval syntax, `keep=N|all`, Go's `Atoi`
so `keep=-1` means all), config/config_duration.go (`[+-]?digits`, spaces, units s m h d w),
pruning/keep_grid.go (regex required, lengths that do not shrink unless every earlier bucket
is keep=all), pruning/keep_last_n.go, pruning/keep_regex.go and daemon/pruner (not_replicated:
the sender's cursor; refused in a snap job).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from reconciler.manifest.durations import UNIT_SECONDS
from reconciler.manifest.fields import describe
from reconciler.manifest.grid import GridError, GridInterval, parse_grid
from reconciler.manifest.models import MAX_RETENTION_RULES, Rule

Side = Literal["sender", "receiver", "local"]
WHOLE_LIST = -1
"""`RuleProblem.index` of a problem about the list as a whole (not a list; no not_replicated)."""


@dataclass(frozen=True, slots=True)
class RuleProblem:
    index: int  # which rule of the input list (0-based); WHOLE_LIST for the list itself
    key: str | None  # the key inside that rule the problem is about, or None for the whole rule
    why: str  # one line: why it is not converted, or how it was changed
    affects_retention: bool  # True when what is kept or destroyed differs from zrepl's result


@dataclass(frozen=True, slots=True)
class ConvertedRules:
    rules: tuple[dict[str, Any], ...]  # our manifest rule mappings; empty: keep everything
    keep_all: bool  # True when the converted set keeps every managed snapshot (write no retention)
    problems: tuple[RuleProblem, ...]


class _Unconvertible(Exception):
    """A rule that has no exact conversion (or that zrepl itself refuses)."""

    def __init__(self, key: str | None, why: str) -> None:
        super().__init__(why)
        self.key = key
        self.why = why


@dataclass(slots=True)
class _Converted:
    rule: dict[str, Any] | None  # None: nothing to write (not_replicated)
    notes: list[tuple[str | None, str]] = field(default_factory=list)  # (key, why), harmless
    keeps_all: bool = False  # a regex rule that keeps every snapshot


_RULE_MODEL: TypeAdapter[Any] = TypeAdapter(Rule)
_KEYS = {
    "not_replicated": ("type", "keep_snapshot_at_cursor"),
    "last_n": ("type", "count", "regex"),
    "grid": ("type", "grid", "regex"),
    "regex": ("type", "regex", "negate"),
}
_KEEPS_EVERYTHING = frozenset({"", ".*", "^.*", ".*$", "^.*$", "^", "$", "^.*\\z", ".*\\z"})
_GO_INT_MAX = 2**63 - 1  # Go's int on 64-bit hosts; also time.Duration, in nanoseconds
_NANOSECONDS = 10**9
_MAX_GRID_TEXT = 1000  # zrepl's interval pattern backtracks in O(n^2) on a long part
_KEPT_ALL = "; nothing is pruned: every snapshot is kept until you write the retention by hand"
_OTHERS_TOO = (
    "zrepl's rule also counted other tools' snapshots that match {what}; ours sees only the "
    "policy's own: the same result as long as no other snapshot matches"
)

# zrepl's own patterns, in Go's regexp meaning: `\s` is [\t\n\f\r ], `\d` is [0-9], `.` is
# anything but a newline, `$` the end of the text (hence fullmatch).
_WS = "[\t\n\f\r ]*"
_ZREPL_INTERVAL = re.compile(rf"{_WS}([0-9]+){_WS}x{_WS}([^(]+){_WS}(\((.*)\))?{_WS}")
_ZREPL_KEEP = re.compile(rf"{_WS}keep=(.+){_WS}")
_ZREPL_DURATION = re.compile(rf"{_WS}([+-]?[0-9]+){_WS}(|s|m|h|d|w){_WS}")
_GO_ATOI = re.compile(r"[+-]?[0-9]+")


def convert_keep_rules(rules: Sequence[Any], *, side: Side) -> ConvertedRules:
    """Our rules for zrepl's keep list `rules` on `side` (sender, receiver, or a snap job's
    local `keep`); never raises: every fault is a `RuleProblem`."""
    if not isinstance(rules, list | tuple):
        why = f"the keep rules must be a list, not {_describe(rules)}{_KEPT_ALL}"
        return ConvertedRules((), True, (RuleProblem(WHOLE_LIST, None, why, True),))
    converted: list[dict[str, Any]] = []
    problems: list[RuleProblem] = []
    unconvertible = keeps_all = False
    for index, item in enumerate(rules):
        try:
            outcome = _convert(item, side)
        except _Unconvertible as error:
            problems.append(RuleProblem(index, error.key, error.why + _KEPT_ALL, True))
            unconvertible = True
            continue
        problems.extend(RuleProblem(index, key, why, False) for key, why in outcome.notes)
        keeps_all = keeps_all or outcome.keeps_all
        if outcome.rule is not None:
            converted.append(outcome.rule)
    problems.extend(_list_problems(rules, converted, side))
    if len(converted) > MAX_RETENTION_RULES:
        why = f"more than {MAX_RETENTION_RULES} rules cannot be written{_KEPT_ALL}"
        problems.append(RuleProblem(WHOLE_LIST, None, why, True))
        unconvertible = True
    if unconvertible or keeps_all or not converted:
        return ConvertedRules((), True, tuple(problems))
    return ConvertedRules(tuple(converted), False, tuple(problems))


def _list_problems(
    rules: Sequence[Any], converted: list[dict[str, Any]], side: Side
) -> list[RuleProblem]:
    """Problems of the list as a whole: not_replicated missing, or alone."""
    cursor = [i for i, item in enumerate(rules) if _type_of(item) == "not_replicated"]
    if cursor and not converted and len(cursor) == len(rules):
        why = (
            "not_replicated is the only rule: zrepl kept only what was not yet replicated; "
            "here no rule is left and every snapshot is kept (add e.g. lastN: 1 to prune)"
        )
        return [RuleProblem(cursor[0], None, why, True)]
    if side == "sender" and not cursor and rules:
        why = (
            "keep_sender has no not_replicated: zrepl could destroy snapshots not yet "
            "replicated; the planner here never does (protection resumable or incremental), "
            "so it keeps more"
        )
        return [RuleProblem(WHOLE_LIST, None, why, False)]
    return []


def _type_of(item: Any) -> Any:
    return item.get("type") if isinstance(item, Mapping) else None


def _convert(item: Any, side: Side) -> _Converted:
    """One zrepl rule; raises `_Unconvertible`."""
    if not isinstance(item, Mapping):
        raise _Unconvertible(None, f"a keep rule is a mapping with a type, not {_describe(item)}")
    kind = item.get("type")
    if not isinstance(kind, str):
        what = "has no type" if kind is None else f"has a type that is {_describe(kind)}"
        raise _Unconvertible("type", f"the rule {what} (not_replicated, last_n, grid or regex)")
    if kind not in _KEYS:
        raise _Unconvertible(
            "type", f"unknown rule type {_shown(kind)} (not_replicated, last_n, grid or regex)"
        )
    for key in item:
        if key not in _KEYS[kind]:
            raise _Unconvertible(str(key)[:40], _unknown_key(kind, key))
    if kind == "not_replicated":
        return _not_replicated(item, side)
    if kind == "last_n":
        return _last_n(item)
    if kind == "grid":
        return _grid(item)
    return _regex(item)


def _unknown_key(kind: str, key: Any) -> str:
    if key == "filesystems":
        return (
            f"a {kind} rule with its own filesystems filter cannot be converted: our rules "
            "apply to every filesystem of the policy (split the policy by filesystem)"
        )
    return f"zrepl refuses the key {_shown(key)} in a {kind} rule ({', '.join(_KEYS[kind])})"


def _not_replicated(item: Mapping[Any, Any], side: Side) -> _Converted:
    at_cursor = item.get("keep_snapshot_at_cursor", True)
    if side == "local":
        why = "zrepl refuses not_replicated in a snap job (nothing is replicated); dropped"
    elif side == "receiver":
        why = (
            "not_replicated on a receiver kept the snapshot at the sender's cursor; here the "
            "newest common snapshot of every pair is always kept; dropped"
        )
    else:
        why = (
            "not_replicated is always in effect here: the planner never destroys on the source "
            "what a target still needs (protection resumable or incremental) and keeps the "
            "newest common snapshot or its bookmark; dropped"
        )
        if at_cursor is False:
            why += " (keep_snapshot_at_cursor: false is covered by that bookmark)"
    return _Converted(rule=None, notes=[(None, why)])


def _last_n(item: Mapping[Any, Any]) -> _Converted:
    if "count" not in item:
        raise _Unconvertible("count", "a last_n rule needs count")
    count = item["count"]
    if type(count) is not int:
        raise _Unconvertible("count", f"count must be a whole number, not {_describe(count)}")
    if not 0 < count <= _GO_INT_MAX:
        raise _Unconvertible(
            "count", f"zrepl refuses count {_shown(count)}: it must be from 1 to 2^63-1"
        )
    pattern = _optional_regex(item)
    rule: dict[str, Any] = {"lastN": count}
    notes: list[tuple[str | None, str]] = []
    if pattern:
        rule["match"] = pattern
    if not pattern.startswith("^"):
        what = f"{_shown(pattern)}" if pattern else "(no regex: every snapshot)"
        notes.append(("regex", _OTHERS_TOO.format(what=what)))
    return _Converted(rule=_valid(rule), notes=notes)


def _grid(item: Mapping[Any, Any]) -> _Converted:
    text = item.get("grid")
    if not isinstance(text, str):
        raise _Unconvertible(
            "grid", f"grid must be a string such as '24x1h', not {_describe(text)}"
        )
    if len(text) > _MAX_GRID_TEXT:
        raise _Unconvertible("grid", f"grid is longer than {_MAX_GRID_TEXT} characters")
    intervals = _zrepl_grid(text)
    ours = " | ".join(str(interval) for interval in intervals)
    pattern = _optional_regex(item)
    rule: dict[str, Any] = {"grid": ours}
    notes: list[tuple[str | None, str]] = []
    if pattern:
        rule["match"] = pattern
        if not pattern.startswith("^"):
            notes.append(("regex", _OTHERS_TOO.format(what=_shown(pattern))))
    else:
        notes.append(
            (
                "regex",
                "zrepl refuses a grid without regex (it never ran); converted as a grid over "
                "all of the policy's snapshots",
            )
        )
    checked = _valid(rule)
    if not _ours_reads_the_same(text, ours):
        notes.append(("grid", f"rewritten in our syntax: {_shown(text)} as {_shown(ours)}"))
    return _Converted(rule=checked, notes=notes)


def _ours_reads_the_same(text: str, ours: str) -> bool:
    try:
        return parse_grid(text) == parse_grid(ours)
    except GridError:
        return False


def _regex(item: Mapping[Any, Any]) -> _Converted:
    pattern = item.get("regex")
    if not isinstance(pattern, str):
        what = "a regex rule needs regex" if pattern is None else f"regex is {_describe(pattern)}"
        raise _Unconvertible("regex", f"{what}, a string")
    negate = item.get("negate", False)
    if negate is None:
        negate = False
    if not isinstance(negate, bool):
        raise _Unconvertible("negate", f"negate must be true or false, not {_describe(negate)}")
    if not negate and pattern in _KEEPS_EVERYTHING:
        why = f"regex {_shown(pattern)} keeps every snapshot: no retention is written"
        return _Converted(rule=_valid({"regex": pattern}), notes=[(None, why)], keeps_all=True)
    if not negate:
        return _Converted(rule=_valid({"regex": pattern}))
    why = (
        "negate keeps the policy's snapshots that do not match; if the rule was there to keep "
        "other tools' snapshots (regex of zrepl's own prefix), it is not needed: those are "
        "never destroyed here"
    )
    return _Converted(rule=_valid({"regex": pattern, "negate": True}), notes=[("negate", why)])


def _optional_regex(item: Mapping[Any, Any]) -> str:
    """The rule's `regex`, "" when absent or null (Go leaves the string empty)."""
    pattern = item.get("regex")
    if pattern is None:
        return ""
    if not isinstance(pattern, str):
        raise _Unconvertible("regex", f"regex must be a string, not {_describe(pattern)}")
    return pattern


_KEY_OF_FIELD = {"lastN": "count", "grid": "grid", "match": "regex", "regex": "regex"}


def _valid(rule: dict[str, Any]) -> dict[str, Any]:
    """`rule` if our models accept it; `_Unconvertible` naming the zrepl key otherwise."""
    try:
        _RULE_MODEL.validate_python(rule)
    except ValidationError as error:
        first = error.errors()[0]
        field_name = next((p for p in first["loc"] if p in _KEY_OF_FIELD), None)
        key = _KEY_OF_FIELD[str(field_name)] if field_name is not None else None
        raise _Unconvertible(key, f"not valid in our manifests: {first['msg']}") from None
    return rule


def _zrepl_grid(text: str) -> list[GridInterval]:
    """The intervals of a grid as zrepl parses it (config/retentiongrid.go)."""
    parts = text.split("|")
    return [_zrepl_interval(part, index, len(parts)) for index, part in enumerate(parts)]


def _zrepl_interval(part: str, index: int, total: int) -> GridInterval:
    where = f"grid interval {index + 1} of {total} ({_shown(part.strip())})"
    shape = _ZREPL_INTERVAL.fullmatch(part)
    if shape is None:
        raise _Unconvertible("grid", f"{where}: zrepl refuses it (expected COUNTxDURATION)")
    count = _go_atoi(shape.group(1))
    if count is None or count <= 0:
        raise _Unconvertible("grid", f"{where}: zrepl refuses the count")
    seconds = _zrepl_seconds(shape.group(2), where)
    keep: int | None = 1
    if shape.group(3) is not None:
        keep = _zrepl_keep(shape.group(4), where)
    return GridInterval(count=count, length=seconds, keep=keep)


def _zrepl_seconds(text: str, where: str) -> int:
    shape = _ZREPL_DURATION.fullmatch(text)
    factor = None if shape is None else _go_atoi(shape.group(1))
    if shape is None or factor is None or not shape.group(2):
        raise _Unconvertible("grid", f"{where}: zrepl refuses the duration {_shown(text.strip())}")
    seconds = factor * UNIT_SECONDS[shape.group(2)]
    if seconds <= 0:
        raise _Unconvertible("grid", f"{where}: zrepl refuses a duration that is not positive")
    if seconds * _NANOSECONDS > _GO_INT_MAX:
        raise _Unconvertible("grid", f"{where}: the duration overflows zrepl's time.Duration")
    return seconds


def _zrepl_keep(options: str, where: str) -> int | None:
    shape = _ZREPL_KEEP.fullmatch(options)
    if shape is None:
        raise _Unconvertible("grid", f"{where}: zrepl refuses the parameter (only keep=N|all)")
    if shape.group(1) == "all":
        return None
    keep = _go_atoi(shape.group(1))
    if keep is None:
        raise _Unconvertible("grid", f"{where}: zrepl refuses keep={_shown(shape.group(1))}")
    if keep == -1:  # zrepl's RetentionGridKeepCountAll
        return None
    if keep <= 0:
        raise _Unconvertible("grid", f"{where}: zrepl fails at run time with keep={keep}")
    return keep


def _go_atoi(text: str) -> int | None:
    """Go's strconv.Atoi on a 64-bit host: optional sign, ASCII digits, int64 range."""
    if _GO_ATOI.fullmatch(text) is None:
        return None
    value = int(text)
    return value if -_GO_INT_MAX - 1 <= value <= _GO_INT_MAX else None


def _shown(value: Any) -> str:
    """`value` quoted for a one-line message, cut at 60 characters."""
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python converts to text
        return "a number too large to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(value: Any) -> str:
    """`describe` (the manifests' wording for a value of the wrong type), never raising."""
    try:
        text = describe(value)
    except ValueError:
        return "a number too large to show"
    return text if len(text) <= 80 else text[:77] + "..."
