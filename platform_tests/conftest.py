"""Fixtures of the platform tests: one guest per session, and fresh dataset roots per test.

`guest`: a qemu guest running real OpenZFS with pools `src` and `dst` (2 GiB sparse disks each,
mounted at /src and /dst), started once per session. If it cannot start, every test fails with
the harness's message (setup missing, or the serial console of the failed boot); nothing is
skipped. With ZFS_RECONCILER_VM_KEEP=1 the guest is left running at the end (see
`python -m platform_tests.harness --help` to reach and stop it).
`guest_share`: a host directory mounted read-write at the same path in the guest (live both ways,
unlike the rest of the host root, which the guest sees read-only and may cache).
`roots`: per test, empty filesystems `src/t<N>` and `dst/t<N>`, destroyed afterwards.
`s`: per test, a `Scenario` on those roots (platform_tests/scenario.py), cleaned up afterwards;
test files whose scenarios need more (ssh hosts, watch processes) define their own.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform_tests.guest_zfs import destroy_roots
from platform_tests.harness.vm import Guest, HarnessError, start_guest
from platform_tests.scenario import Scenario

GUEST_POOLS = {"src": "2G", "dst": "2G"}
_serial = itertools.count(1)


@dataclass(frozen=True)
class Roots:
    """One test's own empty filesystems, one per pool."""

    src: str
    dst: str


@pytest.fixture(scope="session")
def guest_share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guest-share")


@pytest.fixture(scope="session")
def guest(guest_share: Path) -> Iterator[Guest]:
    name = f"zr-pytest-{os.getpid()}"
    vm = _start(name, guest_share)
    yield vm
    if os.environ.get("ZFS_RECONCILER_VM_KEEP") == "1":
        print(
            f"\nguest {name} left running (agent 127.0.0.1:{vm.agent_port}, ssh port "
            f"{vm.ssh_port}); stop it with: python -m platform_tests.harness stop {name}",
            file=sys.stderr,
        )
    else:
        vm.stop()


def _start(name: str, share: Path) -> Guest:
    failure = ""
    try:
        return start_guest(name, GUEST_POOLS, share=[str(share)])
    except HarnessError as exc:
        failure = str(exc)
    pytest.fail(f"the platform-test guest did not start:\n{failure}", pytrace=False)


@pytest.fixture
def roots(guest: Guest) -> Iterator[Roots]:
    serial = next(_serial)
    made = Roots(src=f"src/t{serial}", dst=f"dst/t{serial}")
    guest.sh(f"zfs create {made.src} && zfs create {made.dst}", check=True)
    yield made
    destroy_roots(guest, made.src, made.dst)


@pytest.fixture
def s(guest: Guest, roots: Roots, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(guest, roots.src, roots.dst, tmp_path)
    yield scenario
    scenario.cleanup()
