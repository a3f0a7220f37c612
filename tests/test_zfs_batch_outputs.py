"""Hostile zfs output for the batched calls: the `zfs program -j` answer of the bookmark
program and the stderr of a many-snapshot `zfs hold`/`zfs release`. Whatever zfs (or anything
posing as it) prints, the parser answers a value or None and never raises; a refusal is only
ever attributed to a snapshot of the call."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.zfs.driver import _refusals
from reconciler.zfs.parse import parse_program_answer

NAMES = ["tank/a#m", "tank/b#m", "tank/c d#m"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()))
def test_any_program_output_is_an_answer_or_none(raw: bytes) -> None:
    answer = parse_program_answer(raw, NAMES)
    assert answer is None or (
        set(answer) == set(NAMES) and all(type(code) is int for code in answer.values())
    )


@settings(max_examples=200, deadline=None)
@given(codes=st.lists(st.integers(-(2**70), 2**70), min_size=3, max_size=3))
def test_a_well_formed_answer_is_read_back(codes: list[int]) -> None:
    raw = json.dumps({"return": dict(zip(NAMES, codes, strict=True))}).encode()
    assert parse_program_answer(raw, NAMES) == dict(zip(NAMES, codes, strict=True))
    assert parse_program_answer(raw, NAMES[:2]) is None  # a name nobody asked for


BY_NAME = {"tank/a@s": ("tank/a", "s"), "tank/b@s": ("tank/b", "s")}
_line = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["tank/a@s", "tank/b@s", "tank/x@s", "tank/a", "tank/x", "'"]).map(
        lambda name: f"cannot hold snapshot '{name}': tag already exists on this dataset"
    ),
    st.sampled_from(["tank/a", "tank/x", "tank/a@s"]).map(
        lambda name: f"cannot open '{name}': dataset does not exist"
    ),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_line, max_size=6))
def test_refusals_name_only_snapshots_of_the_call(lines: list[str]) -> None:
    found = _refusals("\n".join(lines), BY_NAME)
    assert set(found) <= set(BY_NAME.values())
    assert all(text for text in found.values())
