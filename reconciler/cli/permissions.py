"""`reconcile permissions`: the `zfs allow` lines the policies need on each host.

Owned here: the subcommand's options (`permissions_options`), its run (`run_permissions`) and
its two renderings: text (per host, the `zfs allow` lines with a comment for each permission
saying which policy and target need it and why) and JSON (`format_version` 1). The sets come
from `core/permissions.py`; nothing here reaches a host. Called by `reconciler.cli.main`.

The user of a line: the Host's `ssh.user`; for a local host, or an ssh host without a user,
`--user NAME` when given, else the placeholder `<user>` (to replace before running the line).
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.cli.common import EXIT_OK, Console
from reconciler.core.desired import intents
from reconciler.core.permissions import ALL_POOLS, Delegation, allow_argv, delegations, hosts_of
from reconciler.manifest.loader import Manifests
from reconciler.manifest.models import Transport

FORMAT_VERSION = 1
PLACEHOLDER_USER = "<user>"
PLACEHOLDER_POOL = "<pool>"


def permissions_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="NAME",
        help="limit to this policy (repeatable)",
    )
    parser.add_argument(
        "--user",
        type=_user_name,
        default=None,
        metavar="NAME",
        help="the user of hosts whose manifest names none (local hosts, ssh without user); "
        f"default: the placeholder {PLACEHOLDER_USER}",
    )


def _user_name(text: str) -> str:
    """A user name for `zfs allow -u`: not empty, no leading `-` (zfs would read an option),
    no comma (zfs reads a list), no whitespace or control characters."""
    if (
        not text
        or text.startswith("-")
        or any(c == "," or c.isspace() or ord(c) < 32 for c in text)
    ):
        raise argparse.ArgumentTypeError(f"not a user name for zfs allow: {text!r}")
    return text


def run_permissions(options: argparse.Namespace, manifests: Manifests, console: Console) -> int:
    found = delegations(intents(manifests, options.policy))
    users = {name: _user(manifests, name, options.user) for name in hosts_of(found)}
    if options.output == "json":
        document = _json(found, users, manifests)
        console.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        console.stdout.write(_text(found, users, manifests))
    return EXIT_OK


def _user(manifests: Manifests, host: str, given: str | None) -> tuple[str, str]:
    """(user, where it comes from: `ssh.user`, `--user` or `placeholder`)."""
    spec = manifests.hosts[host].spec if host in manifests.hosts else None
    if spec is not None and spec.transport is Transport.SSH and spec.ssh and spec.ssh.user:
        return spec.ssh.user, "ssh.user"
    if given:
        return given, "--user"
    return PLACEHOLDER_USER, "placeholder"


def _line(delegation: Delegation, user: str) -> str:
    dataset = PLACEHOLDER_POOL if delegation.dataset == ALL_POOLS else None
    argv = allow_argv(delegation, user, dataset)
    # placeholders stay as they are, to be replaced by hand; everything else is quoted
    keep = {PLACEHOLDER_USER, PLACEHOLDER_POOL}
    return " ".join(word if word in keep else shlex.quote(word) for word in argv)


def _text(
    found: Sequence[Delegation], users: Mapping[str, tuple[str, str]], manifests: Manifests
) -> str:
    if not found:
        return "# no policy needs any delegated permission\n"
    lines: list[str] = []
    for host in hosts_of(found):
        user, origin = users[host]
        lines.append(f"# host {host}: user {user} ({_origin_text(origin)})")
        lines += [f"# {note}" for note in _host_notes(manifests, host)]
        for delegation in (d for d in found if d.host == host):
            lines += _delegation_text(delegation, user)
        lines.append("")
    return "\n".join(lines)


def _delegation_text(delegation: Delegation, user: str) -> list[str]:
    scope = "and below" if delegation.descendants else "only (-l)"
    where = "every pool" if delegation.dataset == ALL_POOLS else delegation.dataset
    lines = [f"# {delegation.role.value} {where} {scope}, for {', '.join(delegation.policies)}"]
    if delegation.dataset == ALL_POOLS:
        lines.append(f"# the policy takes every filesystem: one line per pool, {PLACEHOLDER_POOL}")
    width = max(len(grant.permission) for grant in delegation.grants)
    for grant in delegation.grants:
        for index, reason in enumerate(grant.reasons):
            label = grant.permission if index == 0 else ""
            lines.append(f"#   {label:<{width}}  {reason}")
    lines.append(_line(delegation, user))
    return lines


def _origin_text(origin: str) -> str:
    return {
        "ssh.user": "the Host's ssh.user",
        "--user": "given with --user",
        "placeholder": "replace <user>: the Host names no user; or pass --user NAME",
    }[origin]


def _host_notes(manifests: Manifests, host: str) -> list[str]:
    spec = manifests.hosts[host].spec if host in manifests.hosts else None
    if spec is None:
        return []
    command = list(spec.zfs_command)
    if command and command[0] == "sudo":
        return [
            f"zfsCommand {shlex.join(command)} runs zfs as root: these delegations apply once "
            "it is plain [zfs]"
        ]
    return []


def _json(
    found: Sequence[Delegation], users: Mapping[str, tuple[str, str]], manifests: Manifests
) -> dict[str, Any]:
    hosts = []
    for host in hosts_of(found):
        user, origin = users[host]
        hosts.append(
            {
                "host": host,
                "user": user,
                "user_from": origin,
                "notes": _host_notes(manifests, host),
                "delegations": [
                    {
                        "dataset": d.dataset or None,
                        "role": d.role.value,
                        "descendants": d.descendants,
                        "policies": list(d.policies),
                        "permissions": list(d.permissions),
                        "reasons": {g.permission: list(g.reasons) for g in d.grants},
                        "command": _line(d, user),
                    }
                    for d in found
                    if d.host == host
                ],
            }
        )
    return {"format_version": FORMAT_VERSION, "hosts": hosts}
