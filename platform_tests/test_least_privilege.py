"""Running without root (docs/security.md): the `zfs allow` lines `reconcile permissions` prints
are enough for a full replication cycle, each of them is needed, and in pull mode the source's
send-only account cannot touch anything outside its delegation.

The guest's sshd accepts the harness key for any user, so a user made here with `useradd` is
reached over ssh like root is. `/dev/zfs` is made 0666, as OpenZFS's udev rule
(90-zfs.rules) does on a real system: the guest has no udev. Every `zfs allow` line run here is
one `reconcile permissions` printed, run as it is by the guest's root shell.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from platform_tests.conftest import Roots
from platform_tests.harness.vm import Guest, SshDestination
from platform_tests.scenario import Outcome, Scenario, ssh_host_document
from reconciler.cli import EXIT_OK, Console, Services, main

USER = "zrep"  # the reconciler's account on both hosts (push/pull through one user)
PULL_USER = "zpull"  # pull mode: the send-only account on the source
DENIED = "permission denied"


def policy() -> dict[str, Any]:
    """`{src}/data` every 15m, the 2 newest kept on each side, replicated resumably into
    `{dst}` (which has mountpoint=none, as docs/security.md recommends for a non-root target)."""
    keep = {"keep": [{"lastN": 2}]}
    target = {"name": "backup", "host": "dst", "root": "{dst}", "retention": keep}
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": {
            "source": {"host": "src", "filesystems": {"{src}/data<": True}},
            "snapshots": {"prefix": "zr_", "interval": "15m"},
            "retention": keep,
            "replication": [target],
        },
    }


def _make_user(guest: Guest, name: str) -> None:
    quoted = shlex.quote(name)
    guest.sh(
        f"id {quoted} >/dev/null 2>&1 || useradd -m -s /bin/sh {quoted}; "
        f"usermod -p '*' {quoted} && chmod 0666 /dev/zfs",
        check=True,
    )


def _as(guest: Guest, user: str) -> SshDestination:
    return dataclasses.replace(guest.ssh_destination(), user=user)


def _hosts(s: Scenario, documents: list[dict[str, Any]]) -> None:
    text = "---\n".join(json.dumps(document, indent=1) + "\n" for document in documents)
    (s.directory / "manifests" / "hosts.yaml").write_text(text)


def _local_host(name: str) -> dict[str, Any]:
    document = ssh_host_document(name, SshDestination("h", 22, "u", "k", ()), ["zfs"])
    document["spec"] = {"transport": "local"}
    return document


def _printed_lines(s: Scenario, host: str) -> list[str]:
    """The `zfs allow` lines `reconcile permissions` prints for `host`, as printed."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["permissions", "-f", str(s.directory / "manifests"), "--output", "json"]
    assert main(argv, Console(out, err), Services()) == EXIT_OK, err.getvalue()
    hosts = {h["host"]: h for h in json.loads(out.getvalue())["hosts"]}
    return [d["command"] for d in hosts[host]["delegations"]]


def _apply_lines(s: Scenario, lines: list[str]) -> None:
    for line in lines:
        assert line.startswith("zfs allow -u "), line
        s.guest.sh(line, check=True)


def _ssh(destination: SshDestination, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        destination.argv(command), capture_output=True, text=True, timeout=120, check=False
    )


def _failed(outcome: Outcome) -> list[tuple[str, str]]:
    """(action kind, result) of each action that failed (not those skipped after it)."""
    kinds = {a["id"]: a["kind"] for a in outcome.actions()}
    return [
        (kinds[i], json.dumps(r)) for i, r in outcome.results().items() if r["status"] == "failed"
    ]


@pytest.fixture
def s(guest: Guest, roots: Roots, tmp_path: Path) -> Iterator[Scenario]:
    _make_user(guest, USER)
    guest.sh(f"zfs set mountpoint=none {shlex.quote(roots.dst)}", check=True)
    scenario = Scenario(guest, roots.src, roots.dst, tmp_path)
    scenario.ssh_hosts(_as(guest, USER), ["zfs"])
    yield scenario
    scenario.close_ssh()
    scenario.cleanup()


def _prepared(s: Scenario) -> str:
    data = f"{s.src}/data"
    s.create(data, nbytes=256 << 10)
    s.policy(policy())
    for host in ("src", "dst"):
        _apply_lines(s, _printed_lines(s, host))
    return data


def test_printed_permissions_converge_a_full_cycle_as_a_non_root_user(s: Scenario) -> None:
    data = _prepared(s)
    assert _printed_lines(s, "src") == [
        f"zfs allow -u {USER} snapshot,send,hold,release,bookmark,destroy,mount {data}"
    ]
    assert _printed_lines(s, "dst") == [
        f"zfs allow -u {USER} hold,release,destroy,mount,receive,create {s.dst}"
    ]
    kinds: list[str] = []
    for minutes in (0, 15, 30):
        s.at(minutes)
        s.write(data, 64 << 10)
        outcome = s.run_process()
        assert outcome.code == 0, outcome.stdout + outcome.stderr
        assert set(outcome.statuses()) == {"ok"}, outcome.stdout
        kinds += outcome.kinds()
    # every verb of a cycle ran as the non-root user: create -p -u of the target's parents,
    # full and incremental sends, holds and releases, cursor bookmarks, prunes on both sides
    for kind in ("snapshot", "create_parent", "send", "hold", "release", "bookmark", "destroy"):
        assert kind in kinds, kinds
    kept = ["zr_20261126T001500Z", "zr_20261126T003000Z"]
    assert list(s.guids("src", data)) == kept
    assert list(s.guids("dst", s.target(data))) == kept
    newest = [f"{data}@{kept[-1]}", f"{s.target(data)}@{kept[-1]}"]
    assert all(s.holds(*newest).values()), s.holds(*newest)
    steady = s.run_process("--dry-run", "--detailed-exitcode")
    assert (steady.code, steady.kinds()) == (0, []), steady.stdout


# (host, permission knocked out, the action kind that then fails), one pass each, in order
KNOCKOUTS = [("src", "hold", "hold"), ("src", "bookmark", "bookmark"), ("dst", "receive", "send")]


def test_each_knocked_out_permission_fails_its_action_with_permission_denied(s: Scenario) -> None:
    data = _prepared(s)
    where = {"src": data, "dst": s.dst}
    for index, (host, permission, kind) in enumerate(KNOCKOUTS):
        dataset = shlex.quote(where[host])
        s.guest.sh(f"zfs unallow -u {USER} {permission} {dataset}", check=True)
        s.at(15 * index)
        outcome = s.run_process()
        s.guest.sh(f"zfs allow -u {USER} {permission} {dataset}", check=True)
        assert outcome.code == 1, outcome.stdout + outcome.stderr
        failed = _failed(outcome)
        assert failed and all(DENIED in result for _, result in failed), failed
        assert kind in {k for k, _ in failed}, (permission, failed)
    s.at(15 * len(KNOCKOUTS))
    healed = s.run_process()
    assert healed.code == 0, healed.stdout + healed.stderr


@pytest.fixture
def pull(guest: Guest, roots: Roots, tmp_path: Path) -> Iterator[Scenario]:
    """Pull mode: the reconciler runs on the backup host (here: `dst` is local, the guest's
    root through the agent) and reaches the source over ssh as the send-only `zpull`."""
    _make_user(guest, PULL_USER)
    scenario = Scenario(guest, roots.src, roots.dst, tmp_path)
    source = ssh_host_document("src", _as(guest, PULL_USER), ["zfs"])
    source["spec"]["ssh"]["options"].append("ControlMaster=no")
    _hosts(scenario, [source, _local_host("dst")])
    yield scenario
    scenario.cleanup()


def test_pull_mode_source_account_converges_and_cannot_reach_beyond_its_delegation(
    pull: Scenario,
) -> None:
    s = pull
    data, other = f"{s.src}/data", f"{s.src}/other"
    s.create(data, nbytes=256 << 10)
    s.create(other, nbytes=64 << 10)
    s.snapshot(other, "keep")
    s.create(f"{s.src}/empty", nbytes=0)
    s.policy(policy())
    lines = _printed_lines(s, "src")
    assert lines == [
        f"zfs allow -u {PULL_USER} snapshot,send,hold,release,bookmark,destroy,mount {data}"
    ]
    _apply_lines(s, lines)  # the target is the backup host's own: no delegation there
    for minutes in (0, 15):
        s.at(minutes)
        s.write(data, 64 << 10)
        outcome = s.reconcile()
        assert outcome.code == 0, outcome.stdout + outcome.stderr
        assert set(outcome.statuses()) == {"ok"}, outcome.stdout
    snapshot = f"{data}@zr_20261126T001500Z"
    assert s.guids("dst", s.target(data))  # replicated by pulling
    account = _as(s.guest, PULL_USER)
    q = shlex.quote
    attempts = {
        "receive into its own subtree": f"zfs send {q(snapshot)} | zfs receive -u {q(data)}/x",
        "receive beside it": f"zfs send {q(snapshot)} | zfs receive -u {q(s.src)}/evil",
        "destroy a snapshot outside": f"zfs destroy {q(other)}@keep",
        "destroy a filesystem outside": f"zfs destroy {q(s.src)}/empty",
        "snapshot outside": f"zfs snapshot {q(other)}@mine",
        "rollback outside": f"zfs rollback {q(other)}@keep",
        "destroy on the backup pool": f"zfs destroy -r {q(s.dst)}",
        "delegate to itself": f"zfs allow -u {PULL_USER} receive {q(s.src)}",
    }
    for what, command in attempts.items():
        done = _ssh(account, command)
        assert done.returncode != 0, (what, done.stdout, done.stderr)
        assert DENIED in done.stderr.lower(), (what, done.stderr)
    assert not s.exists(f"{data}/x") and not s.exists(f"{s.src}/evil")
    assert s.exists(f"{other}@keep") and s.exists(f"{s.src}/empty") and s.exists(s.target(data))
    assert not s.exists(f"{other}@mine")
