"""zrepl transports: an active job's `connect` and a passive job's `serve`, and Host names.

Owns `read_connect` (push and pull jobs: `ssh+stdinserver` gives the ssh block of a Host; `local`
names a listener and the client identity; `tcp` and `tls` are read only to be reported),
`read_serve` (sink and source jobs: the transport and the client identities it accepts), and
`label` (a DNS-1123 name from any text). zrepl's ssh transport runs `zrepl stdinserver` as the
forced command of the passive side's authorized_keys; we run zfs over plain ssh, so that entry
must change: reported as a note. Called by `zrepl.py`. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reconciler.manifest.fields import SSH_OPTION_PATTERN
from reconciler.migrate.zrepl_read import Node

SERVE_FOR_CONNECT = {"ssh+stdinserver": "stdinserver", "local": "local", "tcp": "tcp", "tls": "tls"}
_OPTION = re.compile(SSH_OPTION_PATTERN)
_NOT_LABEL = re.compile(r"[^a-z0-9]+")
_TRANSPORT_ONLY = "zrepl's own transport setting; the reconciler reaches hosts over ssh"


@dataclass(frozen=True, slots=True)
class Connect:
    """An active job's `connect`: its type and what of it we can use."""

    node: Node
    kind: str
    ssh: dict[str, Any] | None = None  # the Host's `ssh` block (ssh+stdinserver)
    listener: str | None = None  # local transport
    identity: str | None = None  # local transport: the client identity


@dataclass(frozen=True, slots=True)
class Serve:
    """A passive job's `serve`: its type and the client identities it knows."""

    node: Node
    kind: str
    identities: tuple[str, ...] = ()
    listener: str | None = None


def read_connect(job: Node) -> Connect | None:
    node = job.mapping("connect", affects=True)
    if node is None:
        if job.child("connect") is None:
            job.drop("an active job needs connect: nothing is replicated", True)
        return None
    kind = node.text("type", affects=True) or ""
    if kind == "ssh+stdinserver":
        return Connect(node, kind, ssh=_ssh(node))
    if kind == "local":
        listener = node.text("listener_name", affects=True)
        identity = node.text("client_identity", affects=True)
        _transport_only(node, "dial_timeout")
        return Connect(node, kind, listener=listener, identity=identity)
    if kind in ("tcp", "tls"):
        node.drop(
            f"the {kind} transport runs zrepl on both sides; the reconciler reaches the other "
            "machine over ssh: add an ssh Host for it and the target by hand",
            True,
        )
        return Connect(node, kind)
    node.drop(f"unknown transport {kind!r}: nothing is replicated", True)
    return None


def _ssh(node: Node) -> dict[str, Any] | None:
    host = node.text("host", affects=True)
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        (node.child("host") or node).drop(
            "an ssh host name is needed (one word, not starting with '-')", True
        )
        node.handled()
        return None
    ssh: dict[str, Any] = {"host": host}
    user = node.text("user")
    if user:
        ssh["user"] = user
    port = node.typed("port", int)
    if port is not None:
        if 1 <= port <= 65535:
            ssh["port"] = port
        else:
            (node.child("port") or node).drop(f"port {port} is not 1-65535: ssh's default applies")
    identity = node.text("identity_file")
    if identity:
        ssh["identityFile"] = identity
    options = _options(node)
    if options:
        ssh["options"] = options
    for key in ("dial_timeout", "transport_open_command", "ssh_command"):
        _transport_only(node, key)
    node.note(
        "the other machine's authorized_keys entry runs `zrepl stdinserver` as a forced command: "
        "replace it by a plain key for this user, who needs zfs permissions there (zfs allow, "
        "or zfsCommand: [sudo, zfs])"
    )
    return ssh


def _options(node: Node) -> list[str]:
    options_node = node.sequence("options")
    if options_node is None:
        return []
    kept: list[str] = []
    for option in options_node.entries():
        value = option.value
        if isinstance(value, str) and _OPTION.fullmatch(value) and "\n" not in value:
            kept.append(value)
        else:
            option.drop("an ssh option is written Key=Value")
    return kept


def _transport_only(node: Node, key: str) -> None:
    found = node.child(key)
    if found is not None:
        found.drop(_TRANSPORT_ONLY)


def read_serve(job: Node) -> Serve | None:
    node = job.mapping("serve", affects=True)
    if node is None:
        if job.child("serve") is None:
            job.drop("a passive job needs serve", True)
        return None
    kind = node.text("type", affects=True) or ""
    identities: tuple[str, ...] = ()
    if kind in ("stdinserver", "tls"):
        key = "client_identities" if kind == "stdinserver" else "client_cns"
        listed = node.typed(key, list) or []
        identities = tuple(item for item in listed if isinstance(item, str))
        found = node.child(key)
        if found is not None:
            found.handled()
    elif kind == "tcp":
        clients = node.typed("clients", dict) or {}
        identities = tuple(value for value in clients.values() if isinstance(value, str))
        found = node.child("clients")
        if found is not None:
            found.handled()
    listener = node.text("listener_name") if kind == "local" else None
    for key in ("listen", "listen_freebind", "ca", "cert", "key", "handshake_timeout"):
        _transport_only(node, key)
    if kind not in SERVE_FOR_CONNECT.values():
        node.drop(f"unknown transport {kind!r}", True)
        return None
    return Serve(node, kind, tuple(sorted(set(identities))), listener)
