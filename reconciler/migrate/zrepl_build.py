"""What the zrepl conversion builds up: jobs, Hosts by machine, policy names, targets.

Owns `Job` (one job of one file), `Build` (the Hosts and policies made so far, and each
passive job's `serve` read once), the naming of Hosts and policies (DNS-1123 labels, unique,
with a note when a name from the input had to change), `partner` (the sink or source job a
push or pull job's `connect` reaches) and `make_target`. Called by `zrepl_jobs.py` and
`zrepl.py`. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from reconciler.manifest.fields import FILESYSTEM_MAX, FILESYSTEM_PATTERN
from reconciler.migrate.names import label, unique
from reconciler.migrate.zrepl_connect import SERVE_FOR_CONNECT, Connect, Serve, read_serve
from reconciler.migrate.zrepl_read import Node, ZreplFile
from reconciler.migrate.zrepl_settle import Made

_FILESYSTEM = re.compile(FILESYSTEM_PATTERN)
_GENERIC_STEMS = frozenset({"zrepl", "config", "zrepl-config", "conf"})


@dataclass(frozen=True, slots=True)
class Job:
    file: int  # index of its file
    node: Node
    name: str
    kind: str  # push, pull, sink, source, snap


@dataclass(slots=True)
class Build:
    """What the conversion has made so far."""

    configs: list[ZreplFile]
    timezone: str | None
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → spec
    host_keys: dict[Any, str] = field(default_factory=dict)  # machine → Host name
    policies: list[Made] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # policy names
    serves: dict[int, Serve | None] = field(default_factory=dict)  # id(job) → its serve
    used: set[int] = field(default_factory=set)  # id() of the passive jobs paired

    def serve(self, job: Job) -> Serve | None:
        if id(job) not in self.serves:
            self.serves[id(job)] = read_serve(job.node)
        return self.serves[id(job)]

    def policy_name(self, job: Job) -> str:
        name = unique(label(job.name, "job"), self.names)
        self.names.add(name)
        if name != job.name:
            where = job.node.child("name") or job.node
            where.note(f"the policy is named {name} (a DNS-1123 label, unique)")
        return name

    def local_host(self, file: int, identity: str | None = None) -> str:
        """The Host of the machine whose configuration is file `file` (the reconciler runs
        there), named by the identity the other side knows it by, else by its file."""
        key = ("local", file)
        if key in self.host_keys:
            return self.host_keys[key]
        path = PurePath(self.configs[file].file)
        stem = path.stem if path.stem.lower() not in _GENERIC_STEMS else path.parent.name
        name = unique(label(identity or stem, "local"), self.hosts)
        self.hosts[name] = {"transport": "local"}
        self.host_keys[key] = name
        return name

    def ssh_host(self, connect: Connect) -> str | None:
        if connect.ssh is None:
            return None
        key = ("ssh", repr(sorted(connect.ssh.items())))
        if key in self.host_keys:
            return self.host_keys[key]
        name = unique(label(str(connect.ssh["host"]), "remote"), self.hosts)
        self.hosts[name] = {"transport": "ssh", "ssh": connect.ssh}
        self.host_keys[key] = name
        return name

    def far_host(self, job: Job, connect: Connect | None) -> str | None:
        """The Host that `connect` reaches: this machine (local transport) or an ssh Host."""
        if connect is None:
            return None
        if connect.kind == "local":
            return self.local_host(job.file)
        return self.ssh_host(connect)

    def partner(self, job: Job, connect: Connect, jobs: list[Job], kind: str) -> Job | None:
        """The one `kind` job (sink or source) that `connect` reaches, or None; tcp and tls
        pair too, so that the passive job is reported with its active one."""
        serve_kind = SERVE_FOR_CONNECT.get(connect.kind)
        same_file = connect.kind == "local"
        found: list[Job] = []
        for other in jobs:
            if other.kind != kind or (other.file == job.file) != same_file:
                continue
            serve = self.serve(other)
            if serve is None or serve.kind != serve_kind:
                continue
            if same_file and serve.listener != connect.listener:
                continue
            found.append(other)
        if len(found) == 1:
            self.used.add(id(found[0]))
            return found[0]
        if found:
            names = ", ".join(repr(other.name) for other in found)
            connect.node.note(f"several {kind} jobs could be the other side ({names}): none chosen")
        return None


def target_root(passive: Job, identity: str | None) -> str | None:
    """`root_fs`, with `/<identity>` for a sink; None when it is missing or not a name."""
    root = passive.node.text("root_fs", affects=True)
    where = passive.node.child("root_fs") or passive.node
    if root is None:
        passive.node.drop("no root_fs: nothing can be received", True)
        return None
    if identity is None:
        return None
    full = f"{root}/{identity}" if identity else root
    if len(full) > FILESYSTEM_MAX or _FILESYSTEM.fullmatch(full) is None:
        where.drop(f"{full!r} is not a filesystem name the manifests accept", True)
        return None
    return full


def make_target(
    host: str,
    root: str,
    send: dict[str, Any],
    receive: dict[str, Any],
    options: dict[str, str],
    retention: dict[str, Any] | None,
) -> dict[str, Any]:
    target: dict[str, Any] = {"name": label(host, "target"), "host": host, "root": root}
    target.update(options)
    if send:
        target["send"] = send
    if receive:
        target["receive"] = receive
    if retention is not None:
        target["retention"] = retention
    return target
