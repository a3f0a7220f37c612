"""Tests for retention rules (`reconciler.core.retention`): grid, lastN, regex and their union.

Compact notation: snapshots are written as minutes after 2026-11-26 00:00 UTC ("0 10 30 60"),
named `zr_<UTC time>`; the expected outcome has one character per snapshot, in input order:
a digit is the index of the first rule that keeps it, `E` destroyed as outside the (first)
grid, `F` destroyed as its bucket is full, `N` destroyed as no rule keeps it.
"""

from __future__ import annotations

import calendar
import re
import time
from collections import defaultdict
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.names import snapshot_name
from reconciler.core.plan import Reason
from reconciler.core.retention import (
    KEPT_WITHOUT_RULES,
    GridRule,
    LastNRule,
    RegexRule,
    RetentionResult,
    Rule,
    evaluate,
)
from reconciler.manifest.grid import Grid, parse_grid
from reconciler.manifest.regex import compile_regex

BASE = calendar.timegm((2026, 11, 26, 0, 0, 0, 0, 0, 0))
CODES = {
    Reason.RETENTION_GRID_EXPIRED: "E",
    Reason.RETENTION_GRID_BUCKET_FULL: "F",
    Reason.RETENTION_NOT_KEPT: "N",
}


def snaps(minutes: str) -> list[tuple[str, int]]:
    """Snapshots at these minutes; a repeated time gets a suffix so names stay unique."""
    result: list[tuple[str, int]] = []
    for m in minutes.split():
        t = BASE + int(m) * 60
        name = snapshot_name("zr_", t)
        repeats = sum(1 for _, other in result if other == t)
        result.append((f"{name}.{repeats}" if repeats else name, t))
    return result


def rules(*specs: str) -> list[Rule]:
    """'grid:1x1h | 2x1h', 'last:3', 'regex:T000000Z$', 'notregex:^a' (negate); a grid or
    last spec may end in '@REGEX', its `match` ('last:2@^a')."""
    parsed: list[Rule] = []
    for spec in specs:
        kind, _, value = spec.partition(":")
        value, at, pattern = value.partition("@")
        match = compile_regex(pattern) if at else None
        if kind == "grid":
            parsed.append(GridRule(parse_grid(value), match))
        elif kind == "last":
            parsed.append(LastNRule(int(value), match))
        else:
            parsed.append(RegexRule(re.compile(value), negate=kind == "notregex"))
    return parsed


def named(items: str) -> list[tuple[str, int]]:
    """'a:0 man:10': snapshots named `<word>_<minutes>` at those minutes (for `match`)."""
    result = []
    for item in items.split():
        word, _, minutes = item.partition(":")
        result.append((f"{word}_{int(minutes):05d}", BASE + int(minutes) * 60))
    return result


def outcome(result: RetentionResult, snapshots: Sequence[tuple[str, int]]) -> str:
    destroyed = dict(result.destroyed)
    assert len(destroyed) + len(result.kept) == len(snapshots)
    assert not destroyed.keys() & result.kept.keys()
    assert [n for n, _ in result.destroyed] == [n for n, _ in snapshots if n in destroyed]
    return "".join(
        str(result.kept[name]) if name in result.kept else CODES[destroyed[name]]
        for name, _ in snapshots
    )


@pytest.mark.parametrize(
    ("specs", "minutes", "expected"),
    [
        # bucket 0 = (now-1h, now]: a snapshot exactly 1h old falls into the next bucket
        (["grid:1x1h(keep=all) | 2x1h"], "0 10 30 60 90 120 180", "E0FF0F0"),
        # keep=2 keeps the two OLDEST of the bucket, even when the youngest is one of them
        (["grid:1x1h(keep=2)"], "0 10 20 30", "00FF"),
        # keep=all, and everything at or before now - span is outside the grid
        (["grid:1x1h(keep=all)"], "0 59 60 119 120", "EEE00"),
        # empty buckets are skipped; each non-empty bucket keeps its oldest
        (["grid:6x1h"], "0 70 80 300 301 360", "E0F00F"),
        # intervals of different lengths, each bucket measured from the previous one
        (["grid:1x1h | 2x1d"], "0 1380 1400 1499 1500 1560", "00FFF0"),
        # a grid with a single bucket keeps only its oldest snapshot
        (["grid:1x1w"], "0 1 2", "0FF"),
        # union: the grid keeps one per bucket, lastN the two youngest
        (["grid:1x1h", "last:2"], "0 30 60 90 100", "EE011"),
        # the first rule that keeps a snapshot is reported
        (["last:2", "grid:1x1h"], "0 30 60 90 100", "EE100"),
        # lastN larger than the list keeps everything
        (["last:10"], "0 1 2", "000"),
        (["last:1"], "0 1 2", "NN0"),
        # regex keeps midnight snapshots; without a grid the reason is not_kept
        (["regex:T000000Z$"], "0 720 1440 1500", "0N0N"),
        (["regex:T000000Z$", "last:1"], "0 720 1440 1500", "0N01"),
        # with a grid rule, its reasons are used even for snapshots other rules consider
        (["regex:T000000Z$", "grid:1x1h"], "0 720 1440 1500", "0E01"),
        # ties in time: earlier in the input counts as older
        (["grid:1x1h"], "0 0 0", "0FF"),
        (["grid:2x1h"], "60 60 120", "0F0"),
        (["last:1"], "5 5", "N0"),
        # a later grid keeps what the first one expires; the first grid decides the reasons
        (["grid:1x1h", "grid:1x1d"], "0 100 120 130", "10FF"),
        (["grid:1x1h", "grid:1x1d"], "0 10 100 120 130", "1E0FF"),
    ],
)
def test_table(specs: list[str], minutes: str, expected: str) -> None:
    snapshots = snaps(minutes)
    assert outcome(evaluate(rules(*specs), snapshots), snapshots) == expected


@pytest.mark.parametrize(
    ("specs", "items", "expected"),
    [
        # a grid with match sees only what matches: "now" is the youngest `zr` snapshot (50),
        # not `man_00200`; what it does not see gets no grid reason
        (["grid:1x1h(keep=all)@^zr"], "zr:0 man:30 zr:50 man:200", "0N0N"),
        (["grid:1x1h@^zr"], "zr:0 zr:30 zr:100 man:110", "EE0N"),
        # lastN with match counts only what matches
        (["last:2@^zr"], "zr:0 zr:10 man:20 zr:30 man:40", "N0N0N"),
        # more than match: keeps every matching one, never the others (zrepl issue 691)
        (["last:5@^zr"], "zr:0 man:10", "0N"),
        # negate keeps what does not match
        (["notregex:^man"], "zr:0 man:10 zr:20", "0N0"),
        (["notregex:^man", "regex:^man"], "zr:0 man:10", "01"),
        # each grid decides the reasons of what it sees, with its own "now"
        (["grid:1x1h@^a", "grid:1x1h@^b"], "a:0 b:5 a:100 b:120 c:130", "EE01N"),
        # a grid with match first, then one without: the second decides for the rest
        (["grid:1x1h@^a", "grid:1x1h"], "b:0 a:10 b:100", "E01"),
        # a match that sees nothing keeps nothing and decides nothing
        (["grid:1x1h@^x", "last:1"], "a:0 a:10", "N1"),
        (["last:3@^x"], "a:0 a:10", "NN"),
        # match is a search, as regex is: anywhere in the name
        (["last:1@1"], "a:10 b:15 a:20", "N0N"),
    ],
)
def test_match_and_negate(specs: list[str], items: str, expected: str) -> None:
    snapshots = named(items)
    assert outcome(evaluate(rules(*specs), snapshots), snapshots) == expected


def test_no_rules_keeps_everything() -> None:
    snapshots = snaps("0 1 2")
    result = evaluate([], snapshots)
    assert result.kept == dict.fromkeys((n for n, _ in snapshots), KEPT_WITHOUT_RULES)
    assert result.destroyed == ()


def test_no_snapshots() -> None:
    assert evaluate(rules("grid:1x1h", "last:1"), []) == RetentionResult(kept={}, destroyed=())


def test_unsorted_input_is_refused() -> None:
    with pytest.raises(ValueError, match="oldest first"):
        evaluate(rules("last:1"), snaps("10 5"))


def test_regex_searches_the_short_name() -> None:
    snapshots = [("zr_a", 1), ("zr_b", 2), ("other", 3)]
    result = evaluate([RegexRule(re.compile("^zr_"))], snapshots)
    assert result.kept == {"zr_a": 0, "zr_b": 0}
    assert result.destroyed == (("other", Reason.RETENTION_NOT_KEPT),)


# --- against a straightforward port of zrepl's bucket algorithm -------------------------------


def reference_grid(grid: Grid, snapshots: Sequence[tuple[str, int]]) -> set[str]:
    """zrepl's FitEntries: expand the intervals into buckets, fill, keep the oldest `keep`."""
    now = max(t for _, t in snapshots)
    buckets: list[tuple[int, int, int | None]] = []  # (younger_than, older_than_or_eq, keep)
    edge = now
    for interval in grid.intervals:
        for _ in range(interval.count):
            buckets.append((edge - interval.length, edge, interval.keep))
            edge -= interval.length
    content: dict[int, list[str]] = defaultdict(list)
    for name, t in snapshots:  # input order = oldest first, ties in input order
        for index, (younger, older_or_eq, _) in enumerate(buckets):
            if younger < t <= older_or_eq:
                content[index].append(name)
                break
    kept: set[str] = set()
    for index, names in content.items():
        keep = buckets[index][2]
        kept.update(names if keep is None else names[:keep])
    return kept


INTERVAL = st.tuples(
    st.integers(1, 4), st.sampled_from([60, 600, 3600, 7200]), st.sampled_from([None, 1, 2, 3])
)


def _grid_text(parts: list[tuple[int, int, int | None]]) -> str:
    texts = []
    for count, length, keep in sorted(parts, key=lambda p: p[1]):
        suffix = "(keep=all)" if keep is None else f"(keep={keep})"
        texts.append(f"{count}x{length}s{suffix}")
    return " | ".join(texts)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(INTERVAL, min_size=1, max_size=4).map(_grid_text),
    st.lists(st.integers(0, 6 * 3600), min_size=1, max_size=40),
)
def test_grid_matches_zrepl_reference(grid_text: str, offsets: list[int]) -> None:
    grid = parse_grid(grid_text)
    times = sorted(offsets)
    snapshots = [(f"s{i}", BASE + t) for i, t in enumerate(times)]
    result = evaluate([GridRule(grid)], snapshots)
    assert set(result.kept) == reference_grid(grid, snapshots)
    now = snapshots[-1][1]
    for name, reason in result.destroyed:
        t = dict(snapshots)[name]
        expired = t <= now - grid.span
        assert reason is (
            Reason.RETENTION_GRID_EXPIRED if expired else Reason.RETENTION_GRID_BUCKET_FULL
        )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 3000), min_size=0, max_size=30),
    st.integers(1, 10),
    st.lists(INTERVAL, min_size=1, max_size=3).map(_grid_text),
)
def test_union_is_any_rule(offsets: list[int], count: int, grid_text: str) -> None:
    snapshots = [(f"s{i}", BASE + t * 60) for i, t in enumerate(sorted(offsets))]
    grid_rule, last_rule = GridRule(parse_grid(grid_text)), LastNRule(count)
    both = evaluate([grid_rule, last_rule], snapshots)
    alone = [set(evaluate([rule], snapshots).kept) for rule in (grid_rule, last_rule)]
    assert set(both.kept) == alone[0] | alone[1]
    assert {n for n, i in both.kept.items() if i == 0} == alone[0]


def test_benchmark_scale() -> None:
    """2,000 filesystems x 500 snapshots, a 3-interval grid and a lastN."""
    rule_list = rules("grid:1x1h(keep=all) | 24x1h | 14x1d", "last:10")
    fleet = [
        snaps(" ".join(str(fs + i * 15) for i in range(500)))  # every 15 minutes
        for fs in range(0, 2000, 100)
    ]
    started = time.perf_counter()
    for index in range(2000):
        evaluate(rule_list, fleet[index % len(fleet)])
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0  # ~0.2 s measured; generous for slow CI machines


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 6 * 60)), max_size=30),
    st.lists(INTERVAL, min_size=1, max_size=3).map(_grid_text),
    st.integers(1, 6),
)
def test_match_is_the_rule_over_the_matching_snapshots(
    items: list[tuple[str, int]], grid_text: str, count: int
) -> None:
    """A rule with match keeps, of the matching snapshots, what the rule without match keeps
    when only those exist; a regex and its negation split every list in two."""
    snapshots = sorted({(f"{w}_{m:05d}", BASE + m * 60) for w, m in items}, key=lambda s: s[::-1])
    only_a = [s for s in snapshots if s[0].startswith("a")]
    a_name = compile_regex("^a")
    grid = parse_grid(grid_text)
    pairs: list[tuple[Rule, Rule]] = [
        (GridRule(grid, a_name), GridRule(grid)),
        (LastNRule(count, a_name), LastNRule(count)),
    ]
    for filtered, plain in pairs:
        assert set(evaluate([filtered], snapshots).kept) == set(evaluate([plain], only_a).kept)
    kept = set(evaluate([RegexRule(a_name)], snapshots).kept)
    not_kept = set(evaluate([RegexRule(a_name, negate=True)], snapshots).kept)
    assert kept == {n for n, _ in only_a}
    assert not_kept == {n for n, _ in snapshots} - kept
