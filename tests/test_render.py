"""Plan rendering (core/render.py): the JSON document, the text view, the summary line."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypedDict

import pytest

from reconciler.core.plan import (
    AbortResumeAction,
    Action,
    ActionKind,
    BookmarkAction,
    Conflict,
    ConflictKind,
    CreateParentAction,
    DestroyAction,
    HoldAction,
    Notice,
    NoticeKind,
    Plan,
    Reason,
    ReceiveOptions,
    ReleaseAction,
    RollbackAction,
    SendAction,
    SendMode,
    SendOptions,
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
    dump_plan_json,
    format_bytes,
    plan_to_json,
    render_document_text,
    render_text,
    summary_line,
)

NOW = 1_795_666_500  # 2026-11-26T04:15:00Z
S1, S2, S3 = "@zr_20261126T033000Z", "@zr_20261126T034500Z", "@zr_20261126T040000Z"
GIB = 1 << 30


class Where(TypedDict):
    host: str
    policy: str
    target: str | None


TARGET = Where(host="backup", policy="home", target="offsite")  # on the target host
SOURCE = Where(host="nas", policy="home", target="offsite")  # on the source, for the target


def _full_plan() -> Plan:
    """One action of every kind, a conflict and a notice (built afresh on every call)."""
    actions: tuple[Action, ...] = (
        SnapshotAction(
            id=0,
            host="nas",
            policy="home",
            target=None,
            reason=Reason.SCHEDULE_DUE,
            message="interval 15m is due",
            filesystems=("tank/home", "tank/home/alice"),
            name="zr_20261126T041500Z",
        ),
        CreateParentAction(
            id=1,
            **TARGET,
            reason=Reason.TARGET_PARENT_MISSING,
            message="parent is missing",
            filesystem="vault/nas/tank",
        ),
        AbortResumeAction(
            id=2,
            **TARGET,
            reason=Reason.RESUME_TOKEN_STALE,
            message="token source is gone",
            filesystem="vault/nas/tank/home/bob",
        ),
        RollbackAction(
            id=3,
            **TARGET,
            reason=Reason.ROLLBACK_MODIFIED,
            message="target was written to",
            filesystem="vault/nas/tank/home/alice",
            snapshot=S2,
            destroys=(S3,),
        ),
        SendAction(
            id=4,
            **SOURCE,
            reason=Reason.NOT_YET_REPLICATED,
            message="2 snapshots behind",
            depends_on=(0, 1),
            filesystem="tank/home",
            target_host="backup",
            target_filesystem="vault/nas/tank/home",
            mode=SendMode.INTERMEDIATES,
            from_version=S2,
            to_snapshot="@zr_20261126T041500Z",
            delivers=(S3, "@zr_20261126T041500Z"),
            estimated_bytes=GIB + GIB // 5,
            send_options=SendOptions(raw=True, compressed=True),
            receive_options=ReceiveOptions(override=(("readonly", "on"),), inherit=("mountpoint",)),
        ),
        BookmarkAction(
            id=5,
            **SOURCE,
            reason=Reason.REPLICATION_CURSOR,
            message="replication cursor",
            depends_on=(4,),
            filesystem="tank/home",
            snapshot="@zr_20261126T041500Z",
            bookmark="#zr_20261126T041500Z_offsite",
        ),
        HoldAction(
            id=6,
            **SOURCE,
            reason=Reason.PROTECT_NEWEST_COMMON,
            message="newest common",
            depends_on=(4,),
            filesystem="tank/home",
            snapshot="@zr_20261126T041500Z",
            tag="zr_home:offsite",
        ),
        ReleaseAction(
            id=7,
            **SOURCE,
            reason=Reason.HOLD_SUPERSEDED,
            message="no longer newest common",
            depends_on=(6,),
            filesystem="tank/home",
            snapshot=S2,
            tag="zr_home:offsite",
        ),
        DestroyAction(
            id=8,
            **TARGET,
            reason=Reason.RETENTION_GRID_EXPIRED,
            message="outside the grid",
            filesystem="vault/nas/tank/home",
            versions=(S1, S2),
        ),
    )
    conflict = Conflict(
        policy="home",
        target="offsite",
        host="nas",
        filesystem="tank/home/carol",
        target_host="backup",
        target_filesystem="vault/nas/tank/home/carol",
        kind=ConflictKind.DIVERGED,
        message="target has snapshots after the common base",
        source_only=(S3,),
        target_only=("@manual",),
    )
    notice = Notice(
        kind=NoticeKind.HOST_UNREACHABLE,
        host="mirror",
        message="ssh: connection refused",
        policy="home",
        target="mirror",
    )
    return Plan(now=NOW, actions=actions, conflicts=(conflict,), notices=(notice,))


FULL_TEXT = """\
Plan for 2026-11-26T04:15:00Z

policy home
  tank/home
    + snapshot      @zr_20261126T041500Z: interval 15m is due
    > send          @zr_20261126T034500Z -> @zr_20261126T041500Z to backup:vault/nas/tank/home \
(intermediates, 2 snapshots, 1.2 GiB est.): 2 snapshots behind
    # bookmark      @zr_20261126T041500Z -> #zr_20261126T041500Z_offsite: replication cursor
    = hold          @zr_20261126T041500Z tag zr_home:offsite: newest common
    ^ release       @zr_20261126T034500Z tag zr_home:offsite: no longer newest common
  tank/home/alice
    + snapshot      @zr_20261126T041500Z: interval 15m is due
  backup:vault/nas/tank
    * create parent: parent is missing
  backup:vault/nas/tank/home
    - destroy       @zr_20261126T033000Z, @zr_20261126T034500Z: outside the grid
  backup:vault/nas/tank/home/alice
    ~ rollback      to @zr_20261126T034500Z, destroying @zr_20261126T040000Z: \
target was written to
  backup:vault/nas/tank/home/bob
    x abort resume: token source is gone

Conflicts
  ! diverged: tank/home/carol -> backup:vault/nas/tank/home/carol (policy home, target offsite): \
target has snapshots after the common base
      only on source: @zr_20261126T040000Z
      only on target: @manual

Notices
  host_unreachable: mirror (policy home, target mirror): ssh: connection refused

2 snapshots, 1 send (1.2 GiB est.), 3 destroys, 1 rollback, 1 hold, 1 release, 1 bookmark, \
1 parent to create, 1 partial receive to abort, 1 conflict
"""


def _document(plan: Plan) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(dump_plan_json(plan))
    return parsed


# --- the field tables are the format: they must cover every field of every plan type ------


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("action", _full_plan().actions, ids=lambda a: str(a.kind))
def test_action_table_covers_every_field(action: Action) -> None:
    layout = ACTION_COMMON_FIELDS + ACTION_FIELDS[action.kind]
    assert len(layout) == len(set(layout))
    assert set(layout) == _field_names(type(action))


def test_every_kind_has_a_layout_and_other_tables_cover_their_types() -> None:
    assert set(ACTION_FIELDS) == set(ActionKind)
    assert {a.kind for a in _full_plan().actions} == set(ActionKind)
    for cls, layout in NESTED_FIELDS.items():
        assert set(layout) == _field_names(cls)
    assert set(CONFLICT_FIELDS) == _field_names(Conflict)
    assert set(NOTICE_FIELDS) == _field_names(Notice)
    assert set(UNOBSERVED_HOST_FIELDS) == _field_names(UnobservedHost)


# --- JSON -----------------------------------------------------------------------------------


def test_document_top_level_and_summary() -> None:
    document = _document(_full_plan())
    assert list(document) == [
        "format_version",
        "now",
        "summary",
        "actions",
        "conflicts",
        "notices",
        "unobserved_hosts",
    ]
    assert document["format_version"] == 1
    assert document["now"] == "2026-11-26T04:15:00Z"
    assert document["summary"] == {
        "actions": 9,
        "snapshots": 2,
        "sends": 1,
        "estimated_bytes": GIB + GIB // 5,
        "destroys": 3,
        "rollbacks": 1,
        "holds": 1,
        "releases": 1,
        "bookmarks": 1,
        "create_parents": 1,
        "abort_resumes": 1,
        "conflicts": 1,
        "notices": 1,
        "text": FULL_TEXT.splitlines()[-1],
    }
    assert list(document["summary"])[:4] == ["actions", "snapshots", "sends", "estimated_bytes"]


def test_actions_carry_id_kind_common_fields_then_their_own() -> None:
    actions = _document(_full_plan())["actions"]
    assert [a["kind"] for a in actions] == [
        "snapshot",
        "create_parent",
        "abort_resume",
        "rollback",
        "send",
        "bookmark",
        "hold",
        "release",
        "destroy",
    ]
    common = ["id", "kind", "host", "policy", "target", "reason", "message", "depends_on"]
    for index, action in enumerate(actions):
        assert list(action)[:8] == common
        assert action["id"] == index
    snapshot, _, abort, rollback, send, bookmark, hold, release, destroy = actions
    assert snapshot == {
        "id": 0,
        "kind": "snapshot",
        "host": "nas",
        "policy": "home",
        "target": None,
        "reason": "schedule_due",
        "message": "interval 15m is due",
        "depends_on": [],
        "filesystems": ["tank/home", "tank/home/alice"],
        "name": "zr_20261126T041500Z",
        "hooks": [],
    }
    assert abort["reason"] == "resume_token_stale"
    assert abort["filesystem"] == "vault/nas/tank/home/bob"
    assert rollback["destroys"] == [S3]
    assert bookmark["bookmark"] == "#zr_20261126T041500Z_offsite"
    assert (hold["tag"], release["tag"], release["depends_on"]) == ("zr_home:offsite",) * 2 + ([6],)
    assert (destroy["host"], destroy["versions"]) == ("backup", [S1, S2])
    assert list(send)[8:] == [
        "filesystem",
        "target_host",
        "target_filesystem",
        "mode",
        "from_version",
        "to_snapshot",
        "delivers",
        "resume_token",
        "estimated_bytes",
        "send_options",
        "receive_options",
    ]
    assert send["mode"] == "intermediates"
    assert send["depends_on"] == [0, 1]
    assert send["resume_token"] is None
    assert send["send_options"] == {
        "raw": True,
        "compressed": True,
        "large_blocks": False,
        "embedded_data": False,
        "properties": False,
    }
    assert send["receive_options"] == {
        "override": [["readonly", "on"]],
        "inherit": ["mountpoint"],
        "force": False,
    }


def test_conflicts_and_notices() -> None:
    document = _document(_full_plan())
    assert document["conflicts"] == [
        {
            "kind": "diverged",
            "policy": "home",
            "target": "offsite",
            "host": "nas",
            "filesystem": "tank/home/carol",
            "target_host": "backup",
            "target_filesystem": "vault/nas/tank/home/carol",
            "message": "target has snapshots after the common base",
            "source_only": [S3],
            "target_only": ["@manual"],
        }
    ]
    assert document["notices"] == [
        {
            "kind": "host_unreachable",
            "host": "mirror",
            "policy": "home",
            "target": "mirror",
            "filesystem": None,
            "message": "ssh: connection refused",
        }
    ]


def test_plan_to_json_is_the_dumped_document() -> None:
    plan = _full_plan()
    assert plan_to_json(plan) == _document(plan)
    assert plan_to_json(plan) == plan_to_json(_full_plan())


def test_json_is_deterministic_and_keeps_non_ascii() -> None:
    first, second = _full_plan(), _full_plan()
    assert first is not second and first.actions[0] is not second.actions[0]
    assert dump_plan_json(first) == dump_plan_json(first) == dump_plan_json(second)
    text = dump_plan_json(first)
    assert text.startswith('{\n  "format_version": 1,\n  "now": "2026-11-26T04:15:00Z",\n')
    assert text.endswith("}\n")
    plan = Plan(now=NOW, notices=(Notice(NoticeKind.HOST_UNREACHABLE, "nås", "ünreachable"),))
    assert '"host": "nås"' in dump_plan_json(plan)


def test_encoding_a_foreign_value_fails() -> None:
    bad = dataclasses.replace(_full_plan().actions[0], name=3.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="float"):
        dump_plan_json(Plan(now=NOW, actions=(bad,)))


# --- text -----------------------------------------------------------------------------------


def test_full_text() -> None:
    assert render_text(_full_plan()) == FULL_TEXT


def test_text_is_rendered_from_the_json_document() -> None:
    plan = _full_plan()
    assert render_document_text(json.loads(dump_plan_json(plan))) == render_text(plan)
    assert render_text(plan) == render_text(_full_plan())


def test_empty_plan_text() -> None:
    assert render_text(Plan(now=NOW)) == "Plan for 2026-11-26T04:15:00Z\n\nNo changes.\n"


def test_policies_and_filesystems_are_sorted_actions_keep_plan_order() -> None:
    def destroy(action_id: int, policy: str, filesystem: str, version: str) -> DestroyAction:
        return DestroyAction(
            id=action_id,
            host="nas",
            policy=policy,
            target=None,
            reason=Reason.RETENTION_NOT_KEPT,
            message="not kept",
            filesystem=filesystem,
            versions=(version,),
        )

    plan = Plan(
        now=NOW,
        actions=(
            destroy(0, "zeta", "tank/b", "@z1"),
            destroy(1, "alpha", "tank/a/x", "@a1"),
            destroy(2, "alpha", "tank/a-b", "@a2"),
            destroy(3, "alpha", "tank/a", "@a4"),
            destroy(4, "alpha", "tank/a/x", "@a3"),
        ),
    )
    assert render_text(plan) == (
        "Plan for 2026-11-26T04:15:00Z\n\n"
        "policy alpha\n"
        "  tank/a\n"
        "    - destroy       @a4: not kept\n"
        "  tank/a/x\n"
        "    - destroy       @a1: not kept\n"
        "    - destroy       @a3: not kept\n"
        "  tank/a-b\n"
        "    - destroy       @a2: not kept\n\n"
        "policy zeta\n"
        "  tank/b\n"
        "    - destroy       @z1: not kept\n\n"
        "5 destroys\n"
    )


def test_without_a_known_source_host_every_group_names_its_host() -> None:
    plan = Plan(
        now=NOW,
        actions=(
            ReleaseAction(
                id=0,
                **SOURCE,
                reason=Reason.HOLD_SUPERSEDED,
                message="superseded",
                filesystem="tank/home",
                snapshot=S1,
                tag="zr_home:offsite",
            ),
            DestroyAction(
                id=1,
                **TARGET,
                reason=Reason.RETENTION_NOT_KEPT,
                message="not kept",
                filesystem="vault/nas/tank/home",
                versions=(S1,),
            ),
        ),
    )
    lines = render_text(plan).splitlines()
    assert lines[3] == "  backup:vault/nas/tank/home"
    assert lines[5] == "  nas:tank/home"


def test_full_send_and_conflict_with_an_empty_side() -> None:
    send = SendAction(
        id=0,
        **SOURCE,
        reason=Reason.INITIAL_REPLICATION,
        message="initial replication",
        filesystem="tank/new",
        target_host="backup",
        target_filesystem="vault/nas/tank/new",
        mode=SendMode.FULL,
        from_version=None,
        to_snapshot=S3,
        delivers=(S3,),
        estimated_bytes=512,
    )
    conflict = Conflict(
        policy="home",
        target="offsite",
        host="nas",
        filesystem="tank/old",
        target_host="backup",
        target_filesystem="vault/nas/tank/old",
        kind=ConflictKind.NO_COMMON_BASE,
        message="no common snapshot",
        target_only=("@x",),
    )
    lines = render_text(Plan(now=NOW, actions=(send,), conflicts=(conflict,))).splitlines()
    assert lines[4] == (
        "    > send          @zr_20261126T040000Z to backup:vault/nas/tank/new "
        "(full, 1 snapshot, 512 B est.): initial replication"
    )
    assert lines[8:10] == ["      only on source: (none)", "      only on target: @x"]
    assert lines[-1] == "1 send (512 B est.), 1 conflict"


# --- summary line ---------------------------------------------------------------------------


def _snapshot(n: int) -> SnapshotAction:
    return SnapshotAction(
        id=0,
        host="nas",
        policy="p",
        target=None,
        reason=Reason.SCHEDULE_DUE,
        message="",
        filesystems=tuple(f"tank/fs{i}" for i in range(n)),
        name="zr_20261126T041500Z",
    )


def _send(action_id: int, estimated: int) -> SendAction:
    return SendAction(
        id=action_id,
        host="nas",
        policy="p",
        target="t",
        reason=Reason.NOT_YET_REPLICATED,
        message="",
        filesystem="tank/fs0",
        target_host="b",
        target_filesystem="v/tank/fs0",
        mode=SendMode.INCREMENTAL,
        from_version=S1,
        to_snapshot=S2,
        delivers=(S2,),
        estimated_bytes=estimated,
    )


def _destroy(action_id: int, n: int) -> DestroyAction:
    return DestroyAction(
        id=action_id,
        host="nas",
        policy="p",
        target=None,
        reason=Reason.RETENTION_NOT_KEPT,
        message="",
        filesystem="tank/fs0",
        versions=tuple(f"@s{i}" for i in range(n)),
    )


SUMMARY_CASES = [
    ((), "No changes."),
    ((_snapshot(1),), "1 snapshot"),
    (
        (_snapshot(3), _send(1, GIB), _send(2, GIB // 5), _destroy(3, 5)),
        "3 snapshots, 2 sends (1.2 GiB est.), 5 destroys",
    ),
    ((_send(0, 0),), "1 send (0 B est.)"),
    ((_destroy(0, 1),), "1 destroy"),
    ((_destroy(0, 2), _destroy(1, 2)), "4 destroys"),
]


@pytest.mark.parametrize(("actions", "expected"), SUMMARY_CASES)
def test_summary_line(actions: tuple[Action, ...], expected: str) -> None:
    plan = Plan(now=NOW, actions=actions)
    assert summary_line(plan) == expected
    assert render_text(plan).endswith("\n" + expected + "\n")


def test_summary_of_a_plan_with_only_conflicts() -> None:
    conflicts = _full_plan().conflicts * 2
    assert summary_line(Plan(now=NOW, conflicts=conflicts)) == "No changes, 2 conflicts."


def test_summary_counts_rollback_destroys_and_plural_extras() -> None:
    base = _full_plan().actions
    rollback = base[3]
    assert isinstance(rollback, RollbackAction)
    actions = (rollback, dataclasses.replace(rollback, id=9, destroys=(S2, S3)), base[2], base[2])
    assert summary_line(Plan(now=NOW, actions=actions)) == (
        "3 destroys, 2 rollbacks, 2 partial receives to abort"
    )


# --- bytes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (3 * 1024, "3.0 KiB"),
        (1536, "1.5 KiB"),
        (GIB + GIB // 5, "1.2 GiB"),
        (1024**2 - 52, "1023.9 KiB"),
        (1024**2 - 1, "1.0 MiB"),  # rounds up into the next unit, never "1024.0 KiB"
        (5 * 1024**4, "5.0 TiB"),
        (2048 * 1024**6, "2048.0 EiB"),
    ],
)
def test_format_bytes(n: int, expected: str) -> None:
    assert format_bytes(n) == expected


def test_format_bytes_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_bytes(-1)


def test_a_bookmark_marks_its_host_as_the_source_side() -> None:
    plan = _full_plan()
    cursor, destroy = plan.actions[5], plan.actions[8]
    stale = DestroyAction(
        id=9,
        **SOURCE,
        reason=Reason.CURSOR_SUPERSEDED,
        message="cursor moved",
        filesystem="tank/home",
        versions=("#zr_20261126T034500Z_offsite",),
    )
    text = render_text(Plan(now=NOW, actions=(destroy, cursor, stale)))
    assert text.splitlines()[2:8] == [
        "policy home",
        "  tank/home",
        "    # bookmark      @zr_20261126T041500Z -> #zr_20261126T041500Z_offsite: "
        "replication cursor",
        "    - destroy       #zr_20261126T034500Z_offsite: cursor moved",
        "  backup:vault/nas/tank/home",
        "    - destroy       @zr_20261126T033000Z, @zr_20261126T034500Z: outside the grid",
    ]
