"""`reconcile --metrics-file PATH`: the metrics of one pass, for node_exporter's textfile
collector (docs/monitoring.md, "Cron").

Owned here: `MetricsFile` (checks the path before the pass, carries the counters and last
successes over from the file the previous run wrote, records the pass, writes the file
atomically with prometheus-client's `write_to_textfile`: a temporary file in the same
directory renamed over the old one) and `MetricsFileError`. Called by the CLI's applying pass.
"""

from __future__ import annotations

import os
from pathlib import Path

from loguru import logger
from prometheus_client import write_to_textfile

from reconciler.apply.passes import PassResult
from reconciler.loop.metrics import Metrics, policy_passes
from reconciler.loop.settle import settled_status
from reconciler.manifest.changes import generation
from reconciler.manifest.models import Manifests

PREVIOUS_LIMIT = 16 << 20  # bytes of a previous file read back; a larger one starts afresh


class MetricsFileError(Exception):
    """The metrics file cannot be written: `path` and why, in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"--metrics-file {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


class MetricsFile:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.metrics = Metrics()
        self.recorded = False  # whether a pass or an invalid load was recorded

    def check(self) -> None:
        """Before the pass: the directory exists and is writable, and the path is a regular
        file or nothing yet (a rename over a device, a FIFO or a symbolic link would replace
        it); raises MetricsFileError otherwise (nothing is applied then)."""
        directory = self.path.parent
        if not self.path.name or self.path.is_dir():
            raise MetricsFileError(self.path, "is a directory; name a file such as reconcile.prom")
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
            raise MetricsFileError(self.path, "exists and is not a regular file")
        if not directory.is_dir():
            raise MetricsFileError(self.path, f"the directory {str(directory)!r} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise MetricsFileError(self.path, f"the directory {str(directory)!r} is not writable")

    def carry_over(self) -> None:
        """Start from the file the previous run wrote, so that counters keep counting and a
        policy's last success is kept while its passes fail. A file that cannot be read or
        parsed is logged and ignored."""
        try:
            with self.path.open("rb") as previous:
                data = previous.read(PREVIOUS_LIMIT + 1)
        except FileNotFoundError:
            return
        except OSError as error:
            logger.warning("{}: not read ({}); starting afresh", self.path, error.strerror)
            return
        if len(data) > PREVIOUS_LIMIT:
            logger.warning("{}: larger than {} bytes; starting afresh", self.path, PREVIOUS_LIMIT)
            return
        try:
            self.metrics.seed(data.decode("utf-8"))
        except Exception as error:  # hostile text: any failure of the parser starts afresh
            logger.warning("{}: not the exposition format ({}); starting afresh", self.path, error)
            self.metrics = Metrics()

    def invalid(self) -> None:
        """The manifests did not load: nothing ran; say so and keep the rest."""
        self.metrics.manifests(False, None)
        self.recorded = True

    def record(
        self, manifests: Manifests, result: PassResult, ended: float, seconds: float
    ) -> None:
        self.metrics.manifests(True, generation(manifests))
        self.metrics.retain(manifests.policies)
        for passed in policy_passes(result, settled_status(result), ended, seconds):
            self.metrics.record(passed)
        self.recorded = True

    def write(self) -> None:
        try:
            write_to_textfile(str(self.path), self.metrics.registry)
        except OSError as error:
            raise MetricsFileError(self.path, error.strerror or str(error)) from error
