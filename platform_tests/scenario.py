"""End-to-end scenario kit: manifests on disk, `reconcile` passes on the guest's real pools.

Owned here: `Scenario`, `Outcome` and `ScenarioRunner`, used by `platform_tests/test_scenarios.py`.
A scenario owns the roots `src/t<N>` (the source host's filesystems) and `dst/t<N>` (the
target's); both hosts of its manifests, `src` and `dst`, are the guest, reached by the real
`ZfsDriver` through a `GuestRunner`. `reconcile(...)` runs the real CLI (`reconciler.cli.main`)
in this process with `--now` driving time, and returns what it printed; `observe(...)` reads the
pools back through the same driver, and `sh(...)` does what an administrator would do by hand.

A host whose manifest says `transport: ssh` is reached with the real ssh runner
(`reconciler.zfs.connect`), so `dst_offline()` (the target's manifest pointing at a closed
port) makes a target really unreachable for a pass. `before(host, verb, script)` runs a guest
shell script just before that host's next `zfs <verb>` of the pass: how a change that lands
between the pass's observation and its action (a `zfs hold` by someone else) is staged.

`ssh_hosts(destination)` makes both hosts the guest's real sshd (`transport: ssh`), and
`command(...)` gives the argv of a `reconcile` process with the real, default connect: what
`platform_tests/test_ssh.py` runs. The ssh master connections those processes leave behind
(ControlPersist) live under the scenario's own runtime directory and are closed by
`close_ssh()`.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from platform_tests.guest_zfs import GuestRunner, destroy_roots
from platform_tests.harness.vm import Guest, SshDestination
from reconciler.cli import Console, Services, main
from reconciler.core.state import FilesystemState, Version
from reconciler.manifest.models import Host, Transport
from reconciler.zfs.connect import connect as connect_for_real
from reconciler.zfs.driver import ZfsDriver
from reconciler.zfs.errors import DatasetNotFound
from reconciler.zfs.port import ZFS
from reconciler.zfs.runner import Completed

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
PASSPHRASE = "scenario passphrase"
_SNAPSHOT_GUIDS = (
    "zfs", "list", "-H", "-p", "-t", "snapshot", "-s", "createtxg", "-d", "1", "-o", "name,guid",
)  # fmt: skip
CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1: ssh is refused at once
_SOURCE_HOST = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: src}
spec: {transport: local}
---
"""
_TARGET_HOST = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: dst}
spec: {transport: local}
"""
_TARGET_OFFLINE = f"""\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: dst}}
spec:
  transport: ssh
  ssh:
    host: 127.0.0.1
    port: {CLOSED_PORT}
    user: root
    options: [BatchMode=yes, ConnectTimeout=5, ControlMaster=no]
"""


@dataclass(frozen=True)
class Outcome:
    """What one `reconcile` invocation returned and printed."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def plan(self) -> dict[str, Any]:
        document = self.json()
        return dict(document.get("plan", document))

    def actions(self) -> list[dict[str, Any]]:
        return list(self.plan()["actions"])

    def kinds(self) -> list[str]:
        return [a["kind"] for a in self.actions()]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.actions() if a["kind"] == kind]

    def conflicts(self) -> list[dict[str, Any]]:
        return list(self.plan()["conflicts"])

    def notices(self) -> list[dict[str, Any]]:
        return list(self.plan()["notices"])

    def results(self) -> dict[int, dict[str, Any]]:
        """The pass's result of each action, by action id (empty for a dry run)."""
        return {r["id"]: r for r in self.json().get("results", [])}

    def statuses(self) -> list[str]:
        return [r["status"] for r in self.results().values()]


class ScenarioRunner(GuestRunner):
    """A `GuestRunner` that can run a staged guest script before a given zfs verb."""

    def __init__(self, guest: Guest, host: str) -> None:
        super().__init__(guest, host)
        self.staged: list[tuple[str, str]] = []  # (zfs verb, shell script), in order

    def _before(self, argv: Sequence[str]) -> None:
        verb = argv[1] if len(argv) > 1 and argv[0] == "zfs" else None
        for staged in list(self.staged):
            if staged[0] == verb:
                self.staged.remove(staged)
                self.guest.sh(staged[1], check=True)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        self._before(argv)
        return super().wrap(argv)

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None
    ) -> Completed:
        self._before(argv)
        return super().run(argv, input=input, timeout=timeout)


class Scenario:
    """One test's manifests, roots and passes."""

    def __init__(self, guest: Guest, src: str, dst: str, directory: Path) -> None:
        self.guest = guest
        self.src = src
        self.dst = dst
        self.directory = directory
        self.runners: dict[str, ScenarioRunner] = {}
        self.now = START
        self._runtime_dir: Path | None = None
        (directory / "manifests").mkdir(parents=True, exist_ok=True)
        self.dst_online()
        (directory / "locks").mkdir(exist_ok=True)

    def target(self, source_filesystem: str) -> str:
        """Where the target receives a source filesystem (`<dst root>/<source path>`)."""
        return f"{self.dst}/{source_filesystem}"

    # --- setup on the guest ------------------------------------------------------------------

    def sh(self, script: str) -> str:
        done = self.guest.sh(script)
        if done.returncode != 0:
            raise AssertionError(f"{script}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode("utf-8", "replace")

    def create(self, filesystem: str, *, nbytes: int = 1 << 20, encrypted: bool = False) -> None:
        """Create the filesystem (and parents) with nbytes of random data in it; encrypted:
        with a passphrase (`PASSPHRASE`) read from the prompt, and the fewest key derivation
        rounds zfs accepts (each key load costs seconds under emulation otherwise)."""
        fs = _q(filesystem)
        if encrypted:
            made = (
                f"printf '%s\\n' {_q(PASSPHRASE)} | zfs create -o encryption=on "
                f"-o keyformat=passphrase -o keylocation=prompt -o pbkdf2iters=100000 {fs}"
            )
        else:
            made = f"zfs create -p {fs}"
        self.sh(f"{made} && {_fill(filesystem, nbytes)}")

    def write(self, filesystem: str, nbytes: int = 1 << 20) -> None:
        """Write nbytes of random data into a new file of the filesystem (mounting it)."""
        self.sh(_fill(filesystem, nbytes))

    def snapshot(self, filesystem: str, *names: str) -> None:
        """Take snapshots by hand, one `zfs snapshot` each, in the order given."""
        self.sh(" && ".join(f"zfs snapshot {_q(f'{filesystem}@{n}')}" for n in names))

    def history(self, filesystem: str, names: Sequence[str], nbytes: int = 256 << 10) -> None:
        """Snapshots taken by hand in this order, with nbytes written after each."""
        self.sh(
            " && ".join(
                f"zfs snapshot {_q(f'{filesystem}@{name}')} && {_fill(filesystem, nbytes)}"
                for name in names
            )
        )

    # --- manifests and passes ----------------------------------------------------------------

    def policy(self, document: str | Mapping[str, Any], name: str = "policy.yaml") -> None:
        """Write a policy manifest (YAML text, or a mapping written as JSON, which is YAML);
        `{src}` and `{dst}` stand for this scenario's roots."""
        text = document if isinstance(document, str) else json.dumps(document, indent=1)
        body = text.replace("{src}", self.src).replace("{dst}", self.dst)
        (self.directory / "manifests" / name).write_text(body)

    def dst_offline(self) -> None:
        """From now on the target host's manifest points at a closed ssh port: unreachable."""
        (self.directory / "manifests" / "hosts.yaml").write_text(_SOURCE_HOST + _TARGET_OFFLINE)

    def dst_online(self) -> None:
        (self.directory / "manifests" / "hosts.yaml").write_text(_SOURCE_HOST + _TARGET_HOST)

    def ssh_hosts(self, destination: SshDestination, zfs_command: Sequence[str] = ("zfs",)) -> None:
        """Both hosts are the guest reached over ssh (`transport: ssh`) with this zfsCommand."""
        documents = [ssh_host_document(name, destination, zfs_command) for name in ("src", "dst")]
        text = "---\n".join(json.dumps(document, indent=1) + "\n" for document in documents)
        (self.directory / "manifests" / "hosts.yaml").write_text(text)

    def command(self, *args: str) -> list[str]:
        """The argv of a `reconcile` process on these manifests (run it with `process_env()`
        from `REPO`); an applying pass locks in the scenario's own lock directory."""
        argv = [sys.executable, "-m", "reconciler", *args, "-f", str(self.directory / "manifests")]
        argv += ["--now", self.now_text(), "--output", "json"]
        if "--dry-run" not in args:
            argv += ["--lock-dir", str(self.directory / "locks")]
        return argv

    def process_env(self) -> dict[str, str]:
        """The environment of a `reconcile` process: ssh's control sockets go to a runtime
        directory of this scenario (short: socket paths are limited to about 100 bytes)."""
        if self._runtime_dir is None:
            self._runtime_dir = Path(tempfile.mkdtemp(prefix="zr-run-"))
        return {**os.environ, "XDG_RUNTIME_DIR": str(self._runtime_dir)}

    def run_process(self, *args: str, timeout: float = 300) -> Outcome:
        done = subprocess.run(
            self.command(*args),
            cwd=REPO,
            env=self.process_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    def close_ssh(self) -> None:
        """End the ssh master connections that `reconcile` processes left running."""
        if self._runtime_dir is None:
            return
        for socket in self._runtime_dir.glob("zfs-reconciler-ssh-*/*"):
            subprocess.run(
                ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "127.0.0.1"],
                capture_output=True,
                timeout=30,
                check=False,
            )
        shutil.rmtree(self._runtime_dir, ignore_errors=True)
        self._runtime_dir = None

    def before(self, host: str, verb: str, script: str) -> None:
        """Run script in the guest just before `host`'s next `zfs <verb>` (in a later pass)."""
        self.runner(host).staged.append((verb, script))

    def runner(self, host: str) -> ScenarioRunner:
        return self.runners.setdefault(host, ScenarioRunner(self.guest, host))

    def connect(self, host: Host) -> ZFS:
        if host.spec.transport is Transport.SSH:
            return connect_for_real(host)
        return ZfsDriver(self.runner(host.metadata.name), host.spec.zfs_command)

    def at(self, minutes: int) -> str:
        """Set the scenario's clock to START + minutes and return it as `--now` text."""
        self.now = START + timedelta(minutes=minutes)
        return self.now_text()

    def now_text(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")

    # the destroy guard's limit of every pass and dry run that does not set its own: scenarios
    # about pruning would trip the default (25%), which tests/test_guard.py and the guard's
    # own scenario cover
    max_destroy = "100%"

    def reconcile(self, *args: str, output: str = "json") -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        argv = [
            *args,
            "-f",
            str(self.directory / "manifests"),
            "--now",
            self.now_text(),
            "--output",
            output,
        ]
        if args[:1] != ("status",) and "--dry-run" not in args:
            argv += ["--lock-dir", str(self.directory / "locks")]
        if args[:1] != ("status",) and not {"--max-destroy", "--force"} & set(args):
            argv += ["--max-destroy", self.max_destroy]
        code = main(argv, Console(out, err), Services(connect=self.connect))
        return Outcome(code, out.getvalue(), err.getvalue())

    def dry_run(self) -> Outcome:
        """`--dry-run --detailed-exitcode`: 0 in sync, 2 changes pending, 1 conflict."""
        return self.reconcile("--dry-run", "--detailed-exitcode")

    def cleanup(self) -> None:
        """Release every hold under both roots, then destroy them, both pools at once (a held
        snapshot makes `zfs destroy -r` fail, and leftovers would slow every later listing)."""
        destroy_roots(self.guest, self.src, self.dst)

    # --- reading the pools back --------------------------------------------------------------

    def observe(self, host: str, filesystem: str) -> FilesystemState | None:
        """The filesystem as the real driver observes it (host is the side it stands for)."""
        driver = ZfsDriver(GuestRunner(self.guest, host), roots=(filesystem,))
        try:
            return driver.observe().filesystem(filesystem)
        except DatasetNotFound:
            return None

    def versions(self, host: str, filesystem: str) -> list[Version]:
        """Snapshots and bookmarks as the real driver observes them, in createtxg order."""
        state = self.observe(host, filesystem)
        return [] if state is None else list(state.versions)

    def all_guids(self, *filesystems: str) -> dict[str, dict[str, int]]:
        """Per filesystem: snapshot name → GUID in createtxg order ({} for a filesystem that
        does not exist). One `zfs list` for all of them."""
        done = self.guest.run([*_SNAPSHOT_GUIDS, *filesystems])
        found: dict[str, dict[str, int]] = {fs: {} for fs in filesystems}
        for line in done.stdout.decode().splitlines():
            snapshot, _, guid = line.partition("\t")
            filesystem, _, name = snapshot.partition("@")
            found[filesystem][name] = int(guid)
        return found

    def guids(self, host: str, filesystem: str) -> dict[str, int]:
        """Snapshot name → GUID, in createtxg order ({} when the filesystem does not exist);
        `host` names the side (both are the guest)."""
        return self.all_guids(filesystem)[filesystem]

    def snapshots(self, host: str, filesystem: str) -> list[str]:
        """Snapshot names in createtxg order ([] when the filesystem does not exist)."""
        return list(self.guids(host, filesystem))

    def replicated(self, source: str) -> tuple[dict[str, int], dict[str, int]]:
        """(source snapshot GUIDs, its target's snapshot GUIDs) by name, in one listing."""
        target = self.target(source)
        both = self.all_guids(source, target)
        return both[source], both[target]

    def exists(self, dataset: str) -> bool:
        return self.guest.run(["zfs", "list", "-H", "-o", "name", dataset]).returncode == 0

    def inventory(self, *roots: str) -> list[tuple[str, ...]]:
        """(name, GUID, userrefs, referenced) of every dataset, snapshot and bookmark under the
        roots, in one listing: what "nothing changed" is checked against."""
        listing = ["zfs", "list", "-H", "-p", "-t", "all", "-o", "name,guid,userrefs,referenced"]
        out = self.guest.run([*listing, "-r", *roots]).check().stdout.decode()
        return sorted(tuple(line.split("\t")) for line in out.splitlines() if line)

    def holds(self, *snapshots: str) -> dict[str, set[str]]:
        """The hold tags on each `fs@snap`, in one `zfs holds`."""
        out = self.guest.run(["zfs", "holds", "-H", *snapshots]).check().stdout.decode()
        found: dict[str, set[str]] = {snapshot: set() for snapshot in snapshots}
        for line in out.splitlines():
            snapshot, tag, _ = line.split("\t")
            found[snapshot].add(tag)
        return found

    def properties(self, dataset: str, *names: str) -> dict[str, tuple[str, str]]:
        """name → (value, source), as `zfs get -H -o property,value,source` shows them."""
        argv = ["zfs", "get", "-H", "-o", "property,value,source", ",".join(names), dataset]
        out = self.guest.run(argv).check().stdout.decode()
        rows = (line.split("\t") for line in out.splitlines() if line)
        return {name: (value, source) for name, value, source in rows}

    def get(self, dataset: str, name: str) -> str:
        """A property's value."""
        return self.properties(dataset, name)[name][0]

    def fingerprints(self, *snapshots: str) -> list[str]:
        """Per `fs@snap`: a digest of every file's path and content, in one guest call. A
        filesystem that is not mounted is mounted read-only for it (reading a read-write
        mount updates atimes, which a target counts as a modification) and unmounted after."""
        script = []
        for snapshot in snapshots:
            filesystem, _, name = snapshot.partition("@")
            fs, where = _q(filesystem), _q(f"/{filesystem}")
            script.append(
                f"mounted=; mountpoint -q {where} || "
                f"{{ zfs mount -o ro {fs} && mounted=1; }} || exit 1; "
                f"cd {_q(f'/{filesystem}/.zfs/snapshot/{name}')} || exit 1; "
                "find . -type f | LC_ALL=C sort | "
                'while IFS= read -r f; do printf \'%s \' "$f"; sha256sum < "$f"; done | '
                "sha256sum; cd /; "
                f'[ -z "$mounted" ] || zfs unmount {fs}'
            )
        return [line.split()[0] for line in self.sh("; ".join(script)).splitlines()]

    def same_data(self, snapshot: str) -> bool:
        """The source's `fs@snap` and its target's copy hold the same files."""
        source, target = self.fingerprints(snapshot, self.target(snapshot))
        return source == target


def ssh_host_document(
    name: str, destination: SshDestination, zfs_command: Sequence[str]
) -> dict[str, Any]:
    """A Host manifest (as data) for the guest reached over ssh from this machine."""
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Host",
        "metadata": {"name": name},
        "spec": {
            "transport": "ssh",
            "ssh": {
                "host": destination.host,
                "port": destination.port,
                "user": destination.user,
                "identityFile": destination.identity_file,
                "options": list(destination.options),
            },
            "zfsCommand": list(zfs_command),
        },
    }


def _fill(filesystem: str, nbytes: int) -> str:
    """A shell line writing nbytes of random data into a new file of the filesystem, mounted
    first if need be. The kit's filesystems are mounted at `/<name>` (the pools at `/<pool>`,
    and no test moves a mountpoint), which saves asking zfs where."""
    where, pool = _q(f"/{filesystem}"), _q(filesystem.split("/")[0])
    return (
        f"{{ mountpoint -q {where} || zfs mount {_q(filesystem)}; }} && "
        f"dd if=/dev/urandom of={where}/data.$(date +%s%N) bs=64k "
        f"count={max(1, nbytes // 65536)} status=none && zpool sync {pool}"
    )


def _q(text: str) -> str:
    return shlex.quote(text)
