"""Snapshot names written by other tools, read back as times: what adoption parses.

Owns `NameScheme` (a prefix and a way to read the time after it), `adopted_scheme` (the scheme
of one `spec.snapshots.adopt` entry: zrepl's `dense`, `human`, `iso-8601` and `unix-seconds`
formats, a Go time layout as zrepl's `timestamp_format` takes, or sanoid's
`autosnap_YYYY-MM-DD_HH:MM:SS_<period>`), and `compile_layout`, which turns a Go layout
("2006-01-02_15:04:05") into a parser and refuses the layouts whose names cannot be read back
(a zone abbreviation such as `MST`, no year, a field written twice), and `load_zone`. Used by
`core/desired.py` (a policy's adopted names are managed: retention applies to them, their time is
the one in the name) and by the manifest models (a layout is checked when the manifest loads).

Pure but for `load_zone`, which reads the system's zone files (once per zone; the manifest
loader calls it, so a bad zone is a validation error): the parsers take the zone as a
`tzinfo`. Names carry seconds at most; fractions of a second are read and dropped. zrepl
writes the `+` of a zone offset as `_` (ZFS names have no `+`), so `_02:00` reads as +02:00.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as fixed_zone
from zoneinfo import ZoneInfo

ZREPL_FORMATS = {
    "dense": "20060102_150405_000",
    "human": "2006-01-02_15:04:05",
    "iso-8601": "2006-01-02T15:04:05.000Z07:00",
}
SANOID_PERIODS = ("frequently", "hourly", "daily", "weekly", "monthly", "yearly")
MAX_LAYOUT_LENGTH = 64

_MONTHS = [calendar.month_name[i] for i in range(1, 13)]
_WEEKDAYS = [calendar.day_name[i] for i in range(7)]


def load_zone(key: str) -> tzinfo | None:
    """The IANA time zone `key` (read once from the system's zone files, then cached by
    `zoneinfo`), or None when there is no such zone."""
    try:
        return ZoneInfo(key)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return None


class LayoutError(ValueError):
    """A Go time layout that cannot be used to read names back; the message is one line."""


@dataclass(frozen=True, slots=True)
class NameScheme:
    """Names `<prefix><time written some way>`; `read` parses the part after the prefix."""

    prefix: str
    read: Callable[[str], int | None]
    describe: str  # e.g. "zrepl_ + dense", for messages

    def time_of(self, name: str) -> int | None:
        if not name.startswith(self.prefix):
            return None
        return self.read(name[len(self.prefix) :])


def adopted_scheme(prefix: str, form: str | None, layout: str | None, zone: tzinfo) -> NameScheme:
    """The scheme of one adopt entry: `form` (a named format) or `layout` (a Go layout)."""
    if form == "unix-seconds":
        return NameScheme(prefix, _unix_seconds, f"{prefix} + unix-seconds")
    if form == "sanoid":
        return NameScheme(prefix, _sanoid_reader(zone), f"{prefix} + sanoid")
    text = ZREPL_FORMATS[form] if form is not None else layout
    if text is None:
        raise LayoutError("an adopt entry needs a format or a layout")
    compiled = compile_layout(text)
    return NameScheme(
        prefix, lambda part: compiled.read(part, zone), f"{prefix} + {form or repr(text)}"
    )


def _unix_seconds(text: str) -> int | None:
    if not (1 <= len(text) <= 12 and text.isascii() and text.isdigit()):
        return None
    return int(text)


def _sanoid_reader(zone: tzinfo) -> Callable[[str], int | None]:
    compiled = compile_layout("2006-01-02_15:04:05")

    def read(text: str) -> int | None:
        stamp, _, period = text.rpartition("_")
        return compiled.read(stamp, zone) if period in SANOID_PERIODS else None

    return read


# --- Go layouts -------------------------------------------------------------------------------

# (token, field, regex) in the order Go's time package tries them at one position; the longest
# spellings first where one token starts another ("January" before "Jan", "2006" before "2").
_ZONE = r"(?:[-_+]\d{2})"
_TOKENS: tuple[tuple[str, str, str], ...] = (
    ("January", "month_name", "|".join(_MONTHS)),
    ("Jan", "month_abbr", "|".join(m[:3] for m in _MONTHS)),
    ("Monday", "weekday", "|".join(_WEEKDAYS)),
    ("Mon", "weekday", "|".join(d[:3] for d in _WEEKDAYS)),
    ("MST", "", ""),
    ("2006", "year", r"\d{4}"),
    ("002", "yday", r"\d{3}"),
    ("01", "month", r"\d{2}"),
    ("02", "day", r"\d{2}"),
    ("03", "hour12", r"\d{2}"),
    ("04", "minute", r"\d{2}"),
    ("05", "second", r"\d{2}"),
    ("06", "year2", r"\d{2}"),
    ("15", "hour", r"\d{2}"),
    ("1", "month", r"\d{1,2}"),
    ("__2", "yday", r"[ \d]{2}\d"),
    ("_2", "day", r"[ \d]\d"),
    ("2", "day", r"\d{1,2}"),
    ("3", "hour12", r"\d{1,2}"),
    ("4", "minute", r"\d{1,2}"),
    ("5", "second", r"\d{1,2}"),
    ("PM", "ampm", "AM|PM"),
    ("pm", "ampm", "am|pm"),
    ("Z07:00:00", "zone", rf"Z|{_ZONE}:\d{{2}}:\d{{2}}"),
    ("Z070000", "zone", rf"Z|{_ZONE}\d{{4}}"),
    ("Z07:00", "zone", rf"Z|{_ZONE}:\d{{2}}"),
    ("Z0700", "zone", rf"Z|{_ZONE}\d{{2}}"),
    ("Z07", "zone", rf"Z|{_ZONE}"),
    ("-07:00:00", "zone", rf"{_ZONE}:\d{{2}}:\d{{2}}"),
    ("-070000", "zone", rf"{_ZONE}\d{{4}}"),
    ("-07:00", "zone", rf"{_ZONE}:\d{{2}}"),
    ("-0700", "zone", rf"{_ZONE}\d{{2}}"),
    ("-07", "zone", _ZONE),
)
_FRACTION = re.compile(r"[.,](0+|9+)(?!\d)")


@dataclass(frozen=True, slots=True)
class Layout:
    """A compiled Go layout: `read` gives the epoch of a name part written with it."""

    text: str
    pattern: re.Pattern[str]

    def read(self, part: str, zone: tzinfo) -> int | None:
        match = self.pattern.fullmatch(part)
        return None if match is None else _epoch(match.groupdict(), zone)


def compile_layout(layout: str) -> Layout:
    """The parser of a Go time layout; LayoutError when names written with it cannot be read
    back to a time (to the second at best)."""
    if not 1 <= len(layout) <= MAX_LAYOUT_LENGTH:
        raise LayoutError(f"a layout has 1 to {MAX_LAYOUT_LENGTH} characters")
    regex, seen, index = [], set[str](), 0
    while index < len(layout):
        fraction = _FRACTION.match(layout, index) if layout[index] in ".," else None
        if fraction is not None:
            digits = len(fraction.group(1))
            separator = re.escape(layout[index])
            if fraction.group(1)[0] == "0":
                regex.append(rf"{separator}\d{{{digits}}}")
            else:
                regex.append(rf"(?:{separator}\d{{1,{digits}}})?")
            index = fraction.end()
            continue
        token = next((t for t in _TOKENS if layout.startswith(t[0], index)), None)
        if token is None or (token[0] == "_2" and layout.startswith("_2006", index)):
            regex.append(re.escape(layout[index]))
            index += 1
            continue
        spelling, name, pattern = token
        if not name:
            raise LayoutError(f"{spelling!r}: a zone abbreviation cannot be read back to a time")
        group = _group_name(name, seen)
        regex.append(f"(?P<{group}>{pattern})")
        index += len(spelling)
    _check_fields(seen, layout)
    return Layout(layout, re.compile("".join(regex)))


def _group_name(field: str, seen: set[str]) -> str:
    kind = {"month_name": "month", "month_abbr": "month", "year2": "year"}.get(field, field)
    if kind == "weekday":
        return f"weekday{len(seen)}"  # read and ignored; may repeat
    if kind in seen or (kind == "month" and "yday" in seen) or (kind == "yday" and "day" in seen):
        raise LayoutError(f"the {kind.replace('_', ' ')} is written twice")
    seen.add(kind)
    return field


def _check_fields(seen: set[str], layout: str) -> None:
    if "year" not in seen:
        raise LayoutError(f"{layout!r} has no year (2006 or 06): names cannot be read back")
    if "yday" not in seen and not {"month", "day"} <= seen:
        raise LayoutError(f"{layout!r} needs a month and a day (01 and 02) or a day of year (002)")
    if "hour12" in seen and "ampm" not in seen:
        raise LayoutError(f"{layout!r} writes a 12-hour clock (03) without PM")
    if "hour" in seen and "hour12" in seen:
        raise LayoutError(f"{layout!r} writes the hour twice (15 and 03)")


def _epoch(fields: dict[str, str | None], zone: tzinfo) -> int | None:
    year = _year(fields)
    month = _month(fields)
    hour = _hour(fields)
    minute, second = int(fields.get("minute") or 0), int(fields.get("second") or 0)
    if hour is None or minute > 59 or second > 59:
        return None
    try:
        if fields.get("yday"):
            yday = int(str(fields["yday"]).strip())
            start = datetime(year, 1, 1)
            if not 1 <= yday <= (366 if calendar.isleap(year) else 365):
                return None
            local = start + timedelta(days=yday - 1, hours=hour, minutes=minute, seconds=second)
        else:
            day = int(str(fields.get("day")).strip())
            local = datetime(year, month, day, hour, minute, second)
    except ValueError:  # day 31 of a 30-day month, month 13
        return None
    written = fields.get("zone")
    offset = _offset(written) if written is not None else zone
    return None if offset is None else int(local.replace(tzinfo=offset).timestamp())


def _year(fields: dict[str, str | None]) -> int:
    if fields.get("year") is not None:
        return int(str(fields["year"]))
    short = int(str(fields["year2"]))
    return short + (1900 if short >= 69 else 2000)  # as Go reads "06"


def _month(fields: dict[str, str | None]) -> int:
    for key, names in (("month_name", _MONTHS), ("month_abbr", [m[:3] for m in _MONTHS])):
        if fields.get(key) is not None:
            return names.index(str(fields[key])) + 1
    return int(fields.get("month") or 1)


def _hour(fields: dict[str, str | None]) -> int | None:
    if fields.get("hour12") is None:
        hour = int(fields.get("hour") or 0)
        return hour if hour <= 23 else None
    hour = int(str(fields["hour12"]))
    if not 1 <= hour <= 12:
        return None
    afternoon = str(fields.get("ampm")).upper() == "PM"
    return hour % 12 + (12 if afternoon else 0)


def _offset(text: str) -> tzinfo | None:
    """The zone an offset written in a name stands for; None when it is out of range."""
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes, seconds = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return fixed_zone(sign * timedelta(hours=hours, minutes=minutes, seconds=seconds))
