"""The ZFS port's contract suite on real OpenZFS: the same checks the model passes in `make test`.

Each check gets fresh hosts: roots of their own under pool `src` (host "src") or `dst` (every
other host name), reached by the real `ZfsDriver` through a runner into the guest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from platform_tests.guest_zfs import GuestContractHost
from platform_tests.harness.vm import Guest
from tests.contract.zfs_contract import ALL_CHECKS, Check, ContractHost, HostFactory


@pytest.fixture
def make(guest: Guest) -> Iterator[HostFactory]:
    def factory(name: str) -> ContractHost:
        return GuestContractHost(guest, name, "src" if name == "src" else "dst")

    yield factory


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda check: check.__name__)
def test_real_zfs_honours_the_contract(check: Check, make: HostFactory) -> None:
    check(make)
