"""Table tests of `reconciler.migrate.zrepl_pruning.convert_keep_rules`: each zrepl rule kind,
each side, and hostile shapes (which never raise: they become problems and keep everything).

The property test against an oracle of zrepl's documented semantics is in
`test_zrepl_pruning_oracle.py`.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest.models import RetentionSpec
from reconciler.migrate.zrepl_pruning import (
    WHOLE_LIST,
    ConvertedRules,
    convert_keep_rules,
)
from tests.manifest_strategies import json_values

GRID = {"type": "grid", "grid": "1x1h(keep=all) | 24x1h | 14x1d", "regex": "^zrepl_.*"}
CURSOR = {"type": "not_replicated"}


def _problems(result: ConvertedRules) -> list[tuple[int, str | None, bool]]:
    return [(p.index, p.key, p.affects_retention) for p in result.problems]


def _why(result: ConvertedRules, index: int, key: str | None) -> str:
    return next(p.why for p in result.problems if (p.index, p.key) == (index, key))


# --- each rule kind ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (GRID, {"grid": "1x1h(keep=all) | 24x1h | 14x1d", "match": "^zrepl_.*"}),
        (
            {"type": "grid", "grid": "1x1h(keep=all)|24x1h(keep=2)|6x30d", "regex": "^zrepl_"},
            {"grid": "1x1h(keep=all) | 24x1h(keep=2) | 6x30d", "match": "^zrepl_"},
        ),
        ({"type": "last_n", "count": 10, "regex": "^zrepl_"}, {"lastN": 10, "match": "^zrepl_"}),
        ({"type": "regex", "regex": "^manual_.*"}, {"regex": "^manual_.*"}),
        ({"type": "regex", "regex": "^manual_", "negate": False}, {"regex": "^manual_"}),
    ],
)
def test_exact_conversions(rule: dict[str, Any], expected: dict[str, Any]) -> None:
    result = convert_keep_rules([rule], side="receiver")
    assert result == ConvertedRules(rules=(expected,), keep_all=False, problems=())
    RetentionSpec.model_validate({"keep": list(result.rules)})


def test_zrepls_documented_example() -> None:
    """prune.html: keep_sender with not_replicated, manual snapshots and a grid."""
    rules = [CURSOR, {"type": "regex", "regex": "^manual_.*"}, GRID]
    result = convert_keep_rules(rules, side="sender")
    assert result.rules == (
        {"regex": "^manual_.*"},
        {"grid": "1x1h(keep=all) | 24x1h | 14x1d", "match": "^zrepl_.*"},
    )
    assert not result.keep_all
    assert _problems(result) == [(0, None, False)]
    assert "always in effect" in _why(result, 0, None)


@pytest.mark.parametrize(
    ("side", "words"),
    [
        ("sender", "never destroys on the source what a target still needs"),
        ("receiver", "newest common snapshot of every pair is always kept"),
        ("local", "zrepl refuses not_replicated in a snap job"),
    ],
)
def test_not_replicated_is_dropped_on_every_side(side: Any, words: str) -> None:
    result = convert_keep_rules([CURSOR, GRID], side=side)
    assert result.rules == ({"grid": "1x1h(keep=all) | 24x1h | 14x1d", "match": "^zrepl_.*"},)
    assert _problems(result) == [(0, None, False)]
    assert words in _why(result, 0, None)


def test_keep_snapshot_at_cursor_false_is_covered_by_the_bookmark() -> None:
    rule = {"type": "not_replicated", "keep_snapshot_at_cursor": False}
    result = convert_keep_rules([rule, GRID], side="sender")
    assert "keep_snapshot_at_cursor: false" in _why(result, 0, None)


def test_not_replicated_alone_keeps_everything_and_says_so() -> None:
    result = convert_keep_rules([CURSOR], side="sender")
    assert result.rules == () and result.keep_all
    assert _problems(result) == [(0, None, False), (0, None, True)]
    assert "add e.g. lastN: 1" in result.problems[1].why


def test_a_sender_without_not_replicated_keeps_more_here() -> None:
    result = convert_keep_rules([GRID], side="sender")
    assert result.rules and _problems(result) == [(WHOLE_LIST, None, False)]
    assert "keeps more" in _why(result, WHOLE_LIST, None)
    assert convert_keep_rules([GRID], side="receiver").problems == ()


def test_no_rules_keep_everything_as_in_zrepl() -> None:
    assert convert_keep_rules([], side="sender") == ConvertedRules((), True, ())


@pytest.mark.parametrize("pattern", ["", ".*", "^.*$", "^"])
def test_a_regex_that_keeps_everything_writes_no_retention(pattern: str) -> None:
    result = convert_keep_rules([GRID, {"type": "regex", "regex": pattern}], side="receiver")
    assert result.rules == () and result.keep_all
    assert _problems(result) == [(1, None, False)]


def test_negate_is_converted_and_explained() -> None:
    rule = {"type": "regex", "regex": "^zrepl_.*", "negate": True}
    result = convert_keep_rules([GRID, rule], side="receiver")
    assert result.rules[1] == {"regex": "^zrepl_.*", "negate": True}
    assert _problems(result) == [(1, "negate", False)]
    assert "not needed" in _why(result, 1, "negate")


@pytest.mark.parametrize(
    ("rule", "converted"),
    [
        ({"type": "last_n", "count": 3}, {"lastN": 3}),
        ({"type": "last_n", "count": 3, "regex": None}, {"lastN": 3}),
        ({"type": "last_n", "count": 3, "regex": "_000$"}, {"lastN": 3, "match": "_000$"}),
        (
            {"type": "grid", "grid": "24x1h", "regex": "zrepl"},
            {"grid": "24x1h", "match": "zrepl"},
        ),
    ],
)
def test_filters_that_may_see_other_snapshots_are_noted(
    rule: dict[str, Any], converted: dict[str, Any]
) -> None:
    result = convert_keep_rules([rule], side="receiver")
    assert result.rules == (converted,)
    assert _problems(result) == [(0, "regex", False)]
    assert "other tools' snapshots" in _why(result, 0, "regex")


def test_a_grid_without_regex_covers_every_snapshot_of_the_policy() -> None:
    result = convert_keep_rules([{"type": "grid", "grid": "24x1h"}], side="receiver")
    assert result.rules == ({"grid": "24x1h"},)
    assert _problems(result) == [(0, "regex", False)]
    assert "zrepl refuses a grid without regex" in _why(result, 0, "regex")


@pytest.mark.parametrize(
    ("text", "ours"),
    [
        ("1 x 1h", "1x1h"),  # spaces around x: both read it
        ("1x 1 h", "1x1h"),  # a space inside the duration: zrepl only
        ("1x+1h", "1x1h"),  # a signed duration: zrepl only
        ("1x60m(keep=-1)", "1x1h(keep=all)"),  # keep=-1 is zrepl's keep=all
        ("1x1h(keep=+2)", "1x1h(keep=2)"),  # Go's Atoi takes a sign
        ("1x1h ( keep=all)", "1x1h(keep=all)"),
        ("1x1h(keep=007)", "1x1h(keep=7)"),
        (" 2x1d | 1x2w\n", "2x1d | 1x2w"),
        ("1x1h(keep=all) | 6x10m", "1x1h(keep=all) | 6x10m"),  # shrink after keep=all only
    ],
)
def test_zrepl_grid_spellings(text: str, ours: str) -> None:
    result = convert_keep_rules([{"type": "grid", "grid": text, "regex": "^z"}], side="local")
    assert result.rules == ({"grid": ours, "match": "^z"},)
    assert all(not p.affects_retention for p in result.problems)


def test_a_rewritten_grid_is_reported_and_a_plain_one_is_not() -> None:
    rewritten = convert_keep_rules(
        [{"type": "grid", "grid": "1x 1 h", "regex": "^z"}], side="local"
    )
    assert _problems(rewritten) == [(0, "grid", False)]
    assert "rewritten in our syntax" in _why(rewritten, 0, "grid")
    plain = convert_keep_rules([{"type": "grid", "grid": "1x60m", "regex": "^z"}], side="local")
    assert plain.problems == ()  # our own syntax already: only normalized


# --- hostile shapes ---------------------------------------------------------------------------

HOSTILE: list[tuple[Any, str | None, str]] = [
    (3, None, "a keep rule is a mapping with a type, not the number 3"),
    (None, None, "not null"),
    ("grid", None, "not the string 'grid'"),
    ([GRID], None, "a keep rule is a mapping"),
    ({}, "type", "the rule has no type"),
    ({"type": 3}, "type", "has a type that is the number 3"),
    ({"type": "Grid", "grid": "24x1h"}, "type", "unknown rule type 'Grid'"),
    ({"type": "last-n", "count": 3}, "type", "unknown rule type 'last-n'"),
    ({**GRID, "foo": 1}, "foo", "zrepl refuses the key 'foo' in a grid rule"),
    ({**GRID, 7: 1}, "7", "zrepl refuses the key 7"),
    ({**GRID, "filesystems": {"<": True}}, "filesystems", "its own filesystems filter"),
    ({"type": "last_n"}, "count", "a last_n rule needs count"),
    ({"type": "last_n", "count": "10"}, "count", "not the string '10'"),
    ({"type": "last_n", "count": True}, "count", "not the boolean true"),
    ({"type": "last_n", "count": 1.5}, "count", "not the number 1.5"),
    ({"type": "last_n", "count": 0}, "count", "zrepl refuses count 0"),
    ({"type": "last_n", "count": -1}, "count", "zrepl refuses count -1"),
    ({"type": "last_n", "count": 2**64}, "count", "it must be from 1 to 2^63-1"),
    ({"type": "last_n", "count": 10**5000}, "count", "a number too large to show"),
    ({"type": "last_n", "count": 3, "regex": 5}, "regex", "regex must be a string"),
    ({"type": "last_n", "count": 3, "regex": "("}, "regex", "invalid regular expression"),
    ({"type": "grid", "regex": "^z"}, "grid", "not null"),
    ({"type": "grid", "grid": 24, "regex": "^z"}, "grid", "not the number 24"),
    ({"type": "grid", "grid": 10**5000, "regex": "^z"}, "grid", "a number too large to show"),
    ({"type": "grid", "grid": "", "regex": "^z"}, "grid", "zrepl refuses it"),
    ({"type": "grid", "grid": "1x1h|", "regex": "^z"}, "grid", "interval 2 of 2"),
    ({"type": "grid", "grid": "0x1h", "regex": "^z"}, "grid", "zrepl refuses the count"),
    ({"type": "grid", "grid": "1x0h", "regex": "^z"}, "grid", "not positive"),
    ({"type": "grid", "grid": "1x-1h", "regex": "^z"}, "grid", "not positive"),
    ({"type": "grid", "grid": "1x1", "regex": "^z"}, "grid", "zrepl refuses the duration"),
    ({"type": "grid", "grid": "1x1y", "regex": "^z"}, "grid", "zrepl refuses the duration"),
    ({"type": "grid", "grid": "1x1h30m", "regex": "^z"}, "grid", "zrepl refuses the duration"),
    ({"type": "grid", "grid": "1x1h(keep=0)", "regex": "^z"}, "grid", "fails at run time"),
    ({"type": "grid", "grid": "1x1h(keep=-2)", "regex": "^z"}, "grid", "fails at run time"),
    ({"type": "grid", "grid": "1x1h(keep=all )", "regex": "^z"}, "grid", "refuses keep="),
    ({"type": "grid", "grid": "1x1h(keep = 2)", "regex": "^z"}, "grid", "only keep=N|all"),
    ({"type": "grid", "grid": "1x1h(foo=1)", "regex": "^z"}, "grid", "only keep=N|all"),
    ({"type": "grid", "grid": "1x1h()", "regex": "^z"}, "grid", "only keep=N|all"),
    ({"type": "grid", "grid": "24x1h | 1x30m", "regex": "^z"}, "grid", "must not decrease"),
    ({"type": "grid", "grid": "9" * 20 + "x1h", "regex": "^z"}, "grid", "refuses the count"),
    ({"type": "grid", "grid": "1x99999999w", "regex": "^z"}, "grid", "time.Duration"),
    ({"type": "grid", "grid": "99999999999x1s", "regex": "^z"}, "grid", "not valid in our"),
    ({"type": "grid", "grid": "1x1h" + " " * 5000, "regex": "^z"}, "grid", "longer than"),
    ({"type": "grid", "grid": "24x1h", "regex": "a{1001}"}, "regex", "not valid in our"),
    ({"type": "regex"}, "regex", "a regex rule needs regex"),
    ({"type": "regex", "regex": ["^a"]}, "regex", "regex is a list"),
    ({"type": "regex", "regex": "(?<=a)b"}, "regex", "invalid regular expression"),
    ({"type": "regex", "regex": "^a", "negate": "yes"}, "negate", "not the string 'yes'"),
    ({"type": "regex", "regex": "^a", "negate": 1}, "negate", "not the number 1"),
]


@pytest.mark.parametrize(("rule", "key", "words"), HOSTILE)
def test_hostile_rules_keep_everything(rule: Any, key: str | None, words: str) -> None:
    result = convert_keep_rules([CURSOR, rule], side="sender")
    assert result.rules == () and result.keep_all
    problem = next(p for p in result.problems if p.index == 1)
    assert (problem.key, problem.affects_retention) == (key, True)
    assert words in problem.why, problem.why
    assert problem.why.endswith("every snapshot is kept until you write the retention by hand")
    assert "\n" not in problem.why and len(problem.why) < 400


def test_more_rules_than_a_manifest_takes_keep_everything() -> None:
    rule = {"type": "last_n", "count": 1, "regex": "^z"}
    assert not convert_keep_rules([rule] * 255, side="receiver").keep_all
    result = convert_keep_rules([rule] * 256, side="receiver")
    assert result.rules == () and result.keep_all
    assert _problems(result) == [(WHOLE_LIST, None, True)]
    assert "more than 255 rules" in result.problems[0].why


@pytest.mark.parametrize("rules", ["abc", None, {"type": "grid"}, 5, b"x"])
def test_a_keep_list_that_is_not_a_list(rules: Any) -> None:
    result = convert_keep_rules(rules, side="receiver")
    assert result.rules == () and result.keep_all
    assert _problems(result) == [(WHOLE_LIST, None, True)]
    assert result.problems[0].why.startswith("the keep rules must be a list, not ")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        json_values(),
        st.lists(json_values()),
        st.lists(
            st.dictionaries(st.sampled_from(["type", "grid", "regex", "count"]), json_values())
        ),
    ),
    st.sampled_from(["sender", "receiver", "local"]),
)
def test_anything_converts_to_valid_rules_or_to_keep_all(rules: Any, side: Any) -> None:
    result = convert_keep_rules(rules, side=side)
    assert result.keep_all == (result.rules == ())
    if result.rules:
        RetentionSpec.model_validate({"keep": list(result.rules)})
    for problem in result.problems:
        assert "\n" not in problem.why
