"""The executor: carries out a `Plan` through the ZFS port, never deciding again.

Owned here: `execute`, `ActionResult`, `ActionStatus` and `ApplyReport`. Called by the CLI for
one pass (and later by the loop). An action runs when every action it `depends_on` succeeded
(`ok` or `already_done`); otherwise it is `skipped`, naming the failed action behind it, and
independent actions still run. `run_action` carries out one action and knows nothing of the
others; `execute(jobs=N)` runs up to N actions at once, keeping plan order per filesystem (so
independent filesystems replicate in parallel, bounded by N). Holds and releases of one host
and tag, and bookmarks of one host, are batched (`run_batch`): they wait until no other action
runs, then go to zfs as one call, and each still gets its own result (docs/driver.md).

Every action is idempotent (product guarantee 6): what ZFS reports as "already so" is success.

| action       | outcome treated as `already_done`                                            |
|--------------|------------------------------------------------------------------------------|
| snapshot     | DatasetExists and every snapshot exists (if only some do, the rest are taken) |
| create       | DatasetExists                                                                |
| abort_resume | DatasetNotFound (no partial receive state left)                              |
| send         | DatasetExists / ReceiveRefused, and the target holds the to-snapshot (GUID)  |
| bookmark     | DatasetExists                                                                |
| hold         | DatasetExists (the tag is already there)                                     |
| release      | HoldNotFound, or DatasetNotFound (the snapshot, and so its hold, is gone)    |
| destroy      | DatasetNotFound and none of the versions is left (else the rest is destroyed) |

A destroy refused by SnapshotHeld is retried once without the held snapshots; the result names
the ones kept. One log line per action (kind, host, target, outcome, duration); sinks are the
CLI's business.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TypeGuard, assert_never

from loguru import logger

from reconciler.core.plan import (
    AbortResumeAction,
    Action,
    ActionKind,
    BookmarkAction,
    CreateParentAction,
    DestroyAction,
    HoldAction,
    Plan,
    ReleaseAction,
    RollbackAction,
    SendAction,
    SendMode,
    SnapshotAction,
)
from reconciler.zfs.errors import (
    DatasetExists,
    DatasetNotFound,
    HoldNotFound,
    HostUnreachable,
    ReceiveRefused,
    SnapshotHeld,
    ZFSError,
)
from reconciler.zfs.port import ZFS, SendRequest


class ActionStatus(StrEnum):
    OK = "ok"
    ALREADY_DONE = "already_done"
    FAILED = "failed"
    SKIPPED = "skipped"


DONE = (ActionStatus.OK, ActionStatus.ALREADY_DONE)


@dataclass(frozen=True, slots=True)
class ActionResult:
    action_id: int
    status: ActionStatus
    message: str
    error: ZFSError | None = None
    duration: float = 0.0  # seconds
    bytes: int | None = None  # bytes a send moved; None for other actions

    @property
    def succeeded(self) -> bool:
        return self.status in DONE


@dataclass(frozen=True, slots=True)
class ApplyReport:
    results: tuple[ActionResult, ...] = ()

    @property
    def failed(self) -> tuple[ActionResult, ...]:
        return tuple(r for r in self.results if r.status is ActionStatus.FAILED)

    @property
    def ok(self) -> bool:
        return all(r.succeeded for r in self.results)

    def result(self, action_id: int) -> ActionResult | None:
        return next((r for r in self.results if r.action_id == action_id), None)


EventSink = Callable[[ActionResult], None]


def execute(
    plan: Plan,
    hosts: Mapping[str, ZFS],
    *,
    on_event: EventSink | None = None,
    jobs: int = 1,
    cancel: threading.Event | None = None,
) -> ApplyReport:
    """Carry out the plan; with `jobs` > 1, independent filesystems proceed in parallel.

    An action starts once every action it depends on has finished and every earlier action
    that touches one of its filesystems (on either side) has finished, so each filesystem sees
    its actions in plan order, except that its holds, releases and bookmarks (which commute
    unless the plan makes one depend on another) may pass one another. The report lists
    the results in plan order; `on_event` sees them as they finish. Once `cancel` is set, no
    further action starts (each is reported `skipped`); running ones finish or are stopped by
    their driver.
    """
    order = {action.id: index for index, action in enumerate(plan.actions)}
    waits_for = _waits_for(plan.actions)
    done: dict[int, ActionResult] = {}
    causes: dict[int, int] = {}  # a failed or skipped action → the failed action behind it
    pending = list(plan.actions)
    running: dict[Future[list[ActionResult]], tuple[Action, ...]] = {}
    alone: set[Future[list[ActionResult]]] = set()  # the running actions that are no batch

    def finish(action: Action, result: ActionResult) -> None:
        done[action.id] = result
        _log(action, result)
        if on_event is not None:
            on_event(result)

    slots = max(1, jobs)

    def startable(actions: Sequence[Action]) -> list[Action]:
        """Take the actions out of `pending`; those blocked or cancelled are finished now."""
        live = []
        for action in actions:
            pending.remove(action)
            blocked = _blocked(action, done, causes, order) or _cancelled(action, cancel)
            if blocked is not None:
                finish(action, blocked)
            else:
                live.append(action)
        return live

    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="action") as pool:
        while pending or running:
            ready = [a for a in pending if all(w in done for w in waits_for[a.id])]
            for action in ready:
                if len(running) >= slots:
                    break
                if not _batchable(action):
                    for live in startable([action]):
                        future = pool.submit(_run_alone, live, hosts)
                        running[future] = (live,)
                        alone.add(future)
            # holds and releases wait until nothing else runs (nothing can make more of them
            # ready), then go as one call per host, verb and tag
            batches = _batches(ready)
            while batches and not alone and len(running) < slots:
                live_batch = [a for a in startable(batches.pop(0)) if _batchable(a)]
                if live_batch:
                    running[pool.submit(run_batch, live_batch, hosts)] = tuple(live_batch)
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: running[f][0].id):
                alone.discard(future)
                for action, result in zip(running.pop(future), future.result(), strict=True):
                    finish(action, result)
    return ApplyReport(tuple(done[action.id] for action in plan.actions))


Batchable = HoldAction | ReleaseAction | BookmarkAction


def _batchable(action: Action) -> TypeGuard[Batchable]:
    """Holds and releases of one host and tag, and bookmarks of one host, go to zfs
    together; other actions alone."""
    return isinstance(action, (HoldAction, ReleaseAction, BookmarkAction))


def _batches(actions: Sequence[Action]) -> list[list[Action]]:
    """The batchable actions grouped by (verb, host, tag), in the order of each group's
    first action."""
    groups: dict[tuple[str, str, str], list[Action]] = {}
    for action in actions:
        if _batchable(action):
            tag = "" if isinstance(action, BookmarkAction) else action.tag
            groups.setdefault((action.kind, action.host, tag), []).append(action)
    return list(groups.values())


def _run_alone(action: Action, hosts: Mapping[str, ZFS]) -> list[ActionResult]:
    return [run_action(action, hosts)]


def run_batch(actions: Sequence[Batchable], hosts: Mapping[str, ZFS]) -> list[ActionResult]:
    """Actions of one kind, host (and tag) as one call for all their snapshots: one `zfs
    hold`/`zfs release`, or one channel program of bookmarks. Each action gets its own
    result (a refused one fails or is already done on its own, the others succeed), in the
    order given."""
    start = time.monotonic()
    first = actions[0]
    keys = [_batch_item(a) for a in actions]
    try:
        host = _host(hosts, first.host)
        if isinstance(first, BookmarkAction):
            marks = [
                (a.filesystem, _short(a.snapshot), _short(a.bookmark))
                for a in actions
                if isinstance(a, BookmarkAction)
            ]
            failed = host.bookmark_many(marks)
        elif isinstance(first, HoldAction):
            failed = host.hold_many(first.tag, keys)
        else:
            failed = host.release_many(first.tag, keys)
    except ZFSError as failure:
        failed = dict.fromkeys(keys, failure)
    duration = time.monotonic() - start
    results = []
    for action, key in zip(actions, keys, strict=True):
        error = failed.get(key)
        if error is None:
            results.append(ActionResult(action.id, ActionStatus.OK, _done(action), None, duration))
        elif isinstance(error, _ALREADY[action.kind]):
            message = f"already done: {error.detail}"
            results.append(
                ActionResult(action.id, ActionStatus.ALREADY_DONE, message, None, duration)
            )
        else:
            results.append(
                ActionResult(action.id, ActionStatus.FAILED, error.detail, error, duration)
            )
    return results


# what each batched kind takes for "already so" (as run_action does for one action)
_ALREADY: dict[str, tuple[type[ZFSError], ...]] = {
    ActionKind.HOLD: (DatasetExists,),
    ActionKind.RELEASE: (HoldNotFound, DatasetNotFound),
    ActionKind.BOOKMARK: (DatasetExists,),
}


def _batch_item(action: Batchable) -> tuple[str, str]:
    """How the port names the action's result: (filesystem, snapshot or bookmark)."""
    if isinstance(action, BookmarkAction):
        return (action.filesystem, _short(action.bookmark))
    return (action.filesystem, _short(action.snapshot))


def _done(action: Batchable) -> str:
    if isinstance(action, BookmarkAction):
        return f"bookmarked {action.snapshot} as {action.bookmark}"
    verb = "held" if isinstance(action, HoldAction) else "released"
    return f"{verb} {action.snapshot} ({action.tag})"


def _cancelled(action: Action, cancel: threading.Event | None) -> ActionResult | None:
    if cancel is None or not cancel.is_set():
        return None
    return ActionResult(action.id, ActionStatus.SKIPPED, "skipped: the pass was interrupted")


def _touches(action: Action) -> set[tuple[str, str]]:
    """The (host, filesystem) pairs an action changes or reads."""
    if isinstance(action, SnapshotAction):
        return {(action.host, fs) for fs in action.filesystems}
    if isinstance(action, SendAction):
        return {(action.host, action.filesystem), (action.target_host, action.target_filesystem)}
    return {(action.host, action.filesystem)}


def _waits_for(actions: Sequence[Action]) -> dict[int, set[int]]:
    """Each action → the earlier actions that must finish first: its dependencies, and the
    earlier actions on its filesystems. Holds, releases and bookmarks of a filesystem do not
    wait for one another (they commute unless one depends on the other, which the plan says):
    so a host's holds of a source snapshot and of a target snapshot, both ready once the
    send is done, go to zfs as one call. Every other action waits for all of them."""
    barrier: dict[tuple[str, str], int] = {}  # the last action that is no hold, release or mark
    since: dict[tuple[str, str], list[int]] = {}  # holds, releases and marks after it
    earlier: set[int] = set()
    waits: dict[int, set[int]] = {}
    for action in actions:
        before = {d for d in action.depends_on if d in earlier}
        batchable = _batchable(action)
        for key in _touches(action):
            if key in barrier:
                before.add(barrier[key])
            if batchable:
                since.setdefault(key, []).append(action.id)
            else:
                before.update(since.pop(key, ()))
                barrier[key] = action.id
        waits[action.id] = before
        earlier.add(action.id)
    return waits


def _blocked(
    action: Action,
    done: Mapping[int, ActionResult],
    causes: dict[int, int],
    order: Mapping[int, int],
) -> ActionResult | None:
    for dependency in action.depends_on:
        prior = done.get(dependency)
        if prior is None or order.get(dependency, len(order)) >= order[action.id]:
            causes[action.id] = dependency
            why = f"skipped: depends on action {dependency}, which has not run before it"
            return ActionResult(action.id, ActionStatus.SKIPPED, why)
        if not prior.succeeded:
            root = causes.get(dependency, dependency)
            causes[action.id] = root
            what = _what_happened(prior, done.get(root, prior))
            why = f"skipped: depends on action {dependency}, which {what}"
            return ActionResult(action.id, ActionStatus.SKIPPED, why)
    return None


def _what_happened(prior: ActionResult, origin: ActionResult) -> str:
    """Why a dependency did not succeed: it failed; it was skipped because the action behind
    it (`origin`) failed; or it, or the action behind it, was skipped for another reason (the
    pass was interrupted)."""
    if prior.status is ActionStatus.FAILED:
        return "failed"
    if origin.status is ActionStatus.FAILED:
        return f"was skipped: action {origin.action_id} failed"
    return "was skipped: " + origin.message.removeprefix("skipped: ")


def run_action(action: Action, hosts: Mapping[str, ZFS]) -> ActionResult:
    """Carry out one action; ZFS errors become a `failed` result, never an exception."""
    start = time.monotonic()
    try:
        status, message = _dispatch(action, hosts)
        error = None
    except ZFSError as failure:
        status, message, error = ActionStatus.FAILED, failure.detail, failure
    return ActionResult(action.id, status, message, error, time.monotonic() - start)


Outcome = tuple[ActionStatus, str]


def _dispatch(action: Action, hosts: Mapping[str, ZFS]) -> Outcome:
    host = _host(hosts, action.host)
    match action:
        case SnapshotAction():
            return _snapshot(host, action)
        case CreateParentAction():
            create = partial(host.create, action.filesystem, parents=True)
            return _quietly(create, f"created {action.filesystem}", DatasetExists)
        case AbortResumeAction():
            abort = partial(host.abort_resume, action.filesystem)
            return _quietly(abort, "discarded the partial receive", DatasetNotFound)
        case RollbackAction():
            host.rollback(action.filesystem, _short(action.snapshot), bool(action.destroys))
            return ActionStatus.OK, f"rolled back to {action.snapshot}"
        case SendAction():
            return _send(host, _host(hosts, action.target_host), action)
        case BookmarkAction():
            mark = partial(
                host.bookmark, action.filesystem, _short(action.snapshot), _short(action.bookmark)
            )
            return _quietly(
                mark, f"bookmarked {action.snapshot} as {action.bookmark}", DatasetExists
            )
        case HoldAction():
            hold = partial(host.hold, action.filesystem, _short(action.snapshot), action.tag)
            return _quietly(hold, f"held {action.snapshot} ({action.tag})", DatasetExists)
        case ReleaseAction():
            release = partial(host.release, action.filesystem, _short(action.snapshot), action.tag)
            done = f"released {action.snapshot} ({action.tag})"
            return _quietly(release, done, HoldNotFound, DatasetNotFound)
        case DestroyAction():
            return _destroy(host, action)
        case _:
            assert_never(action)


def _quietly(operation: Callable[[], None], done: str, *already: type[ZFSError]) -> Outcome:
    """Run the operation; the errors in `already` mean it was done before."""
    try:
        operation()
    except already as error:
        return ActionStatus.ALREADY_DONE, f"already done: {error.detail}"
    return ActionStatus.OK, done


def _snapshot(host: ZFS, action: SnapshotAction) -> Outcome:
    try:
        host.snapshot(action.filesystems, action.name)
    except DatasetExists:
        present = _with_snapshot(host, action.filesystems, action.name)
        missing = [fs for fs in action.filesystems if fs not in present]
        if not missing:
            return ActionStatus.ALREADY_DONE, f"@{action.name} already exists everywhere"
        host.snapshot(missing, action.name)
        return ActionStatus.OK, (
            f"took @{action.name} on {', '.join(missing)}; it already existed on "
            f"{', '.join(sorted(present))}"
        )
    count = len(action.filesystems)
    return ActionStatus.OK, f"took @{action.name} on {count} filesystem(s) at once"


def _with_snapshot(host: ZFS, filesystems: Sequence[str], name: str) -> set[str]:
    seen = host.observe_filesystems(filesystems)
    return {fs for fs, state in seen.items() if any(v.name == name for v in state.snapshots)}


def _send(source: ZFS, target: ZFS, action: SendAction) -> Outcome:
    stream = source.send(_request(action))
    try:
        target.receive(action.target_filesystem, stream, action.receive_options)
    except (DatasetExists, ReceiveRefused):
        if not _already_received(source, target, action):
            raise
        return ActionStatus.ALREADY_DONE, f"{action.to_snapshot} is already on the target"
    where = f"{action.target_host}:{action.target_filesystem}"
    return ActionStatus.OK, f"received {', '.join('@' + d for d in action.delivers)} on {where}"


def _request(action: SendAction) -> SendRequest:
    if action.mode is SendMode.RESUME:
        return SendRequest(
            action.filesystem, None, resume_token=action.resume_token, options=action.send_options
        )
    return SendRequest(
        filesystem=action.filesystem,
        to_snapshot=_short(action.to_snapshot),
        from_version=None if action.mode is SendMode.FULL else action.from_version,
        intermediates=action.mode is SendMode.INTERMEDIATES,
        options=action.send_options,
    )


def _already_received(source: ZFS, target: ZFS, action: SendAction) -> bool:
    """The target already holds the to-snapshot (the same GUID as on the source)."""
    name = _short(action.to_snapshot)
    try:
        sent = source.observe_filesystems([action.filesystem]).get(action.filesystem)
        there = target.observe_filesystems([action.target_filesystem]).get(action.target_filesystem)
    except ZFSError:
        return False
    if sent is None or there is None:
        return False
    guids = {v.guid for v in sent.snapshots if v.name == name}
    return any(v.guid in guids for v in there.snapshots)


def _destroy(host: ZFS, action: DestroyAction) -> Outcome:
    wanted = list(action.versions)
    try:
        return _destroy_present(host, action.filesystem, wanted)
    except SnapshotHeld as refused:
        held = {_as_snapshot(name) for name in refused.held} & set(wanted)
        rest = [v for v in wanted if v not in held]
        if not held or not rest:
            raise
        status, message = _destroy_present(host, action.filesystem, rest)
        kept = ", ".join(v for v in wanted if v in held)
        return status, f"{message}; kept {kept}: held"


def _destroy_present(host: ZFS, filesystem: str, versions: list[str]) -> Outcome:
    """Destroy the versions; those already gone are fine (DatasetNotFound → destroy the rest)."""
    try:
        host.destroy(filesystem, versions)
    except DatasetNotFound:
        left = _still_there(host, filesystem, versions)
        if not left:
            return ActionStatus.ALREADY_DONE, f"already gone: {', '.join(versions)}"
        host.destroy(filesystem, left)
        gone = [v for v in versions if v not in left]
        return ActionStatus.OK, f"destroyed {', '.join(left)} (already gone: {', '.join(gone)})"
    return ActionStatus.OK, f"destroyed {', '.join(versions)}"


def _still_there(host: ZFS, filesystem: str, versions: list[str]) -> list[str]:
    state = host.observe_filesystems([filesystem]).get(filesystem)
    if state is None:
        return []
    present = {v.sigil + v.name for v in state.versions}
    return [v for v in versions if v in present]


def _host(hosts: Mapping[str, ZFS], name: str) -> ZFS:
    host = hosts.get(name)
    if host is None:
        raise HostUnreachable(name, "-", f"no connection to host {name!r} in this pass")
    return host


def _short(version: str) -> str:
    """`@snap` / `#mark` → the short name the port takes."""
    return version[1:] if version[:1] in ("@", "#") else version


def _as_snapshot(name: str) -> str:
    """A held snapshot as reported (`@snap`, `fs@snap` or `snap`) → `@snap`."""
    return "@" + name.rpartition("@")[2]


def _log(action: Action, result: ActionResult) -> None:
    if isinstance(action, SendAction):
        where = (
            f"{action.host}:{action.filesystem} → {action.target_host}:{action.target_filesystem}"
        )
    elif isinstance(action, SnapshotAction):
        where = f"{action.host}:{','.join(action.filesystems)}"
    else:
        where = f"{action.host}:{action.filesystem}"
    level = "WARNING" if result.status is ActionStatus.FAILED else "INFO"
    logger.log(
        level,
        "action {} {} {}: {} in {:.3f}s: {}",
        action.id,
        action.kind,
        where,
        result.status,
        result.duration,
        result.message,
    )
