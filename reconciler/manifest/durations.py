"""Durations as written in manifests: `30s`, `15m`, `1h`, `14d`, `1w`.

Owns the one duration syntax of the project: a positive integer count followed by exactly one
unit (s, m, h, d or w), no spaces, no fractions, no combinations such as `1h30m`. Called by the
manifest models (`interval`, ...), by the retention grid parser (`manifest/grid.py`) and by
anything that prints a duration back to the user (`format_duration`).
"""

from __future__ import annotations

import re

UNIT_SECONDS: dict[str, int] = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
}

MAX_COUNT_DIGITS = 10
"""Digits of a duration's count, leading zeros aside: up to 9,999,999,999 of a unit (a bound
that keeps every time computation in range; no schedule or grid needs more)."""

# The same language as `parse_duration`, for JSON Schema (`pattern`): a positive count.
DURATION_PATTERN = rf"^0*[1-9][0-9]{{0,{MAX_COUNT_DIGITS - 1}}}[smhdw]$"

_SHAPE = re.compile(r"([0-9]+)([A-Za-z]*)")
_UNITS_HINT = "use s, m, h, d or w"
_SHOWN = 40


def parse_duration(text: str) -> int:
    """Seconds of a duration such as `15m`; raises ValueError with a precise message."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string such as '15m', not {type(text).__name__}")
    if len(text) > _SHOWN:  # the message quotes it: keep the message one readable line
        shape = _SHAPE.fullmatch(text)
        if shape is None or not shape.group(2) or shape.group(2) not in UNIT_SECONDS:
            raise ValueError(f"invalid duration {text[:_SHOWN]!r}...: not a count and a unit")
    shape = _SHAPE.fullmatch(text)
    if shape is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a positive whole number and a unit, "
            f"e.g. '30s', '15m', '1h', '14d', '1w'"
        )
    count_text, unit = shape.groups()
    if not unit:
        raise ValueError(f"missing unit in duration {text!r} ({_UNITS_HINT})")
    if unit not in UNIT_SECONDS:
        raise ValueError(f"unknown unit {unit!r} in duration {text!r} ({_UNITS_HINT})")
    shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    count = parse_count(count_text, f"duration {shown!r}")
    if count <= 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    return count * UNIT_SECONDS[unit]


def parse_count(digits: str, what: str) -> int:
    """The value of a string of ASCII digits with at most `MAX_COUNT_DIGITS` significant ones
    (so that no count is too large to compute with); ValueError naming `what` otherwise."""
    significant = digits.lstrip("0")
    if len(significant) > MAX_COUNT_DIGITS:
        raise ValueError(f"{what}: the count has more than {MAX_COUNT_DIGITS} digits")
    return int(significant or "0")


def format_duration(seconds: int) -> str:
    """The shortest exact spelling: the largest unit that divides `seconds` (3600 -> `1h`)."""
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {seconds} seconds")
    for unit in ("w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
