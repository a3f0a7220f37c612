"""Replication of one source filesystem to one target: the part of the plan between them.

Owned here: `plan_target` — resume or abort a partial receive, find the common base, pick the
snapshots the target wants, add the send steps and the target's retention destroys, or report a
conflict. The cursor bookmark and holds that keep the pair incremental are
`core/protection.py`; the source side of a filesystem is `core/source.py`. Pure; called by
`core/planner.py`.

Safety, decided here from observed state:
- a target that cannot be observed gets no action; the source keeps what it may still need;
- no target snapshot is destroyed or rolled back unless retention owns it or the policy allows;
- the newest common snapshot is never destroyed on either side unless a bookmark of it stays.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.core.builder import PlanBuilder
from reconciler.core.desired import TargetIntent
from reconciler.core.incremental import (
    CommonBase,
    SendStep,
    find_common_base,
    send_steps,
)
from reconciler.core.plan import (
    AbortResumeAction,
    Conflict,
    ConflictKind,
    CreateParentAction,
    DestroyAction,
    Notice,
    NoticeKind,
    Reason,
    ReceiveOptions,
    RollbackAction,
    SendAction,
    SendMode,
)
from reconciler.core.protection import (
    PairProtection,
    Side,
    keep_for_unobserved_target,
    retention_message,
)
from reconciler.core.retention import Managed
from reconciler.core.source import PENDING_TXG, SourceFilesystem, snapshot_names
from reconciler.core.state import (
    FilesystemKind,
    FilesystemState,
    HostState,
    Version,
    VersionKind,
)
from reconciler.manifest.models import InitialReplication


def plan_target(
    builder: PlanBuilder,
    source: SourceFilesystem,
    target: TargetIntent,
    target_host: HostState,
    replicated: frozenset[str],
) -> None:
    """Add to `builder` what replicating `source` to `target` needs in this pass."""
    side = Side(source.intent.name, target.name)
    if not target_host.reachable:
        builder.notice(unreachable_target_notice(side.policy, target, target_host))
        keep_for_unobserved_target(builder, source, target)
        return
    _TargetPlanner(builder, source, target, target_host, replicated, side).run()


def unreachable_target_notice(policy: str, target: TargetIntent, target_host: HostState) -> Notice:
    """The `host_unreachable` notice of a target whose host could not be observed: one per
    (policy, target), however many filesystems the policy replicates (the builder keeps one of
    equal notices); the planner adds it too when the policy plans no filesystem at all."""
    return Notice(
        NoticeKind.HOST_UNREACHABLE,
        host=target.host,
        message=f"host {target.host} could not be observed ({target_host.error}); "
        "nothing is done on it in this pass",
        policy=policy,
        target=target.name,
    )


class _TargetPlanner(PairProtection):
    """The decisions for one (source filesystem, target) pair; a short-lived helper."""

    def __init__(
        self,
        builder: PlanBuilder,
        source: SourceFilesystem,
        target: TargetIntent,
        target_host: HostState,
        replicated: frozenset[str],
        side: Side,
    ) -> None:
        self.b = builder
        self.source = source
        self.target = target
        self.side = side
        self.replicated = replicated
        self.target_fs = target.target_filesystem(source.name)
        self.target_host = target_host
        self.state: FilesystemState | None = target_host.filesystem(self.target_fs)
        self.target_versions: tuple[Version, ...] = ()
        self.target_snapshots: tuple[Version, ...] = ()
        self.target_managed = Managed((), ())
        self._set_target_versions(self.state.versions if self.state else ())
        self.retention_destroys: dict[str, Reason] = {}
        self.candidate_names: set[str] = set()
        self.resuming = False
        self.target_only: set[str] = set()  # after the common base: never ours to destroy
        self.deps: list[int] = []  # what the sends of this pair wait for
        self.sends: list[int] = []
        self.force = False
        self.rolled_back: set[str] = set()
        self.delivered: list[str] = []
        self.target_releases: list[int] = []

    def _set_target_versions(self, versions: tuple[Version, ...]) -> None:
        self.target_versions = versions
        snapshot = VersionKind.SNAPSHOT
        self.target_snapshots = tuple([v for v in versions if v.kind is snapshot])
        self.target_managed = self.source.intent.managed(snapshot_names(self.target_snapshots))
        self.target_held = [v for v in self.target_snapshots if v.holds]

    # -- the pass for this pair ----------------------------------------------------------
    def run(self) -> None:
        base = self._resume_or_abort()
        if self.state is None:
            self._initial()
            base = None
        elif base is None:
            base = find_common_base(
                self.source.versions, self.target_versions, self.source.version_with_guid
            )
            if base is None and not self._no_common_base():
                return
        if base is not None and not self._incremental(base):
            if base.source.is_snapshot:
                self.source.protected.add(base.source.name)
            return
        newest = self._newest_common(base)
        self._protect(newest)
        self._target_retention(base, newest)
        self.source.destroy_deps.extend(self.sends)
        if newest is not None and not self._bookmarked(newest):
            self.source.protected.add(newest)

    def _resume_or_abort(self) -> CommonBase | None:
        """Resume a partial receive (its snapshot becomes the base), or abort a stale one."""
        state = self.state
        if state is None or state.resume_token is None:
            return None
        token = state.resume_token
        snapshot = self.source.version_with_guid(token.to_guid)
        if snapshot is not None and not snapshot.is_snapshot:
            snapshot = None
        if snapshot is None:
            self.deps.append(
                self.b.add(
                    AbortResumeAction,
                    **self.side.fields(
                        host=self.target.host,
                        filesystem=self.target_fs,
                        reason=Reason.RESUME_TOKEN_STALE,
                        message=f"the partial receive of {token.to_name} cannot resume: that "
                        "snapshot no longer exists on the source; discard it (zfs receive -A)",
                    ),
                )
            )
            if not self.target_snapshots:
                self.state = None
                self._set_target_versions(())
            return None
        estimate = max(0, self._estimate_full(snapshot) - token.bytes_received)
        message = f"resume the interrupted receive of @{snapshot.name} from its token"
        if token.from_guid is None and self.target.allow_full_resync:
            # a full stream into an existing filesystem (a full resync) resumes only with -F
            # again, and the token does not tell; -F changes nothing for a new filesystem
            self.force = True
            message += " (with -F, which a full resync needs again: allowFullResync)"
        send_id = self._add_send(
            SendStep(SendMode.RESUME, None, snapshot.name, (snapshot.name,)),
            Reason.RESUME_INTERRUPTED_RECEIVE,
            message,
            resume_token=token.token,
            estimate=estimate,
        )
        del send_id
        self.resuming = True
        received = Version(
            VersionKind.SNAPSHOT, snapshot.name, snapshot.guid, PENDING_TXG, snapshot.creation
        )
        self._set_target_versions((*self.target_versions, received))
        return CommonBase(source=snapshot, target=received)

    def _initial(self) -> None:
        """The target filesystem does not exist: a full stream, then the rest."""
        candidates = self.source.replicated_after(None)
        if not candidates:
            return
        if self.target.initial_replication is InitialReplication.FAIL:
            self._conflict(
                ConflictKind.INITIAL_REPLICATION_FORBIDDEN,
                f"{self.target_fs} does not exist on {self.target.host} and initialReplication "
                "is fail: create it by hand or change the policy",
                source_only=tuple("@" + v.name for v in candidates),
            )
            self._protect_all(candidates)
            return
        if self.target.initial_replication is InitialReplication.MOST_RECENT:
            wanted = {candidates[-1].name}
        else:
            wanted = self._wanted(candidates, Managed((), ()))[0]
        if not self._parent():
            return
        steps = send_steps(self.source.snapshots, wanted, None)
        self._add_steps(steps, Reason.INITIAL_REPLICATION, initial=True)

    def _no_common_base(self) -> bool:
        """The target exists with nothing in common: a conflict, or an allowed full resync."""
        assert self.state is not None
        snapshots = self.target_snapshots
        candidates = self.source.replicated_after(None)
        kind = ConflictKind.NO_COMMON_BASE if snapshots else ConflictKind.TARGET_NOT_EMPTY
        if not self.target.allow_full_resync:
            message = (
                f"{self.target_fs} on {self.target.host} has no snapshot in common with the source"
                if snapshots
                else f"{self.target_fs} exists on {self.target.host} without any snapshot"
            )
            self._conflict(
                kind,
                message + "; allowFullResync would replace it",
                source_only=tuple("@" + v.name for v in candidates),
                target_only=tuple("@" + v.name for v in snapshots),
            )
            self._protect_all(candidates)
            return False
        if not candidates:
            return False
        if snapshots:
            self.deps.append(
                self.b.add(
                    DestroyAction,
                    **self.side.fields(
                        host=self.target.host,
                        filesystem=self.target_fs,
                        versions=tuple("@" + v.name for v in snapshots),
                        reason=Reason.FULL_RESYNC,
                        message=f"allowFullResync: {self.target_fs} has no snapshot in common "
                        "with the source; destroy its snapshots before a full receive",
                    ),
                )
            )
        self.force = True
        wanted = {candidates[-1].name}
        if self.target.initial_replication is InitialReplication.ALL:
            wanted = self._wanted(candidates, Managed((), ()))[0]
        steps = send_steps(self.source.snapshots, wanted, None)
        self._add_steps(steps, Reason.FULL_RESYNC, initial=False)
        return True

    def _incremental(self, base: CommonBase) -> bool:
        """Send what the target wants after the base; False when a conflict stops the pair."""
        assert self.state is not None
        after_source = self.source.after(base.source)
        candidates = self.source.replicated_after(base.source)
        base_txg = base.target.createtxg
        target_after: list[Version] = []
        for version in reversed(self.target_snapshots):  # usually none: stop at the base
            if version.createtxg <= base_txg:
                break
            target_after.append(version)
        target_after.reverse()
        wanted, self.retention_destroys = self._wanted(candidates, self.target_managed)
        self.candidate_names = {v.name for v in candidates}
        self.target_only.update(v.name for v in target_after)
        if not wanted:
            return True
        raw = self.target.send_options.raw
        diverged = bool(target_after) and (raw or any(v.written for v in target_after))
        # a partial receive's bytes show as `written`: not a modification while it resumes
        modified = self.state.written > 0 and not self.resuming
        if diverged or modified:
            if not self.target.allow_rollback:
                kind = ConflictKind.DIVERGED if diverged else ConflictKind.TARGET_MODIFIED
                to = base.target if diverged else self._newest_target(base)
                why = (
                    f"has snapshots after the common snapshot @{base.target.name}"
                    if diverged
                    else "was written to since its newest snapshot"
                )
                self._conflict(
                    kind,
                    f"{self.target_fs} on {self.target.host} {why}; allowRollback would "
                    f"roll it back to @{to.name}",
                    source_only=tuple("@" + v.name for v in candidates),
                    target_only=tuple("@" + v.name for v in target_after),
                )
                self._protect_all(candidates)
                return False
            self._rollback(base, target_after if diverged else [])
        steps = send_steps(after_source, wanted, base.source)
        self._add_steps(steps, Reason.NOT_YET_REPLICATED, initial=False)
        return True

    # -- pieces --------------------------------------------------------------------------
    def _wanted(
        self, candidates: Sequence[Version], on_target: Managed
    ) -> tuple[set[str], dict[str, Reason]]:
        """(candidates the target wants, target snapshots its retention destroys and why).

        The target's retention sees its managed snapshots and the candidates together, so a
        candidate it would destroy at once is never sent."""
        intent = self.source.intent
        if not self.target.rules:
            return {v.name for v in candidates}, {}
        merged = intent.managed(on_target.names + snapshot_names(candidates))
        result = self.source.retention.evaluate(self.target.rules, merged)
        kept = result.kept
        wanted = {
            v.name
            for v in candidates
            if v.name in kept or intent.snapshot_time(v.name) is None  # included foreign
        }
        return wanted, dict(result.destroyed)

    def _newest_target(self, base: CommonBase) -> Version:
        newest = self.state.newest_snapshot() if self.state is not None else None
        return newest if newest is not None else base.target

    def _rollback(self, base: CommonBase, target_after: Sequence[Version]) -> None:
        destroys = tuple("@" + v.name for v in target_after)
        to = base.target if target_after else self._newest_target(base)
        reason = Reason.ROLLBACK_DIVERGED if target_after else Reason.ROLLBACK_MODIFIED
        what = (
            f"destroys {len(destroys)} snapshot(s) found only on the target"
            if destroys
            else "discards changes written since that snapshot"
        )
        self.deps.append(
            self.b.add(
                RollbackAction,
                **self.side.fields(
                    host=self.target.host,
                    filesystem=self.target_fs,
                    snapshot="@" + to.name,
                    destroys=destroys,
                    reason=reason,
                    message=f"allowRollback: roll {self.target_fs} back to @{to.name}; {what}",
                ),
            )
        )
        self.rolled_back.update(v.name for v in target_after)

    def _parent(self) -> bool:
        """Make sure the target's parent exists (or will, received earlier in this pass).

        A missing parent is created, unless the policy replicates it (or an ancestor) itself:
        an empty filesystem created there would block that replication, so the child waits."""
        parent = self.target_fs.rpartition("/")[0]
        host = self.target.host
        key = (host, parent)
        if key in self.b.first_receive:
            self.deps.append(self.b.first_receive[key])
            return True
        if self.target_host.filesystem(parent) is not None:
            return True
        for ancestor in _ancestors(self.source.name):
            ancestor_target = self.target.target_filesystem(ancestor)
            if (
                ancestor in self.replicated
                and self.target_host.filesystem(ancestor_target) is None
                and (host, ancestor_target) not in self.b.first_receive
            ):
                self.b.notice(
                    Notice(
                        NoticeKind.WAITING_FOR_PARENT,
                        host=host,
                        message=f"{self.target_fs} waits for {ancestor_target}, which is not "
                        "replicated yet",
                        policy=self.side.policy,
                        target=self.side.target,
                        filesystem=self.target_fs,
                    )
                )
                return False
        if key not in self.b.created:
            ancestors = [a for a in _ancestors(parent) if (host, a) in self.b.first_receive]
            self.b.created[key] = self.b.add(
                CreateParentAction,
                **self.side.fields(
                    host=host,
                    filesystem=parent,
                    reason=Reason.TARGET_PARENT_MISSING,
                    message=f"create {parent} (with its parents) to receive {self.target_fs}",
                    depends_on=tuple(self.b.first_receive[(host, a)] for a in ancestors),
                ),
            )
        self.deps.append(self.b.created[key])
        return True

    def _add_steps(self, steps: Sequence[SendStep], reason: Reason, *, initial: bool) -> None:
        for index, step in enumerate(steps):
            first_full = initial and index == 0
            send_reason = (
                reason
                if first_full or reason is Reason.FULL_RESYNC
                else (Reason.NOT_YET_REPLICATED)
            )
            send_id = self._add_send(step, send_reason, self._describe(step, first_full))
            if first_full:
                self.b.first_receive[(self.target.host, self.target_fs)] = send_id

    def _add_send(
        self,
        step: SendStep,
        reason: Reason,
        message: str,
        *,
        resume_token: str | None = None,
        estimate: int | None = None,
    ) -> int:
        deps = list(self.deps)
        pending = self.source.pending
        if (
            pending is not None
            and self.source.snapshot_action is not None
            and (pending.name in step.delivers or step.from_version == "@" + pending.name)
        ):
            deps.append(self.source.snapshot_action)
        receive = self.target.receive_options
        if self.source.state.kind is FilesystemKind.VOLUME:
            left_out = receive.left_out_for_volume()
            receive = receive.for_volume()
            if left_out:
                message += f" ({', '.join(left_out)} left out: they do not apply to a volume)"
        if self.force and step.mode in (SendMode.FULL, SendMode.RESUME):
            receive = ReceiveOptions(receive.override, receive.inherit, force=True)
        send_id = self.b.add(
            SendAction,
            **self.side.fields(
                host=self.source.host,
                filesystem=self.source.name,
                target_host=self.target.host,
                target_filesystem=self.target_fs,
                mode=step.mode,
                from_version=step.from_version,
                to_snapshot="@" + step.to_snapshot,
                delivers=step.delivers,
                resume_token=resume_token,
                send_options=self.target.send_options,
                receive_options=receive,
                estimated_bytes=self._estimate(step) if estimate is None else estimate,
                reason=reason,
                message=message,
                depends_on=tuple(deps),
            ),
        )
        self.deps = [send_id]  # each step waits for the one before it
        self.sends.append(send_id)
        self.delivered.extend(step.delivers)
        return send_id

    def _describe(self, step: SendStep, initial: bool) -> str:
        count = len(step.delivers)
        what = f"{count} snapshot{'s' if count != 1 else ''}"
        if step.mode is SendMode.FULL:
            why = "initial replication" if initial else "full resync"
            return f"{why}: full stream of @{step.to_snapshot} to {self.target_fs}"
        if step.mode is SendMode.INTERMEDIATES:
            return (
                f"{what} not yet on {self.target.name} (-I {step.from_version} to "
                f"@{step.to_snapshot})"
            )
        return f"@{step.to_snapshot} not yet on {self.target.name} (-i {step.from_version})"

    def _estimate(self, step: SendStep) -> int:
        if step.mode is SendMode.FULL:
            to = self.source.snapshot_named(step.to_snapshot)
            return self._estimate_full(to) if to is not None else 0
        assert step.from_version is not None
        start = self._txg_of(step.from_version)
        to = self.source.snapshot_named(step.to_snapshot)
        end = to.createtxg if to is not None else PENDING_TXG
        return self.source.written_between(start, end)

    def _estimate_full(self, snapshot: Version) -> int:
        if snapshot.referenced:
            return snapshot.referenced
        return self.source.written_between(-1, snapshot.createtxg)

    def _txg_of(self, reference: str) -> int:
        if reference[0] == "@":
            snapshot = self.source.snapshot_named(reference[1:])
            return snapshot.createtxg if snapshot is not None else 0
        for version in self.source.bookmarks:
            if version.name == reference[1:]:
                return version.createtxg
        return 0

    def _newest_common(self, base: CommonBase | None) -> str | None:
        """The source snapshot both sides will share after this pass's sends."""
        if self.delivered:
            return self.delivered[-1]
        if base is not None and base.source.is_snapshot:
            return base.source.name
        return None

    def _target_retention(self, base: CommonBase | None, newest: str | None) -> None:
        """Destroy what the target's retention does not keep, after the sends succeeded."""
        destroyed = self.retention_destroys
        if not destroyed or self.state is None:
            return
        spared = {newest} if newest is not None else set()
        if base is not None and not self.sends:
            spared.add(base.target.name)
        by_reason: dict[Reason, list[str]] = {}
        skip = spared | self.rolled_back | self.candidate_names | self.target_only
        held = {v.name: v.holds for v in self.target_held}
        for name, reason in destroyed.items():  # target snapshots and candidates, oldest first
            if name in skip:
                continue
            holds = held.get(name)
            if holds:
                foreign_holds = sorted(t for t in holds if t != self.target.hold_tag)
                if foreign_holds:
                    self._held_notice(self.target.host, self.target_fs, name, foreign_holds)
                    continue
            by_reason.setdefault(reason, []).append(name)
        for reason, names in sorted(by_reason.items()):
            self.b.add(
                DestroyAction,
                **self.side.fields(
                    host=self.target.host,
                    filesystem=self.target_fs,
                    versions=self.b.snapshot_refs(names),
                    reason=reason,
                    message=retention_message(reason, len(names), f"target {self.target.name}"),
                    depends_on=(*self.sends, *self.target_releases),
                ),
            )

    def _protect_all(self, candidates: Sequence[Version]) -> None:
        self.source.protected.update(v.name for v in candidates)

    def _conflict(
        self,
        kind: ConflictKind,
        message: str,
        *,
        source_only: tuple[str, ...] = (),
        target_only: tuple[str, ...] = (),
    ) -> None:
        self.b.conflict(
            Conflict(
                policy=self.side.policy,
                target=self.side.target,
                host=self.source.host,
                filesystem=self.source.name,
                target_host=self.target.host,
                target_filesystem=self.target_fs,
                kind=kind,
                message=message,
                source_only=source_only,
                target_only=target_only,
            )
        )


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
