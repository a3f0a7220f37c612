"""What zrepl and syncoid left on the pools, as `reconcile status` tells it, end to end on the
in-memory ZFS model (docs/migrating-leftovers.md): each is listed with the command that
cleans it up, none changes a condition or the exit code, and no pass destroys or releases any.

The fleet: nas:tank/home (and tank/home/alice) replicated by zrepl (job `push`) and then once
by syncoid to backup:vault/nas/..., where policy `home` (prefix `zr_`) now replicates them.
"""

from __future__ import annotations

import io
import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import EXIT_OK, Console, Services, main
from reconciler.core.desired import intents
from reconciler.core.foreign_leftovers import (
    ForeignKind,
    ForeignLeftover,
    ForeignTool,
    find_foreign_leftovers,
    recognise_bookmark,
    recognise_hold,
    recognise_snapshot,
)
from reconciler.core.plan import ReceiveOptions
from reconciler.core.state import HostState
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.models import Host
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS, SendRequest
from tests.notation import guid_of, observed_from

NOW = "2026-11-26T12:00:00Z"
LATER = "2026-11-26T12:15:00Z"
SOURCES = ("tank/home", "tank/home/alice")
ZREPL_1, ZREPL_2 = "zrepl_20261120_100000_000", "zrepl_20261121_100000_000"
SYNCOID = "syncoid_nas_2026-11-22:10:00:00-GMT00:00"
STEP_HOLD, LAST_RECEIVED = "zrepl_STEP_J_push", "zrepl_last_received_J_push"
MANIFESTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: backup}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home<": true}}
  snapshots: {prefix: zr_, interval: 15m}
  retention: {keep: [{lastN: 1}]}
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      protection: resumable
      retention: {keep: [{lastN: 1}]}
"""


def cursor_name(guid: int, job: str = "push") -> str:
    return f"zrepl_CURSOR_G_{guid:016x}_J_{job}"


class Fleet:
    """Two model hosts with the old tools' history, and `reconcile` run against them."""

    def __init__(self, path: Path, sources: tuple[str, ...] = SOURCES) -> None:
        self.path = path
        path.write_text(MANIFESTS)
        self.nas, self.backup = ModelZFS("nas", seed=1), ModelZFS("backup", seed=2)
        self.nas.create_pool("tank")
        self.backup.create_pool("vault")
        for name in sources:
            self.nas.create(name)
            self.nas.write(name, 1 << 16)
        self.sources = sources
        self.old_history()

    def old_history(self) -> None:
        """zrepl: two snapshots sent, its cursor and holds; then syncoid: one sync snapshot
        on both sides (as `syncoid` leaves it)."""
        nas, backup = self.nas, self.backup
        nas.snapshot(list(self.sources), ZREPL_1)
        nas.snapshot(list(self.sources), ZREPL_2)
        for name in self.sources:
            target = f"vault/nas/{name}"
            backup.create(target.rsplit("/", 1)[0])
            options = ReceiveOptions()
            backup.receive(target, nas.send(SendRequest(name, ZREPL_1)), options)
            backup.receive(target, nas.send(SendRequest(name, ZREPL_2, "@" + ZREPL_1)), options)
            guid = self.guid(nas, name, ZREPL_2)
            nas.bookmark(name, ZREPL_2, cursor_name(guid))
            nas.hold(name, ZREPL_2, STEP_HOLD)
            backup.hold(target, ZREPL_2, LAST_RECEIVED)
        nas.snapshot(list(self.sources), SYNCOID)
        for name in self.sources:
            stream = nas.send(SendRequest(name, SYNCOID, "@" + ZREPL_2))
            backup.receive(f"vault/nas/{name}", stream, ReceiveOptions())

    @staticmethod
    def guid(host: ModelZFS, filesystem: str, snapshot: str) -> int:
        state = host.observe().filesystems[filesystem]
        return next(v.guid for v in state.snapshots if v.name == snapshot)

    def connect(self, host: Host) -> ZFS:
        return {"nas": self.nas, "backup": self.backup}[host.metadata.name]

    def run(self, *argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            [*argv, "-f", str(self.path)], Console(out, err), Services(connect=self.connect)
        )
        assert "Traceback" not in err.getvalue()
        return code, out.getvalue()

    def foreign(self, now: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            self.run("status", "--now", now, "--output", "json")[1]
        )["foreign_leftovers"]
        return found

    def left(self) -> set[str]:
        """Every hold, bookmark and snapshot of the old tools on both hosts, by full name."""
        found: set[str] = set()
        for host in (self.nas, self.backup):
            found |= old_tools_things(host.observe())
        return found


def old_tools_things(state: HostState) -> set[str]:
    found: set[str] = set()
    for fs in state.filesystems.values():
        for version in fs.versions:
            if version.name.startswith(("zrepl_", "syncoid_")):
                found.add(version.full_name(fs.name))
            found |= {
                f"{tag} {fs.name}@{version.name}" for tag in version.holds if "zr_" not in tag
            }
    return found


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path / "manifests.yaml")


def run_on_model(hosts: dict[str, ModelZFS], found: dict[str, Any]) -> None:
    """The model is not a shell: split the printed command and call the verb it names."""
    model = hosts[found["host"]]
    match shlex.split(found["command"]):
        case ["zfs", "release", tag, full]:
            filesystem, _, snapshot = full.partition("@")
            model.release(filesystem, snapshot, tag)
        case ["zfs", "destroy", full] if "#" in full:
            filesystem, _, bookmark = full.partition("#")
            model.destroy(filesystem, ["#" + bookmark])
        case ["zfs", "destroy", full]:
            filesystem, _, snapshot = full.partition("@")
            model.destroy(filesystem, ["@" + snapshot])
        case other:
            raise AssertionError(f"unexpected command {other}")


def test_status_lists_each_with_its_cleanup_command(fleet: Fleet) -> None:
    code, out = fleet.run("status", "--now", NOW)
    assert code == EXIT_OK, out
    guid = fleet.guid(fleet.nas, "tank/home", ZREPL_2)
    note = (
        "note: 10 holds, bookmarks and snapshots left by syncoid and zrepl, run before the "
        "reconciler: they belong to those tools, and the reconciler never destroys or releases "
        "them. Once no old tool runs any more, clean up with (docs/migrating-leftovers.md):\n"
        "  syncoid, run on host backup:\n"
        f"    zfs destroy vault/nas/tank/home@{SYNCOID}  # not yet: still the newest "
        "common snapshot of a pair\n"
    )
    assert note in out
    assert f"  zrepl, run on host nas:\n    zfs release {STEP_HOLD} tank/home@{ZREPL_2}\n" in out
    assert f"    zfs destroy 'tank/home#{cursor_name(guid)}'\n" in out
    assert f"  zrepl, run on host backup:\n    zfs release {LAST_RECEIVED} " in out
    assert "10 left by older tools (see note)" in out
    found = fleet.foreign(NOW)
    assert {(f["tool"], f["kind"], f["what"]) for f in found} == {
        ("zrepl", "hold", "step hold"),
        ("zrepl", "hold", "last-received hold"),
        ("zrepl", "bookmark", "replication cursor"),
        ("syncoid", "snapshot", "sync snapshot"),
    }
    hold = next(f for f in found if f["tag"] == LAST_RECEIVED and f["filesystem"].endswith("e"))
    assert hold == {
        "tool": "zrepl",
        "kind": "hold",
        "what": "last-received hold",
        "host": "backup",
        "filesystem": "vault/nas/tank/home",
        "name": ZREPL_2,
        "tag": LAST_RECEIVED,
        "in_use": False,
        "argv": ["zfs", "release", LAST_RECEIVED, f"vault/nas/tank/home@{ZREPL_2}"],
        "command": f"zfs release {LAST_RECEIVED} vault/nas/tank/home@{ZREPL_2}",
    }


def test_they_change_no_condition_and_no_exit_code(fleet: Fleet, tmp_path: Path) -> None:
    with_them = json.loads(fleet.run("status", "--now", NOW, "--output", "json")[1])
    for found in fleet.foreign(NOW):
        if found["kind"] == "hold":
            run_on_model({"nas": fleet.nas, "backup": fleet.backup}, found)
    bookmarks = [f for f in fleet.foreign(NOW) if f["kind"] == "bookmark"]
    for found in bookmarks:
        run_on_model({"nas": fleet.nas, "backup": fleet.backup}, found)
    without = json.loads(fleet.run("status", "--now", NOW, "--output", "json")[1])
    assert len(with_them["foreign_leftovers"]) == 10
    assert len(without["foreign_leftovers"]) == 4  # the sync snapshots, still in use
    assert with_them["ok"] is without["ok"] is True
    assert with_them["policies"] == without["policies"]
    counts = {k: v for k, v in with_them["summary"].items() if k != "text"}
    assert counts == {k: v for k, v in without["summary"].items() if k != "text"}


def test_a_pass_destroys_or_releases_none_of_them(fleet: Fleet) -> None:
    before = fleet.left()
    # per source: on nas 2 zrepl snapshots, the cursor, the step hold, the sync snapshot; on
    # backup the 2 zrepl snapshots, the last-received hold, the sync snapshot
    assert len(before) == 18
    for now in (NOW, LATER):
        code, out = fleet.run("--now", now)
        assert code == EXIT_OK, out
        assert fleet.left() == before, out
    nas = fleet.nas.observe().filesystems["tank/home"]
    assert any(v.name.startswith("zr_") for v in nas.snapshots)  # the pass did its work
    backup = fleet.backup.observe().filesystems["vault/nas/tank/home"]
    assert any(v.name.startswith("zr_") for v in backup.snapshots)
    # still listed, though their snapshots are older than the pairs' common base now
    found = fleet.foreign(LATER)
    assert len(found) == 10 and not any(f["in_use"] for f in found)
    for each in found:
        run_on_model({"nas": fleet.nas, "backup": fleet.backup}, each)
    assert fleet.foreign(LATER) == []
    left = fleet.left()
    assert left == {n for n in before if "@zrepl_2026" in n and " " not in n}  # history stays
    assert fleet.run("--now", LATER)[0] == EXIT_OK


def test_in_use_until_a_snapshot_of_ours_is_common(fleet: Fleet) -> None:
    in_use = {(f["host"], f["filesystem"]) for f in fleet.foreign(NOW) if f["in_use"]}
    assert in_use == {
        ("nas", "tank/home"),
        ("nas", "tank/home/alice"),
        ("backup", "vault/nas/tank/home"),
        ("backup", "vault/nas/tank/home/alice"),
    }
    assert fleet.run("--now", NOW)[0] == EXIT_OK
    assert not any(f["in_use"] for f in fleet.foreign(NOW))


# --- hostile names ------------------------------------------------------------------------------


def test_commands_quote_names_with_spaces_and_shell_characters(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "manifests.yaml", sources=("tank/home", "tank/home/my docs"))
    job = "a b;'c\"$(x)"
    fleet.nas.hold("tank/home/my docs", ZREPL_2, f"zrepl_STEP_J_{job}")
    found = {f["tag"]: f for f in fleet.foreign(NOW) if f["filesystem"] == "tank/home/my docs"}
    hold = found[f"zrepl_STEP_J_{job}"]
    assert shlex.split(hold["command"]) == hold["argv"]
    assert hold["argv"] == ["zfs", "release", f"zrepl_STEP_J_{job}", f"tank/home/my docs@{ZREPL_2}"]
    run_on_model({"nas": fleet.nas, "backup": fleet.backup}, hold)
    snapshots = fleet.nas.observe().filesystems["tank/home/my docs"].snapshots
    assert [v.holds for v in snapshots if v.name == ZREPL_2] == [frozenset({STEP_HOLD})]


@pytest.mark.parametrize(
    ("kind", "filesystem", "name", "tag", "argv"),
    [
        (ForeignKind.HOLD, "t/f", "s", "zrepl_STEP_J_x", ["release", "zrepl_STEP_J_x", "t/f@s"]),
        (ForeignKind.HOLD, "t/f", "s", "-t", ["release", "--", "-t", "t/f@s"]),
        (ForeignKind.BOOKMARK, "-p/f", "b", None, ["destroy", "--", "-p/f#b"]),
        (ForeignKind.SNAPSHOT, "t/a b", "s;'x\"", None, ["destroy", "t/a b@s;'x\""]),
    ],
)
def test_commands_round_trip_and_end_options_before_a_dash(
    kind: ForeignKind, filesystem: str, name: str, tag: str | None, argv: list[str]
) -> None:
    found = ForeignLeftover(ForeignTool.ZREPL, kind, "x", "nas", filesystem, name, tag)
    assert list(found.argv) == ["zfs", *argv]
    assert shlex.split(found.command) == ["zfs", *argv]
    sudo = replace(found, zfs_command=("sudo", "-n", "zfs"))
    assert shlex.split(sudo.command) == ["sudo", "-n", "zfs", *argv]


# --- names ----------------------------------------------------------------------------------


GUID = "0123456789abcdef"


@pytest.mark.parametrize(
    ("name", "what"),
    [
        (f"zrepl_CURSOR_G_{GUID}_J_push", "replication cursor"),
        (f"zrepl_CURSOR_G_{GUID}_J_a_J_b", "replication cursor"),
        (f"zrepl_CURSORTENTATIVE__G_{GUID}_J_push", "tentative replication cursor"),
        ("zrepl_replication_cursor", "replication cursor (v1)"),
        (f"zrepl_STEP_G_{GUID}_J_push", "step bookmark"),
        ("autosnap_2026-11-26_12:00:00_hourly", "bookmark (--create-bookmark)"),
        ("syncoid_nas_2026-11-26:12:00:00-GMT00:00", "bookmark (--create-bookmark)"),
        (f"zrepl_CURSOR_G_{GUID.upper()}_J_push", None),  # zrepl writes lower-case hex
        ("zrepl_CURSOR_G_0123_J_push", None),
        (f"zrepl_CURSOR_G_{GUID}_J_", None),
        ("zrepl_replication_cursor2", None),
        ("zr_20261126T120000Z_offsite", None),
        ("zrepl_20261126_120000_000", None),
    ],
)
def test_bookmark_names(name: str, what: str | None) -> None:
    found = recognise_bookmark(name)
    assert (found.what if found is not None else None) == what


@pytest.mark.parametrize(
    ("tag", "tool", "what"),
    [
        ("zrepl_STEP_J_push", "zrepl", "step hold"),
        ("zrepl_last_received_J_push", "zrepl", "last-received hold"),
        ("zrepl_last_received_J_", None, None),
        ("syncoid_nas", "syncoid", "hold"),
        ("zr_:home:offsite", None, None),
        ("zrepl_STEP_J_push x", "zrepl", "step hold"),
    ],
)
def test_hold_tags(tag: str, tool: str | None, what: str | None) -> None:
    found = recognise_hold(tag)
    assert ((found.tool, found.what) if found is not None else (None, None)) == (tool, what)


@pytest.mark.parametrize(
    ("name", "sync"),
    [
        ("syncoid_nas_2026-11-26:12:00:00-GMT00:00", True),
        ("syncoid_offsite_nas_2026-11-26:12:00:00-GMT00:00", True),
        ("syncoid_", False),
        ("zrepl_20261126_120000_000", False),  # history, adopted: not a leftover
        ("autosnap_2026-11-26_12:00:00_hourly", False),
        ("zr_20261126T120000Z", False),
    ],
)
def test_snapshot_names(name: str, sync: bool) -> None:
    assert (recognise_snapshot(name) is not None) is sync


# --- pure: where they are searched ------------------------------------------------------------


def test_only_the_policies_filesystems_and_their_targets_are_searched() -> None:
    sync = "syncoid_nas_x"
    observed = observed_from(
        {
            "nas": {
                "tank/home": f"a {sync}[zrepl_STEP_J_j]",
                "tank/other": f"a {sync}[zrepl_STEP_J_j]",  # no policy selects it
            },
            "backup": {
                "vault/nas/tank/home": f"a {sync}",
                "vault/elsewhere": f"a {sync}",  # no target receives into it
            },
        }
    )
    found = find_foreign_leftovers(intents(parse_manifests([("m.yaml", MANIFESTS)])), observed)
    assert [(f.host, f.filesystem, f.kind, f.name, f.in_use) for f in found] == [
        ("backup", "vault/nas/tank/home", ForeignKind.SNAPSHOT, sync, True),
        ("nas", "tank/home", ForeignKind.SNAPSHOT, sync, True),
        ("nas", "tank/home", ForeignKind.HOLD, sync, False),
    ]
    assert guid_of(sync) == observed.hosts["nas"].filesystems["tank/home"].snapshots[1].guid


def test_an_unreachable_host_is_not_searched() -> None:
    observed = observed_from(
        {"nas": {"tank/home": "syncoid_nas_x"}, "backup": {"unreachable": "ssh: refused"}}
    )
    found = find_foreign_leftovers(intents(parse_manifests([("m.yaml", MANIFESTS)])), observed)
    assert [(f.host, f.in_use) for f in found] == [("nas", False)]


def test_what_a_policy_adopted_is_no_leftover() -> None:
    """A cursor bookmark of ours on an adopted sanoid snapshot starts with `autosnap_` like the
    bookmarks syncoid makes; it is the policy's own, not an old tool's. Without `adopt`, the
    same bookmark is listed (what the check above would miss)."""
    sanoid = "autosnap_2026-11-26_10:00:00_hourly"
    observed = observed_from(
        {
            "nas": {"tank/home": f"{sanoid} #{sanoid}_offsite={sanoid} #{sanoid}"},
            "backup": {"vault/nas/tank/home": sanoid},
        }
    )
    adopting = MANIFESTS.replace(
        "prefix: zr_", "prefix: zr_, adopt: [{prefix: autosnap_, format: sanoid}]"
    )
    assert adopting != MANIFESTS

    def listed(text: str) -> list[str]:
        found = find_foreign_leftovers(intents(parse_manifests([("m.yaml", text)])), observed)
        return [f.name for f in found]

    assert listed(adopting) == [sanoid]  # syncoid's bookmark of the same name stays listed
    assert sorted(listed(MANIFESTS)) == [sanoid, f"{sanoid}_offsite"]
