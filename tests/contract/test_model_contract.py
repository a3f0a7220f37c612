"""The ZFS port's contract suite run on the in-memory model, and what only the model offers
(seeded GUIDs, the test clock, fault hooks)."""

from __future__ import annotations

import pytest

from reconciler.core.plan import ReceiveOptions
from reconciler.zfs.errors import HostUnreachable, StreamInterrupted, ZFSError
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import SendRequest
from tests.contract.zfs_contract import ALL_CHECKS, Check, ContractHost


class _ModelHost(ModelZFS):
    """A model host with one pool `tank` and an empty filesystem the check owns."""

    def __init__(self, host: str) -> None:
        super().__init__(host, seed=7)
        self.create_pool("tank")
        self.create("tank/contract")

    @property
    def root(self) -> str:
        return "tank/contract"


def make_model_host(name: str) -> ContractHost:
    return _ModelHost(name)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda check: check.__name__)
def test_model_honours_the_contract(check: Check) -> None:
    check(make_model_host)


# -- what only the model offers: determinism and fault hooks --------------------------------


def _host_with_snapshots(name: str, seed: int = 7) -> ModelZFS:
    host = ModelZFS(name, seed=seed)
    host.create_pool("tank")
    for snap in ("a", "b"):
        host.write("tank", 1 << 20)
        host.snapshot(["tank"], snap)
    return host


def _guids(host: ModelZFS) -> list[int]:
    return [v.guid for v in host.observe().filesystems["tank"].versions]


def test_guids_repeat_for_the_same_host_and_seed_only() -> None:
    assert _guids(_host_with_snapshots("nas")) == _guids(_host_with_snapshots("nas"))
    assert not set(_guids(_host_with_snapshots("nas"))) & set(_guids(_host_with_snapshots("bk")))
    assert _guids(_host_with_snapshots("nas", 1)) != _guids(_host_with_snapshots("nas", 2))


def test_creation_follows_the_clock_when_set() -> None:
    host = _host_with_snapshots("nas")
    host.clock = 1_800_000_000
    host.snapshot(["tank"], "c")
    creations = [v.creation for v in host.observe().filesystems["tank"].snapshots]
    assert creations[0] < creations[1] < 1_800_000_000 == creations[2]


def test_an_unreachable_host_refuses_every_port_call() -> None:
    host = _host_with_snapshots("nas")
    host.set_unreachable("ssh: connect to host nas port 22: Connection refused")
    with pytest.raises(HostUnreachable, match="Connection refused"):
        host.observe()
    with pytest.raises(HostUnreachable):
        host.snapshot(["tank"], "c")
    host.set_unreachable(None)
    host.snapshot(["tank"], "c")


def test_the_interrupt_hook_is_one_shot_and_spares_shorter_streams() -> None:
    src, dst = _host_with_snapshots("nas"), ModelZFS("bk")
    dst.create_pool("vault")
    stream = src.send(SendRequest("tank", "a"))
    dst.interrupt_next_receive(2 << 20)  # longer than the stream: it completes
    dst.receive("vault/tank", stream, ReceiveOptions())
    dst.receive("vault/tank", src.send(SendRequest("tank", "b", "@a")), ReceiveOptions())
    assert [v.name for v in dst.observe().filesystems["vault/tank"].snapshots] == ["a", "b"]


def test_a_broken_intermediates_stream_keeps_the_snapshots_it_completed() -> None:
    src, dst = _host_with_snapshots("nas"), ModelZFS("bk")
    dst.create_pool("vault")
    src.write("tank", 1 << 20)
    src.snapshot(["tank"], "c")
    dst.receive("vault/tank", src.send(SendRequest("tank", "a")), ReceiveOptions())
    dst.interrupt_next_receive((1 << 20) + 100)  # inside the second substream (c)
    with pytest.raises(StreamInterrupted, match="zfs send -t"):
        dst.receive("vault/tank", src.send(SendRequest("tank", "c", "@a", True)), ReceiveOptions())
    state = dst.observe().filesystems["vault/tank"]
    assert [v.name for v in state.snapshots] == ["a", "b"]
    assert state.resume_token is not None and state.resume_token.to_name == "tank@c"
    assert state.resume_token.bytes_received == 100


def test_a_corrupt_token_is_refused() -> None:
    src = _host_with_snapshots("nas")
    with pytest.raises(ZFSError, match="resume token is corrupt"):
        src.send(SendRequest("tank", None, resume_token="1-abc-12-zz"))
