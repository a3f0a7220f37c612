"""The real driver on the guest's OpenZFS: a runner into the guest, and contract hosts.

Owned here: `GuestRunner` (a `CommandRunner` whose commands run inside the qemu guest: whole
commands through the guest agent, pipeline ends through `Guest.exec_argv`, so the driver's
send | receive pipeline is two local processes joined by an OS pipe exactly as in production)
and `GuestContractHost` (the real `ZfsDriver` plus the test-setup verbs the contract suite
needs: write, fingerprint, properties, encryption, zvols, a cut stream).

`interrupt_next_receive(n)` is done at the runner boundary: the next `zfs receive` this runner
starts reads its stream through `head -c n`, as `zfs send | head -c n | zfs receive -s` would.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Sequence

from platform_tests.harness.vm import Guest
from reconciler.zfs.driver import ZfsDriver
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.runner import Completed

PASSPHRASE = "contract-passphrase"
_roots = itertools.count(1)


class GuestRunner:
    """Runs commands in the guest as host `host`."""

    def __init__(self, guest: Guest, host: str) -> None:
        self.guest = guest
        self._host = host
        self.cut_next_receive: int | None = None
        self.commands: list[tuple[str, ...]] = []  # every command started, for counting

    @property
    def host(self) -> str:
        return self._host

    def wrap(self, argv: Sequence[str]) -> list[str]:
        self.commands.append(tuple(argv))
        if self.cut_next_receive is not None and "receive" in argv:
            cut, self.cut_next_receive = self.cut_next_receive, None
            argv = ["sh", "-c", f'head -c {cut} | "$@"', "sh", *argv]
        return self.guest.exec_argv(argv)

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None
    ) -> Completed:
        self.commands.append(tuple(argv))
        done = self.guest.run(argv, input=input, timeout=timeout)
        return Completed(tuple(argv), done.returncode, done.stdout, done.stderr)


class GuestContractHost(ZfsDriver):
    """A contract host: the real driver, limited to its own root, plus the setup verbs."""

    def __init__(self, guest: Guest, name: str, pool: str) -> None:
        self.guest = guest
        self._root = f"{pool}/c{next(_roots)}"
        # atime=off (inherited below the root): reading data for a fingerprint writes nothing
        self.sh(f"zfs create -o atime=off {_q(self._root)}")
        self.guest_runner = GuestRunner(guest, name)
        super().__init__(self.guest_runner, roots=(self._root,))

    @property
    def root(self) -> str:
        return self._root

    def sh(self, script: str) -> str:
        done = self.guest.sh(script)
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip()
            raise ZFSError("guest", "", f"setup failed: {script}: {detail}")
        return done.stdout.decode("utf-8", "replace")

    def _mounted(self, filesystem: str) -> str:
        """Mount the filesystem (read-only if it was received unmounted); its mountpoint."""
        fs = _q(filesystem)
        return self.sh(
            f'[ "$(zfs get -H -o value mounted {fs})" = yes ] || zfs mount {fs}; '
            f"zfs get -H -o value mountpoint {fs}"
        ).strip()

    def write(self, filesystem: str, nbytes: int) -> None:
        where = self._mounted(filesystem)
        pool = filesystem.split("/", 1)[0]
        blocks = max(1, nbytes // 65536)
        self.sh(
            f"dd if=/dev/urandom of={_q(where)}/data.$(date +%s%N) bs=64k count={blocks} "
            f"status=none && zpool sync {_q(pool)}"
        )

    def fingerprint(self, dataset: str) -> str:
        filesystem, _, snapshot = dataset.partition("@")
        where = self._mounted(filesystem)
        if snapshot:
            where = f"{where}/.zfs/snapshot/{snapshot}"
        return self.sh(
            f"cd {_q(where)} && find . -type f | LC_ALL=C sort | "
            f'while IFS= read -r f; do printf \'%s \' "$f"; sha256sum < "$f"; done | sha256sum'
        ).split()[0]

    def set_property(self, filesystem: str, name: str, value: str) -> None:
        self.sh(f"zfs set {_q(f'{name}={value}')} {_q(filesystem)}")

    def get_property(self, filesystem: str, name: str) -> tuple[str, str] | None:
        out = self.sh(f"zfs get -H -p -o value,source {_q(name)} {_q(filesystem)}").rstrip("\n")
        value, _, source = out.partition("\t")
        return None if value == "-" else (value, source)

    def create_encrypted(self, filesystem: str) -> None:
        self.sh(
            f"printf '%s\\n' {_q(PASSPHRASE)} | zfs create -o encryption=on "
            f"-o keyformat=passphrase -o keylocation=prompt {_q(filesystem)}"
        )

    def unload_key(self, filesystem: str) -> None:
        fs = _q(filesystem)
        self.sh(f"zfs unmount {fs} 2>/dev/null; zfs unload-key {fs}")

    def create_volume(self, filesystem: str) -> None:
        self.sh(f"zfs create -V 16M {_q(filesystem)}")

    def interrupt_next_receive(self, after_bytes: int) -> None:
        self.guest_runner.cut_next_receive = after_bytes

    def cleanup(self) -> None:
        destroy_roots(self.guest, self._root)


def destroy_roots(guest: Guest, *roots: str) -> None:
    """Release every hold on the snapshots under the roots, then destroy the roots, all at
    once. A held snapshot makes `zfs destroy -r` fail (even with -f), and the leftovers
    would slow every later listing of the shared pools."""
    quoted = " ".join(map(_q, roots))
    guest.sh(
        "tab=\"$(printf '\\t')\"; "
        f"zfs list -H -p -t snapshot -o name,userrefs -r {quoted} 2>/dev/null | "
        "awk -F'\\t' '$2 > 0 { print $1 }' | tr '\\n' '\\0' | xargs -0 -r zfs holds -H | "
        'while IFS="$tab" read -r snap tag _; do zfs release "$tag" "$snap"; done; '
        + " ".join(f"zfs destroy -r -f {root} &" for root in map(_q, roots))
        + " wait"
    )


def _q(text: str) -> str:
    return shlex.quote(text)
