"""A control loop to drive in tests: the real `Controller` and manifest watcher, in-memory ZFS
hosts, a fake clock, and manifests in a temporary directory edited through the file system.

Owned here: `LoopHarness` (start, stop, edit, wait for passes, read snapshots) and `GatedZFS`
(a host whose receives wait at a gate: a slow send, cut by the loop's cancel flag as the real
pipeline is). Used by tests/test_loop.py and the loop's benchmarks.
"""

from __future__ import annotations

import calendar
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from reconciler.apply.lock import Holder
from reconciler.core.plan import ReceiveOptions
from reconciler.loop.clock import FakeClock
from reconciler.loop.controller import Controller, LoopOptions, LoopServices
from reconciler.loop.locks import SharedHostLocks
from reconciler.loop.state import LoopState, PolicyState
from reconciler.manifest.models import Host
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS, SendStream
from tests.test_cli import HOSTS

__all__ = ["HOSTS", "MINUTE", "START", "GatedZFS", "LoopHarness", "policy"]

START = calendar.timegm((2026, 12, 4, 10, 0, 0, 0, 0, 0))
MINUTE = 60


def policy(
    name: str,
    filesystems: str,
    *,
    interval: str = "15m",
    keep: str = "{lastN: 3}",
    target: bool = True,
    extra: str = "",
) -> str:
    """A Policy document: snapshots of `filesystems` on nas, kept by `keep`, replicated to
    backup under vault/nas when `target`."""
    text = f"""\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: {name}}}
spec:
  source: {{host: nas, filesystems: {filesystems}}}
  snapshots: {{prefix: zr_{name}_, interval: {interval}}}
  retention: {{keep: [{keep}]}}
"""
    if target:
        text += f"""\
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      retention: {{keep: [{{lastN: 5}}]}}
{extra}"""
    return text


class GatedZFS:
    """A host whose receives wait until `gate` is set. When the loop's cancel flag is set
    meanwhile, the receive is cut after its first byte, leaving a resume token, as the real
    driver's pipeline does when it is stopped."""

    def __init__(self, model: ModelZFS, cancel: threading.Event) -> None:
        self.model = model
        self.cancel = cancel
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def receive(self, filesystem: str, stream: SendStream, options: ReceiveOptions) -> None:
        self.entered.set()
        while not self.gate.wait(0.01):
            if self.cancel.is_set():
                self.model.interrupt_next_receive(1)
                break
        self.model.receive(filesystem, stream, options)


class LoopHarness:
    def __init__(
        self,
        directory: Path,
        manifests: str,
        *,
        jobs: int = 2,
        resync: int = 3600,
        lock_dir: Path | None = None,
    ):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write("m.yaml", manifests)
        self.clock = FakeClock(START)
        self.cancel = threading.Event()
        nas = ModelZFS("nas", seed=1)
        nas.create_pool("tank")
        for fs in ("tank/home", "tank/home/alice", "tank/db", "tank/scratch"):
            nas.create(fs)
            nas.write(fs, 1 << 16)
        backup = ModelZFS("backup", seed=2)
        backup.create_pool("vault")
        self.models = {"nas": nas, "backup": backup}
        self.gated: dict[str, GatedZFS] = {}
        self.jobs, self.resync = jobs, resync
        self.locks = (
            SharedHostLocks(lock_dir, lambda: Holder.current(["manifests"], START))
            if lock_dir is not None
            else None
        )
        self.connect_calls = 0
        self.messages: list[str] = []
        self._sink = logger.add(self._log, level="DEBUG", format="{message}")
        self.controller = self._controller()
        self.watch_stop = threading.Event()

    def _controller(self) -> Controller:
        return Controller(
            LoopOptions(paths=(str(self.directory),), jobs=self.jobs, resync=self.resync),
            LoopServices(
                connect=self.connect,
                clock=self.clock,
                cancel=self.cancel,
                lock=self.locks,
                rng=random.Random(7),
            ),
        )

    def _log(self, message: Any) -> None:
        self.messages.append(str(message.record["message"]))

    # -- wiring -------------------------------------------------------------------------------
    def connect(self, host: Host) -> ZFS:
        self.connect_calls += 1
        name = host.metadata.name
        self.models[name].clock = int(self.clock.time())
        gated = self.gated.get(name)
        return gated if gated is not None else self.models[name]

    def gate(self, host: str) -> GatedZFS:
        """From now on, receives on `host` wait at a gate."""
        gated = self.gated[host] = GatedZFS(self.models[host], self.cancel)
        return gated

    def start(self) -> None:
        self.controller.watch_manifests(self.watch_stop)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
        self.watch_stop.set()
        assert self.controller.join(5.0)

    def restart(self) -> None:
        """A new loop process: nothing kept but what the hosts hold."""
        self.stop()
        self.cancel = threading.Event()
        for gated in self.gated.values():
            gated.cancel = self.cancel
        self.controller = self._controller()
        self.watch_stop = threading.Event()
        self.start()

    def close(self) -> None:
        if not self.controller.stopping:
            self.stop()
        self.watch_stop.set()
        logger.remove(self._sink)

    # -- the manifests -------------------------------------------------------------------------
    def write(self, name: str, text: str) -> Path:
        """Write a manifest file as an editor does: a temporary file renamed over it."""
        path = self.directory / name
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_text(text)
        temporary.replace(path)
        return path

    # -- time and waiting ---------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def state(self) -> LoopState:
        return self.controller.state()

    def policy(self, name: str) -> PolicyState:
        return self.state().policies[name]

    def wait_for(self, what: Callable[[], bool], timeout: float = 10.0, why: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {why or what}: {self.state()}")
            time.sleep(0.005)

    def wait_passes(self, name: str, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` passes of the policy have finished and it is not running."""

        def done() -> bool:
            policy = self.state().policies.get(name)
            return (
                policy is not None
                and policy.last_pass is not None
                and self._finished(name) >= count
                and not policy.running
            )

        self.wait_for(done, timeout, f"{count} passes of {name}")

    def finished(self, name: str) -> int:
        """How many passes of the policy have finished (from the loop's log lines)."""
        return self._finished(name)

    def _finished(self, name: str) -> int:
        prefix = f"policy {name}: pass "
        return sum(
            1
            for m in self.messages
            if m.startswith(prefix) and " starts" not in m and "actions" in m
        )

    def idle(self, seconds: float = 0.2) -> None:
        """Real time for anything wrongly scheduled to show up."""
        time.sleep(seconds)

    # -- what the hosts hold --------------------------------------------------------------------
    def snapshots(self, host: str, filesystem: str) -> list[str]:
        state = self.models[host].observe().filesystems.get(filesystem)
        return [] if state is None else [v.name for v in state.snapshots]
