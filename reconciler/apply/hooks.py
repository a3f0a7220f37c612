"""Snapshot hooks: a policy's pre and post commands around the snapshot it takes.

Owned here: `snapshot_with_hooks` (run the pre hooks, take the snapshot unless a failing pre
hook says to skip it, run the post hooks) and the environment a hook sees (`hook_env`). Called
by the executor (`apply/executor.run_action`) for a `SnapshotAction` that carries hooks; the
commands run on the snapshot's host through its port (`ZFS.run_hook`: the host's runner,
locally or over ssh, quoted as zfs commands are). The plan decided which hooks run and what a
failure does; nothing is decided here. docs/hooks.md is the user's view.

- Pre hooks run in order. The first one that fails (non-zero exit, timeout, could not start)
  stops the rest of the pre hooks. If it is `skip_on_failure`, the snapshot is not taken.
- Post hooks all run, in order, after the snapshot attempt. They also run when the snapshot
  failed or was skipped, so that a "freeze" undone by a "thaw" is never left behind.
  `ZR_SNAPSHOT_TAKEN` tells them what happened.
- Any hook failure makes the action's result failed, so the pass exits 1. The snapshot, if
  taken, stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from reconciler.core.plan import Hook, SnapshotAction
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.port import ZFS, HookRun

S = TypeVar("S")
MAX_STDERR_SHOWN = 200  # characters of a failing hook's stderr kept in its message


@dataclass(frozen=True, slots=True)
class HookedOutcome(Generic[S]):
    """The snapshot's own outcome (`status`, None when it was not attempted or raised), the
    message, the hooks that failed, and the error the snapshot raised, if any."""

    status: S | None
    message: str
    hook_failures: tuple[str, ...] = ()
    error: ZFSError | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or bool(self.hook_failures)


def hook_env(action: SnapshotAction, when: str) -> dict[str, str]:
    """What a hook learns from its environment. Filesystem names never contain a newline, so
    `ZR_FILESYSTEMS` lists them one per line."""
    return {
        "ZR_HOOK": when,
        "ZR_POLICY": action.policy,
        "ZR_HOST": action.host,
        "ZR_SNAPSHOT": action.name,
        "ZR_FILESYSTEMS": "\n".join(action.filesystems),
    }


def snapshot_with_hooks(
    host: ZFS, action: SnapshotAction, take: Callable[[ZFS, SnapshotAction], tuple[S, str]]
) -> HookedOutcome[S]:
    """Pre hooks, the snapshot (`take`) unless a pre hook stops it, then the post hooks."""
    failures: list[str] = []
    skip = False
    for hook in (h for h in action.hooks if h.when == "pre"):
        run = host.run_hook(hook.command, hook_env(action, "pre"), hook.timeout)
        if not run.succeeded:
            skip = hook.skip_on_failure
            then = "snapshot not taken" if skip else "snapshot taken anyway"
            failures.append(f"{_failure(hook, run)}; {then}")
            break
    status: S | None = None
    error: ZFSError | None = None
    if skip:
        message = f"@{action.name} not taken: a pre hook failed"
    else:
        try:
            status, message = take(host, action)
        except ZFSError as failure:
            error, message = failure, failure.detail
    post_env = hook_env(action, "post") | {"ZR_SNAPSHOT_TAKEN": "no" if status is None else "yes"}
    for hook in (h for h in action.hooks if h.when == "post"):
        run = host.run_hook(hook.command, post_env, hook.timeout)
        if not run.succeeded:
            failures.append(_failure(hook, run))
    if failures:
        message = f"{message}; " + "; ".join(failures)
    return HookedOutcome(status, message, tuple(failures), error)


def _failure(hook: Hook, run: HookRun) -> str:
    command = " ".join(hook.command)
    if run.returncode is None:
        why = f"did not finish within {hook.timeout}s" if not run.stderr else run.stderr.strip()
    else:
        why = f"exit {run.returncode}"
    stderr = " ".join(run.stderr.split())[-MAX_STDERR_SHOWN:]
    tail = f": {stderr}" if stderr and run.returncode is not None else ""
    return f"{hook.when} hook `{command}` failed ({why}){tail}"
