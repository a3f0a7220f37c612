"""Cron schedules for `snapshots.cron`: standard 5-field cron, evaluated in UTC.

Owns parsing (`parse_cron`, `CronError`) and evaluation (`CronSchedule.previous_fire` and
`next_fire`). Called by the manifest models (validation) and by the pure scheduling logic
(`core/schedule.py`), which asks whether a fire time lies between the newest snapshot and now.

Syntax: `minute hour day-of-month month day-of-week`, each a `*`, a number, a range `a-b`, a
list `a,b`, a step `*/n` or `a-b/n`; months may be `jan`..`dec`, weekdays `sun`..`sat` (0 and
7 are both Sunday); `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
(`@annually`) are shorthands. Day rule of Vixie cron: when both day fields are restricted (do
not start with `*`), a day matches if either matches; otherwise both must match.

Evaluation walks months, then days, then hours, then minutes (never minute by minute over
days), and looks at most `SEARCH_MONTHS` months away from its start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from reconciler.manifest.durations import parse_count

SEARCH_MONTHS = 12 * 4 + 1  # the current month and four years around it

_DAY = 86400
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {name: number for number, name in enumerate(_MONTH_NAMES, start=1)},
    {name: number for number, name in enumerate(_DOW_NAMES)},
)
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message names the field and the fault."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression; construct with `parse_cron` or `CronSchedule(text)`."""

    text: str
    minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    hours: tuple[int, ...] = field(init=False, repr=False, compare=False)
    days: frozenset[int] = field(init=False, repr=False, compare=False)
    months: frozenset[int] = field(init=False, repr=False, compare=False)
    weekdays: frozenset[int] = field(init=False, repr=False, compare=False)  # 0 = Sunday
    days_restricted: bool = field(init=False, repr=False, compare=False)
    weekdays_restricted: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = _split(self.text)
        values = [_parse_field(text, index) for index, text in enumerate(fields)]
        weekdays = frozenset(day % 7 for day in values[4])
        object.__setattr__(self, "minutes", tuple(sorted(values[0])))
        object.__setattr__(self, "hours", tuple(sorted(values[1])))
        object.__setattr__(self, "days", frozenset(values[2]))
        object.__setattr__(self, "months", frozenset(values[3]))
        object.__setattr__(self, "weekdays", weekdays)
        object.__setattr__(self, "days_restricted", not fields[2].startswith("*"))
        object.__setattr__(self, "weekdays_restricted", not fields[4].startswith("*"))

    def __str__(self) -> str:
        return self.text

    def day_matches(self, day: int, month_day: int, month: int) -> bool:
        """Whether the UTC day number `day` (days since 1970-01-01) is a firing day."""
        if month not in self.months:
            return False
        in_days = month_day in self.days
        in_weekdays = (day + 4) % 7 in self.weekdays  # 1970-01-01 was a Thursday
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def previous_fire(self, at: int) -> int | None:
        """The latest fire time <= `at`, or None if there is none within `SEARCH_MONTHS`."""
        today, seconds = divmod(at, _DAY)
        limit = (seconds // 3600, seconds % 3600 // 60)
        for day in self._days_backward(today):
            found = self._last_time_of_day(limit if day == today else (23, 59))
            if found is not None:
                return day * _DAY + found
        return None

    def next_fire(self, after: int) -> int | None:
        """The earliest fire time > `after`, or None if there is none within `SEARCH_MONTHS`."""
        start = (after // 60 + 1) * 60
        today, seconds = divmod(start, _DAY)
        limit = (seconds // 3600, seconds % 3600 // 60)
        for day in self._days_forward(today):
            found = self._first_time_of_day(limit if day == today else (0, 0))
            if found is not None:
                return day * _DAY + found
        return None

    def _last_time_of_day(self, limit: tuple[int, int]) -> int | None:
        """Seconds into the day of the latest firing minute at or before (hour, minute)."""
        for hour in reversed(self.hours):
            if hour > limit[0]:
                continue
            top = limit[1] if hour == limit[0] else 59
            for minute in reversed(self.minutes):
                if minute <= top:
                    return hour * 3600 + minute * 60
        return None

    def _first_time_of_day(self, limit: tuple[int, int]) -> int | None:
        """Seconds into the day of the earliest firing minute at or after (hour, minute)."""
        for hour in self.hours:
            if hour < limit[0]:
                continue
            bottom = limit[1] if hour == limit[0] else 0
            for minute in self.minutes:
                if minute >= bottom:
                    return hour * 3600 + minute * 60
        return None

    def _days_backward(self, today: int) -> Iterator[int]:
        """Firing days from `today` back, newest first, skipping months that never fire."""
        _, month, month_day = civil_from_days(today)
        for _ in range(SEARCH_MONTHS):
            if month in self.months:
                first = today - month_day + 1
                for number in range(month_day, 0, -1):
                    if self.day_matches(first + number - 1, number, month):
                        yield first + number - 1
            today -= month_day  # the last day of the previous month
            _, month, month_day = civil_from_days(today)

    def _days_forward(self, today: int) -> Iterator[int]:
        """Firing days from `today` on, oldest first, skipping months that never fire."""
        year, month, month_day = civil_from_days(today)
        for _ in range(SEARCH_MONTHS):
            length = month_length(year, month)
            if month in self.months:
                first = today - month_day + 1
                for number in range(month_day, length + 1):
                    if self.day_matches(first + number - 1, number, month):
                        yield first + number - 1
            today += length - month_day + 1  # the first day of the next month
            year, month, month_day = civil_from_days(today)


def parse_cron(text: str) -> CronSchedule:
    """Parse a 5-field cron expression (UTC); raises `CronError` with a precise message."""
    return CronSchedule(text)


def _split(text: str) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("@"):
        expanded = _SHORTHANDS.get(stripped.lower())
        if expanded is None:
            known = ", ".join(sorted(_SHORTHANDS))
            raise CronError(f"unknown shorthand {stripped!r} (known: {known})")
        stripped = expanded
    fields = stripped.split()
    if len(fields) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    return fields


def _parse_field(text: str, index: int) -> set[int]:
    where = f"field {index + 1} ({_FIELD_NAMES[index]})"
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{where}: empty list element in {text!r}")
        values.update(_parse_item(item, index, where))
    return values


def _parse_item(item: str, index: int, where: str) -> range:
    low, high = _BOUNDS[index]
    body, slash, step_text = item.partition("/")
    step = _parse_step(step_text, item, where) if slash else 1
    if body == "*":
        return range(low, high + 1, step)
    first_text, dash, last_text = body.partition("-")
    first = _parse_value(first_text, index, where)
    if not dash:
        if slash:
            raise CronError(
                f"{where}: a step needs '*' or a range before '/', "
                f"e.g. '*/{step}' or '{first}-{high}/{step}', not {item!r}"
            )
        return range(first, first + 1)
    last = _parse_value(last_text, index, where)
    if first > last:
        raise CronError(f"{where}: range {body!r} runs backwards ({first} > {last})")
    return range(first, last + 1, step)


def _parse_step(text: str, item: str, where: str) -> int:
    if not (text.isdigit() and text.isascii()) or _number(text, where) == 0:
        raise CronError(f"{where}: step in {item!r} must be a positive integer")
    return _number(text, where)


def _number(digits: str, where: str) -> int:
    try:
        return parse_count(digits, where)
    except ValueError as error:
        raise CronError(str(error)) from None


def _parse_value(text: str, index: int, where: str) -> int:
    low, high = _BOUNDS[index]
    named = _NAMES[index].get(text.lower())
    if named is not None:
        return named
    if not (text.isdigit() and text.isascii()):
        names = _NAMES[index]
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{where}: {text!r} is not a number{hint}")
    value = _number(text, where)
    if not low <= value <= high:
        raise CronError(f"{where}: {value} is out of range {low}-{high}")
    return value


def civil_from_days(day: int) -> tuple[int, int, int]:
    """(year, month, day of month) of a day number (days since 1970-01-01, proleptic UTC)."""
    shifted = day + 719468
    era = shifted // 146097
    day_of_era = shifted - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    month_day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, month_day


def month_length(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31
