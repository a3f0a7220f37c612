"""`reconcile watch`: the control loop run on the main thread until SIGTERM or SIGINT, with
SIGHUP re-reading the manifests, the audit log and the optional HTTP endpoint. The loop itself
is `reconciler/loop/`. Called by `reconciler.cli.main`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.manifest.durations import format_duration
from reconciler.manifest.errors import one_line

if TYPE_CHECKING:
    from reconciler.apply.audit import AuditLog
    from reconciler.loop.controller import Controller
    from reconciler.loop.http import Endpoint, ListenAddress

from reconciler.cli.apply import _audit_log
from reconciler.cli.common import EXIT_ERROR, EXIT_OK, Console, Services, _log
from reconciler.cli.options import _max_destroy

# The pass's modules (planner, executor, driver, lock) are imported by the functions that use
# them, not here: `validate` and `schema`, which CI runs on every pull request, start in about
# half the time without them.


def _watch(options: argparse.Namespace, console: Console, services: Services) -> int:
    """The control loop, with its audit log open (`--audit-log`) while it runs."""
    from reconciler.apply.audit import AuditError

    try:
        with _audit_log(options.audit_log, options.file or ["manifests"]) as audit:
            return _run_watch(options, console, services, audit)
    except AuditError as error:
        console.stderr.write(one_line(f"error: {error}") + "\n")
        return EXIT_ERROR


def _run_watch(
    options: argparse.Namespace, console: Console, services: Services, audit: AuditLog | None
) -> int:
    """Run the control loop until SIGTERM or SIGINT (exit 0); SIGHUP re-reads the manifests.
    The signal handlers only note the signal and write a byte to a pipe the main thread
    reads: they take no lock, so they cannot deadlock with the thread they interrupt."""
    from reconciler.apply.lock import Holder, default_lock_dir
    from reconciler.loop.clock import SystemClock
    from reconciler.loop.controller import Controller, LoopOptions, LoopServices
    from reconciler.loop.locks import SharedHostLocks

    paths = tuple(options.file or ["manifests"])
    resolved = [str(Path(p).resolve()) for p in paths]
    lock_dir = Path(options.lock_dir) if options.lock_dir else default_lock_dir()
    deps = services.dependencies(console)
    controller = Controller(
        LoopOptions(
            paths=paths,
            policies=frozenset(options.policy) if options.policy else None,
            jobs=options.jobs,
            resync=options.resync,
            max_destroy=_max_destroy(options),
        ),
        LoopServices(
            connect=deps.connect,
            clock=SystemClock(),
            cancel=services.cancel,
            lock=SharedHostLocks(lock_dir, lambda: Holder.current(resolved, services.clock())),
            audit=audit.for_pass if audit is not None else None,
        ),
    )
    endpoint = _endpoint(options.listen, options.resync, controller, services)
    if options.listen is not None and endpoint is None:
        return EXIT_ERROR

    with _signals() as signals:
        _log().info(
            "watching {} (resync every {}, {} at once; locks in {})",
            ", ".join(paths),
            format_duration(options.resync),
            options.jobs,
            lock_dir,
        )
        watcher_stop = threading.Event()
        watching = controller.watch_manifests(watcher_stop)
        controller.start()
        while True:
            received = signals.next()
            if received in (signal.SIGTERM, signal.SIGINT):
                _log().warning(
                    "{}: stopping: no new pass starts; running transfers are cut",
                    signal.Signals(received).name,
                )
                break
            _log().info("SIGHUP: reading the manifests again")
            controller.reload("SIGHUP")
        controller.stop()
        watcher_stop.set()
        controller.join()
        watching.join(1.0)
        if endpoint is not None:
            endpoint.stop()
    _log().info("stopped")
    return EXIT_OK


def _endpoint(
    listen: ListenAddress | None, resync: int, controller: Controller, services: Services
) -> Endpoint | None:
    """The loop's HTTP endpoint, listening (docs/monitoring.md); None when there is none or
    it cannot listen (logged)."""
    if listen is None:
        return None
    from reconciler.loop.http import Endpoint, Sources

    endpoint = Endpoint(
        listen, Sources(controller.state, controller.metrics.registry, services.clock, resync)
    )
    try:
        endpoint.start()
    except OSError as error:
        _log().error("cannot listen on {}: {}", listen.url(), error.strerror or error)
        return None
    _log().info("serving /metrics, /status and /healthz on {}", endpoint.address.url())
    return endpoint


class _SignalPipe:
    """Signals noted by their handlers and handed to the main thread through a pipe (also
    the interpreter's wakeup fd)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.write_end, False)
        self.pending: list[int] = []

    def handler(self, signum: int, _frame: object) -> None:
        self.pending.append(signum)
        with contextlib.suppress(OSError):  # a full pipe: a byte is already waiting
            os.write(self.write_end, b"!")

    def next(self) -> int:
        """Block until a signal arrives; the oldest one not yet handed out."""
        while not self.pending:
            os.read(self.read_end, 64)
        return self.pending.pop(0)

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


@contextmanager
def _signals() -> Iterator[_SignalPipe]:
    pipe = _SignalPipe()
    wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, pipe.handler) for sig in wanted}
    # a signal may be delivered to any thread; the C-level handler then writes to this pipe,
    # which wakes the main thread's read so that the Python-level handler runs there
    previous_fd = signal.set_wakeup_fd(pipe.write_end, warn_on_full_buffer=False)
    try:
        yield pipe
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        pipe.close()
