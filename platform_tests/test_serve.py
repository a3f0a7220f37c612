"""`reconcile serve` as the forced command of a key, behind the guest's real sshd.

The target host `dst` of these manifests is the guest reached over ssh with a key of its own
whose authorized_keys line is `command="... -m reconciler serve --root {dst} --log ...",restrict`
(the guest runs this checkout and its venv at the same paths); the source `src` is the guest as
usual. A full replication (initial send, incremental, prune on the target) converges through
the forced command unchanged. Then the same key is used the way a compromised source would use
it, with plain `ssh` and hand-made command lines: each attempt is refused (exit 126, one stderr
line), the target's datasets are unchanged, and each attempt is in the log.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from platform_tests.conftest import Roots
from platform_tests.harness.vm import Guest
from platform_tests.scenario import REPO, Scenario, ssh_host_document
from reconciler.zfs.runner import SshRunner

AUTHORIZED = "/run/zr/ssh/id_ed25519.pub"  # the guest sshd's AuthorizedKeysFile
SOURCE_HOST = {
    "apiVersion": "zfs-reconciler.dev/v1alpha1",
    "kind": "Host",
    "metadata": {"name": "src"},
    "spec": {"transport": "local"},
}


class Confined:
    """The serve key: its file on this machine, its log in the guest, and plain ssh with it."""

    def __init__(self, guest: Guest, key: Path, log: str) -> None:
        self.guest, self.key, self.log = guest, key, log

    def options(self) -> list[str]:
        # no master connection: one shared with another key to the same user@host:port would
        # carry this key's commands over that key's session
        return [*self.guest.ssh_destination().options, "ControlMaster=no", "ControlPath=none"]

    def ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        destination = self.guest.ssh_destination()
        argv = ["ssh", "-i", str(self.key), "-p", str(destination.port)]
        for option in self.options():
            argv += ["-o", option]
        argv += [f"{destination.user}@{destination.host}", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    def records(self) -> list[dict[str, Any]]:
        text = self.guest.sh(f"cat {shlex.quote(self.log)} 2>/dev/null").stdout.decode()
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def confined(guest: Guest, roots: Roots, tmp_path: Path) -> Iterator[Confined]:
    key = tmp_path / "serve_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    zfs = guest.sh("command -v zfs", check=True).stdout.decode().strip()
    log = f"/run/zr/serve-{roots.dst.replace('/', '-')}.log"
    serve = (
        f"cd {REPO} && exec {sys.executable} -m reconciler serve --root {roots.dst} "
        f"--log {log} --zfs {zfs}"
    )
    line = f'command="{serve}",restrict {key.with_suffix(".pub").read_text().strip()}'
    saved = guest.sh(f"cat {AUTHORIZED}", check=True).stdout
    guest.sh(f"printf '%s\\n' {shlex.quote(line)} >> {AUTHORIZED}", check=True)
    yield Confined(guest, key, log)
    guest.run(["sh", "-c", f"cat > {AUTHORIZED}"], input=saved).check()


@pytest.fixture
def s(guest: Guest, roots: Roots, tmp_path: Path, confined: Confined) -> Iterator[Scenario]:
    scenario = Scenario(guest, roots.src, roots.dst, tmp_path)
    target = ssh_host_document("dst", guest.ssh_destination(), ["zfs"])
    target["spec"]["ssh"]["identityFile"] = str(confined.key)
    # the guest's own options only: no ControlPath=none. Sessions are per key
    # (`SshRunner._control_path`), so this Host never rides on the unconfined key's session.
    text = "---\n".join(json.dumps(d) + "\n" for d in (SOURCE_HOST, target))
    (scenario.directory / "manifests" / "hosts.yaml").write_text(text)
    yield scenario
    scenario.cleanup()


def _policy(filesystem: str) -> dict[str, Any]:
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": {
            "source": {"host": "src", "filesystems": {f"{filesystem}<": True}},
            "snapshots": {"prefix": "zr_", "interval": "15m"},
            "retention": {"keep": [{"lastN": 3}]},
            "replication": [
                {
                    "name": "backup",
                    "host": "dst",
                    "root": "{dst}",
                    "retention": {"keep": [{"lastN": 1}]},
                }
            ],
        },
    }


def _listing(guest: Guest, root: str) -> str:
    """Every dataset under the pool of `root`, with its GUID: what an attack must not change."""
    pool = root.split("/")[0]
    argv = ["zfs", "list", "-H", "-p", "-r", "-t", "all", "-o", "name,guid", pool]
    return guest.run(argv).check().stdout.decode()


def test_a_replication_converges_through_the_forced_command(
    s: Scenario, confined: Confined
) -> None:
    data = f"{s.src}/data"
    s.create(data, nbytes=256 << 10)
    s.policy(_policy(data))
    # a master session of the unconfined key to the same user@host:port, kept for 60 s: were
    # sessions shared per destination, the passes below would run in it, past the forced
    # command, and its log would miss them
    destination = s.guest.ssh_destination()
    unconfined = SshRunner(
        "root-key",
        destination.host,
        port=destination.port,
        user=destination.user,
        identity_file=destination.identity_file,
        options=tuple(destination.options),
    )
    assert unconfined.run(["zfs", "list", "-H", "-o", "name", s.dst]).returncode == 0
    for minutes in (0, 15, 30):
        s.at(minutes)
        outcome = s.reconcile()
        assert outcome.code == 0, outcome.stderr
        assert set(outcome.statuses()) == {"ok"}, outcome.stdout
    assert list(s.guids("dst", s.target(data))) == ["zr_20261126T003000Z"]  # pruned to 1
    assert s.dry_run().code == 0
    records = confined.records()
    verbs = {r["argv"][1] for r in records if r["verdict"] == "allowed"}
    assert {"list", "receive", "destroy"} <= verbs, verbs
    assert not [r for r in records if r["verdict"] == "refused"], records


def test_a_compromised_source_with_the_key_cannot_change_the_target(
    s: Scenario, confined: Confined, guest: Guest
) -> None:
    data = f"{s.src}/data"
    s.create(data, nbytes=128 << 10)
    s.policy(_policy(data))
    s.at(0)
    assert s.reconcile().code == 0
    target = s.target(data)
    snapshot = f"{target}@zr_20261126T000000Z"
    attacks = [
        f"zfs destroy -r {s.dst}",
        f"zfs destroy {target}",
        f"zfs destroy -R {snapshot}",
        f"zfs rollback -r {snapshot}",
        f"zfs receive -s -u -F {target}",
        "zfs create -u -p dst/escaped",
        f"zfs create -u -p {s.dst}/../escaped",
        f"zfs destroy {s.dst}/..@x",
        f"zfs create -u -p {s.dst}/a b",
        f"zfs create -u -p '{s.dst}/x;zfs destroy -r dst'",
        f"zfs list -H -p {s.dst}; zfs destroy -r {s.dst}",
        f"zfs create -u -p '{s.dst}/x\nzfs destroy -r dst'",  # a real newline
        f"zfs destroy -R {s.dst}",
        "zfs destroy -Rf dst",
        f"zfs set mountpoint=/etc {target}",
        "zpool destroy dst",
        "sh -c 'zfs destroy -r dst'",
    ]
    before = _listing(guest, s.dst)
    for attack in attacks:
        done = confined.ssh(attack)
        assert done.returncode == 126, (attack, done)
        assert done.stderr.startswith("reconcile serve: refused: "), (attack, done.stderr)
        assert done.stderr.count("\n") == 1, (attack, done.stderr)
    assert _listing(guest, s.dst) == before
    refused = [r["command"] for r in confined.records() if r["verdict"] == "refused"]
    assert refused == attacks
