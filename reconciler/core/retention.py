"""Retention: which managed snapshots the `keep` rules keep, and why the others go.

Owns the evaluation of retention rules (zrepl grid, lastN, regex) over the managed snapshots of
one filesystem. Called by the planner, once per (filesystem, side) with that side's rules; it
returns the kept names (with the first rule that keeps each) and the destroyed names with a
machine reason. Pure and allocation-light: it runs for every filesystem on every pass.

- A snapshot is kept if ANY rule keeps it; an empty rule list keeps everything.
- grid (zrepl semantics): "now" is the time of the youngest snapshot; bucket 0 of the first
  interval covers (now - length, now], each next bucket the `length` seconds before the
  previous one. A bucket keeps its `keep` OLDEST snapshots (keep=all: every one); among equal
  times, earlier in the input counts as older. Snapshots at or before now - span are outside.
- lastN keeps the N youngest (the last N of the input). regex keeps names it
  finds a match in (RE2, `manifest/regex.py`); with `negate`, names it finds none in.
- `match` (grid and lastN, zrepl's rule `regex`): the rule sees only the snapshots whose name
  it finds a match in, as if the others did not exist; a grid's "now" is the youngest of those.
- Destroy reason: the first grid rule that sees the snapshot decides: RETENTION_GRID_EXPIRED
  when the snapshot is outside that grid (time <= its now - span), else
  RETENTION_GRID_BUCKET_FULL; when no grid rule sees it, RETENTION_NOT_KEPT.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import itemgetter, not_

from reconciler.core.plan import Reason
from reconciler.manifest.grid import Grid
from reconciler.manifest.models import MAX_RETENTION_RULES
from reconciler.manifest.regex import Regex

KEPT_WITHOUT_RULES = -1  # the rule index of every snapshot when there are no rules
MAX_RULES = MAX_RETENTION_RULES  # rule marks are stored in a bytearray, one byte per snapshot

_name = itemgetter(0)
_time = itemgetter(1)
_RULE_INDEX = bytes([0, *range(255)])  # mark -> rule index (for marks 1..255)
_NOT_KEPT = bytes([1, *[0] * 255])  # mark 0 (not kept) -> 1, any rule -> 0


@dataclass(frozen=True, slots=True)
class GridRule:
    grid: Grid
    match: Regex | None = None  # sees only the names this finds a match in; None: all


@dataclass(frozen=True, slots=True)
class LastNRule:
    count: int
    match: Regex | None = None  # counts only the names this finds a match in; None: all


@dataclass(frozen=True, slots=True)
class RegexRule:
    pattern: Regex
    negate: bool = False  # keep the names the pattern finds no match in


Rule = GridRule | LastNRule | RegexRule


@dataclass(frozen=True, slots=True)
class RetentionResult:
    kept: Mapping[str, int]  # snapshot name -> index of the first rule that keeps it
    destroyed: tuple[tuple[str, Reason], ...] = ()  # in input order


def evaluate(rules: Sequence[Rule], snapshots: Sequence[tuple[str, int]]) -> RetentionResult:
    """Apply `rules` to `snapshots` ((short name, time from the name), oldest first)."""
    if len(rules) > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES} retention rules are supported, got {len(rules)}")
    times = list(map(_time, snapshots))
    if times != sorted(times):
        raise ValueError("retention needs the snapshots ordered oldest first")
    if not rules:
        return RetentionResult(kept=dict.fromkeys(map(_name, snapshots), KEPT_WITHOUT_RULES))
    if not snapshots:
        return RetentionResult(kept={})
    owner = bytearray(len(times))  # per snapshot: 1 + index of the first rule keeping it, or 0
    for index in range(len(rules) - 1, -1, -1):  # backwards: the first rule writes last
        _mark(rules[index], snapshots, times, owner, index + 1)
    return RetentionResult(
        kept=dict(
            zip(
                map(_name, compress(snapshots, owner)),
                compress(owner.translate(_RULE_INDEX), owner),
                strict=True,
            )
        ),
        destroyed=_destroyed(rules, snapshots, times, owner.translate(_NOT_KEPT)),
    )


def _mark(
    rule: Rule, snapshots: Sequence[tuple[str, int]], times: list[int], owner: bytearray, mark: int
) -> None:
    """Write `mark` into `owner` for every snapshot that `rule` keeps."""
    if isinstance(rule, RegexRule):
        matches = map(rule.pattern.search, map(_name, snapshots))
        if rule.negate:
            matches = map(not_, matches)
        for index in compress(range(len(times)), matches):
            owner[index] = mark
    elif rule.match is None:
        _mark_seen(rule, times, owner, mark)
    else:
        seen = _seen(rule.match, snapshots)
        if seen:
            kept = bytearray(len(seen))
            _mark_seen(rule, [times[index] for index in seen], kept, mark)
            for index in compress(seen, kept):
                owner[index] = mark


def _mark_seen(rule: GridRule | LastNRule, times: list[int], owner: bytearray, mark: int) -> None:
    """Mark what a grid or lastN rule keeps among the snapshots it sees (`times`, not empty)."""
    if isinstance(rule, GridRule):
        _mark_grid(rule.grid, times, owner, mark)
    else:
        low = max(0, len(times) - rule.count)
        owner[low:] = bytes((mark,)) * (len(times) - low)


def _seen(match: Regex, snapshots: Sequence[tuple[str, int]]) -> list[int]:
    """Indexes (ascending) of the snapshots whose name `match` finds a match in."""
    return list(compress(range(len(snapshots)), map(match.search, map(_name, snapshots))))


def _mark_grid(grid: Grid, times: list[int], owner: bytearray, mark: int) -> None:
    """Walk the buckets from the youngest snapshot back, jumping over empty buckets.

    Costs O(min(buckets, snapshots) * log n): each step takes the youngest snapshot not yet
    placed, computes the lower bound of its bucket and bisects to the bucket's oldest snapshot.
    """
    now = times[-1]
    high = len(times)  # snapshots [0, high) are not placed yet
    start_age = 0  # age at which the current interval begins
    fill = bytes((mark,))
    for interval in grid.intervals:
        end_age = start_age + interval.count * interval.length
        if interval.keep is None:  # keep=all: the whole interval at once
            low = bisect_right(times, now - end_age, 0, high)
            owner[low:high] = fill * (high - low)
            high = low
        else:
            length, keep = interval.length, interval.keep
            top, stop = now - start_age, now - end_age  # the interval is (stop, top]
            while high:
                youngest = times[high - 1]
                if youngest <= stop:
                    break
                # the bucket of `youngest` is (bound, bound + length]
                bound = youngest + (top - youngest) % length - length
                low = bisect_right(times, bound, 0, high)
                kept = keep if low + keep <= high else high - low
                owner[low : low + kept] = fill * kept
                high = low
        start_age = end_age


def _destroyed(
    rules: Sequence[Rule], snapshots: Sequence[tuple[str, int]], times: list[int], gone: bytearray
) -> tuple[tuple[str, Reason], ...]:
    """(name, reason) of every snapshot that no rule keeps (`gone` is 1 for those)."""
    grids = [rule for rule in rules if isinstance(rule, GridRule)]
    if grids and grids[0].match is None:  # the first grid sees every snapshot: one boundary
        names = map(_name, compress(snapshots, gone))
        outside = bisect_right(times, times[-1] - grids[0].grid.span)  # older than the grid
        reasons = chain(
            repeat(Reason.RETENTION_GRID_EXPIRED, gone.count(1, 0, outside)),
            repeat(Reason.RETENTION_GRID_BUCKET_FULL),
        )
        return tuple(zip(names, reasons, strict=False))  # `reasons` never ends
    if not grids:
        return tuple(zip(map(_name, compress(snapshots, gone)), repeat(Reason.RETENTION_NOT_KEPT)))
    reason = [Reason.RETENTION_NOT_KEPT] * len(times)
    decided = bytearray(len(times))  # 1 once the first grid that sees a snapshot decided
    for grid in grids:
        seen: Sequence[int] = (
            range(len(times)) if grid.match is None else _seen(grid.match, snapshots)
        )
        if not seen:
            continue
        oldest_inside = times[seen[-1]] - grid.grid.span  # times at or before it: outside
        for index in seen:
            if gone[index] and not decided[index]:
                decided[index] = 1
                reason[index] = (
                    Reason.RETENTION_GRID_EXPIRED
                    if times[index] <= oldest_inside
                    else Reason.RETENTION_GRID_BUCKET_FULL
                )
        if grid.match is None:
            break  # it sees every snapshot: later grids decide nothing
    return tuple(
        (snapshots[index][0], reason[index]) for index in compress(range(len(times)), gone)
    )


@dataclass(frozen=True, slots=True)
class Managed:
    """The managed snapshots of a filesystem as two columns, oldest first (ties by name)."""

    names: tuple[str, ...]
    times: tuple[int, ...]

    @property
    def newest(self) -> int | None:
        return self.times[-1] if self.times else None

    def pairs(self) -> list[tuple[str, int]]:
        return list(zip(self.names, self.times, strict=True))


class RetentionMemo:
    """`evaluate` with a memo, for one planning pass.

    The filesystems of a policy are snapshotted in one call, so they usually carry the very
    same snapshot names; their retention decisions are then equal and computed once. The key
    is the rules and the names (a `Managed` value: its times follow from its names)."""

    def __init__(self) -> None:
        self._results: dict[tuple[tuple[Rule, ...], tuple[str, ...]], RetentionResult] = {}

    def evaluate(self, rules: Sequence[Rule], managed: Managed) -> RetentionResult:
        key = (tuple(rules), managed.names)
        result = self._results.get(key)
        if result is None:
            result = self._results[key] = evaluate(rules, managed.pairs())
        return result
