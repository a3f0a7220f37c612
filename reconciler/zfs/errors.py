"""Typed ZFS errors, each carrying the host, the dataset and what ZFS said.

Raised by every implementation of the `ZFS` port (the real driver and the in-memory model);
the executor turns "already exists" / "does not exist" into success where an action is
idempotent, and reports the rest per action.
"""

from __future__ import annotations

import shlex


class ZFSError(Exception):
    """A zfs operation failed. `detail` is what ZFS said (stderr), or the model's words."""

    def __init__(self, host: str, dataset: str, detail: str, command: tuple[str, ...] = ()):
        self.host = host
        self.dataset = dataset
        self.detail = detail
        self.command = command
        super().__init__(f"{host}: {dataset}: {detail}" if dataset else f"{host}: {detail}")


class DatasetNotFound(ZFSError):
    """The filesystem, snapshot or bookmark does not exist."""


class DatasetExists(ZFSError):
    """The dataset, snapshot, bookmark or hold tag already exists."""


class SnapshotHeld(ZFSError):
    """A destroy was refused because a snapshot has holds. `held` names them."""

    def __init__(
        self,
        host: str,
        dataset: str,
        detail: str,
        held: tuple[str, ...] = (),
        command: tuple[str, ...] = (),
    ):
        super().__init__(host, dataset, detail, command)
        self.held = held


class HoldNotFound(ZFSError):
    """A release named a tag that is not held on the snapshot."""


class ModifiedSinceSnapshot(ZFSError):
    """A receive was refused: the target changed since its newest snapshot."""


class ReceiveRefused(ZFSError):
    """A receive was refused for another reason (missing from-snapshot, newer snapshots, ...)."""


class ResumeTokenStale(ZFSError):
    """A resume token can no longer be used (its source snapshot is gone)."""


class StreamInterrupted(ZFSError):
    """The stream broke before the receive completed (a resume token may be left)."""


class NoSpace(ZFSError):
    """The pool is out of space."""


class PermissionDenied(ZFSError):
    """ZFS refused the operation for lack of permission."""


class HostUnreachable(ZFSError):
    """The host could not be reached at all."""


class StampsUnsupported(ZFSError):
    """zfs has no `snapshots_changed` (OpenZFS before 2.2): the stamp listing cannot be made."""


class CommandTimedOut(HostUnreachable):
    """A command did not end within the host's `commandTimeout`: it was killed. A host that
    hangs is treated as one that cannot be reached (transient: the next pass tries again)."""

    def __init__(self, host: str, command: tuple[str, ...], seconds: float):
        self.seconds = seconds
        detail = f"no answer within {seconds:g}s (commandTimeout), killed: {_shown(command)}"
        super().__init__(host, "", detail, command)


def _shown(command: tuple[str, ...], limit: int = 200) -> str:
    """The command as a shell would read it, cut to `limit` characters for a message."""
    text = shlex.join(command).replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
