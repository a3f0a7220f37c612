"""Names we own: build and parse side by side.

- snapshot: `<prefix><UTC time as YYYYMMDDTHHMMSSZ>`, e.g. `zr_20261126T041500Z`
- hold tag: `<prefix>:<policy>:<target>`, e.g. `zr_:home:offsite`
- replication cursor bookmark: `<snapshot>_<target>`, e.g. `zr_20261126T041500Z_offsite`
  (`parse_any_cursor_bookmark` reads one without knowing the target)

A policy may also own snapshots named by other tools (`spec.snapshots.adopt`,
`manifest/name_schemes.py`): `PolicyIntent.snapshot_time` reads those, and the cursor bookmarks
of an adopted snapshot are `<snapshot>_<target>` too (`split_cursor_bookmark`).

Anything else is foreign: observed, usable as an incremental base, never destroyed or released.
"""

from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache

TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_TIME_LENGTH = 16  # len("20261126T041500Z")


def format_time(epoch: int) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(epoch))


def iso_time(epoch: int) -> str:
    """ISO 8601 UTC with a Z suffix, e.g. "2026-11-26T04:15:00Z", for messages."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def snapshot_name(prefix: str, epoch: int) -> str:
    return prefix + format_time(epoch)


@lru_cache(maxsize=1 << 16)
def _parse_time(text: str) -> int | None:
    if len(text) != _TIME_LENGTH or text[8] != "T" or text[15] != "Z":
        return None
    digits = text[:8] + text[9:15]
    if not digits.isdigit() or not digits.isascii():
        return None
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second = int(text[9:11]), int(text[11:13]), int(text[13:15])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def snapshot_time(prefix: str, name: str) -> int | None:
    """The time in a managed snapshot's name, or None when the name is not ours."""
    if not name.startswith(prefix):
        return None
    return _parse_time(name[len(prefix) :])


def is_managed_snapshot(prefix: str, name: str) -> bool:
    return snapshot_time(prefix, name) is not None


def hold_tag(prefix: str, policy: str, target: str) -> str:
    return f"{prefix}:{policy}:{target}"


def parse_hold_tag(tag: str) -> tuple[str, str, str] | None:
    """(prefix, policy, target) of one of our hold tags, or None.

    Policy and target names never contain ':', so splitting from the right is unambiguous even
    when the prefix contains ':'."""
    parts = tag.rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def cursor_bookmark(snapshot: str, target: str) -> str:
    return f"{snapshot}_{target}"


def parse_cursor_bookmark(prefix: str, target: str, bookmark: str) -> str | None:
    """The snapshot name a cursor bookmark of `target` was made from, or None if not ours."""
    suffix = "_" + target
    if not bookmark.endswith(suffix):
        return None
    snapshot = bookmark[: -len(suffix)]
    return snapshot if is_managed_snapshot(prefix, snapshot) else None


def split_cursor_bookmark(bookmark: str) -> tuple[str, str] | None:
    """(snapshot, target) parts of what may be a cursor bookmark of any snapshot name: target
    names are DNS labels (no `_`), so the target is what follows the last `_`. Whether the
    snapshot part is owned is for the caller (`PolicyIntent.parse_any_cursor`) to say."""
    snapshot, separator, target = bookmark.rpartition("_")
    if not separator or not snapshot or _LABEL.fullmatch(target) is None:
        return None
    return snapshot, target


def parse_any_cursor_bookmark(prefix: str, bookmark: str) -> tuple[str, str] | None:
    """(snapshot, target) of a cursor bookmark of any target of a policy with `prefix`, or
    None. The snapshot part has a fixed length after the prefix, so the target is the rest
    (what lets `reconcile status` find the cursors of targets no manifest declares)."""
    cut = len(prefix) + _TIME_LENGTH
    snapshot, target = bookmark[:cut], bookmark[cut + 1 :]
    if bookmark[cut : cut + 1] != "_" or not target or not is_managed_snapshot(prefix, snapshot):
        return None
    return snapshot, target
