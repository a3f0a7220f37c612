"""Tests for zrepl-style filesystem filters (`reconciler.manifest.filters`)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest.filters import (
    FilesystemFilter,
    below,
    filter_problems,
    filters_may_overlap,
    first_overlaps,
    shifted,
)

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


# --- the fast overlap checks against the original pairwise code ------------------------------


def reference_overlap(a: FilesystemFilter, b: FilesystemFilter) -> str | None:
    """The original `filters_may_overlap` (before the speed work), kept as the reference: every
    pattern path of both in string order, then a fresh child below every subtree path."""
    paths = {path for f in (a, b) for path, _ in f.pattern_paths() if path}
    subtrees = {path for f in (a, b) for path, is_subtree in f.pattern_paths() if is_subtree}
    for candidate in sorted(paths):
        if a.matches(candidate) and b.matches(candidate):
            return candidate
    for parent in sorted(subtrees):
        prefix = parent + "/" if parent else ""
        number = 0
        while True:
            candidate = f"{prefix}child{number or ''}"
            if not any(p == candidate or p.startswith(candidate + "/") for p in paths):
                break
            number += 1
        if a.matches(candidate) and b.matches(candidate):
            return candidate
    return None


# Names whose order as strings is not their order as paths (' ', '-' and '.' sort before '/',
# ':' after it, '0' right after it), and the names fresh children take.
COMPONENTS = ["a", "b", "a b", "a-b", "a.b", "a:b", "ab", "0", "child", "child1"]
POOLS = ["tank", "tank0", "tank-x", "child"]


@st.composite
def universes(draw: st.DrawFn) -> list[str]:
    """A few paths for one example, with children of some, so that filters drawn over them
    nest, share paths and interleave."""
    bases = draw(
        st.lists(
            st.tuples(st.sampled_from(POOLS), st.lists(st.sampled_from(COMPONENTS), max_size=3)),
            min_size=1,
            max_size=4,
        )
    )
    paths = ["/".join([pool, *rest]) for pool, rest in bases]
    children = draw(
        st.lists(st.tuples(st.sampled_from(paths), st.sampled_from(COMPONENTS)), max_size=4)
    )
    return paths + [f"{parent}/{child}" for parent, child in children]


def filters_over(paths: list[str]) -> st.SearchStrategy[FilesystemFilter]:
    subtrees = [path + "<" for path in paths]
    patterns = st.sampled_from(["<", *paths, *subtrees, *subtrees])
    mappings = st.dictionaries(patterns, st.booleans(), max_size=6)
    return mappings.map(FilesystemFilter.from_mapping)


@st.composite
def filter_lists(draw: st.DrawFn, min_size: int, max_size: int) -> list[FilesystemFilter]:
    """Filters over one universe, some shifted below a root (as a target receives them)."""
    paths = draw(universes())
    filters = draw(st.lists(filters_over(paths), min_size=min_size, max_size=max_size))
    roots = draw(
        st.lists(
            st.sampled_from([None, None, *paths]), min_size=len(filters), max_size=len(filters)
        )
    )
    return [f if root is None else shifted(f, root) for f, root in zip(filters, roots, strict=True)]


@settings(max_examples=500, deadline=None)
@given(filter_lists(min_size=2, max_size=2))
def test_overlap_is_the_original_witness(filters: list[FilesystemFilter]) -> None:
    a, b = filters
    assert filters_may_overlap(a, b) == reference_overlap(a, b)
    assert filters_may_overlap(b, a) == reference_overlap(b, a)


@settings(max_examples=300, deadline=None)
@given(filter_lists(min_size=0, max_size=10))
def test_first_overlaps_is_every_pair_checked(filters: list[FilesystemFilter]) -> None:
    expected = [
        next((j for j in range(i) if reference_overlap(filters[j], filters[i]) is not None), None)
        for i in range(len(filters))
    ]
    assert first_overlaps(filters) == expected


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_shifted_filter_checks_like_one_built_from_its_patterns(data: st.DataObject) -> None:
    # a shifted filter's shape is derived from the original's; compare with a fresh one
    paths = data.draw(universes())
    original, other = data.draw(filters_over(paths)), data.draw(filters_over(paths))
    moved = shifted(original, data.draw(st.sampled_from(paths)))
    fresh = FilesystemFilter(patterns=moved.patterns)
    assert moved == fresh
    assert filters_may_overlap(moved, other) == filters_may_overlap(fresh, other)
    assert first_overlaps([other, moved, fresh]) == first_overlaps([other, fresh, fresh])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_below_is_the_inverse_of_shifted(data: st.DataObject) -> None:
    paths = data.draw(universes())
    original = data.draw(filters_over(paths))
    root = data.draw(st.sampled_from(paths))
    relative = below(original, root)
    for name in paths:
        assert relative.matches(name) == original.matches(f"{root}/{name}")
        assert below(shifted(original, root), root).matches(name) == original.matches(name)
    # replication into itself: the same witness as the original check on the shifted filter
    witness = filters_may_overlap(relative, original)
    expected = reference_overlap(original, shifted(original, root))
    assert (None if witness is None else f"{root}/{witness}") == expected


@pytest.mark.parametrize(
    ("mappings", "expected"),
    [
        ([], []),
        ([HOME, HOME, HOME], [None, 0, 0]),  # each one once, with the first
        ([{"tank/a<": True}, {"tank/b<": True}, {"tank<": True}], [None, None, 0]),
        ([{"tank/a/b<": True}, {"tank/a<": True}, {"tank<": True}], [None, 0, 0]),
        # nested, each one level only: no overlap although every path is an ancestor
        (
            [
                {"tank<": True, "tank/a<": False},
                {"tank/a<": True, "tank/a/b<": False},
                {"tank/a/b<": True},
                {"tank/a/b/c": True},
            ],
            [None, None, None, 2],
        ),
        # one filter excluding every other one's filesystems
        (
            [
                {"tank<": True, "tank/a<": False, "tank/b<": False},
                {"tank/a<": True},
                {"tank/b<": True},
                {"tank/c": True},
            ],
            [None, None, None, 0],
        ),
        ([{"<": True, "tank<": False}, {"pool<": True}, {"<": True}], [None, 0, 0]),
        ([{"<": False}, {"<": False, "tank": True}, {"tank": True}], [None, None, 1]),
        # they only share a filesystem that no pattern names
        (
            [{"tank/home<": True, "tank/home/a": False}, {"tank/home": False, "tank<": True}],
            [None, 0],
        ),
        # excluded everywhere: a filter that includes nothing overlaps nothing, itself neither
        ([{"tank<": False}, {"tank<": False}, {"tank": True}], [None, None, None]),
    ],
)
def test_first_overlaps(mappings: list[dict[str, bool]], expected: list[int | None]) -> None:
    filters = [FilesystemFilter.from_mapping(mapping) for mapping in mappings]
    assert first_overlaps(filters) == expected
