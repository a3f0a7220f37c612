"""Delegated ZFS permissions: which `zfs allow` permissions each host's user needs, and why.

Owned here: `Role`, `Grant`, `Delegation` and `delegations()`, which turns the policy intents
(`core/desired.py`) into the minimal permission sets per (host, dataset, role), each permission
with the reasons that need it; and `allow_argv`, the `zfs allow` line of one delegation. Pure:
called by `reconcile permissions` (`cli/permissions.py`), which renders them; docs/security.md
("Running without root") is the table these rules implement.

What each role runs (`zfs/commands.py`) and the permission it takes on OpenZFS 2.3 (each
checked as a non-root user in the platform guest, docs/security.md):
- source: `snapshot` (a policy that takes snapshots); `send` (any target, including `-t`
  resumes and `-i`/`-I` from bookmarks); `hold` and `release` (protection `resumable`);
  `bookmark` (protection `resumable` or `incremental`: the replication cursor); `destroy` of
  cursor bookmarks (protection other than `none`) and, with `mount`, of snapshots (source
  retention: zfs refuses to destroy a snapshot without `mount`, a bookmark needs only
  `destroy`).
- target: `receive`, `create` and `mount` (every receive; `create -p -u` of missing parents;
  `receive -A` of stale resume state); the permission of each property that
  `receive.properties` sets (`-o P=V`) or drops (`-x P`), `userprop` for user properties (zfs
  only warns when it may not, and the receive still succeeds: so they are granted up front);
  `hold` and `release` (protection `resumable`); `destroy` (target retention,
  `allowFullResync`, and `allowRollback`, whose `rollback -r` destroys the newer snapshots);
  `rollback` (`allowRollback` only).
- listing (`zfs list`, `zfs get`, `zfs holds`) needs no permission.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.core.desired import PolicyIntent, TargetIntent
from reconciler.manifest.filters import SUBTREE
from reconciler.manifest.models import Protection

# the order permissions are printed in: what each role does, in the order a pass does it
ORDER = (
    "snapshot",
    "send",
    "hold",
    "release",
    "bookmark",
    "destroy",
    "mount",
    "receive",
    "create",
    "rollback",
    "userprop",
)
ALL_POOLS = ""  # the dataset of a `<` pattern (every filesystem of the host)


class Role(StrEnum):
    SOURCE = "source"
    TARGET = "target"


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission and every reason a policy needs it (`policy/target: why`)."""

    permission: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delegation:
    """The permissions one host's user needs on one dataset, for one role.

    `descendants`: the dataset and everything below it (zfs allow's default); False for an
    exact filesystem pattern, which `zfs allow -l` grants on that filesystem only."""

    host: str
    dataset: str  # ALL_POOLS for a `<` pattern: one line per pool is needed
    role: Role
    descendants: bool
    grants: tuple[Grant, ...]
    policies: tuple[str, ...]

    @property
    def permissions(self) -> tuple[str, ...]:
        return tuple(grant.permission for grant in self.grants)


def allow_argv(delegation: Delegation, user: str, dataset: str | None = None) -> tuple[str, ...]:
    """`zfs allow -u USER [-l] PERM,PERM,... DATASET` (`dataset` replaces an ALL_POOLS one)."""
    local = () if delegation.descendants else ("-l",)
    where = dataset if dataset is not None else delegation.dataset
    return ("zfs", "allow", "-u", user, *local, ",".join(delegation.permissions), where)


def delegations(intents: Sequence[PolicyIntent]) -> tuple[Delegation, ...]:
    """Every delegation the policies need, merged per (host, dataset, role, descendants),
    sorted by host, dataset and role; a policy that needs nothing on a host adds nothing."""
    merged: dict[tuple[str, str, Role, bool], dict[str, list[str]]] = {}
    policies: dict[tuple[str, str, Role, bool], list[str]] = {}
    for intent in intents:
        for host, dataset, role, descendants, needs in _needs(intent):
            if not needs:
                continue
            key = (host, dataset, role, descendants)
            reasons = merged.setdefault(key, {})
            for permission, reason in needs:
                reasons.setdefault(permission, [])
                if reason not in reasons[permission]:
                    reasons[permission].append(reason)
            policies.setdefault(key, [])
            if intent.name not in policies[key]:
                policies[key].append(intent.name)
    return tuple(
        Delegation(
            host=key[0],
            dataset=key[1],
            role=key[2],
            descendants=key[3],
            grants=tuple(
                Grant(permission, tuple(merged[key][permission]))
                for permission in sorted(merged[key], key=_rank)
            ),
            policies=tuple(policies[key]),
        )
        for key in sorted(merged)
    )


Need = tuple[str, str]  # (permission, reason)


def _needs(intent: PolicyIntent) -> Iterator[tuple[str, str, Role, bool, list[Need]]]:
    source = _source_needs(intent)
    for dataset, descendants in source_datasets(intent):
        yield intent.source_host, dataset, Role.SOURCE, descendants, source
    for target in intent.targets:
        yield target.host, target.root, Role.TARGET, True, _target_needs(intent.name, target)


def source_datasets(intent: PolicyIntent) -> list[tuple[str, bool]]:
    """(dataset, descendants) of each included pattern of the policy's filter: `tank/home<`
    is tank/home and below, `tank/home` that filesystem only, `<` every pool (ALL_POOLS).
    Excluded patterns are not subtracted: zfs allow cannot, so a subtree's delegation also
    covers the filesystems the policy excludes below it (docs/security.md)."""
    found: list[tuple[str, bool]] = []
    for pattern, include in intent.filter.patterns:
        if not include:
            continue
        if pattern.endswith(SUBTREE):
            found.append((pattern[: -len(SUBTREE)], True))
        else:
            found.append((pattern, False))
    covered = {d for d, subtree in found if subtree}
    return sorted(
        (d, subtree)
        for d, subtree in found
        if subtree or not any(_within(d, outer) for outer in covered)
    )


def _source_needs(intent: PolicyIntent) -> list[Need]:
    name = intent.name
    needs: list[Need] = []
    if intent.interval is not None or intent.cron is not None:
        needs.append(("snapshot", f"{name}: takes its snapshots (one `zfs snapshot` call)"))
    if intent.rules:
        why = f"{name}: retention prunes its snapshots on the source"
        needs += [("destroy", why), ("mount", f"{why} (zfs needs mount to destroy a snapshot)")]
    for target in intent.targets:
        pair = f"{name}/{target.name}"
        if target.retiring:
            needs.append(("release", f"{pair}: retiring, releases its holds"))
            needs.append(("destroy", f"{pair}: retiring, destroys its cursor bookmarks"))
            continue
        needs.append(("send", f"{pair}: sends (full, incremental, resumed)"))
        if target.protection is Protection.RESUMABLE:
            why = f"{pair}: protection resumable holds the newest common snapshot"
            needs += [("hold", why), ("release", f"{pair}: releases superseded holds")]
        if target.protection is not Protection.NONE:
            cursor = f"{pair}: protection {target.protection.value} keeps a cursor bookmark"
            needs.append(("bookmark", cursor))
            needs.append(("destroy", f"{pair}: destroys superseded cursor bookmarks"))
    return needs


def _target_needs(policy: str, target: TargetIntent) -> list[Need]:
    pair = f"{policy}/{target.name}"
    if target.retiring:
        return [("release", f"{pair}: retiring, releases its holds on the target")]
    needs: list[Need] = [
        ("receive", f"{pair}: receives (zfs receive -s -u, and -A of stale resume state)"),
        ("create", f"{pair}: receive creates filesystems; create -p -u of missing parents"),
        ("mount", f"{pair}: zfs requires it for receive, create and destroy (nothing is mounted)"),
    ]
    skipped = "without it zfs only warns and skips it"
    for name, _ in target.receive_options.override:
        why = f"{pair}: receive.properties.override sets {name} (-o); {skipped}"
        needs.append((_property_permission(name), why))
    for name in target.receive_options.inherit:
        why = f"{pair}: receive.properties.inherit drops {name} (-x); {skipped}"
        needs.append((_property_permission(name), why))
    if target.protection is Protection.RESUMABLE:
        why = f"{pair}: protection resumable holds the newest common snapshot"
        needs += [("hold", why), ("release", f"{pair}: releases superseded holds")]
    if target.rules:
        needs.append(("destroy", f"{pair}: target retention prunes received snapshots"))
    if target.allow_full_resync:
        why = f"{pair}: allowFullResync destroys the target's snapshots before a full receive"
        needs.append(("destroy", why))
    if target.allow_rollback:
        needs.append(("rollback", f"{pair}: allowRollback rolls a modified target back"))
        why = f"{pair}: allowRollback's rollback -r destroys target-only snapshots"
        needs.append(("destroy", why))
    return needs


def _property_permission(name: str) -> str:
    """The permission that lets a user set property `name`: its own name, or `userprop` for
    a user property (`module:property`)."""
    return "userprop" if ":" in name else name


def _rank(permission: str) -> tuple[int, str]:
    return (ORDER.index(permission), "") if permission in ORDER else (len(ORDER), permission)


def _within(name: str, outer: str) -> bool:
    return outer == ALL_POOLS or name == outer or name.startswith(outer + "/")


def hosts_of(found: Iterable[Delegation]) -> list[str]:
    """The hosts of these delegations, each once, sorted."""
    return sorted({delegation.host for delegation in found})
