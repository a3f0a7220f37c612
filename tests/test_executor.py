"""The executor against in-memory hosts: results per action, dependencies, idempotence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import pytest
from loguru import logger

from reconciler.apply.executor import ActionResult, ActionStatus, ApplyReport, execute
from reconciler.core.plan import (
    AbortResumeAction,
    Action,
    BookmarkAction,
    CreateParentAction,
    DestroyAction,
    HoldAction,
    Plan,
    Reason,
    ReleaseAction,
    RollbackAction,
    SendAction,
    SendMode,
    SnapshotAction,
)
from reconciler.core.scope import ObservationScope
from reconciler.core.state import FilesystemState, HostState
from reconciler.zfs.errors import (
    DatasetExists,
    DatasetNotFound,
    HostUnreachable,
    ModifiedSinceSnapshot,
    SnapshotHeld,
    StreamInterrupted,
)
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS

MIB = 1 << 20
HOME, COPY = "tank/home", "vault/nas/tank/home"
A = TypeVar("A", bound=Action)
OK, DONE, FAILED, SKIPPED = (
    ActionStatus.OK,
    ActionStatus.ALREADY_DONE,
    ActionStatus.FAILED,
    ActionStatus.SKIPPED,
)


def act(cls: type[A], id: int, *, deps: tuple[int, ...] = (), **fields: Any) -> A:
    fields.setdefault("host", "nas")
    return cls(
        id=id,
        policy="home",
        target="offsite",
        reason=Reason.SCHEDULE_DUE,
        message=f"action {id}",
        depends_on=deps,
        **fields,
    )


def send(
    id: int,
    to: str,
    base: str | None = None,
    *,
    deps: tuple[int, ...] = (),
    mode: SendMode | None = None,
    token: str | None = None,
) -> SendAction:
    if mode is None:
        mode = SendMode.FULL if base is None else SendMode.INCREMENTAL
    return act(
        SendAction,
        id,
        deps=deps,
        filesystem=HOME,
        target_host="backup",
        target_filesystem=COPY,
        mode=mode,
        from_version=base,
        to_snapshot=to,
        delivers=(to[1:],),
        resume_token=token,
    )


def snap(id: int, name: str, *filesystems: str, deps: tuple[int, ...] = ()) -> SnapshotAction:
    return act(SnapshotAction, id, deps=deps, filesystems=filesystems or (HOME,), name=name)


def run(hosts: dict[str, ZFS], *actions: Action) -> ApplyReport:
    return execute(Plan(now=0, actions=actions), hosts)


def statuses(report: ApplyReport) -> list[ActionStatus]:
    return [r.status for r in report.results]


def fs(host: ModelZFS, name: str) -> FilesystemState:
    found = host.observe().filesystem(name)
    assert found is not None
    return found


def names(host: ModelZFS, name: str) -> list[str]:
    return [v.sigil + v.name for v in fs(host, name).versions]


@pytest.fixture
def nas() -> ModelZFS:
    host = ModelZFS("nas", seed=1)
    host.create_pool("tank")
    host.create(HOME)
    host.create("tank/work")
    host.write(HOME, MIB)
    return host


@pytest.fixture
def backup() -> ModelZFS:
    host = ModelZFS("backup", seed=2)
    host.create_pool("vault")
    host.create("vault/nas/tank")
    return host


@pytest.fixture
def hosts(nas: ModelZFS, backup: ModelZFS) -> dict[str, ZFS]:
    return {"nas": nas, "backup": backup}


def test_a_plan_runs_in_order_and_every_action_reports(
    hosts: dict[str, ZFS], nas: ModelZFS, backup: ModelZFS
) -> None:
    report = run(
        hosts,
        snap(1, "s1", HOME, "tank/work"),
        send(2, "@s1", deps=(1,)),
        act(BookmarkAction, 3, deps=(2,), filesystem=HOME, snapshot="@s1", bookmark="#s1_offsite"),
        act(HoldAction, 4, deps=(2,), filesystem=HOME, snapshot="@s1", tag="zr_home:offsite"),
    )
    assert statuses(report) == [OK, OK, OK, OK] and report.ok and report.failed == ()
    assert [r.action_id for r in report.results] == [1, 2, 3, 4]
    assert names(nas, HOME) == ["@s1", "#s1_offsite"]
    assert fs(nas, HOME).snapshots[0].holds == {"zr_home:offsite"}
    assert fs(backup, COPY).snapshots[0].guid == fs(nas, HOME).snapshots[0].guid
    assert fs(nas, "tank/work").snapshots[0].createtxg == fs(nas, HOME).snapshots[0].createtxg


def test_intermediates_and_resume_modes_reach_the_port(
    hosts: dict[str, ZFS], nas: ModelZFS, backup: ModelZFS
) -> None:
    for name in ("s1", "s2", "s3"):
        nas.write(HOME, 4 * MIB)
        nas.snapshot([HOME], name)
    run(hosts, send(1, "@s1"))
    backup.interrupt_next_receive(MIB)
    cut = run(hosts, send(2, "@s3", "@s1", mode=SendMode.INTERMEDIATES))
    assert statuses(cut) == [FAILED] and isinstance(cut.results[0].error, StreamInterrupted)
    token = fs(backup, COPY).resume_token
    assert token is not None and token.to_name == f"{HOME}@s2"
    resumed = run(
        hosts,
        send(3, "@s2", mode=SendMode.RESUME, token=token.token),
        send(4, "@s3", "@s2", deps=(3,)),
    )
    assert statuses(resumed) == [OK, OK]
    assert names(backup, COPY) == ["@s1", "@s2", "@s3"] and fs(backup, COPY).resume_token is None


def test_a_failed_send_skips_its_dependants_but_not_unrelated_actions(
    hosts: dict[str, ZFS], nas: ModelZFS, backup: ModelZFS
) -> None:
    nas.snapshot([HOME], "s1")
    run(hosts, send(1, "@s1"))
    nas.write(HOME, MIB)
    nas.snapshot([HOME], "s2")
    backup.write(COPY, MIB)  # someone wrote to the backup: the incremental is refused
    report = run(
        hosts,
        send(1, "@s2", "@s1"),
        act(HoldAction, 2, deps=(1,), filesystem=HOME, snapshot="@s2", tag="zr_home:offsite"),
        act(ReleaseAction, 3, deps=(2,), filesystem=HOME, snapshot="@s1", tag="zr_home:offsite"),
        snap(4, "s3", "tank/work"),
    )
    assert statuses(report) == [FAILED, SKIPPED, SKIPPED, OK]
    failed = report.results[0]
    assert isinstance(failed.error, ModifiedSinceSnapshot) and "modified" in failed.message
    assert report.result(2) == ActionResult(
        2, SKIPPED, "skipped: depends on action 1, which failed"
    )
    skipped = report.result(3)
    assert skipped is not None and "action 2, which was skipped: action 1 failed" in skipped.message
    assert report.failed == (failed,) and not report.ok
    assert fs(nas, HOME).snapshots[1].holds == frozenset()


def test_a_dependency_that_has_not_run_skips_the_action(hosts: dict[str, ZFS]) -> None:
    report = run(hosts, snap(1, "s1", deps=(9,)))
    assert statuses(report) == [SKIPPED] and "action 9" in report.results[0].message
    assert not report.ok and report.failed == ()


def test_snapshot_already_everywhere_is_already_done(hosts: dict[str, ZFS], nas: ModelZFS) -> None:
    nas.snapshot([HOME, "tank/work"], "s1")
    report = run(hosts, snap(1, "s1", HOME, "tank/work"))
    assert statuses(report) == [DONE]


def test_snapshot_present_on_some_filesystems_is_taken_on_the_rest(
    hosts: dict[str, ZFS], nas: ModelZFS
) -> None:
    nas.snapshot([HOME], "s1")
    report = run(hosts, snap(1, "s1", HOME, "tank/work"))
    assert statuses(report) == [OK] and "tank/work" in report.results[0].message
    assert names(nas, "tank/work") == ["@s1"]


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        (
            lambda h: h.bookmark(HOME, "s1", "m"),
            act(BookmarkAction, 1, filesystem=HOME, snapshot="@s1", bookmark="#m"),
        ),
        (
            lambda h: h.hold(HOME, "s1", "t"),
            act(HoldAction, 1, filesystem=HOME, snapshot="@s1", tag="t"),
        ),
        (lambda h: None, act(ReleaseAction, 1, filesystem=HOME, snapshot="@s1", tag="t")),
        (lambda h: None, act(ReleaseAction, 1, filesystem=HOME, snapshot="@gone", tag="t")),
        (lambda h: None, act(AbortResumeAction, 1, filesystem=HOME)),
        (lambda h: None, act(DestroyAction, 1, filesystem=HOME, versions=("@gone", "@also"))),
        (lambda h: None, act(DestroyAction, 1, filesystem=HOME, versions=("#gone",))),
    ],
    ids=[
        "bookmark",
        "hold",
        "release-tag",
        "release-snapshot",
        "abort",
        "destroy",
        "destroy-bookmark",
    ],
)
def test_what_is_already_so_is_already_done(
    hosts: dict[str, ZFS], nas: ModelZFS, setup: Any, action: Action
) -> None:
    nas.snapshot([HOME], "s1")
    setup(nas)
    before = nas.observe()
    report = run(hosts, action)
    assert statuses(report) == [DONE] and report.ok
    assert report.results[0].message.startswith("already")
    assert nas.observe() == before


def test_the_same_action_twice_is_done_then_already_done(hosts: dict[str, ZFS]) -> None:
    plan = (
        snap(1, "s1"),
        send(2, "@s1", deps=(1,)),
        act(BookmarkAction, 3, deps=(2,), filesystem=HOME, snapshot="@s1", bookmark="#c"),
        act(HoldAction, 4, deps=(2,), filesystem=HOME, snapshot="@s1", tag="t"),
        act(CreateParentAction, 5, host="backup", filesystem="vault/other/x"),
    )
    assert statuses(run(hosts, *plan)) == [OK] * 5
    # `zfs create -p` of an existing filesystem succeeds quietly, so the create is just ok
    assert statuses(run(hosts, *plan)) == [DONE, DONE, DONE, DONE, OK]


class _NoWholeObserve(ModelZFS):
    """A host that fails the test if anything lists all of it: at a million versions, one
    listing takes minutes, too slow for a check after one refused action."""

    def observe(self, scope: ObservationScope | None = None) -> HostState:
        raise AssertionError(f"the whole of {self.host} was observed")


def test_checks_after_a_refusal_list_only_the_filesystems_concerned() -> None:
    nas, backup = _NoWholeObserve("nas", seed=1), _NoWholeObserve("backup", seed=2)
    nas.create_pool("tank")
    backup.create_pool("vault")
    for name in (HOME, "tank/work"):
        nas.create(name)
    backup.create("vault/nas/tank")
    nas.snapshot([HOME], "s1")
    hosts: dict[str, ZFS] = {"nas": nas, "backup": backup}
    plan = (
        snap(1, "s1", HOME, "tank/work"),  # there on HOME: taken on tank/work only
        send(2, "@s1"),
        send(3, "@s1"),  # received already
        act(DestroyAction, 4, filesystem=HOME, versions=("@gone", "@also")),
    )
    assert statuses(run(hosts, *plan)) == [OK, OK, DONE, DONE]
    assert [v.name for v in nas.observe_filesystems(["tank/work"])["tank/work"].versions] == ["s1"]


class _StrictCreate(ModelZFS):
    """A host whose create reports an existing filesystem even with parents (no -p)."""

    def create(self, filesystem: str, parents: bool = True) -> None:
        super().create(filesystem, parents=False)


def test_create_of_an_existing_filesystem_is_already_done(hosts: dict[str, ZFS]) -> None:
    strict = _StrictCreate("strict")
    strict.create_pool("pool")
    report = run(
        {**hosts, "strict": strict}, act(CreateParentAction, 1, host="strict", filesystem="pool")
    )
    assert statuses(report) == [DONE]


def test_a_receive_refused_for_a_different_snapshot_of_that_name_fails(
    hosts: dict[str, ZFS], nas: ModelZFS, backup: ModelZFS
) -> None:
    nas.snapshot([HOME], "s1")
    run(hosts, send(1, "@s1"))
    nas.write(HOME, MIB)
    nas.snapshot([HOME], "s2")
    backup.snapshot([COPY], "s2")  # same name, another snapshot
    report = run(hosts, send(1, "@s2", "@s1"))
    assert statuses(report) == [FAILED] and isinstance(report.results[0].error, DatasetExists)


def test_destroy_of_partly_missing_versions_destroys_the_rest(
    hosts: dict[str, ZFS], nas: ModelZFS
) -> None:
    nas.snapshot([HOME], "s1")
    nas.snapshot([HOME], "s2")
    report = run(hosts, act(DestroyAction, 1, filesystem=HOME, versions=("@s1", "@gone")))
    assert statuses(report) == [OK] and names(nas, HOME) == ["@s2"]


class _StrictDestroy(ModelZFS):
    """A host whose destroy refuses a batch naming any missing version (one zfs call each)."""

    def destroy(self, filesystem: str, versions: Sequence[str]) -> None:
        present = {v.sigil + v.name for v in self.observe().filesystems[filesystem].versions}
        missing = [v for v in versions if v not in present]
        if missing:
            raise DatasetNotFound(self.host, filesystem + missing[0], "does not exist")
        super().destroy(filesystem, versions)


def test_destroy_retries_without_versions_reported_missing() -> None:
    strict = _StrictDestroy("strict")
    strict.create_pool("pool")
    strict.snapshot(["pool"], "s1")
    strict.bookmark("pool", "s1", "m1")
    versions = ("#gone", "#m1")
    report = run(
        {"strict": strict},
        act(DestroyAction, 1, host="strict", filesystem="pool", versions=versions),
    )
    assert statuses(report) == [OK] and report.results[0].message == (
        "destroyed #m1 (already gone: #gone)"
    )
    assert names(strict, "pool") == ["@s1"]


def test_destroy_with_a_held_snapshot_destroys_the_others(
    hosts: dict[str, ZFS], nas: ModelZFS
) -> None:
    for name in ("s1", "s2", "s3"):
        nas.snapshot([HOME], name)
    nas.hold(HOME, "s2", "someone")
    report = run(hosts, act(DestroyAction, 1, filesystem=HOME, versions=("@s1", "@s2", "@s3")))
    assert statuses(report) == [OK]
    assert report.results[0].message == "destroyed @s1, @s3; kept @s2: held"
    assert names(nas, HOME) == ["@s2"]


def test_destroy_of_only_held_snapshots_fails(hosts: dict[str, ZFS], nas: ModelZFS) -> None:
    nas.snapshot([HOME], "s1")
    nas.hold(HOME, "s1", "someone")
    report = run(hosts, act(DestroyAction, 1, filesystem=HOME, versions=("@s1",)))
    assert statuses(report) == [FAILED] and isinstance(report.results[0].error, SnapshotHeld)
    assert names(nas, HOME) == ["@s1"]


def test_rollback_destroys_the_listed_snapshots(
    hosts: dict[str, ZFS], nas: ModelZFS, backup: ModelZFS
) -> None:
    nas.snapshot([HOME], "s1")
    run(hosts, send(1, "@s1"))
    backup.write(COPY, MIB)
    backup.snapshot([COPY], "local")
    rollback = act(
        RollbackAction, 1, host="backup", filesystem=COPY, snapshot="@s1", destroys=("@local",)
    )
    assert statuses(run(hosts, rollback)) == [OK]
    assert names(backup, COPY) == ["@s1"] and fs(backup, COPY).written == 0


def test_unknown_and_unreachable_hosts_fail_their_actions_only(
    hosts: dict[str, ZFS], nas: ModelZFS
) -> None:
    nas.set_unreachable()
    report = run(
        hosts,
        snap(1, "s1"),
        act(CreateParentAction, 2, host="elsewhere", filesystem="pool/x"),
        act(CreateParentAction, 3, host="backup", filesystem="vault/x"),
    )
    assert statuses(report) == [FAILED, FAILED, OK]
    assert all(isinstance(r.error, HostUnreachable) for r in report.results[:2])


def test_every_result_is_reported_as_it_happens_and_logged_once(
    hosts: dict[str, ZFS],
) -> None:
    events: list[ActionResult] = []
    lines: list[str] = []
    sink = logger.add(lines.append, format="{level} {message}")
    try:
        report = execute(
            Plan(now=0, actions=(snap(1, "s1"), snap(2, "s2", "tank/missing"), snap(3, "s3"))),
            hosts,
            on_event=events.append,
        )
    finally:
        logger.remove(sink)
    assert tuple(events) == report.results
    assert [line.split()[:4] for line in lines] == [
        ["INFO", "action", "1", "snapshot"],
        ["WARNING", "action", "2", "snapshot"],
        ["INFO", "action", "3", "snapshot"],
    ]
    assert "failed" in lines[1] and "tank/missing" in lines[1]
