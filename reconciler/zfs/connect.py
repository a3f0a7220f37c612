"""From a Host manifest to a working driver: which runner, which zfs command.

Owned here: `runner_for(host)` (a `LocalRunner` for transport local, an `SshRunner` built from
the `ssh` block for transport ssh; either with the host's `commandTimeout`) and
`connect(host, on_progress=...)`, the CLI's default way to reach a host. Nothing is contacted
here: the first command is the pass's observation.
"""

from __future__ import annotations

import threading

from reconciler.manifest.models import Host, Transport
from reconciler.zfs.driver import ZfsDriver
from reconciler.zfs.pipeline import ProgressSink
from reconciler.zfs.runner import CommandRunner, LocalRunner, SshRunner


def runner_for(host: Host) -> CommandRunner:
    name = host.metadata.name
    spec = host.spec
    if spec.transport is Transport.LOCAL or spec.ssh is None:
        return LocalRunner(host=name, timeout=spec.command_timeout)
    ssh = spec.ssh
    return SshRunner(
        host=name,
        address=ssh.host,
        port=ssh.port,
        user=ssh.user,
        identity_file=ssh.identity_file,
        options=tuple(ssh.options),
        timeout=spec.command_timeout,
    )


def connect(
    host: Host,
    *,
    on_progress: ProgressSink | None = None,
    cancel: threading.Event | None = None,
) -> ZfsDriver:
    return ZfsDriver(
        runner_for(host), host.spec.zfs_command, on_progress=on_progress, cancel=cancel
    )
