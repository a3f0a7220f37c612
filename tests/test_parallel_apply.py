"""Parallel apply: independent filesystems run at once, each filesystem keeps plan order."""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from reconciler.apply.executor import ActionStatus, execute
from reconciler.apply.passes import Dependencies, run_pass
from reconciler.core.plan import (
    Action,
    BookmarkAction,
    HoldAction,
    Plan,
    Reason,
    ReceiveOptions,
    ReleaseAction,
    SendAction,
    SendMode,
    SnapshotAction,
)
from reconciler.manifest.loader import parse_manifests
from reconciler.zfs.errors import ReceiveRefused
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import SendRequest, SendStream

NAMES = [f"tank/fs{i}" for i in range(6)]
START = calendar.timegm((2026, 11, 26, 0, 0, 0, 0, 0, 0))


class Recording:
    """A model host that records the order of calls and how many receives overlap."""

    def __init__(self, model: ModelZFS, log: list[str], lock: threading.Lock) -> None:
        self.model = model
        self.log = log
        self.lock = lock
        self.active = 0
        self.most = 0
        self.fail_on: set[str] = set()
        self.batches: list[int] = []  # the size of each hold_many call
        self.bookmark_batches: list[int] = []  # the size of each bookmark_many call

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def send(self, request: SendRequest) -> SendStream:
        return self.model.send(request)

    def receive(self, filesystem: str, stream: SendStream, options: ReceiveOptions) -> None:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(0.05)
        try:
            if filesystem in self.fail_on:
                raise ReceiveRefused(self.model.host, filesystem, "refused")
            self.model.receive(filesystem, stream, options)
        finally:
            with self.lock:
                self.active -= 1
                self.log.append(f"receive {filesystem}")

    def hold(self, filesystem: str, snapshot: str, tag: str) -> None:
        with self.lock:
            self.log.append(f"hold {filesystem}")
        self.model.hold(filesystem, snapshot, tag)

    def bookmark_many(self, bookmarks: Sequence[tuple[str, str, str]]) -> dict[Any, Any]:
        with self.lock:
            self.bookmark_batches.append(len(bookmarks))
        return self.model.bookmark_many(bookmarks)

    def hold_many(self, tag: str, snapshots: Sequence[tuple[str, str]]) -> dict[Any, Any]:
        with self.lock:
            self.log.extend(f"hold {filesystem}" for filesystem, _ in snapshots)
            self.batches.append(len(snapshots))
        return self.model.hold_many(tag, snapshots)


def _action(cls: type[Action], id: int, deps: Sequence[int] = (), **fields: Any) -> Any:
    return cls(
        id=id,
        host="nas",
        policy="p",
        target="t",
        reason=Reason.SCHEDULE_DUE,
        message="",
        depends_on=tuple(deps),
        **fields,
    )


def _plan() -> Plan:
    actions: list[Action] = [_action(SnapshotAction, 1, filesystems=tuple(NAMES), name="s1")]
    next_id = 2
    for name in NAMES:
        send_id = next_id
        actions.append(
            _action(
                SendAction,
                send_id,
                (1,),
                filesystem=name,
                target_host="backup",
                target_filesystem="vault/" + name,
                mode=SendMode.FULL,
                from_version=None,
                to_snapshot="@s1",
                delivers=("s1",),
            )
        )
        actions.append(
            _action(HoldAction, send_id + 1, (send_id,), filesystem=name, snapshot="@s1", tag="t")
        )
        next_id += 2
    return Plan(now=0, actions=tuple(actions))


def _hosts() -> tuple[Recording, Recording, list[str]]:
    nas, backup = ModelZFS("nas"), ModelZFS("backup")
    nas.create_pool("tank")
    backup.create_pool("vault")
    backup.create("vault/tank")
    for name in NAMES:
        nas.create(name)
        nas.write(name, 1000)
    log: list[str] = []
    lock = threading.Lock()
    return Recording(nas, log, lock), Recording(backup, log, lock), log


def test_independent_filesystems_receive_at_the_same_time() -> None:
    nas, backup, _ = _hosts()
    report = execute(_plan(), {"nas": nas, "backup": backup}, jobs=3)
    assert report.ok
    assert backup.most == 3


def test_one_job_runs_in_plan_order() -> None:
    nas, backup, _ = _hosts()
    report = execute(_plan(), {"nas": nas, "backup": backup}, jobs=1)
    assert report.ok
    assert backup.most == 1


def test_parallel_and_serial_reach_the_same_state() -> None:
    states: list[object] = []
    for jobs in (1, 4):
        nas, backup, _ = _hosts()
        execute(_plan(), {"nas": nas, "backup": backup}, jobs=jobs)
        seen = backup.model.observe()
        states.append(
            sorted((fs, [v.name for v in s.versions]) for fs, s in seen.filesystems.items())
        )
        held = nas.model.observe()
        states.append(
            sorted(
                (fs, [sorted(v.holds) for v in s.versions]) for fs, s in held.filesystems.items()
            )
        )
    assert states[0] == states[2] and states[1] == states[3]


def test_a_failure_skips_only_its_own_filesystem_and_reports_in_plan_order() -> None:
    nas, backup, _ = _hosts()
    backup.fail_on = {"vault/tank/fs2"}
    plan = _plan()
    report = execute(plan, {"nas": nas, "backup": backup}, jobs=4)
    assert [r.action_id for r in report.results] == [a.id for a in plan.actions]
    by_id = {r.action_id: r.status for r in report.results}
    failed_send = next(
        a.id for a in plan.actions if isinstance(a, SendAction) and a.filesystem == "tank/fs2"
    )
    assert by_id[failed_send] is ActionStatus.FAILED
    assert by_id[failed_send + 1] is ActionStatus.SKIPPED
    others = [s for i, s in by_id.items() if i not in (failed_send, failed_send + 1)]
    assert all(s is ActionStatus.OK for s in others)


def test_actions_on_one_filesystem_never_overlap() -> None:
    nas, backup, log = _hosts()
    plan = Plan(
        now=0,
        actions=(
            *_plan().actions,
            _action(
                SendAction,
                100,
                filesystem="tank/fs0",
                target_host="backup",
                target_filesystem="vault/tank/fs0",
                mode=SendMode.FULL,
                from_version=None,
                to_snapshot="@s1",
                delivers=("s1",),
            ),
        ),
    )
    execute(plan, {"nas": nas, "backup": backup}, jobs=4)
    fs0 = [entry for entry in log if entry.endswith("tank/fs0")]
    assert fs0 == ["receive vault/tank/fs0", "hold tank/fs0", "receive vault/tank/fs0"]


def test_after_cancel_no_further_action_starts() -> None:
    nas, backup, _ = _hosts()
    cancel = threading.Event()
    plan = _plan()
    reports: list[int] = []

    def on_event(result: Any) -> None:
        reports.append(result.action_id)
        if result.action_id == 1:
            cancel.set()

    report = execute(plan, {"nas": nas, "backup": backup}, jobs=2, on_event=on_event, cancel=cancel)
    statuses = [r.status for r in report.results]
    assert statuses[0] is ActionStatus.OK
    assert all(s is ActionStatus.SKIPPED for s in statuses[1:])
    assert "interrupted" in report.results[1].message


def test_actions_behind_an_interrupted_one_say_it_was_interrupted_not_failed() -> None:
    nas, backup, _ = _hosts()
    cancel = threading.Event()
    cancel.set()
    report = execute(_plan(), {"nas": nas, "backup": backup}, jobs=1, cancel=cancel)
    assert all(r.status is ActionStatus.SKIPPED for r in report.results)
    behind = [r.message for r in report.results if "depends on" in r.message]
    assert behind, "the plan has actions that depend on others"
    for message in behind:
        assert "which failed" not in message
        assert message.endswith("which was skipped: the pass was interrupted"), message


def test_the_holds_of_every_filesystem_go_to_zfs_in_one_call() -> None:
    for jobs in (1, 4):
        nas, backup, log = _hosts()
        report = execute(_plan(), {"nas": nas, "backup": backup}, jobs=jobs)
        assert report.ok and [r.message for r in report.results[2::2]] == ["held @s1 (t)"] * 6
        assert nas.batches == [6], jobs  # after every send, not one zfs hold per filesystem
        assert log.index("hold tank/fs0") > max(i for i, e in enumerate(log) if "receive" in e)


def test_a_refused_hold_in_a_batch_fails_alone_and_skips_only_what_depends_on_it() -> None:
    nas, backup, _ = _hosts()
    for name in NAMES[:4]:
        nas.model.snapshot([name], "s1")
    nas.model.hold("tank/fs1", "s1", "t")
    holds = [
        _action(HoldAction, 10 + i, filesystem=name, snapshot="@gone" if i == 2 else "@s1", tag="t")
        for i, name in enumerate(NAMES[:4])
    ]
    releases = [
        _action(ReleaseAction, 20 + i, (10 + i,), filesystem=name, snapshot="@s1", tag="t")
        for i, name in enumerate(NAMES[:4])
    ]
    report = execute(Plan(now=0, actions=(*holds, *releases)), {"nas": nas, "backup": backup})
    statuses = {r.action_id: r.status for r in report.results}
    assert statuses == {
        10: ActionStatus.OK, 11: ActionStatus.ALREADY_DONE, 12: ActionStatus.FAILED,
        13: ActionStatus.OK, 20: ActionStatus.OK, 21: ActionStatus.OK,
        22: ActionStatus.SKIPPED, 23: ActionStatus.OK,
    }  # fmt: skip
    assert "does not exist" in (report.result(12) or report.results[0]).message
    assert nas.batches == [4]  # the four holds in one call, the refusal included
    assert all(
        not v.holds for name in NAMES[:4] for v in nas.model.observe().filesystems[name].versions
    )


def test_bookmarks_of_one_host_are_one_call_and_a_refused_one_fails_alone() -> None:
    nas, backup, _ = _hosts()
    for name in NAMES[:3]:
        nas.model.snapshot([name], "s1")
    nas.model.bookmark("tank/fs1", "s1", "c")
    marks = [
        _action(BookmarkAction, 10 + i, filesystem=name, snapshot=snap, bookmark="#c")
        for i, (name, snap) in enumerate(zip(NAMES[:3], ("@s1", "@s1", "@gone"), strict=True))
    ]
    report = execute(Plan(now=0, actions=tuple(marks)), {"nas": nas, "backup": backup}, jobs=2)
    assert [r.status for r in report.results] == [
        ActionStatus.OK, ActionStatus.ALREADY_DONE, ActionStatus.FAILED,
    ]  # fmt: skip
    assert report.results[0].message == "bookmarked @s1 as #c"
    assert nas.bookmark_batches == [3]
    assert [v.name for v in nas.model.observe().filesystems["tank/fs0"].bookmarks] == ["c"]


ONE_HOST_MANIFESTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/a": true, "tank/b": true}}
  snapshots: {prefix: zr_, interval: 15m}
  replication:
    - {name: copy, host: nas, root: vault, protection: resumable}
"""


class Counting(Recording):
    def __init__(self, model: ModelZFS) -> None:
        super().__init__(model, [], threading.Lock())
        self.calls: list[str] = []

    def hold_many(self, tag: str, snapshots: Sequence[tuple[str, str]]) -> dict[Any, Any]:
        self.calls.append("hold")
        return self.model.hold_many(tag, snapshots)

    def release_many(self, tag: str, snapshots: Sequence[tuple[str, str]]) -> dict[Any, Any]:
        self.calls.append("release")
        return self.model.release_many(tag, snapshots)


@pytest.mark.parametrize("jobs", [1, 4])
def test_a_host_that_is_source_and_target_holds_and_releases_in_one_call_each(jobs: int) -> None:
    """The source's hold waits for no bookmark of its filesystem, so it goes with the
    target's holds, ready at the same time: one `zfs hold` and one `zfs release` per pass."""
    model = ModelZFS("nas", seed=3)
    model.create_pool("tank")
    model.create_pool("vault")
    for name in ("tank/a", "tank/b"):
        model.create(name)
        model.write(name, 1000)
    host = Counting(model)
    manifests = parse_manifests([("m.yaml", ONE_HOST_MANIFESTS)])
    deps = Dependencies(connect=lambda _: host)  # type: ignore[arg-type, return-value]
    first = run_pass(manifests, None, START, deps, jobs=jobs)
    assert first.report is not None and first.report.ok
    host.calls.clear()
    for name in ("tank/a", "tank/b"):
        model.write(name, 1000)
    second = run_pass(manifests, None, START + 15 * 60, deps, jobs=jobs)
    assert second.report is not None and second.report.ok
    holds = [a for a in second.plan.actions if a.kind == "hold"]
    assert len(holds) == 4  # two filesystems, on both sides
    assert host.calls == ["hold", "release"]
    assert run_pass(manifests, None, START + 15 * 60, deps, apply=False).plan.is_empty
