"""Retiring a target, and the holds and cursor bookmarks of targets removed without retiring,
end to end through `reconcile` on the in-memory ZFS model (docs/retiring-targets.md).

Policy `home` replicates nas:tank/home (and tank/home/alice) to two targets with protection
resumable: `offsite` (backup:vault/nas) and `cold` (cold:vault/cold). `offsite` is retired, or
removed from the manifest without being retired; `cold` must never notice.
"""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest

from reconciler.cli import EXIT_ERROR, EXIT_OK, Console, Services, main
from reconciler.core.desired import intents
from reconciler.core.leftovers import OrphanKind, find_orphans
from reconciler.core.names import parse_any_cursor_bookmark
from reconciler.core.state import HostState
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.models import Host
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS
from tests.notation import observed_from

NOW = "2026-11-26T12:00:00Z"
LATER = "2026-11-26T12:15:00Z"
OFFSITE_TAG = "zr_:home:offsite"
COLD_TAG = "zr_:home:cold"
SOURCES = ("tank/home", "tank/home/alice")
HOST = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: {name}}}
spec: {{transport: local}}
---
"""
POLICY = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home<": true}}
  snapshots: {prefix: zr_, interval: 15m}
  retention: {keep: [{lastN: 2}]}
  replication:
    - name: cold
      host: cold
      root: vault/cold
"""
OFFSITE = """\
    - name: offsite
      host: backup
      root: vault/nas
      retention: {keep: [{lastN: 5}]}
"""


def manifest_text(offsite: str | None) -> str:
    """The manifests; `offsite` None leaves that target out, else it is appended verbatim."""
    hosts = "".join(HOST.format(name=name) for name in ("nas", "backup", "cold"))
    return hosts + POLICY + (OFFSITE + offsite if offsite is not None else "")


class Fleet:
    def __init__(self, path: Path) -> None:
        self.path = path
        nas = ModelZFS("nas", seed=1)
        nas.create_pool("tank")
        for name in SOURCES:
            nas.create(name)
            nas.write(name, 1 << 16)
        self.hosts = {"nas": nas}
        for name in ("backup", "cold"):
            host = ModelZFS(name, seed=len(self.hosts) + 1)
            host.create_pool("vault")
            self.hosts[name] = host

    def connect(self, host: Host) -> ZFS:
        return self.hosts[host.metadata.name]

    def write_manifest(self, offsite: str | None) -> None:
        self.path.write_text(manifest_text(offsite))

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        args = [*argv, "-f", str(self.path)]
        code = main(args, Console(out, err), Services(connect=self.connect))
        return code, out.getvalue(), err.getvalue()

    def reconcile(self, now: str) -> tuple[int, str]:
        """One applying pass at `now`: (exit code, stdout)."""
        code, out, _ = self.run("--now", now)
        return code, out

    def state(self, host: str) -> HostState:
        return self.hosts[host].observe()


def holds_with(state: HostState, tag: str) -> list[str]:
    return sorted(
        f"{fs.name}@{v.name}"
        for fs in state.filesystems.values()
        for v in fs.snapshots
        if tag in v.holds
    )


def cursors_of(state: HostState, target: str) -> list[str]:
    return sorted(
        f"{fs.name}#{v.name}"
        for fs in state.filesystems.values()
        for v in fs.bookmarks
        if v.name.endswith("_" + target)
    )


def snapshots_of(state: HostState) -> dict[str, list[str]]:
    return {fs.name: [v.name for v in fs.snapshots] for fs in state.filesystems.values()}


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    """Both targets replicated once, with their holds and cursor bookmarks in place."""
    fleet = Fleet(tmp_path / "manifests.yaml")
    fleet.write_manifest("")
    code, out = fleet.reconcile(NOW)
    assert code == EXIT_OK, out
    nas = fleet.state("nas")
    assert len(holds_with(nas, OFFSITE_TAG)) == 2 and len(cursors_of(nas, "offsite")) == 2
    assert len(holds_with(fleet.state("backup"), OFFSITE_TAG)) == 2
    return fleet


def test_retiring_releases_holds_and_cursors_and_nothing_else(fleet: Fleet) -> None:
    backup_before = snapshots_of(fleet.state("backup"))
    fleet.write_manifest("      retiring: true\n")
    code, out = fleet.reconcile(LATER)
    assert code == EXIT_OK, out
    assert "target offsite is retiring" in out
    nas, backup, cold = fleet.state("nas"), fleet.state("backup"), fleet.state("cold")
    assert holds_with(nas, OFFSITE_TAG) == [] and cursors_of(nas, "offsite") == []
    assert holds_with(backup, OFFSITE_TAG) == []
    assert snapshots_of(backup) == backup_before  # nothing sent to it, nothing destroyed there
    later = "zr_20261126T121500Z"  # cold got the new snapshot, its holds and cursor moved
    assert holds_with(nas, COLD_TAG) == sorted(f"{fs}@{later}" for fs in SOURCES)
    assert cursors_of(nas, "cold") == sorted(f"{fs}#{later}_cold" for fs in SOURCES)
    assert holds_with(cold, COLD_TAG) == sorted(f"vault/cold/{fs}@{later}" for fs in SOURCES)
    code, out, _ = fleet.run("--dry-run", "--now", LATER, "--detailed-exitcode")
    assert code == EXIT_OK, out  # converged


def test_status_says_a_retired_target_can_be_removed(fleet: Fleet) -> None:
    fleet.write_manifest("      retiring: true\n")
    code, out, _ = fleet.run("status", "--now", NOW)
    assert code == EXIT_OK, out  # retiring is healthy
    assert "retiring: 2 holds and 1 cursor bookmark left; the next pass releases" in out
    assert fleet.reconcile(LATER)[0] == EXIT_OK
    code, out, _ = fleet.run("status", "--now", LATER)
    assert code == EXIT_OK, out
    assert "  target offsite is retired: can be removed from the manifest" in out
    assert "warning" not in out
    code, out, _ = fleet.run("status", "--now", LATER, "--output", "json")
    document = json.loads(out)
    policy = document["policies"][0]
    offsite = next(t for t in policy["targets"] if t["name"] == "offsite")
    assert {r["condition"] for r in offsite["filesystems"]} == {"retired"}
    assert all(
        r["message"].endswith("can be removed from the manifest") for r in offsite["filesystems"]
    )
    cold = next(t for t in policy["targets"] if t["name"] == "cold")
    assert {r["condition"] for r in cold["filesystems"]} == {"in_sync"}
    assert document["ok"] is True and document["orphans"] == []


def test_an_unreachable_retiring_target_keeps_its_side_until_observed(fleet: Fleet) -> None:
    fleet.write_manifest("      retiring: true\n")
    fleet.hosts["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    code, out = fleet.reconcile(LATER)
    assert code == EXIT_ERROR, out  # a host not observed
    assert holds_with(fleet.state("nas"), OFFSITE_TAG) == []
    assert len(cursors_of(fleet.state("nas"), "offsite")) == 2  # they lead to backup's holds
    code, out, _ = fleet.run("status", "--now", LATER)
    assert code == EXIT_ERROR
    assert "host backup could not be observed" in out and "stay until it can be" in out
    assert "retired" not in out
    fleet.hosts["backup"].set_unreachable(None)
    assert len(holds_with(fleet.state("backup"), OFFSITE_TAG)) == 2
    code, out = fleet.reconcile(LATER)
    assert code == EXIT_OK, out
    assert holds_with(fleet.state("backup"), OFFSITE_TAG) == []
    assert cursors_of(fleet.state("nas"), "offsite") == []
    assert "target offsite is retired" in fleet.run("status", "--now", LATER)[1]


def test_a_target_removed_without_retiring_is_listed_with_commands(fleet: Fleet) -> None:
    fleet.write_manifest(None)
    code, out, _ = fleet.run("status", "--now", NOW)
    assert code == EXIT_OK, out  # orphans warn, they do not fail
    snapshot = "zr_20261126T120000Z"
    assert (
        "warning: 4 managed holds and cursor bookmarks belong to targets no manifest declares "
        "(removed without retiring); clean up with:\n"
        "  policy home, target offsite: run on host nas:\n"
        f"    zfs release zr_:home:offsite tank/home@{snapshot}\n"
        f"    zfs destroy 'tank/home#{snapshot}_offsite'\n"
        f"    zfs release zr_:home:offsite tank/home/alice@{snapshot}\n"
        f"    zfs destroy 'tank/home/alice#{snapshot}_offsite'\n"
    ) in out
    assert "retiring: true" in out and "4 orphaned" in out
    code, out, _ = fleet.run("status", "--now", NOW, "--output", "json")
    orphans = json.loads(out)["orphans"]
    assert orphans[0] == {
        "kind": "hold",
        "host": "nas",
        "policy": "home",
        "target": "offsite",
        "filesystem": "tank/home",
        "version": f"@{snapshot}",
        "tag": OFFSITE_TAG,
        "argv": ["zfs", "release", OFFSITE_TAG, f"tank/home@{snapshot}"],
        "command": f"zfs release zr_:home:offsite tank/home@{snapshot}",
    }
    for orphan in orphans:  # what the user runs on nas, by the printed command
        run_on_model(fleet.hosts[orphan["host"]], orphan["command"])
    assert holds_with(fleet.state("nas"), OFFSITE_TAG) == []
    assert cursors_of(fleet.state("nas"), "offsite") == []
    assert json.loads(fleet.run("status", "--now", NOW, "--output", "json")[1])["orphans"] == []
    assert holds_with(fleet.state("nas"), COLD_TAG)  # cold untouched


def run_on_model(model: ModelZFS, command: str) -> None:
    """The model is not a shell: split the printed command and call the verb it names."""
    match shlex.split(command):
        case ["zfs", "release", tag, full]:
            filesystem, _, snapshot = full.partition("@")
            model.release(filesystem, snapshot, tag)
        case ["zfs", "destroy", full]:
            filesystem, _, bookmark = full.partition("#")
            model.destroy(filesystem, ["#" + bookmark])
        case other:
            raise AssertionError(f"unexpected command {other}")


def test_orphan_commands_quote_names_with_spaces(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "manifests.yaml")
    fleet.hosts["nas"].create("tank/home/my docs")
    fleet.write_manifest("")
    assert fleet.reconcile(NOW)[0] == EXIT_OK
    fleet.write_manifest(None)
    out = fleet.run("status", "--now", NOW, "--output", "json")[1]
    commands = [o["command"] for o in json.loads(out)["orphans"]]
    snapshot = "zr_20261126T120000Z"
    assert f"zfs release zr_:home:offsite 'tank/home/my docs@{snapshot}'" in commands
    assert f"zfs destroy 'tank/home/my docs#{snapshot}_offsite'" in commands
    for command in commands:
        run_on_model(fleet.hosts["nas"], command)
    assert holds_with(fleet.state("nas"), OFFSITE_TAG) == []


def test_re_declaring_a_removed_target_as_retiring_cleans_up(fleet: Fleet) -> None:
    fleet.write_manifest(None)
    assert fleet.reconcile(LATER)[0] == EXIT_OK  # offsite's holds keep its snapshot meanwhile
    assert len(holds_with(fleet.state("nas"), OFFSITE_TAG)) == 2
    # the holds sit on the older snapshot of its cursor, not the newest: status still sees them
    orphans = json.loads(fleet.run("status", "--now", LATER, "--output", "json")[1])["orphans"]
    assert sorted((o["filesystem"], o["version"]) for o in orphans if o["kind"] == "hold") == [
        (fs, "@zr_20261126T120000Z") for fs in sorted(SOURCES)
    ]
    fleet.write_manifest("      retiring: true\n")
    assert fleet.reconcile(LATER)[0] == EXIT_OK
    nas = fleet.state("nas")
    assert holds_with(nas, OFFSITE_TAG) == [] and cursors_of(nas, "offsite") == []
    assert holds_with(fleet.state("backup"), OFFSITE_TAG) == []


@pytest.mark.parametrize("value", ['"yes"', "1", "null"])
def test_retiring_must_be_a_boolean(tmp_path: Path, value: str) -> None:
    fleet = Fleet(tmp_path / "manifests.yaml")
    fleet.write_manifest(f"      retiring: {value}\n")
    code, out, err = fleet.run("validate")
    assert code == EXIT_ERROR and out == ""
    errors = [line for line in err.splitlines() if "retiring" in line]
    assert len(errors) == 1 and errors[0].startswith(f"{fleet.path}:")
    assert "Traceback" not in err


# --- the pure parts: names and orphans ---------------------------------------------------------


@pytest.mark.parametrize(
    ("bookmark", "parsed"),
    [
        ("zr_20261126T120000Z_offsite", ("zr_20261126T120000Z", "offsite")),
        ("zr_20261126T120000Z_a_b", ("zr_20261126T120000Z", "a_b")),
        ("zr_20261126T120000Z_", None),  # no target
        ("zr_20261126T120000Z", None),
        ("zr_20261126T120000Zxoffsite", None),
        ("zr_20261131T120000Z_offsite", None),  # no 31st of November
        ("zm_20261126T120000Z_offsite", None),  # another prefix
        ("manual_offsite", None),
    ],
)
def test_parse_any_cursor_bookmark(bookmark: str, parsed: tuple[str, str] | None) -> None:
    assert parse_any_cursor_bookmark("zr_", bookmark) == parsed


ORPHAN_MANIFESTS = manifest_text(None) + (
    "---\n"
    "apiVersion: zfs-reconciler.dev/v1alpha1\n"
    "kind: Policy\n"
    "metadata: {name: monthly}\n"
    "spec:\n"
    '  source: {host: nas, filesystems: {"tank/home": true}}\n'
    "  snapshots: {prefix: zm_}\n"
)


def test_only_our_names_of_undeclared_targets_of_declared_policies_are_orphans() -> None:
    snapshot = "zr_20261126T120000Z"
    tags = [
        "zr_:home:cold",  # declared
        "zr_:home:gone",  # orphan
        "zr_:away:gone",  # a policy no manifest declares: whose?
        "zm_:home:gone",  # policy home's name with another prefix: not home's
        "zm_:monthly:old",  # orphan of policy monthly
        "keep",  # foreign
    ]
    observed = observed_from(
        {
            "nas": {
                "tank/home": f"{snapshot}[{','.join(tags)}] #{snapshot}_cold={snapshot} "
                f"#{snapshot}_gone={snapshot} #mine={snapshot} #zm_20261126T120000Z_old"
            },
            "cold": {"vault/cold/tank/home": f"{snapshot}[zr_:home:cold,zr_:home:gone]"},
            "backup": {"unreachable": "ssh: connect to host backup: Connection refused"},
        }
    )
    manifests = parse_manifests([("m.yaml", ORPHAN_MANIFESTS)])
    orphans = find_orphans(intents(manifests), observed)
    assert [(o.host, o.policy, o.target, o.filesystem, o.version, o.tag) for o in orphans] == [
        ("cold", "home", "gone", "vault/cold/tank/home", f"@{snapshot}", "zr_:home:gone"),
        ("nas", "home", "gone", "tank/home", f"@{snapshot}", "zr_:home:gone"),
        ("nas", "home", "gone", "tank/home", f"#{snapshot}_gone", None),
        ("nas", "monthly", "old", "tank/home", f"@{snapshot}", "zm_:monthly:old"),
        ("nas", "monthly", "old", "tank/home", "#zm_20261126T120000Z_old", None),
    ]
    assert orphans[0].kind is OrphanKind.HOLD and orphans[2].kind is OrphanKind.BOOKMARK
    assert orphans[2].command == f"zfs destroy 'tank/home#{snapshot}_gone'"
    only_monthly = find_orphans(intents(manifests, ["monthly"]), observed)
    assert {o.policy for o in only_monthly} == {"monthly"} and len(only_monthly) == 2


def test_orphan_commands_start_with_the_hosts_zfs_command(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "manifests.yaml")
    fleet.write_manifest("")
    assert fleet.reconcile(NOW)[0] == EXIT_OK
    text = manifest_text(None).replace(
        "metadata: {name: nas}\nspec: {transport: local}",
        "metadata: {name: nas}\nspec: {transport: local, zfsCommand: [sudo, -n, zfs]}",
    )
    assert "zfsCommand: [sudo, -n, zfs]" in text
    fleet.path.write_text(text)
    out = fleet.run("status", "--now", NOW, "--output", "json")[1]
    orphans = json.loads(out)["orphans"]
    assert orphans and all(o["argv"][:3] == ["sudo", "-n", "zfs"] for o in orphans)
    snapshot = "zr_20261126T120000Z"
    assert orphans[0]["command"] == f"sudo -n zfs release zr_:home:offsite tank/home@{snapshot}"
