"""Tests for zrepl-style filesystem filters (`reconciler.manifest.filters`)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest.filters import FilesystemFilter, filter_problems, filters_may_overlap

HOME = {"tank/home<": True, "tank/home/scratch<": False}


@pytest.mark.parametrize(
    ("mapping", "name", "included"),
    [
        (HOME, "tank/home", True),
        (HOME, "tank/home/alice", True),
        (HOME, "tank/home/alice/docs", True),
        (HOME, "tank/home/scratch", False),
        (HOME, "tank/home/scratch/tmp", False),
        (HOME, "tank/homework", False),  # a prefix of the string is not a parent
        (HOME, "tank", False),
        (HOME, "backup/tank/home", False),
        ({"tank/home": True}, "tank/home", True),  # exact: only that filesystem
        ({"tank/home": True}, "tank/home/alice", False),
        # the same path: exact beats subtree
        ({"tank/a<": True, "tank/a": False}, "tank/a", False),
        ({"tank/a<": True, "tank/a": False}, "tank/a/b", True),
        ({"tank/a<": False, "tank/a": True}, "tank/a", True),
        ({"tank/a<": False, "tank/a": True}, "tank/a/b", False),
        # longest wins, regardless of the order written
        ({"tank/a/b<": True, "tank<": False}, "tank/a/b/c", True),
        ({"tank/a/b<": True, "tank<": False}, "tank/a/c", False),
        ({"tank/a/b": True, "tank/a<": False, "tank<": True}, "tank/x", True),
        ({"tank/a/b": True, "tank/a<": False, "tank<": True}, "tank/a/b", True),
        ({"tank/a/b": True, "tank/a<": False, "tank<": True}, "tank/a/b/c", False),
        # '<' alone is every filesystem
        ({"<": True, "tank/tmp<": False}, "other/x", True),
        ({"<": True, "tank/tmp<": False}, "tank/tmp/y", False),
        ({}, "tank", False),
        ({"tank/my data<": True}, "tank/my data/x y", True),
    ],
)
def test_matches(mapping: dict[str, bool], name: str, included: bool) -> None:
    assert FilesystemFilter.from_mapping(mapping).matches(name) is included


def test_patterns_are_sorted_and_compare_by_value() -> None:
    a = FilesystemFilter.from_mapping({"tank/b<": True, "tank/a": False})
    b = FilesystemFilter.from_mapping({"tank/a": False, "tank/b<": True})
    assert a.patterns == (("tank/a", False), ("tank/b<", True))
    assert a == b
    assert hash(a) == hash(b)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "must not be empty"),
        ("/tank", "start or end with '/'"),
        ("tank/", "start or end with '/'"),
        ("tank/<", "start or end with '/'"),
        ("tank//home", "'//'"),
        ("tank<home", "'<' may only appear once, at the end"),
        ("tank<<", "'<' may only appear once, at the end"),
        ("tank/home@snap", "snapshot (@) or bookmark (#)"),
        ("tank/home#mark<", "snapshot (@) or bookmark (#)"),
        ("tank/h*me", "characters ZFS does not allow"),
        ("tank/h%me", "characters ZFS does not allow"),
        ("tank/h\u00e9me", "characters ZFS does not allow"),
        ("tank/../etc", "'..' is not a valid name component"),
        ("t" * 256, "at most 255 characters"),
    ],
)
def test_problems(pattern: str, fragment: str) -> None:
    problems = filter_problems({"tank<": True, pattern: True})
    assert len(problems) == 1
    assert problems[0][0] == pattern
    assert fragment in problems[0][1]
    with pytest.raises(ValueError, match="invalid filesystem pattern"):
        FilesystemFilter.from_mapping({pattern: True})


def test_problem_for_non_boolean_value() -> None:
    assert filter_problems({"tank<": "yes"}) == [
        ("tank<", "the value must be true or false, not 'yes'")
    ]


@pytest.mark.parametrize("pattern", ["<", "tank", "tank<", "a-b_c.d:e f/x<", "t" * 255])
def test_valid_patterns(pattern: str) -> None:
    assert filter_problems({pattern: True}) == []


@pytest.mark.parametrize(
    ("a", "b", "witness"),
    [
        ({"tank/home<": True}, {"tank/home/alice": True}, "tank/home/alice"),
        ({"tank/home<": True}, {"tank/var<": True}, None),
        ({"tank/home<": True}, {"tank<": True, "tank/home<": False}, None),
        # only a filesystem that no pattern names overlaps: a fresh child is the witness
        (
            {"tank/home<": True, "tank/home/a<": False},
            {"tank/home<": False, "tank/home/b<": False, "tank<": True},
            None,
        ),
        (
            {"tank/home<": True, "tank/home/a<": False},
            {"tank/home<": False, "tank<": True, "tank/home/c": True},
            "tank/home/c",
        ),
        (
            {"tank/home<": True, "tank/home/a": False},
            {"tank/home": False, "tank<": True},
            "tank/home/child",
        ),
        ({"<": True}, {"<": True, "tank<": False}, "child"),
        ({"tank": True}, {"tank<": True, "tank": False}, None),
        ({"tank<": True, "tank/child": False}, {"tank<": True, "tank/child": False}, "tank"),
        (
            {"tank/x<": True, "tank/x": False, "tank/x/child": False},
            {"tank/x<": True},
            "tank/x/child1",
        ),
    ],
)
def test_overlap(a: dict[str, bool], b: dict[str, bool], witness: str | None) -> None:
    fa, fb = FilesystemFilter.from_mapping(a), FilesystemFilter.from_mapping(b)
    assert filters_may_overlap(fa, fb) == witness
    if witness is not None:
        assert fa.matches(witness) and fb.matches(witness)


# --- exhaustive check of filters_may_overlap against a brute-force universe ------------------

PATHS = ["tank", "tank/a", "tank/a/b", "tank/c", "pool"]
PATTERNS = [*PATHS, *(p + "<" for p in PATHS), "<"]
UNIVERSE = [
    "".join(parts)
    for depth in range(1, 5)
    for parts in itertools.product(
        ["tank", "pool", "zz"], *[["/a", "/b", "/c", "/zz"]] * (depth - 1)
    )
]

FILTERS = st.dictionaries(st.sampled_from(PATTERNS), st.booleans(), max_size=5)


@settings(max_examples=300, deadline=None)
@given(FILTERS, FILTERS)
def test_overlap_is_exact(a: dict[str, bool], b: dict[str, bool]) -> None:
    fa, fb = FilesystemFilter.from_mapping(a), FilesystemFilter.from_mapping(b)
    both = [name for name in UNIVERSE if fa.matches(name) and fb.matches(name)]
    witness = filters_may_overlap(fa, fb)
    if both:
        assert witness is not None
    if witness is not None:
        assert fa.matches(witness) and fb.matches(witness)
        # the witness is a real overlap, so some name of the universe must overlap too
        assert both
