"""Each zrepl job type → a policy: push (with its sink), pull (with its source), snap, and the
passive jobs that nothing in the given files pairs with.

Owns `push_job`, `pull_job`, `snap_job` and `unpaired_job`, called by `zrepl.py` once per job.
A push policy's source is this machine (a local Host) and its target the sink's machine,
received into `root_fs/<client identity>`; a pull policy's source is the machine its `connect`
reaches over ssh and its target this machine, received into `root_fs`. A target that cannot be
made (its other side not given, a tcp or tls transport, an unknown client identity) is left out
with a `not converted` finding that affects retention: its keep_receiver cannot apply. Pure.
"""

from __future__ import annotations

from typing import Any

from reconciler.migrate.zrepl_build import Build, Job, make_target, target_root
from reconciler.migrate.zrepl_connect import Connect, read_connect
from reconciler.migrate.zrepl_read import Node
from reconciler.migrate.zrepl_settle import Made
from reconciler.migrate.zrepl_snapshots import convert_filesystems, convert_snapshotting
from reconciler.migrate.zrepl_transfer import (
    convert_receive,
    convert_replication,
    convert_retention,
    convert_send,
)


def push_job(build: Build, job: Job, jobs: list[Job]) -> None:
    node = job.node
    connect = read_connect(node)
    sink = None if connect is None else build.partner(job, connect, jobs, "sink")
    identity = _push_identity(build, connect, sink)
    source_host = build.local_host(job.file, identity)
    filesystems = convert_filesystems(node)
    snapshots = convert_snapshotting(node, build.timezone)
    pruning = node.mapping("pruning", affects=True)
    retention = convert_retention(pruning, "keep_sender", "sender")
    send, options = convert_send(node), convert_replication(node)
    host = build.far_host(job, connect)
    root = None if sink is None else target_root(sink, identity)
    receive = {} if sink is None else convert_receive(sink.node)
    missing = _missing(connect, sink, identity, root, host)
    target = None
    if missing is not None:
        _no_target(job, pruning, missing)
    else:
        assert root is not None and host is not None
        keep = convert_retention(pruning, "keep_receiver", "receiver")
        target = make_target(host, root, send, receive, options, keep)
    _policy(build, job, source_host, filesystems, snapshots, retention, target)


def _push_identity(build: Build, connect: Connect | None, sink: Job | None) -> str | None:
    """The name the sink knows the pushing machine by (the `<client identity>` of the root)."""
    if connect is not None and connect.kind == "local":
        return connect.identity
    serve = None if sink is None else build.serve(sink)
    if serve is not None and len(serve.identities) == 1:
        return serve.identities[0]
    return None


def pull_job(build: Build, job: Job, jobs: list[Job]) -> None:
    node = job.node
    connect = read_connect(node)
    source = None if connect is None else build.partner(job, connect, jobs, "source")
    _pull_interval(node)
    pruning = node.mapping("pruning", affects=True)
    if connect is None or source is None:
        node.drop(
            "no source job pairs with this pull job: the filesystems and snapshotting are in the "
            "source machine's zrepl.yml; pass it too",
            True,
        )
        return
    serve = build.serve(source)
    identity = serve.identities[0] if serve is not None and len(serve.identities) == 1 else None
    if connect.kind in ("tcp", "tls"):
        source_host: str | None = build.local_host(source.file)
        host: str | None = None
    else:
        host = build.local_host(job.file, identity)
        source_host = build.far_host(job, connect)
    filesystems = convert_filesystems(source.node)
    snapshots = convert_snapshotting(source.node, build.timezone)
    retention = convert_retention(pruning, "keep_sender", "sender")
    send, options = convert_send(source.node), convert_replication(node)
    root = target_root(job, "")
    receive = convert_receive(node)
    missing = _missing(connect, source, "", root, host)
    target = None
    if missing is not None:
        _no_target(job, pruning, missing)
    else:
        assert root is not None and host is not None
        keep = convert_retention(pruning, "keep_receiver", "receiver")
        target = make_target(host, root, send, receive, options, keep)
    if source_host is None:
        node.drop("the source machine cannot be reached: no policy is made", True)
        return
    _policy(build, job, source_host, filesystems, snapshots, retention, target)


def _pull_interval(node: Node) -> None:
    interval = node.child("interval")
    if interval is None:
        return
    shown = interval.value if isinstance(interval.value, str) else "?"
    interval.note(
        f"zrepl pulled {'on zrepl signal wakeup' if shown == 'manual' else 'every ' + shown}; "
        "the reconciler replicates on every pass (`reconcile watch` after each snapshot)"
    )


def snap_job(build: Build, job: Job) -> None:
    node = job.node
    filesystems = convert_filesystems(node)
    snapshots = convert_snapshotting(node, build.timezone)
    pruning = node.mapping("pruning", affects=True)
    retention = convert_retention(pruning, "keep", "local")
    _policy(build, job, build.local_host(job.file), filesystems, snapshots, retention, None)


def unpaired_job(build: Build, job: Job) -> None:
    """A sink or source job that no active job of the given files reaches."""
    if job.kind == "sink":
        job.node.drop(
            "no push job of the given files pairs with this sink: pass the pushing machine's "
            "zrepl.yml too (its filesystems, snapshotting and keep rules)",
            True,
        )
        return
    node = job.node
    build.serve(job)
    filesystems = convert_filesystems(node)
    snapshots = convert_snapshotting(node, build.timezone)
    send = node.child("send")
    if send is not None:
        send.drop("no target: the pulling job is not in the given files")
    (node.child("serve") or node).drop(
        "no pull job of the given files pairs with this source: its keep_sender (the retention "
        "of these snapshots) and the target are in the pulling machine's zrepl.yml; pass it too",
        True,
    )
    _policy(build, job, build.local_host(job.file), filesystems, snapshots, None, None)


def _missing(
    connect: Connect | None,
    partner: Job | None,
    identity: str | None,
    root: str | None,
    host: str | None,
) -> str | None:
    if connect is None or connect.kind in ("tcp", "tls"):
        return "the transport is not ssh+stdinserver or local"
    if partner is None:
        return "the other side's zrepl.yml was not given, or no job of it pairs with this one"
    if identity is None:
        return "the sink's client identity for this machine is not known (it lists none or several)"
    if root is None or host is None:
        return "the other side's root_fs or host is missing or invalid"
    return None


def _no_target(job: Job, pruning: Node | None, missing: str) -> None:
    receiver = None if pruning is None else pruning.child("keep_receiver")
    where = receiver or job.node.child("connect") or job.node
    where.drop(f"no target is made: {missing}; the receiving side's retention does not apply", True)


def _policy(
    build: Build,
    job: Job,
    source_host: str,
    filesystems: dict[str, bool] | None,
    snapshots: dict[str, Any] | None,
    retention: dict[str, Any] | None,
    target: dict[str, Any] | None,
) -> None:
    if filesystems is None or snapshots is None:
        return
    spec: dict[str, Any] = {
        "source": {"host": source_host, "filesystems": filesystems},
        "snapshots": snapshots,
    }
    if retention is not None:
        spec["retention"] = retention
    if target is not None:
        spec["replication"] = [target]
    build.policies.append(Made(build.policy_name(job), spec, job.node))
