"""zrepl snapshot hooks → the policy's `snapshots.hooks` (docs/hooks.md).

Owns `convert_hooks` and `go_duration_seconds` (zrepl hook timeouts are Go durations such as
`30s` or `1m30s`). A zrepl `command` hook runs its executable before and after each snapshot
(ZREPL_HOOKTYPE=pre_snapshot / post_snapshot), so it becomes a `pre` and a `post` hook with the
same argv; `err_is_fatal` becomes the pre hook's `onFailure`. `postgres-checkpoint` becomes a
pre hook running `psql ... -c CHECKPOINT`; `mysql-lock-tables` holds a lock across the snapshot
in one session, which two separate commands cannot, so it is not converted. Called by
`zrepl_snapshots.py`. Pure.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.manifest.models import MAX_HOOK_TIMEOUT, MAX_HOOKS
from reconciler.migrate.zrepl_read import Node

_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60}
_GO_UNITS["h"] = 3600
_ENVIRONMENT = (
    "zrepl ran the hook once per filesystem with ZREPL_FS, ZREPL_SNAPNAME, ZREPL_DRYRUN and "
    "ZREPL_HOOKTYPE; ours runs it once per snapshot of the whole policy with ZR_HOOK, "
    "ZR_SNAPSHOT, ZR_FILESYSTEMS (docs/hooks.md): adapt the script"
)


def go_duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration (`1m30s`, `500ms`), or None when it is not one."""
    if len(text) > 64 or not text:
        return None
    position, total = 0, 0.0
    while position < len(text):
        match = _GO_PART.match(text, position)
        if match is None:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    return total


def convert_hooks(snapshotting: Node) -> list[dict[str, Any]]:
    """Our hooks for the zrepl hooks under `snapshotting.hooks` (each difference reported)."""
    hooks_node = snapshotting.sequence("hooks")
    if hooks_node is None:
        return []
    hooks: list[dict[str, Any]] = []
    for hook in hooks_node.entries():
        converted = _hook(hook)
        if converted and len(hooks) + len(converted) > MAX_HOOKS:
            hook.drop(f"a policy takes at most {MAX_HOOKS} hooks")
            continue
        hooks += converted
    return hooks


def _hook(hook: Node) -> list[dict[str, Any]]:
    if not isinstance(hook.value, dict):
        hook.drop("a hook is a mapping with a type")
        return []
    kind = hook.text("type")
    if kind == "command":
        return _command(hook)
    if kind == "postgres-checkpoint":
        return _postgres(hook)
    if kind == "mysql-lock-tables":
        hook.drop(
            "zrepl holds FLUSH TABLES WITH READ LOCK in one session across the snapshot; two "
            "separate hook commands cannot: write a pre hook that flushes the tables (or "
            "freezes the database) and a post hook that undoes it"
        )
        return []
    hook.drop(f"unknown hook type {kind!r}")
    return []


def _command(hook: Node) -> list[dict[str, Any]]:
    path = hook.text("path")
    if path is None or not _runnable(path):
        where = hook.child("path") or hook
        where.drop("the hook needs a path that does not start with '-' nor hold '=' or newlines")
        hook.handled()
        return []
    settings = _settings(hook)
    hook.note(f"converted to a pre and a post hook; {_ENVIRONMENT}")
    pre = {"when": "pre", "command": [path], **settings}
    post = {
        "when": "post",
        "command": [path],
        **{k: v for k, v in settings.items() if k != "onFailure"},
    }
    return [pre, post]


def _postgres(hook: Node) -> list[dict[str, Any]]:
    dsn = hook.text("dsn")
    if dsn is None or "\n" in dsn:
        (hook.child("dsn") or hook).drop("the hook needs a dsn on one line")
        hook.handled()
        return []
    settings = _settings(hook)
    hook.note(
        "converted to a pre hook running `psql --no-psqlrc -d DSN -c CHECKPOINT` (psql must be "
        "installed on the source host; the dsn is visible in its process list)"
    )
    command = ["psql", "--no-psqlrc", "-d", dsn, "-c", "CHECKPOINT"]
    return [{"when": "pre", "command": command, **settings}]


def _settings(hook: Node) -> dict[str, Any]:
    """timeout and onFailure of a hook; its filesystems reported (ours run for the policy)."""
    settings: dict[str, Any] = {}
    timeout = hook.text("timeout")
    where = hook.child("timeout")
    if timeout is not None and where is not None:
        seconds = go_duration_seconds(timeout.strip())
        if seconds is None or seconds < 1 or seconds != int(seconds):
            where.drop(f"timeout {timeout!r} is not whole seconds: the default 30s applies")
        elif seconds > MAX_HOOK_TIMEOUT:
            where.drop("a hook's timeout is at most 1h: the default 30s applies")
        else:
            settings["timeout"] = f"{int(seconds)}s"
    fatal = hook.flag("err_is_fatal")
    settings["onFailure"] = "skip" if fatal else "snapshot"
    filesystems = hook.child("filesystems")
    if filesystems is not None:
        filesystems.note(
            "ours runs for every filesystem of the policy: the script can read ZR_FILESYSTEMS",
            whole=True,
        )
    return settings


def _runnable(program: str) -> bool:
    return (
        bool(program)
        and not program.startswith("-")
        and "=" not in program
        and ("\n" not in program)
    )
