"""Tests for `reconciler.core.schedule.is_due`."""

from __future__ import annotations

import calendar

import pytest

from reconciler.core.schedule import is_due
from reconciler.manifest.cron import CronSchedule, parse_cron

NOW = calendar.timegm((2026, 11, 26, 4, 15, 0, 0, 0, 0))  # 04:15 UTC
HOURLY = parse_cron("0 * * * *")
MIN = 60


@pytest.mark.parametrize(
    ("newest", "interval", "cron", "due"),
    [
        # nothing configured: never due, even without snapshots
        (None, None, None, False),
        (NOW - 10**6, None, None, False),
        # no managed snapshot yet
        (None, 15 * MIN, None, True),
        (None, None, HOURLY, True),
        # interval: due when the newest is at least that old
        (NOW - 15 * MIN, 15 * MIN, None, True),
        (NOW - 15 * MIN + 1, 15 * MIN, None, False),
        (NOW - 16 * MIN, 15 * MIN, None, True),
        (NOW, 15 * MIN, None, False),
        (NOW + 60, 15 * MIN, None, False),  # newest from the future (clock moved back)
        # cron: a fire time t with newest < t <= now (the 04:00 fire)
        (NOW - 16 * MIN, None, HOURLY, True),  # 03:59 < 04:00
        (NOW - 15 * MIN, None, HOURLY, False),  # taken at 04:00 exactly
        (NOW - 14 * MIN, None, HOURLY, False),
        (NOW - 2 * 3600, None, HOURLY, True),
        # both: either one makes it due
        (NOW - 10 * MIN, 5 * MIN, HOURLY, True),
        (NOW - 16 * MIN, 1000 * MIN, HOURLY, True),
        (NOW - 10 * MIN, 1000 * MIN, HOURLY, False),
    ],
)
def test_is_due(
    newest: int | None, interval: int | None, cron: CronSchedule | None, due: bool
) -> None:
    assert is_due(newest, NOW, interval=interval, cron=cron) is due


def test_cron_fire_exactly_now_is_due() -> None:
    at_four = NOW - 15 * MIN
    assert is_due(at_four - 1, at_four, interval=None, cron=HOURLY)
    assert not is_due(at_four, at_four, interval=None, cron=HOURLY)


def test_cron_that_never_fires_is_not_due() -> None:
    never = parse_cron("0 0 30 2 *")
    assert not is_due(NOW - 10**7, NOW, interval=None, cron=never)
