"""Shape of the planner benchmark's synthetic observed state (tests/bench/synthetic.py)."""

from __future__ import annotations

import pytest

from reconciler.core.names import snapshot_name, snapshot_time
from reconciler.core.state import FilesystemState, Observed
from tests.bench.synthetic import (
    SOURCE_HOST,
    TARGET_HOSTS,
    source_filesystems,
    synthetic_observed,
    target_filesystem,
)

NOW = 1_795_666_500  # 2026-11-26T04:15:00Z
FILESYSTEMS, SNAPSHOTS, LAG = 10, 5, 2


@pytest.fixture(scope="module")
def observed() -> Observed:
    return synthetic_observed(FILESYSTEMS, SNAPSHOTS, now=NOW, replicated_lag=LAG)


def _managed(observed: Observed, host: str) -> list[FilesystemState]:
    return [fs for fs in observed.host(host).filesystems.values() if "/fs" in fs.name]


def test_hosts_and_filesystem_names(observed: Observed) -> None:
    assert sorted(observed.hosts) == ["dst1", "dst2", "src"]
    assert source_filesystems(3) == ("tank/data/fs0000", "tank/data/fs0001", "tank/data/fs0002")
    assert sorted(observed.host(SOURCE_HOST).filesystems) == [
        "tank",
        "tank/data",
        *(f"tank/data/fs{i:04d}" for i in range(FILESYSTEMS)),
    ]
    expected_target = ["backup", "backup/src", "backup/src/tank", "backup/src/tank/data"]
    expected_target += [f"backup/src/tank/data/fs{i:04d}" for i in range(FILESYSTEMS)]
    for host in TARGET_HOSTS:
        assert sorted(observed.host(host).filesystems) == expected_target
    assert observed.host(SOURCE_HOST).filesystems["tank/data"].versions == ()


def test_source_snapshots_are_atomic_steps_ending_one_interval_ago(observed: Observed) -> None:
    expected = [snapshot_name("zr_", NOW - 900 * (SNAPSHOTS - k)) for k in range(SNAPSHOTS)]
    assert expected[-1] == "zr_20261126T040000Z"
    source = _managed(observed, SOURCE_HOST)
    assert len(source) == FILESYSTEMS
    first = source[0].versions
    for fs in source:
        assert [v.name for v in fs.versions] == expected
        assert [v.createtxg for v in fs.versions] == [v.createtxg for v in first]
        assert all(v.is_snapshot and v.holds == frozenset() for v in fs.versions)
    assert [snapshot_time("zr_", v.name) for v in first] == [v.creation for v in first]
    txgs = [v.createtxg for v in first]
    assert txgs == sorted(set(txgs))  # strictly increasing: createtxg order is step order


def test_guids_are_distinct_on_the_source(observed: Observed) -> None:
    guids = [v.guid for fs in _managed(observed, SOURCE_HOST) for v in fs.versions]
    assert len(set(guids)) == FILESYSTEMS * SNAPSHOTS
    assert all(0 < guid < 2**64 for guid in guids)


def test_targets_hold_all_but_the_newest_lag_with_source_guids(observed: Observed) -> None:
    source = observed.host(SOURCE_HOST).filesystems
    for host in TARGET_HOSTS:
        for name in source_filesystems(FILESYSTEMS):
            copy = observed.host(host).filesystems[target_filesystem(name)].versions
            original = source[name].versions[: SNAPSHOTS - LAG]
            assert len(copy) == SNAPSHOTS - LAG
            assert [(v.name, v.guid) for v in copy] == [(v.name, v.guid) for v in original]
            assert all(c.createtxg != o.createtxg for c, o in zip(copy, original, strict=True))
            assert [v.createtxg for v in copy] == sorted({v.createtxg for v in copy})


def test_targets_share_equal_values(observed: Observed) -> None:
    dst1, dst2 = (observed.host(host).filesystems for host in TARGET_HOSTS)
    assert dst1 is not dst2
    assert all(dst1[name] is dst2[name] for name in dst1)


def test_lag_zero_replicates_everything_and_bad_arguments_fail() -> None:
    observed = synthetic_observed(2, 3, now=NOW, replicated_lag=0)
    assert len(observed.host("dst1").filesystems["backup/src/tank/data/fs0001"].versions) == 3
    with pytest.raises(ValueError):
        synthetic_observed(2, 3, now=NOW, replicated_lag=4)
    with pytest.raises(ValueError):
        synthetic_observed(2, 0, now=NOW)
