"""`reconcile permissions` and `core/permissions.py`: the delegated permission sets per role and
manifest setting (docs/security.md, "Running without root"), and the command's output contract.
The platform test platform_tests/test_least_privilege.py proves the printed lines on real ZFS."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import EXIT_ERROR, EXIT_OK, Console, Services, main
from reconciler.core.desired import policy_intent
from reconciler.core.permissions import Delegation, Role, allow_argv, delegations
from reconciler.manifest.models import Host, Policy
from reconciler.zfs.port import ZFS

HOSTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: backup}
spec:
  transport: ssh
  ssh: {host: backup.example.org, user: zrep}
  zfsCommand: [zfs]
"""
POLICY = """\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home<": true, "tank/home/tmp<": false}}
  snapshots: {prefix: zr_, interval: 15m}
  retention: {keep: [{lastN: 5}]}
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      retention: {keep: [{lastN: 5}]}
      receive:
        properties: {override: {readonly: "on", "com.example:tag": x}, inherit: [mountpoint]}
"""


def _policy(spec: dict[str, Any], name: str = "p") -> Policy:
    base: dict[str, Any] = {"source": {"host": "nas", "filesystems": {"tank/a<": True}}}
    base["snapshots"] = {"prefix": "zr_"}
    return Policy.model_validate(
        {
            "apiVersion": "zfs-reconciler.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": name},
            "spec": {**base, **spec},
        }
    )


def _target(**fields: Any) -> dict[str, Any]:
    return {"name": "t", "host": "backup", "root": "vault/r", **fields}


def _sets(spec: dict[str, Any]) -> dict[Role, tuple[str, ...]]:
    found = delegations([policy_intent(_policy(spec))])
    return {d.role: d.permissions for d in found}


# (manifest settings, source permissions, target permissions); "-": no delegation at all
CASES: list[tuple[str, dict[str, Any], tuple[str, ...], tuple[str, ...] | None]] = [
    ("snapshots only, no targets", {"snapshots": {"prefix": "zr_", "interval": "1h"}},
     ("snapshot",), None),
    ("source retention destroys snapshots: needs mount",
     {"snapshots": {"prefix": "zr_", "interval": "1h"}, "retention": {"keep": [{"lastN": 1}]}},
     ("snapshot", "destroy", "mount"), None),
    ("resumable (default): holds both sides, cursor bookmark",
     {"replication": [_target()]},
     ("send", "hold", "release", "bookmark", "destroy"),
     ("hold", "release", "mount", "receive", "create")),
    ("incremental: cursor, no holds",
     {"replication": [_target(protection="incremental")]},
     ("send", "bookmark", "destroy"), ("mount", "receive", "create")),
    ("none: send only",
     {"replication": [_target(protection="none")]},
     ("send",), ("mount", "receive", "create")),
    ("target retention destroys on the target",
     {"replication": [_target(protection="none", retention={"keep": [{"lastN": 2}]})]},
     ("send",), ("destroy", "mount", "receive", "create")),
    ("allowRollback: rollback and destroy (rollback -r)",
     {"replication": [_target(protection="none", receive={"allowRollback": True})]},
     ("send",), ("destroy", "mount", "receive", "create", "rollback")),
    ("allowFullResync: destroy, never rollback",
     {"replication": [_target(protection="none", receive={"allowFullResync": True})]},
     ("send",), ("destroy", "mount", "receive", "create")),
    ("received properties: each its own permission, user properties userprop",
     {"replication": [_target(protection="none", receive={"properties": {
         "override": {"readonly": "on", "org.example:x": "1"}, "inherit": ["mountpoint"]}})]},
     ("send",), ("mount", "receive", "create", "userprop", "mountpoint", "readonly")),
    ("retiring target: releases and drops its cursors, sends nothing",
     {"replication": [_target(retiring=True)]},
     ("release", "destroy"), ("release",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "source", "target"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_permission_sets_per_setting(
    spec: dict[str, Any], source: tuple[str, ...], target: tuple[str, ...] | None
) -> None:
    sets = _sets(spec)
    assert sets.get(Role.SOURCE) == source
    assert sets.get(Role.TARGET) == target


def test_a_policy_that_does_nothing_needs_nothing() -> None:
    assert delegations([policy_intent(_policy({}))]) == ()


def test_exact_patterns_are_local_subtrees_cover_their_exact_children() -> None:
    filesystems = {"tank/a<": True, "tank/a/b": True, "tank/c": True, "tank/a/x<": False}
    spec = {"source": {"host": "nas", "filesystems": filesystems}}
    found = delegations([policy_intent(_policy({**spec, "replication": [_target()]}))])
    source = [(d.dataset, d.descendants) for d in found if d.role is Role.SOURCE]
    assert source == [("tank/a", True), ("tank/c", False)]
    line = allow_argv(next(d for d in found if d.dataset == "tank/c"), "zrep")
    assert line == ("zfs", "allow", "-u", "zrep", "-l", "send,hold,release,bookmark,destroy",
                    "tank/c")  # fmt: skip


def test_every_filesystem_pattern_prints_a_pool_placeholder(tmp_path: Path) -> None:
    text = (HOSTS + POLICY).replace('"tank/home<": true, "tank/home/tmp<": false', '"<": true')
    code, out, _ = _run(tmp_path, "--output", "json", text=text)
    hosts = {h["host"]: h for h in json.loads(out)["hosts"]}
    (source,) = hosts["nas"]["delegations"]
    assert (code, source["dataset"]) == (EXIT_OK, None)
    assert source["command"] == (
        "zfs allow -u <user> snapshot,send,hold,release,bookmark,destroy,mount <pool>"
    )


def test_policies_sharing_a_dataset_merge_with_every_reason() -> None:
    frequent = _policy({"snapshots": {"prefix": "zr_", "interval": "15m"}}, "frequent")
    monthly = _policy(
        {"snapshots": {"prefix": "mo_", "interval": "30d"}, "retention": {"keep": [{"lastN": 1}]}},
        "monthly",
    )
    (only,) = delegations([policy_intent(frequent), policy_intent(monthly)])
    assert only.policies == ("frequent", "monthly")
    assert only.permissions == ("snapshot", "destroy", "mount")
    assert only.grants[0].reasons == (
        "frequent: takes its snapshots (one `zfs snapshot` call)",
        "monthly: takes its snapshots (one `zfs snapshot` call)",
    )


# --- the command -----------------------------------------------------------------------------


def _refuse(host: Host) -> ZFS:
    raise AssertionError(f"reconcile permissions reached host {host.metadata.name}")


def _run(tmp_path: Path, *args: str, text: str = HOSTS + POLICY) -> tuple[int, str, str]:
    (tmp_path / "m.yaml").write_text(text)
    out, err = io.StringIO(), io.StringIO()
    argv = ["permissions", "-f", str(tmp_path / "m.yaml"), *args]
    code = main(argv, console=Console(stdout=out, stderr=err), services=Services(connect=_refuse))
    return code, out.getvalue(), err.getvalue()


def test_text_prints_runnable_lines_per_host_with_reasons(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path)
    assert (code, err) == (EXIT_OK, "")
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert commands == [
        "zfs allow -u zrep hold,release,destroy,mount,receive,create,userprop,mountpoint,"
        "readonly vault/nas",
        "zfs allow -u <user> snapshot,send,hold,release,bookmark,destroy,mount tank/home",
    ]
    assert "# host backup: user zrep (the Host's ssh.user)" in out
    assert "# host nas: user <user> (replace <user>" in out
    assert "#   readonly    home/offsite: receive.properties.override sets readonly (-o)" in out
    assert "#   rollback" not in out  # allowRollback is not set


def test_user_option_fills_hosts_without_one_and_never_overrides_ssh_user(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path, "--user", "backup-agent")
    assert code == EXIT_OK
    assert "zfs allow -u backup-agent snapshot," in out
    assert "zfs allow -u zrep hold," in out
    assert "<user>" not in out


def test_json_is_one_document_with_commands_and_reasons(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "--output", "json")
    assert (code, err) == (EXIT_OK, "")
    document = json.loads(out)
    assert document["format_version"] == 1
    hosts = {h["host"]: h for h in document["hosts"]}
    (target,) = hosts["backup"]["delegations"]
    assert (target["role"], target["dataset"], target["descendants"]) == (
        "target",
        "vault/nas",
        True,
    )
    assert hosts["backup"]["user_from"] == "ssh.user"
    assert hosts["nas"]["user_from"] == "placeholder"
    assert target["reasons"]["userprop"] == [
        "home/offsite: receive.properties.override sets com.example:tag (-o); without it zfs "
        "only warns and skips it"
    ]
    assert target["command"].startswith("zfs allow -u zrep ")


def test_names_with_spaces_are_quoted_for_the_shell(tmp_path: Path) -> None:
    text = (HOSTS + POLICY).replace('"tank/home<": true', '"tank/my home<": true')
    text = text.replace('"tank/home/tmp<": false', '"tank/my home/tmp<": false')
    code, out, _ = _run(tmp_path, text=text)
    assert code == EXIT_OK
    assert "bookmark,destroy,mount 'tank/my home'\n" in out


def test_sudo_hosts_are_noted(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path, text=(HOSTS + POLICY).replace("[zfs]", "[sudo, zfs]"))
    assert code == EXIT_OK
    assert "# zfsCommand sudo zfs runs zfs as root" in out


def test_policy_option_limits_and_unknown_policy_is_one_error_line(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "--policy", "home")
    assert code == EXIT_OK and "tank/home" in out
    code, out, err = _run(tmp_path, "--policy", "nope")
    assert (code, out) == (EXIT_ERROR, "")
    assert err == "unknown policy: 'nope'\n"


def test_invalid_manifest_and_bad_options_fail_cleanly(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, text=HOSTS + POLICY.replace("lastN: 5", "lastN: -1", 1))
    assert (code, out) == (EXIT_ERROR, "")
    assert "m.yaml:" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, "--output", "yaml")
    assert exit_info.value.code == 2


@pytest.mark.parametrize("user", ["", "-R", "a,b", "two words", "new\nline"])
def test_hostile_user_names_are_a_usage_error(
    tmp_path: Path, user: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, f"--user={user}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a user name for zfs allow" in err


def test_no_policy_needing_anything_says_so(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path, text=HOSTS)
    assert (code, out) == (EXIT_OK, "# no policy needs any delegated permission\n")


def test_every_delegation_has_a_reason_for_each_permission() -> None:
    found = delegations([policy_intent(_policy({"replication": [_target()]}))])
    assert all(isinstance(d, Delegation) and all(g.reasons for g in d.grants) for d in found)
