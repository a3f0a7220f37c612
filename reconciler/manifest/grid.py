"""The retention grid syntax of zrepl: `1x1h(keep=all) | 24x1h | 14x1d`.

Owns parsing and validating a grid string into a `Grid` value, and its normalized spelling.
Called by the manifest models (a `grid:` retention rule) and, through the parsed value, by the
pure retention logic (`core/retention.py`), which never sees the text.

Accepted as zrepl accepts it (config/retentiongrid.go and pruning/keep_grid.go): intervals are
separated by `|`; each is `COUNTxDURATION` with an optional `(keep=N)` or `(keep=all)` (default
keep=1); spaces around the parts are ignored; counts and keep values are positive integers;
durations use the units s, m, h, d, w; a grid has at least one interval; an interval may be
shorter than the one before it only while every interval before it is keep=all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.manifest.durations import format_duration, parse_count, parse_duration


class GridError(ValueError):
    """A grid string that zrepl would refuse; the message names the interval and the fault."""


@dataclass(frozen=True, slots=True)
class GridInterval:
    """`count` adjacent buckets of `length` seconds, each keeping its `keep` oldest snapshots."""

    count: int
    length: int  # seconds
    keep: int | None = 1  # None means keep=all

    @property
    def span(self) -> int:
        return self.count * self.length

    def __str__(self) -> str:
        text = f"{self.count}x{format_duration(self.length)}"
        if self.keep is None:
            return text + "(keep=all)"
        if self.keep != 1:
            return text + f"(keep={self.keep})"
        return text


@dataclass(frozen=True, slots=True)
class Grid:
    """A parsed grid; `text` is its normalized spelling (`parse_grid(str(g)) == g`)."""

    intervals: tuple[GridInterval, ...]
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def span(self) -> int:
        """Seconds covered by all buckets together; older snapshots are outside the grid."""
        return sum(interval.span for interval in self.intervals)


_INTERVAL = re.compile(r"\s*([0-9]+)\s*x\s*([^(]*?)\s*(?:\((.*)\))?\s*", re.ASCII)
_KEEP = re.compile(r"\s*keep\s*=\s*(\S+)\s*", re.ASCII)


def parse_grid(text: str) -> Grid:
    """Parse and validate a grid string; raises `GridError` naming the faulty interval."""
    parts = text.split("|")
    intervals = tuple(_parse_part(part, index, len(parts)) for index, part in enumerate(parts))
    if not intervals:  # pragma: no cover - str.split always yields one part
        raise GridError("a retention grid needs at least one interval")
    _check_monotonic(intervals)
    return Grid(intervals=intervals, text=" | ".join(str(i) for i in intervals))


def _parse_part(part: str, index: int, total: int) -> GridInterval:
    where = f"interval {index + 1} of {total} ({part.strip()!r})"
    if not part.strip():
        raise GridError(f"{where}: empty interval (expected e.g. '24x1h' between '|')")
    match = _INTERVAL.fullmatch(part)
    if match is None:
        raise GridError(f"{where}: expected COUNTxDURATION[(keep=N|all)], e.g. '24x1h(keep=2)'")
    count_text, duration_text, options = match.groups()
    try:
        count = parse_count(count_text, where)
    except ValueError as error:
        raise GridError(str(error)) from None
    if count <= 0:
        raise GridError(f"{where}: the count must be a positive integer, got {count_text}")
    try:
        length = parse_duration(duration_text)
    except ValueError as error:
        raise GridError(f"{where}: {error}") from None
    keep = 1 if options is None else _parse_keep(options, where)
    return GridInterval(count=count, length=length, keep=keep)


def _parse_keep(options: str, where: str) -> int | None:
    match = _KEEP.fullmatch(options)
    if match is None:
        raise GridError(f"{where}: unknown parameter {options!r} (only keep=N or keep=all)")
    value = match.group(1)
    if value == "all":
        return None
    if not value.isdigit() or not value.isascii():
        raise GridError(f"{where}: keep must be 'all' or a positive integer, got {value!r}")
    try:
        keep = parse_count(value, where)
    except ValueError as error:
        raise GridError(str(error)) from None
    if keep <= 0:
        raise GridError(f"{where}: keep must be 'all' or a positive integer, got {value!r}")
    return keep


def _check_monotonic(intervals: tuple[GridInterval, ...]) -> None:
    """zrepl: lengths must not decrease, except while every earlier interval is keep=all."""
    all_keep_all = True
    previous: GridInterval | None = None
    for position, interval in enumerate(intervals, start=1):
        if previous is not None and interval.length < previous.length and not all_keep_all:
            raise GridError(
                f"interval {position} ({interval}) is shorter than interval {position - 1} "
                f"({previous}): interval lengths must not decrease after an interval that is "
                f"not keep=all"
            )
        all_keep_all = all_keep_all and interval.keep is None
        previous = interval
