"""The plan's JSON document read back into the typed `Plan`: the inverse of `plan_to_json`.

Owned here: `plan_from_json` and `PlanDecodeError`. Called by `core/saved_plan.py` when a saved
plan is applied (`reconcile --plan`). Pure: no I/O, no clock, no logging.

The document is hostile input: every key `core/render.py`'s field tables name must be present
with the documented type, or `PlanDecodeError` says which one (a JSON path such as
`actions[3].versions`) and why. Keys it does not know are ignored, as docs/plan-format.md
section 5 asks of a consumer; `summary` is derived from the actions and is not read. For every
plan `p`, `plan_from_json(plan_to_json(p)) == p` (tests/test_plan_decode.py, over the golden
plans).
"""

from __future__ import annotations

import calendar
import time
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeAlias, Union

from reconciler.core.names import iso_time
from reconciler.core.plan import (
    FORMAT_VERSION,
    AbortResumeAction,
    Action,
    ActionKind,
    BookmarkAction,
    Conflict,
    CreateParentAction,
    DestroyAction,
    HoldAction,
    Notice,
    Plan,
    ReleaseAction,
    RollbackAction,
    SendAction,
    SnapshotAction,
    UnobservedHost,
)
from reconciler.core.render import (
    ACTION_COMMON_FIELDS,
    ACTION_FIELDS,
    CONFLICT_FIELDS,
    NESTED_FIELDS,
    NOTICE_FIELDS,
    UNOBSERVED_HOST_FIELDS,
)

ACTION_TYPES: Mapping[ActionKind, type[Any]] = {
    ActionKind.SNAPSHOT: SnapshotAction,
    ActionKind.CREATE_PARENT: CreateParentAction,
    ActionKind.ABORT_RESUME: AbortResumeAction,
    ActionKind.ROLLBACK: RollbackAction,
    ActionKind.SEND: SendAction,
    ActionKind.BOOKMARK: BookmarkAction,
    ActionKind.HOLD: HoldAction,
    ActionKind.RELEASE: ReleaseAction,
    ActionKind.DESTROY: DestroyAction,
}
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

Path: TypeAlias = str


class PlanDecodeError(ValueError):
    """A plan document that is not what `plan_to_json` writes: where (`path`) and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def plan_from_json(document: object) -> Plan:
    """The typed plan of a plan document (docs/plan-format.md); raises `PlanDecodeError`."""
    plan = _object(document, "")
    version = _field(plan, "format_version", "")
    if type(version) is not int or version != FORMAT_VERSION:
        raise PlanDecodeError("format_version", f"expected {FORMAT_VERSION}, found {version!r}")
    return Plan(
        now=parse_iso_time(_field(plan, "now", ""), "now"),
        actions=tuple(
            _action(item, f"actions[{i}]") for i, item in enumerate(_list(plan, "actions", ""))
        ),
        conflicts=tuple(
            _record(Conflict, CONFLICT_FIELDS, item, f"conflicts[{i}]")
            for i, item in enumerate(_list(plan, "conflicts", ""))
        ),
        notices=tuple(
            _record(Notice, NOTICE_FIELDS, item, f"notices[{i}]")
            for i, item in enumerate(_list(plan, "notices", ""))
        ),
        unobserved_hosts=tuple(
            _record(UnobservedHost, UNOBSERVED_HOST_FIELDS, item, f"unobserved_hosts[{i}]")
            for i, item in enumerate(_list(plan, "unobserved_hosts", ""))
        ),
    )


def parse_iso_time(value: object, path: Path) -> int:
    """`2026-11-26T04:15:00Z` (exactly as `iso_time` writes it) → UNIX seconds."""
    if isinstance(value, str):
        try:
            epoch = calendar.timegm(time.strptime(value, _ISO_FORMAT))
        except (ValueError, OverflowError):
            pass
        else:
            if epoch >= 0 and iso_time(epoch) == value:
                return epoch
    raise PlanDecodeError(path, f"expected a time such as 2026-11-26T04:15:00Z, found {value!r}")


def _action(value: object, path: Path) -> Action:
    obj = _object(value, path)
    kind = _decode(ActionKind, _field(obj, "kind", path), f"{path}.kind")
    cls = ACTION_TYPES[kind]
    fields = tuple(name for name in ACTION_COMMON_FIELDS + ACTION_FIELDS[kind] if name != "kind")
    action: Action = _record(cls, fields, obj, path)
    return action


def _record(cls: type[Any], fields: tuple[str, ...], value: object, path: Path) -> Any:
    obj = _object(value, path)
    hints = _hints(cls)
    arguments = {
        name: _decode(hints[name], _field(obj, name, path), _join(path, name)) for name in fields
    }
    try:
        return cls(**arguments)
    except ValueError as error:  # a value the type refuses (a hook neither pre nor post)
        raise PlanDecodeError(path, str(error)) from None


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _decode(hint: Any, value: object, path: Path) -> Any:
    """`value` as the type `hint` names: str, int, bool, an Enum, a nested options type,
    `X | None`, or `tuple[X, ...]` / `tuple[X, Y]` (JSON lists)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = (option for option in options if option is not type(None))
        return _decode(inner, value, path)
    if origin is tuple:
        return _tuple(typing.get_args(hint), value, path)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except (ValueError, TypeError):
            known = ", ".join(str(member.value) for member in hint)
            raise PlanDecodeError(path, f"expected one of {known}, found {value!r}") from None
    if hint in NESTED_FIELDS:
        return _record(hint, NESTED_FIELDS[hint], value, path)
    if hint in (str, int, bool) and type(value) is hint:
        return value
    raise PlanDecodeError(path, f"expected {_name(hint)}, found {_json_type(value)}")


def _tuple(args: tuple[Any, ...], value: object, path: Path) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise PlanDecodeError(path, f"expected a list, found {_json_type(value)}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_decode(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
    if len(value) != len(args):
        raise PlanDecodeError(path, f"expected a list of {len(args)}, found {len(value)} items")
    pairs = enumerate(zip(args, value, strict=True))
    return tuple(_decode(arg, item, f"{path}[{i}]") for i, (arg, item) in pairs)


def _object(value: object, path: Path) -> dict[str, object]:
    if not isinstance(value, dict):
        raise PlanDecodeError(path, f"expected an object, found {_json_type(value)}")
    return value


def _field(obj: dict[str, object], name: str, path: Path) -> object:
    if name not in obj:
        raise PlanDecodeError(path, f"missing key {name!r}")
    return obj[name]


def _list(obj: dict[str, object], name: str, path: Path) -> list[object]:
    value = _field(obj, name, path)
    if not isinstance(value, list):
        raise PlanDecodeError(_join(path, name), f"expected a list, found {_json_type(value)}")
    return value


def _join(path: Path, name: str) -> Path:
    return f"{path}.{name}" if path else name


def _name(hint: Any) -> str:
    return {str: "a string", int: "an integer", bool: "true or false"}.get(hint, str(hint))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    names = {str: "a string", int: "an integer", float: "a number", list: "a list"}
    return names.get(type(value), "an object")
