"""Field types of the manifest models: text in YAML and JSON Schema, typed values in Python.

Owns the annotated types the models in `reconciler.manifest.models` are built from: durations
(`"15m"` in YAML, int seconds in Python), retention grids (`Grid`), cron schedules
(`CronSchedule`), regular expressions, DNS-1123 labels, snapshot prefixes, filesystem and
property names, ssh options, and strict booleans and integers (so that the models accept exactly
what the generated JSON Schema accepts: `"yes"` is not a boolean, `"3"` is not a number).
Every validator raises a `PydanticCustomError` whose message reads well after
`FILE:LINE:COLUMN: field.path:`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from reconciler.manifest.cron import CronError, CronSchedule, parse_cron
from reconciler.manifest.durations import DURATION_PATTERN, format_duration, parse_duration
from reconciler.manifest.grid import Grid, GridError, parse_grid
from reconciler.manifest.limits import MAX_REGEX_LENGTH
from reconciler.manifest.regex import RegexError, compile_regex

LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LABEL_MAX = 63
PREFIX_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_COMPONENT = r"(?!\.{1,2}(/|$))[A-Za-z0-9_.: -]+"  # not "." or ".."
FILESYSTEM_PATTERN = rf"^{_COMPONENT}(/{_COMPONENT})*$"
FILESYSTEM_MAX = 255
PROPERTY_PATTERN = r"^[a-z0-9][a-z0-9_.:-]*$"
SSH_OPTION_PATTERN = r"^[A-Za-z][A-Za-z0-9]*=.+$"


def invalid(kind: str, message: str) -> PydanticCustomError:
    """A validation error of type `kind` whose text is `message`, verbatim."""
    return PydanticCustomError(kind, "{reason}", {"reason": message})


def describe(value: object) -> str:
    """How a YAML value of the wrong type is named in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


_EXPECTED = {
    "duration": "a duration such as '15m' (a count and one unit of s, m, h, d, w)",
    "grid": "a retention grid such as '1x1h(keep=all) | 24x1h | 14x1d'",
    "cron": "a cron expression such as '0 3 * * *'",
}


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{what}_type", f"expected {_EXPECTED[what]}, got {describe(value)}")
    return value


# The texts of durations, grids, crons and regexes repeat across the documents of a set (a
# fleet's policies share a handful of grids and schedules), so each distinct text is parsed
# once per process: the values are immutable. Only successes are kept (an error is raised
# again each time, with its message); the bound keeps a long-running `watch` from growing.
_PARSED = 1024


@lru_cache(maxsize=_PARSED)
def _parsed_duration(text: str) -> int:
    return parse_duration(text)


@lru_cache(maxsize=_PARSED)
def _parsed_grid(text: str) -> Grid:
    return parse_grid(text)


@lru_cache(maxsize=_PARSED)
def _parsed_cron(text: str) -> CronSchedule:
    return parse_cron(text)


@lru_cache(maxsize=_PARSED)
def _compiled(pattern: str) -> bool:
    compile_regex(pattern)
    return True


def _duration(value: object) -> int:
    text = _text(value, "duration")
    try:
        return _parsed_duration(text)
    except ValueError as error:
        raise invalid("duration", str(error)) from None


def _grid(value: object) -> Grid:
    if isinstance(value, Grid):
        return value
    text = _text(value, "grid")
    try:
        return _parsed_grid(text)
    except GridError as error:
        raise invalid("grid", f"invalid grid {text!r}: {error}") from None


def _cron(value: object) -> CronSchedule:
    if isinstance(value, CronSchedule):
        return value
    text = _text(value, "cron")
    try:
        return _parsed_cron(text)
    except CronError as error:
        raise invalid("cron", f"invalid cron expression {text!r}: {error}") from None


def _regex(value: str) -> str:
    try:
        _compiled(value)
    except RegexError as error:
        shown = value if len(value) <= 80 else value[:80] + "..."
        raise invalid("regex", f"invalid regular expression {shown!r}: {error}") from None
    return value


def _matching(pattern: str, kind: str, rule: str, max_length: int | None = None) -> Any:
    """A validator accepting strings that match `pattern`; `rule` explains it in errors."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        too_long = max_length is not None and len(value) > max_length
        if too_long or compiled.fullmatch(value) is None:
            raise invalid(kind, f"{value!r} is not {rule}")
        return value

    return AfterValidator(check)


def schema_pattern(pattern: str) -> str:
    """`pattern` as the JSON Schema states it. A final `$` gets `(?!\\n)`: in Python's `re`,
    which validators such as jsonschema use for `pattern`, `$` also matches before a final
    newline, so `'zr_\\n'` would pass the schema and fail the model (which uses `fullmatch`).
    ECMA-262 engines read `$(?!\\n)` as plain `$`."""
    return pattern + "(?!\\n)" if pattern.endswith("$") else pattern


def _string_schema(pattern: str | None = None, **extra: Any) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "string", **extra}
    if pattern is not None:
        schema["pattern"] = schema_pattern(pattern)
    return WithJsonSchema(schema)


Duration = Annotated[
    int,
    PlainValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    _string_schema(DURATION_PATTERN, examples=["30s", "15m", "1h", "14d", "1w"]),
]
"""Seconds in Python; `15m` in YAML (a positive count and one unit of s, m, h, d, w)."""

GridText = Annotated[
    Grid,
    PlainValidator(_grid),
    PlainSerializer(str, return_type=str),
    _string_schema(minLength=1, examples=["1x1h(keep=all) | 24x1h | 14x1d"]),
]
"""A zrepl retention grid: `Grid` in Python, its text in YAML."""

CronText = Annotated[
    CronSchedule,
    PlainValidator(_cron),
    PlainSerializer(str, return_type=str),
    _string_schema(minLength=1, examples=["0 3 * * *", "@daily"]),
]
"""A 5-field cron expression evaluated in UTC: `CronSchedule` in Python, its text in YAML."""

Regex = Annotated[str, AfterValidator(_regex), _string_schema(maxLength=MAX_REGEX_LENGTH)]
"""An RE2 regular expression (`regex.py`), matched anywhere in a name (as `re.search`). No
`format: regex` in the schema: that format means ECMA-262 (and jsonschema checks it with
Python's `re`), neither of which is the language the reconciler runs."""

Label = Annotated[
    str,
    _matching(
        LABEL_PATTERN,
        "dns_label",
        "a DNS-1123 label (at most 63 lowercase letters, digits or '-', "
        "starting and ending with a letter or digit)",
        LABEL_MAX,
    ),
    _string_schema(LABEL_PATTERN, minLength=1, maxLength=LABEL_MAX),
]
"""A DNS-1123 label, as Kubernetes object names: `nas`, `off-site-2`."""

Prefix = Annotated[
    str,
    _matching(
        PREFIX_PATTERN,
        "prefix",
        "a valid snapshot prefix (1 to 64 of the characters A-Z a-z 0-9 _ . : -)",
    ),
    _string_schema(PREFIX_PATTERN, minLength=1, maxLength=64),
]
"""The managed snapshot namespace, e.g. `zr_`."""

FilesystemName = Annotated[
    str,
    _matching(
        FILESYSTEM_PATTERN,
        "filesystem_name",
        "a filesystem name (components of A-Z a-z 0-9 _ . : - and space other than '.' and "
        "'..', separated by single '/', no leading or trailing '/', no '@' or '#')",
        FILESYSTEM_MAX,
    ),
    _string_schema(FILESYSTEM_PATTERN, minLength=1, maxLength=FILESYSTEM_MAX),
]
"""A ZFS filesystem name such as `vault/nas`."""

PropertyName = Annotated[
    str,
    _matching(
        PROPERTY_PATTERN,
        "property_name",
        "a ZFS property name (lowercase letters, digits, _ . : -)",
    ),
    _string_schema(PROPERTY_PATTERN, minLength=1),
]
"""A native (`readonly`) or user (`com.example:backup`) ZFS property name."""

SSHOption = Annotated[
    str,
    _matching(SSH_OPTION_PATTERN, "ssh_option", "an ssh option in the form Key=Value"),
    _string_schema(SSH_OPTION_PATTERN),
]
"""One `ssh -o` option, e.g. `StrictHostKeyChecking=yes`."""

PROPERTY_MAP_SCHEMA = WithJsonSchema(
    {
        "type": "object",
        "propertyNames": {"pattern": schema_pattern(PROPERTY_PATTERN), "minLength": 1},
        "additionalProperties": {"type": "string"},
    }
)
"""The JSON Schema of a property → value map (pydantic would emit patternProperties)."""

NonEmpty = Annotated[str, Field(min_length=1)]
Flag = Annotated[bool, Strict()]


def _integral(value: object) -> object:
    """A float with no fraction as the int it is: JSON Schema's `integer` accepts `3.0`."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


Port = Annotated[int, Strict(), Field(ge=1, le=65535), BeforeValidator(_integral)]
Count = Annotated[int, Strict(), Field(ge=1), BeforeValidator(_integral)]
