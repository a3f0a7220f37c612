"""Tests for the manifest duration syntax (`reconciler.manifest.durations`)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.manifest.durations import DURATION_PATTERN, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("14d", 14 * 86400),
        ("1w", 604800),
        ("90s", 90),
        ("007m", 420),
    ],
)
def test_parse_valid(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("3x", "unknown unit 'x' in duration '3x' (use s, m, h, d or w)"),
        ("15", "missing unit"),
        ("0s", "greater than zero"),
        ("000h", "greater than zero"),
        ("", "invalid duration"),
        ("h", "invalid duration"),
        ("-5m", "invalid duration"),
        ("1.5h", "invalid duration"),
        (" 1h", "invalid duration"),
        ("1h ", "invalid duration"),
        ("1 h", "invalid duration"),
        ("1h30m", "invalid duration"),
        ("1H", "unknown unit 'H'"),
        ("2ms", "unknown unit 'ms'"),
        ("\u0663h", "invalid duration"),  # a non-ASCII digit
    ],
)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1h"), (90, "90s"), (60, "1m"), (86400 * 14, "2w"), (86400 * 3, "3d"), (5400, "90m")],
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, -60])
def test_format_rejects_non_positive(seconds: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        format_duration(seconds)


@given(st.integers(min_value=1, max_value=10**9))
def test_format_round_trips(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert re.fullmatch(DURATION_PATTERN, text)


@given(st.text(alphabet="0123456789smhdwxyH .-", max_size=6))
def test_pattern_accepts_exactly_what_parse_accepts(text: str) -> None:
    try:
        parse_duration(text)
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert (re.search(DURATION_PATTERN, text) is not None) == accepted
