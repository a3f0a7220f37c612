"""Desired state: the validated manifests turned into the plain values the planner works on.

Owned here: `PolicyIntent` and `TargetIntent` (what must exist where, per policy and target),
built by `intents()` from `reconciler.manifest` models. Pure; called by the planner once per
pass. Keeping the pydantic models out of the planner's inner loops keeps them fast and lets
the planner's tests build intents directly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from itertools import pairwise
from typing import Any

from reconciler.core.names import hold_tag, parse_hold_tag, snapshot_time, split_cursor_bookmark
from reconciler.core.plan import Hook, ReceiveOptions, SendOptions
from reconciler.core.retention import GridRule, LastNRule, Managed, RegexRule, Rule
from reconciler.manifest.cron import CronSchedule
from reconciler.manifest.filters import FilesystemFilter
from reconciler.manifest.models import (
    HookFailure,
    InitialReplication,
    Manifests,
    Policy,
    Protection,
)
from reconciler.manifest.name_schemes import NameScheme, adopted_scheme, load_zone
from reconciler.manifest.regex import Regex, compile_regex


@dataclass(frozen=True, slots=True)
class TargetIntent:
    name: str
    host: str
    root: str
    rules: tuple[Rule, ...]  # empty: keep everything managed
    protection: Protection
    initial_replication: InitialReplication
    send_options: SendOptions
    receive_options: ReceiveOptions
    allow_rollback: bool
    allow_full_resync: bool
    hold_tag: str
    max_lag: int | None = None  # seconds; `reconcile status` calls a pair stale beyond it
    retiring: bool = False  # releases its holds and cursor bookmarks; nothing else (retirement.py)
    zfs_command: tuple[str, ...] = ("zfs",)  # its host's `zfsCommand`, for commands we print

    def target_filesystem(self, source_filesystem: str) -> str:
        return f"{self.root}/{source_filesystem}"


@dataclass(frozen=True, slots=True)
class PolicyIntent:
    name: str
    source_host: str
    filter: FilesystemFilter
    prefix: str
    interval: int | None
    cron: CronSchedule | None
    include: tuple[Regex, ...]
    rules: tuple[Rule, ...]  # empty: keep everything managed
    targets: tuple[TargetIntent, ...]
    hooks: tuple[Hook, ...] = ()  # run around each snapshot the policy takes
    source_zfs_command: tuple[str, ...] = ("zfs",)  # the source host's, for commands we print
    adopted: tuple[NameScheme, ...] = ()  # other tools' names the policy owns (`adopt`)
    # memo of name → time / replicated: names repeat across filesystems (one snapshot call
    # names every filesystem alike), so each distinct name is parsed once per pass
    _times: dict[str, int | None] = field(default_factory=dict, compare=False, repr=False)
    _replicated: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    _managed: dict[tuple[str, ...], Managed] = field(
        default_factory=dict, compare=False, repr=False
    )

    def snapshot_time(self, name: str) -> int | None:
        """The time in a managed snapshot's name; None for a foreign snapshot."""
        try:
            return self._times[name]
        except KeyError:
            when = snapshot_time(self.prefix, name)
            for scheme in self.adopted:
                if when is not None:
                    break
                when = scheme.time_of(name)
            self._times[name] = when
            return when

    def parse_cursor(self, target: str, bookmark: str) -> str | None:
        """The snapshot name a cursor bookmark of `target` was made from, or None if the
        bookmark is not such a cursor (its snapshot part must be a managed name)."""
        suffix = "_" + target
        if not bookmark.endswith(suffix):
            return None
        snapshot = bookmark[: -len(suffix)]
        return snapshot if self.snapshot_time(snapshot) is not None else None

    def parse_any_cursor(self, bookmark: str) -> tuple[str, str] | None:
        """(snapshot, target) of a cursor bookmark of any target of this policy, or None."""
        parts = split_cursor_bookmark(bookmark)
        if parts is None or self.snapshot_time(parts[0]) is None:
            return None
        return parts

    def managed(self, names: tuple[str, ...]) -> Managed:
        """The managed snapshots among `names` (each once), oldest first.

        Memoized by the names: a policy's filesystems usually carry the same names, so each
        distinct sequence is parsed and ordered once per pass."""
        found = self._managed.get(names)
        if found is None:
            found = self._managed[names] = self._index(names)
        return found

    def _index(self, names: tuple[str, ...]) -> Managed:
        pairs = [(n, t) for n in dict.fromkeys(names) if (t := self.snapshot_time(n)) is not None]
        times = [t for _, t in pairs]
        if not all(a < b for a, b in pairwise(times)):
            pairs.sort(key=lambda pair: (pair[1], pair[0]))
        return Managed(tuple(n for n, _ in pairs), tuple(t for _, t in pairs))

    def is_replicated(self, name: str) -> bool:
        """Managed snapshots, and foreign ones that `snapshots.include` names."""
        try:
            return self._replicated[name]
        except KeyError:
            result = self.snapshot_time(name) is not None or any(
                pattern.search(name) for pattern in self.include
            )
            self._replicated[name] = result
            return result

    def owns_hold(self, tag: str) -> bool:
        parsed = parse_hold_tag(tag)
        return parsed is not None and parsed[:2] == (self.prefix, self.name)


def intents(manifests: Manifests, only: Collection[str] | None = None) -> tuple[PolicyIntent, ...]:
    """One intent per policy (sorted by name), limited to `only` when given."""
    zfs_commands = {name: tuple(h.spec.zfs_command) for name, h in manifests.hosts.items()}
    return tuple(
        policy_intent(policy, zfs_commands)
        for name, policy in sorted(manifests.policies.items())
        if only is None or name in only
    )


def policy_intent(
    policy: Policy, zfs_commands: Mapping[str, tuple[str, ...]] | None = None
) -> PolicyIntent:
    """The policy's intent; `zfs_commands` (Host name → its `zfsCommand`) only shapes the
    commands that status prints for a person to run (`core/leftovers.py`)."""
    commands = zfs_commands or {}
    spec = policy.spec
    name = policy.metadata.name
    prefix = spec.snapshots.prefix
    targets = tuple(
        TargetIntent(
            name=target.name,
            host=target.host,
            root=target.root.rstrip("/"),
            rules=retention_rules(target.retention),
            protection=Protection(target.protection),
            initial_replication=InitialReplication(target.initial_replication),
            send_options=SendOptions(
                raw=target.send.raw,
                compressed=target.send.compressed,
                large_blocks=target.send.large_blocks,
                embedded_data=target.send.embedded_data,
                properties=target.send.properties,
            ),
            receive_options=ReceiveOptions(
                override=tuple(sorted(target.receive.properties.override.items())),
                inherit=tuple(target.receive.properties.inherit),
            ),
            allow_rollback=target.receive.allow_rollback,
            allow_full_resync=target.receive.allow_full_resync,
            hold_tag=hold_tag(prefix, name, target.name),
            max_lag=target.max_lag,
            retiring=target.retiring,
            zfs_command=commands.get(target.host, ("zfs",)),
        )
        for target in sorted(spec.replication, key=lambda t: t.name)
    )
    return PolicyIntent(
        name=name,
        source_host=spec.source.host,
        filter=FilesystemFilter.from_mapping(spec.source.filesystems),
        prefix=prefix,
        interval=spec.snapshots.interval,
        cron=spec.snapshots.cron,
        include=tuple(compile_regex(p) for p in spec.snapshots.include),
        rules=retention_rules(spec.retention),
        targets=targets,
        hooks=tuple(
            Hook(
                hook.when.value,
                tuple(hook.command),
                hook.timeout,
                hook.on_failure is HookFailure.SKIP,
            )
            for hook in spec.snapshots.hooks
        ),
        source_zfs_command=commands.get(spec.source.host, ("zfs",)),
        adopted=tuple(
            adopted_scheme(
                entry.prefix,
                entry.format.value if entry.format is not None else None,
                entry.layout,
                load_zone(entry.timezone) or UTC,  # validated: the zone exists
            )
            for entry in spec.snapshots.adopt
        ),
    )


def retention_rules(retention: Any) -> tuple[Rule, ...]:
    """The manifest's `retention.keep` list as core rules; None keeps everything."""
    if retention is None:
        return ()
    return tuple(_rule(item) for item in retention.keep)


def _rule(item: Any) -> Rule:
    match = getattr(item, "match", None)
    seen = None if match is None else compile_regex(match)
    if getattr(item, "grid", None) is not None:
        return GridRule(grid=item.grid, match=seen)
    if getattr(item, "last_n", None) is not None:
        return LastNRule(count=item.last_n, match=seen)
    return RegexRule(pattern=compile_regex(item.regex), negate=bool(getattr(item, "negate", False)))


def source_filesystems(intent: PolicyIntent, names: Sequence[str]) -> list[str]:
    """The filesystems of the source host the policy selects, sorted (parents first)."""
    matches = intent.filter.matches
    return sorted(name for name in names if matches(name))
