"""`apply/passes.py`: one pass as a service, the same for the CLI, the loop and the tests.
Hosts are the in-memory ZFS model; a pass's result is checked as a value."""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from reconciler.apply.passes import Dependencies, run_pass
from reconciler.core.plan import SnapshotAction
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.models import Host
from reconciler.zfs.errors import ZFSError
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS
from tests.test_cli import MANIFESTS

NOW = calendar.timegm((2026, 11, 26, 12, 0, 0, 0, 0, 0))


def _hosts() -> dict[str, ModelZFS]:
    nas = ModelZFS("nas", seed=1)
    nas.create_pool("tank")
    nas.create("tank/home")
    backup = ModelZFS("backup", seed=2)
    backup.create_pool("vault")
    return {"nas": nas, "backup": backup}


MANIFESTS_VALUE = parse_manifests([("m.yaml", MANIFESTS)])


def test_a_dry_run_plans_and_changes_nothing() -> None:
    hosts = _hosts()
    deps = Dependencies(connect=lambda host: hosts[host.metadata.name])
    result = run_pass(MANIFESTS_VALUE, None, NOW, deps, apply=False)
    assert not result.applied and result.report is None
    assert any(isinstance(a, SnapshotAction) for a in result.plan.actions)
    assert hosts["nas"].observe().filesystems["tank/home"].versions == ()
    assert result.errors == ()


def test_an_applying_pass_converges_and_holds_the_locks_meanwhile() -> None:
    hosts = _hosts()
    locked: list[tuple[str, ...]] = []
    observed_inside: list[bool] = []

    @contextmanager
    def lock(wanted: Sequence[Host]) -> Iterator[None]:
        locked.append(tuple(h.metadata.name for h in wanted))
        observed_inside.append(True)
        yield
        locked.append(())

    def connect(host: Host) -> ZFS:
        assert observed_inside, "a host was reached before its lock was taken"
        return hosts[host.metadata.name]

    result = run_pass(MANIFESTS_VALUE, None, NOW, Dependencies(connect=connect, lock=lock))
    assert locked == [("backup", "nas"), ()]
    assert result.report is not None and result.report.ok and result.errors == ()
    again = run_pass(MANIFESTS_VALUE, None, NOW, Dependencies(connect=connect), apply=False)
    assert again.plan.is_empty


def test_an_unreachable_host_is_named_in_the_errors_and_gets_nothing() -> None:
    hosts = _hosts()

    def connect(host: Host) -> ZFS:
        if host.metadata.name == "backup":
            raise ZFSError("backup", "", "ssh: connect to host backup: Connection refused")
        return hosts[host.metadata.name]

    result = run_pass(MANIFESTS_VALUE, None, NOW, Dependencies(connect=connect))
    assert result.errors == (
        "host backup not observed: backup: ssh: connect to host backup: Connection refused",
    )
    assert all(a.host != "backup" for a in result.plan.actions)
    assert result.report is not None and result.report.ok  # the source's snapshot was taken


def test_a_failed_action_is_an_error() -> None:
    hosts = _hosts()
    hosts["nas"].write("tank/home", 1 << 20)
    hosts["backup"].interrupt_next_receive(1000)
    deps = Dependencies(connect=lambda host: hosts[host.metadata.name])
    result = run_pass(MANIFESTS_VALUE, None, NOW, deps)
    assert result.report is not None and result.report.failed
    assert any(line.startswith("action ") and "failed" in line for line in result.errors)


def test_a_pass_observes_only_what_its_policies_touch() -> None:
    hosts = _hosts()
    hosts["nas"].create("tank/other")
    hosts["nas"].snapshot(["tank/other"], "theirs")
    hosts["backup"].create("vault/elsewhere")
    deps = Dependencies(connect=lambda host: hosts[host.metadata.name])
    result = run_pass(MANIFESTS_VALUE, None, NOW, deps, apply=False)
    assert sorted(result.observed.host("nas").filesystems) == ["tank/home"]
    assert sorted(result.observed.host("backup").filesystems) == []
    whole = hosts["nas"].observe()
    assert "tank/other" in whole.filesystems  # there, but none of this pass's business
