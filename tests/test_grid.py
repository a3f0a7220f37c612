"""Tests for the zrepl retention grid syntax (`reconciler.manifest.grid`)."""

from __future__ import annotations

import re

import pytest

from reconciler.manifest.grid import Grid, GridError, GridInterval, parse_grid

H = 3600
D = 86400


def test_parse_the_product_example() -> None:
    grid = parse_grid("1x1h(keep=all) | 24x1h | 14x1d")
    assert grid.intervals == (
        GridInterval(count=1, length=H, keep=None),
        GridInterval(count=24, length=H, keep=1),
        GridInterval(count=14, length=D, keep=1),
    )
    assert grid.span == H + 24 * H + 14 * D
    assert str(grid) == "1x1h(keep=all) | 24x1h | 14x1d"


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("1x1h", "1x1h"),
        ("  2 x 60m (keep=3) |1x1d( keep = all )", "2x1h(keep=3) | 1x1d(keep=all)"),
        ("24x1h(keep=1)", "24x1h"),
        ("1x3600s|1x120m", "1x1h | 1x2h"),
        ("12x30d", "12x30d"),
        ("1x1w(keep=all) | 1x1h", "1x1w(keep=all) | 1x1h"),  # shrinking after keep=all only
        ("1x1h(keep=all) | 1x10m(keep=all) | 1x1m", "1x1h(keep=all) | 1x10m(keep=all) | 1x1m"),
        ("3x1h | 3x1h | 1x1h", "3x1h | 3x1h | 1x1h"),  # equal lengths are not shrinking
    ],
)
def test_parse_and_normalize(text: str, normalized: str) -> None:
    grid = parse_grid(text)
    assert grid.text == normalized
    assert parse_grid(grid.text) == grid


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "interval 1 of 1 (''): empty interval"),
        ("1x1h |", "interval 2 of 2 (''): empty interval"),
        ("1x1h || 1x1d", "interval 2 of 3"),
        ("0x1h", "count must be a positive integer, got 0"),
        ("-1x1h", "expected COUNTxDURATION"),
        ("x1h", "expected COUNTxDURATION"),
        ("1h", "expected COUNTxDURATION"),
        ("1x", "invalid duration ''"),
        ("1x0h", "must be greater than zero"),
        ("1x3y", "unknown unit 'y'"),
        ("1x1.5h", "invalid duration"),
        ("1x1h(keep=0)", "keep must be 'all' or a positive integer, got '0'"),
        ("1x1h(keep=-1)", "keep must be 'all' or a positive integer, got '-1'"),
        ("1x1h(keep=some)", "keep must be 'all' or a positive integer, got 'some'"),
        ("1x1h(max=3)", "unknown parameter 'max=3'"),
        ("1x1h(keep=1", "expected COUNTxDURATION"),
        ("24x1h | 1x1m", "interval 2 (1x1m) is shorter than interval 1 (24x1h)"),
        ("1x1h(keep=all) | 24x1h | 1x30m", "interval 3 (1x30m) is shorter than interval 2"),
        ("1x1d(keep=2) | 1x1h(keep=all)", "not keep=all"),
    ],
)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(GridError, match=re.escape(fragment)):
        parse_grid(text)


def test_grid_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="interval 1 of 1"):
        parse_grid("nonsense")


def test_grid_is_hashable_and_compares_by_value() -> None:
    assert {parse_grid("1x1h"), parse_grid("1 x 1h")} == {
        Grid(intervals=(GridInterval(1, H, 1),), text="1x1h")
    }
