"""A zrepl job's `filesystems` and `snapshotting` → a policy's `source.filesystems` and `snapshots`.

Owns `convert_filesystems` (zrepl's filter is our filter: patterns are checked as the manifest
loader checks them) and `convert_snapshotting` (periodic, cron and manual snapshotting: prefix,
interval or cron, the `adopt` entry that makes zrepl's existing snapshots managed, and hooks via
`zrepl_hooks.py`). Called by `zrepl.py` for push, source and snap jobs. Pure. The mapping is
written down in docs/migrating-zrepl.md.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from reconciler.manifest.cron import CronError, parse_cron
from reconciler.manifest.fields import PREFIX_PATTERN
from reconciler.manifest.filters import filter_problems
from reconciler.manifest.models import AdoptSpec
from reconciler.migrate.zrepl_hooks import convert_hooks
from reconciler.migrate.zrepl_read import Node

ZREPL_DURATION = re.compile(r"\s*\+?0*([1-9][0-9]{0,8})\s*([smhdw])\s*")
NAMED_FORMATS = ("dense", "human", "iso-8601", "unix-seconds")
MANUAL_PREFIX = "zrepl_"
_PREFIX = re.compile(PREFIX_PATTERN)
_OFFSET_IN_LAYOUT = ("Z07", "-07")  # Go layouts that write the zone offset into the name


def convert_filesystems(job: Node) -> dict[str, bool] | None:
    """The filter, without its invalid patterns (each reported); None when nothing is left."""
    node = job.mapping("filesystems", affects=True)
    if node is None:
        if job.child("filesystems") is None:
            job.drop("no filesystems: the job selects nothing, so no policy is made", True)
        return None
    node.handled()
    if not node.value:
        node.drop("an empty filter selects nothing, so no policy is made", True)
    kept: dict[str, bool] = {}
    for pattern, include in node.value.items():
        problems = filter_problems({pattern: include})
        if problems:
            inner = node.child(pattern)
            where = inner if inner is not None else node
            where.drop(f"filesystem pattern not converted: {problems[0][1]}", True)
        else:
            kept[pattern] = include
    if not kept:
        return None
    return kept


def convert_snapshotting(job: Node, timezone: str | None) -> dict[str, Any] | None:
    """The `snapshots` mapping of the policy, or None when no prefix can be had."""
    node = job.mapping("snapshotting", affects=True)
    if node is None:
        if job.child("snapshotting") is None:
            job.drop("no snapshotting: zrepl would refuse the job", True)
        return None
    kind = node.text("type", affects=True)
    if kind == "manual":
        return _manual(node)
    if kind not in ("periodic", "cron"):
        node.drop(f"snapshotting type {kind!r} is not periodic, cron or manual", True)
        return None
    prefix = node.text("prefix", affects=True)
    if prefix is None or _PREFIX.fullmatch(prefix) is None:
        if prefix is not None or node.child("prefix") is None:
            where = node.child("prefix") or node
            where.drop("a prefix of 1 to 64 of A-Z a-z 0-9 _ . : - is needed", True)
        node.handled()
        return None
    snapshots: dict[str, Any] = {"prefix": prefix}
    schedule = _interval(node) if kind == "periodic" else _cron(node, timezone)
    snapshots.update(schedule)
    adopt = _adopt(node, prefix, timezone)
    if adopt is not None:
        snapshots["adopt"] = [adopt]
    hooks = convert_hooks(node)
    if hooks:
        snapshots["hooks"] = hooks
    return snapshots


def _manual(node: Node) -> dict[str, Any]:
    node.drop(
        "manual snapshotting: zrepl replicated and pruned snapshots of any name; the policy "
        f"takes none, replicates every snapshot (include: ['.*']) but prunes only managed ones "
        f"(prefix {MANUAL_PREFIX}): snapshots taken by other means are never destroyed",
        True,
    )
    return {"prefix": MANUAL_PREFIX, "include": [".*"]}


def _interval(node: Node) -> dict[str, Any]:
    text = node.text("interval", affects=True)
    where = node.child("interval")
    if text is None or where is None:
        node.drop("periodic snapshotting without an interval: no snapshots are taken", True)
        return {}
    match = ZREPL_DURATION.fullmatch(text)
    if match is None:
        where.drop(f"interval {text!r} is not a positive count and one unit of s m h d w", True)
        return {}
    converted = f"{match.group(1)}{match.group(2)}"
    if converted != text:
        where.note(f"written as {converted}")
    return {"interval": converted}


def _cron(node: Node, timezone: str | None) -> dict[str, Any]:
    text = node.text("cron", affects=True)
    where = node.child("cron")
    if text is None or where is None:
        node.drop("cron snapshotting without a cron: no snapshots are taken", True)
        return {}
    fields = text.split()
    seconds = ""
    if len(fields) == 6 and fields[0] == "0":
        fields, seconds = fields[1:], "its seconds field (0) is left out; "
    elif len(fields) == 6:
        where.drop(f"cron {text!r} fires at seconds other than 0; ours has minutes at most", True)
        return {}
    spec = " ".join(fields)
    try:
        parse_cron(spec)
    except CronError as error:
        where.drop(f"cron {text!r}: {error}", True)
        return {}
    zone = timezone or "the zrepl daemon's local time zone"
    where.note(
        f"{seconds}zrepl evaluates cron in {zone}; the manifests' cron is UTC: adjust the hours "
        "unless that zone is UTC"
    )
    return {"cron": spec}


def _adopt(node: Node, prefix: str, timezone: str | None) -> dict[str, Any] | None:
    """The adopt entry that makes zrepl's existing snapshots managed, or None (reported)."""
    text = node.text("timestamp_format", affects=True)
    form = "dense" if text is None else text
    entry: dict[str, Any] = {"prefix": prefix}
    entry["format" if form in NAMED_FORMATS else "layout"] = form
    where = node.child("timestamp_format") or node.child("prefix") or node
    zone = _zone(node, form, timezone)
    if zone is None:
        return None
    if zone != "UTC":
        entry["timezone"] = zone
    try:
        AdoptSpec.model_validate(entry)
    except ValidationError as error:
        reason = error.errors()[0]["msg"]
        where.drop(
            f"zrepl's existing snapshots cannot be adopted ({reason}): they stay foreign, "
            "never pruned",
            True,
        )
        return None
    where.note(
        f"new snapshots are named {prefix}YYYYMMDDTHHMMSSZ (UTC); zrepl's existing {prefix}... "
        f"snapshots ({form}) are adopted: managed, pruned by retention, incremental bases"
    )
    return entry


def _zone(node: Node, form: str, timezone: str | None) -> str | None:
    """The adopt entry's zone: zrepl's `timestamp_location`, or `--timezone` for Local."""
    location = node.text("timestamp_location", affects=True)
    where = node.child("timestamp_location")
    carries_offset = form in ("iso-8601", "unix-seconds") or any(
        mark in form for mark in _OFFSET_IN_LAYOUT
    )
    if location is None or location == "UTC" or carries_offset:
        if where is not None and location not in (None, "UTC"):
            where.note(f"the names carry their offset ({form}): {location} is not needed")
        return "UTC"
    if location != "Local":
        return location
    assert where is not None
    if timezone is None:
        where.drop(
            "Local: the machine's time zone is not in the file; rerun with --timezone ZONE so "
            "that zrepl's existing snapshots can be adopted (until then they stay foreign)",
            True,
        )
        return None
    where.note(f"Local read as {timezone} (--timezone)")
    return timezone
