"""Tests for cron schedules (`reconciler.manifest.cron`), evaluated in UTC."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterator
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest.cron import CronError, CronSchedule, civil_from_days, parse_cron


def ts(text: str) -> int:
    """UNIX seconds of 'YYYY-MM-DD HH:MM' in UTC."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M"))


def fires(schedule: CronSchedule, start: int, stop: int) -> Iterator[int]:
    """Brute force: every whole minute in [start, stop] that matches, one by one."""
    for minute in range(-(-start // 60), stop // 60 + 1):
        day, minute_of_day = divmod(minute, 1440)
        hour, minute_of_hour = divmod(minute_of_day, 60)
        if (
            minute_of_hour in schedule.minutes
            and hour in schedule.hours
            and _day_matches(schedule, day)
        ):
            yield minute * 60


@cache
def _day_matches(schedule: CronSchedule, day: int) -> bool:
    tm = time.gmtime(day * 86400)
    in_days = tm.tm_mday in schedule.days
    in_weekdays = (tm.tm_wday + 1) % 7 in schedule.weekdays  # tm_wday: Monday is 0
    if tm.tm_mon not in schedule.months:
        return False
    if schedule.days_restricted and schedule.weekdays_restricted:
        return in_days or in_weekdays
    return in_days and in_weekdays


@pytest.mark.parametrize(
    ("text", "at", "previous", "following"),
    [
        ("0 * * * *", "2026-11-26 04:15", "2026-11-26 04:00", "2026-11-26 05:00"),
        ("*/15 * * * *", "2026-11-26 04:15", "2026-11-26 04:15", "2026-11-26 04:30"),
        ("0 0 * * *", "2026-01-01 00:00", "2026-01-01 00:00", "2026-01-02 00:00"),
        ("30 2 * * *", "2026-03-01 01:00", "2026-02-28 02:30", "2026-03-01 02:30"),
        ("0 0 1 * *", "2026-03-15 12:00", "2026-03-01 00:00", "2026-04-01 00:00"),
        ("0 0 1 1 *", "2026-06-01 00:00", "2026-01-01 00:00", "2027-01-01 00:00"),
        ("0 0 29 2 *", "2026-06-01 00:00", "2024-02-29 00:00", "2028-02-29 00:00"),
        ("0 12 * * mon-fri", "2026-11-28 09:00", "2026-11-27 12:00", "2026-11-30 12:00"),
        ("0 12 * * 7", "2026-11-26 09:00", "2026-11-22 12:00", "2026-11-29 12:00"),
        ("0 12 * * 0", "2026-11-26 09:00", "2026-11-22 12:00", "2026-11-29 12:00"),
        ("0 0 * JAN,jul sun", "2026-11-26 00:00", "2026-07-26 00:00", "2027-01-03 00:00"),
        ("5-10/5 1-3/2 * * *", "2026-11-26 02:00", "2026-11-26 01:10", "2026-11-26 03:05"),
        # Vixie: both day fields restricted -> either matches (the 13th OR a Friday)
        ("0 0 13 * fri", "2026-11-26 00:00", "2026-11-20 00:00", "2026-11-27 00:00"),
        # a day field starting with '*' is unrestricted -> both must match
        ("0 0 */2 * fri", "2026-11-26 00:00", "2026-11-13 00:00", "2026-11-27 00:00"),
        ("@daily", "2026-11-26 04:15", "2026-11-26 00:00", "2026-11-27 00:00"),
        ("@hourly", "2026-11-26 04:15", "2026-11-26 04:00", "2026-11-26 05:00"),
        ("@weekly", "2026-11-26 04:15", "2026-11-22 00:00", "2026-11-29 00:00"),
        ("@monthly", "2026-11-26 04:15", "2026-11-01 00:00", "2026-12-01 00:00"),
        ("@yearly", "2026-11-26 04:15", "2026-01-01 00:00", "2027-01-01 00:00"),
    ],
)
def test_previous_and_next(text: str, at: str, previous: str, following: str) -> None:
    schedule = parse_cron(text)
    assert schedule.previous_fire(ts(at)) == ts(previous)
    assert schedule.next_fire(ts(at)) == ts(following)


def test_seconds_inside_a_minute() -> None:
    schedule = parse_cron("* * * * *")
    at = ts("2026-11-26 04:15") + 59
    assert schedule.previous_fire(at) == ts("2026-11-26 04:15")
    assert schedule.next_fire(at) == ts("2026-11-26 04:16")
    assert schedule.next_fire(at - 59) == ts("2026-11-26 04:16")  # strictly after


def test_never_firing_schedule_gives_none() -> None:
    schedule = parse_cron("0 0 30 2 *")
    assert schedule.previous_fire(ts("2026-11-26 00:00")) is None
    assert schedule.next_fire(ts("2026-11-26 00:00")) is None


def test_previous_fire_crosses_months_when_today_is_too_early() -> None:
    schedule = parse_cron("0 23 1 * *")
    assert schedule.previous_fire(ts("2026-11-01 22:00")) == ts("2026-10-01 23:00")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0 25 * * *", "field 2 (hour): 25 is out of range 0-23"),
        ("60 * * * *", "field 1 (minute): 60 is out of range 0-59"),
        ("* * 0 * *", "field 3 (day of month): 0 is out of range 1-31"),
        ("* * * 13 *", "field 4 (month): 13 is out of range 1-12"),
        ("* * * * 8", "field 5 (day of week): 8 is out of range 0-7"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "got 6"),
        ("", "got 0"),
        ("*/0 * * * *", "step in '*/0' must be a positive integer"),
        ("*/x * * * *", "step in '*/x' must be a positive integer"),
        ("5/15 * * * *", "a step needs '*' or a range before '/'"),
        ("10-5 * * * *", "range '10-5' runs backwards"),
        ("1,,2 * * * *", "empty list element"),
        ("a * * * *", "field 1 (minute): 'a' is not a number"),
        ("* * * foo *", "'foo' is not a number or a name (jan, feb"),
        ("* * * * fri-sun", "runs backwards"),
        ("@often", "unknown shorthand '@often'"),
        ("* * * jan-feb-mar *", "'feb-mar' is not a number"),
    ],
)
def test_invalid(text: str, fragment: str) -> None:
    with pytest.raises(CronError, match=re.escape(fragment)):
        parse_cron(text)


def test_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="field 2"):
        CronSchedule("0 24 * * *")


def test_schedule_compares_by_text() -> None:
    assert parse_cron("0 * * * *") == CronSchedule("0 * * * *")
    assert parse_cron("0 * * * *") != parse_cron("1 * * * *")


def test_far_search_is_fast() -> None:
    schedule = parse_cron("59 23 31 12 *")
    started = time.perf_counter()
    for offset in range(200):
        assert schedule.previous_fire(ts("2026-12-30 00:00") + offset * 60) == ts(
            "2025-12-31 23:59"
        )
    assert time.perf_counter() - started < 1.0


@given(st.integers(min_value=-800_000, max_value=200_000))
def test_civil_from_days_matches_gmtime(day: int) -> None:
    tm = time.gmtime(day * 86400)
    assert civil_from_days(day) == (tm.tm_year, tm.tm_mon, tm.tm_mday)


def _field(values: st.SearchStrategy[int], star: bool) -> st.SearchStrategy[str]:
    items = st.one_of(
        values.map(str),
        st.tuples(values, values).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(values, values, st.integers(1, 7)).map(
            lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}"
        ),
    )
    listed = st.lists(items, min_size=1, max_size=3).map(",".join)
    if not star:
        return listed
    return st.one_of(st.just("*"), st.integers(1, 9).map(lambda n: f"*/{n}"), listed)


CRONS = st.tuples(
    _field(st.integers(0, 59), star=True),
    _field(st.integers(0, 23), star=True),
    _field(st.integers(1, 31), star=True),
    _field(st.integers(1, 12), star=True),
    _field(st.integers(0, 7), star=True),
).map(" ".join)

# a window around 2024-02-28 (leap day, month and year ends within reach)
MOMENTS = st.integers(min_value=ts("2023-12-30 00:00"), max_value=ts("2024-03-02 00:00"))


@settings(max_examples=100, deadline=None)
@given(CRONS, MOMENTS)
def test_against_brute_force(text: str, at: int) -> None:
    schedule = parse_cron(text)
    window = 2 * 86400
    expected = list(fires(schedule, at - window, at + window))
    before = [t for t in expected if t <= at]
    after = [t for t in expected if t > at]
    previous = schedule.previous_fire(at)
    following = schedule.next_fire(at)
    if before:
        assert previous == before[-1]
    else:
        assert previous is None or previous < at - window
    if after:
        assert following == after[0]
    else:
        assert following is None or following > at + window
