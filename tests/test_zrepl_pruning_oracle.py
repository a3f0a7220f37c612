"""Property test: zrepl's keep rules, converted by `convert_keep_rules` and evaluated by our
retention (`reconciler.core.retention.evaluate`), keep exactly what zrepl keeps.

The oracle is zrepl's pruning as its documentation describes it
(https://zrepl.github.io/configuration/prune.html), written here from that text and not from
our code:

- a snapshot that no rule keeps is destroyed; with no rules nothing is destroyed;
- `not_replicated` keeps the snapshots not yet replicated (here: every snapshot is replicated);
- `grid`: filter by `regex`; put the matching snapshots on a time axis, youngest on the left;
  the first bucket's left edge is the youngest snapshot, each bucket is `length` wide and the
  next one sits right of it; buckets are left-inclusive and right-exclusive (a snapshot on an
  edge falls into the right, older, bucket); older than the last bucket is not kept; each
  bucket keeps its `keep` OLDEST snapshots (`keep=all`: all of them);
- `last_n`: filter by `regex` (absent: everything), keep the `count` youngest;
- `regex`: keep the snapshots whose name the regex matches (`negate`: does not match).

Regexes are matched with Python's `re.search`, standing in for Go's `regexp.MatchString`: the
patterns drawn here mean the same in Go, RE2 and Python.

Histories hold zrepl's snapshots (`zrepl_YYYYMMDD_HHMMSS_000`, UTC, distinct times) and other
tools' snapshots (other prefixes). Our rules see only the managed ones (here: names starting
with `zrepl_`), so the comparison is over those; and since zrepl's grid and last_n also count
the other snapshots their regex matches, the exact comparison assumes no other snapshot
matches a grid or last_n regex (docs/migrating-zrepl-pruning.md: "What the rules see").
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler.core.desired import retention_rules
from reconciler.core.retention import evaluate
from reconciler.manifest.models import RetentionSpec
from reconciler.migrate.zrepl_pruning import Side, convert_keep_rules

BASE = calendar.timegm((2026, 11, 1, 0, 0, 0, 0, 0, 0))
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
OTHER_PREFIXES = ["manual_", "autosnap_", "zrepl-", "backup_zrepl_"]
FILTERS = [  # grid and last_n regexes: they select zrepl's own snapshots only
    "^zrepl_",
    "^zrepl_.*",
    "^zrepl_.*_000$",
    "^zrepl_202611",
    "^zrepl_\\d{8}_(00|06|12|18)",
    "^zrepl_.*[02468]_000$",
    "^zrepl_202611[0-1][0-9]_",
    "^zrepl_.*0000_000$",
]
KEEP_REGEXES = [  # regex rules: may match anything
    "^manual_",
    "[05]_000$",
    "^zrepl_2026110[1-3]",
    "0000_000$",
    "^zrepl_.*[13579]_000$",
    ".*",
    "",
    "^(manual|autosnap)_",
    "^nothing",
    "_(00|12)0000_",
]


# --- the oracle: zrepl's documented semantics -------------------------------------------------


@dataclass(frozen=True)
class Interval:
    count: int
    seconds: int
    keep: int | None  # None: keep=all


def oracle_kept(rules: list[dict[str, Any]], snapshots: list[tuple[str, int]]) -> set[str]:
    """The names zrepl keeps: the union of what each rule keeps; everything without rules."""
    if not rules:
        return {name for name, _ in snapshots}
    kept: set[str] = set()
    for rule in rules:
        kept |= _rule_keeps(rule, snapshots)
    return kept


def _rule_keeps(rule: dict[str, Any], snapshots: list[tuple[str, int]]) -> set[str]:
    kind = rule["type"]
    if kind == "not_replicated":
        return set()  # every snapshot of the history is replicated
    if kind == "regex":
        return {n for n, _ in snapshots if bool(re.search(rule["regex"], n)) != rule["negate"]}
    matching = [(n, t) for n, t in snapshots if re.search(rule.get("regex", ""), n)]
    if kind == "last_n":
        youngest_first = sorted(matching, key=lambda s: (s[1], s[0]), reverse=True)
        return {n for n, _ in youngest_first[: rule["count"]]}
    return _grid_keeps(rule["intervals"], matching)


def _grid_keeps(intervals: list[Interval], matching: list[tuple[str, int]]) -> set[str]:
    if not matching:
        return set()
    youngest = max(t for _, t in matching)
    buckets: list[tuple[int, int, int | None]] = []  # [left age, right age), keep
    left = 0
    for interval in intervals:
        for _ in range(interval.count):
            buckets.append((left, left + interval.seconds, interval.keep))
            left += interval.seconds
    content: dict[int, list[tuple[int, str]]] = {}
    for name, t in matching:
        age = youngest - t
        for index, (start, end, _) in enumerate(buckets):
            if start <= age < end:
                content.setdefault(index, []).append((t, name))
    kept: set[str] = set()
    for index, entries in content.items():
        keep = buckets[index][2]
        oldest_first = sorted(entries)
        kept.update(name for _, name in (oldest_first if keep is None else oldest_first[:keep]))
    return kept


# --- generated zrepl configurations and histories ---------------------------------------------


@st.composite
def intervals(draw: st.DrawFn) -> list[Interval]:
    """A grid zrepl accepts: lengths that never shrink."""
    lengths = draw(
        st.lists(st.sampled_from([60, 600, 900, 3600, 7200, 86400, 7 * 86400]), min_size=1)
    )
    return [
        Interval(
            count=draw(st.integers(1, 12)),
            seconds=seconds,
            keep=draw(st.sampled_from([None, 1, 1, 2, 3])),
        )
        for seconds in sorted(lengths)[:4]
    ]


@st.composite
def zrepl_grid_text(draw: st.DrawFn, grid: list[Interval]) -> str:
    """`grid` as a user may write it for zrepl: spaces, units, signs and keep spellings."""
    parts = []
    for interval in grid:
        unit = draw(
            st.sampled_from([u for u, size in UNITS.items() if interval.seconds % size == 0])
        )
        space = draw(st.sampled_from(["", " "]))
        factor = f"{draw(st.sampled_from(['', '+']))}{interval.seconds // UNITS[unit]}"
        text = f"{interval.count}{space}x{space}{factor}{draw(st.sampled_from(['', ' ']))}{unit}"
        if interval.keep is None:
            text += draw(st.sampled_from(["(keep=all)", "(keep=-1)", " ( keep=all)"]))
        elif interval.keep == 1:
            text += draw(st.sampled_from(["", "(keep=1)", "(keep=+1)"]))
        else:
            text += draw(st.sampled_from([f"(keep={interval.keep})", f"(keep=0{interval.keep})"]))
        parts.append(text)
    return draw(st.sampled_from(["|", " | "])).join(parts)


@st.composite
def zrepl_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A keep list as zrepl reads it, with the oracle's parsed grid alongside (`intervals`)."""
    rules: list[dict[str, Any]] = []
    kinds = st.sampled_from(["grid", "grid", "last_n", "regex", "not_replicated"])
    for kind in draw(st.lists(kinds, min_size=1, max_size=4)):
        rule: dict[str, Any] = {"type": kind}
        if kind == "grid":
            grid = draw(intervals())
            rule |= {"grid": draw(zrepl_grid_text(grid)), "regex": draw(st.sampled_from(FILTERS))}
            rule["intervals"] = grid  # the oracle's reading; left out of zrepl's YAML
        elif kind == "last_n":
            rule["count"] = draw(st.integers(1, 12))
            regex = draw(st.sampled_from([None, *FILTERS]))
            if regex is not None:
                rule["regex"] = regex
        elif kind == "regex":
            rule |= {"regex": draw(st.sampled_from(KEEP_REGEXES)), "negate": draw(st.booleans())}
        rules.append(rule)
    return rules


def zrepl_name(epoch: int) -> str:
    """zrepl's snapshot name: prefix and Go's layout 20060102_150405_000, in UTC."""
    return "zrepl_" + time.strftime("%Y%m%d_%H%M%S_000", time.gmtime(epoch))


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, int]]:
    """(name, epoch) oldest first: zrepl's snapshots at distinct times (a schedule with jitter
    and gaps, so that buckets fill and edges are hit), and a few of other tools."""
    step = draw(st.sampled_from([60, 300, 900, 3600, 6 * 3600]))
    jitter = draw(st.lists(st.sampled_from([0, 0, 0, 60, 120, 1, 59]), min_size=3, max_size=80))
    gaps = draw(st.sets(st.integers(0, 79), max_size=10))
    times = {BASE + i * step + extra for i, extra in enumerate(jitter) if i not in gaps}
    managed = [(zrepl_name(t), t) for t in times]
    others = [
        (f"{prefix}{i}", BASE + i * step)
        for prefix, i in draw(
            st.lists(st.tuples(st.sampled_from(OTHER_PREFIXES), st.integers(0, 80)), max_size=4)
        )
    ]
    return sorted({*managed, *others}, key=lambda s: (s[1], s[0]))


def _as_loaded(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What zrepl's YAML holds: the rules without the oracle's parsed grid."""
    return [{k: v for k, v in rule.items() if k != "intervals"} for rule in rules]


def our_kept(rules: list[dict[str, Any]], snapshots: list[tuple[str, int]], side: Side) -> set[str]:
    """Convert, validate as a manifest, build the core rules, evaluate over managed ones."""
    converted = convert_keep_rules(_as_loaded(rules), side=side)
    managed = [(n, t) for n, t in snapshots if n.startswith("zrepl_")]
    if converted.keep_all:
        assert converted.rules == ()
        return {n for n, _ in managed}
    spec = RetentionSpec.model_validate({"keep": list(converted.rules)})
    return set(evaluate(retention_rules(spec), managed).kept)


@settings(max_examples=400, deadline=None)
@given(zrepl_rules(), histories(), st.sampled_from(["sender", "receiver", "local"]))
def test_converted_rules_keep_what_zrepl_keeps(
    rules: list[dict[str, Any]], snapshots: list[tuple[str, int]], side: Side
) -> None:
    others = [n for n, _ in snapshots if not n.startswith("zrepl_")]
    filters = [r.get("regex", "") for r in rules if r["type"] in ("grid", "last_n")]
    assume(not any(re.search(f, n) for f in filters for n in others))
    converted = convert_keep_rules(_as_loaded(rules), side=side)
    managed = {n for n, _ in snapshots if n.startswith("zrepl_")}
    expected = oracle_kept(rules, snapshots) & managed
    kept = our_kept(rules, snapshots, side)
    if any(problem.affects_retention for problem in converted.problems):
        # only not_replicated alone: zrepl prunes everything replicated, we keep everything
        assert {r["type"] for r in rules} == {"not_replicated"}
        assert converted.keep_all and kept == managed
    else:
        assert kept == expected


def test_the_oracle_follows_zrepls_documented_example() -> None:
    """prune.html: `1x1h(keep=all) | 2x2h | 1x3h` over snapshots a (youngest) .. D."""
    grid = [Interval(1, 3600, None), Interval(2, 7200, 1), Interval(1, 3 * 3600, 1)]
    # buckets (ages in minutes): [0, 60) keep=all, [60, 180), [180, 300), [300, 480); the
    # docs' letters: a..c in bucket 1, d..j in 2, k..p in 3, q..z in 4, A..D outside (A is
    # exactly on the last edge: "a snapshot on the edge of a bucket falls into the right one")
    ages = {"a": 0, "b": 20, "c": 40, "d": 60, "j": 170, "k": 180, "p": 290, "q": 300}
    ages |= {"z": 470, "A": 480, "D": 590}
    history = [(f"zrepl_{k}", BASE - m * 60) for k, m in sorted(ages.items(), key=lambda i: -i[1])]
    kept = _grid_keeps(grid, history)
    assert kept == {"zrepl_a", "zrepl_b", "zrepl_c", "zrepl_j", "zrepl_p", "zrepl_z"}
