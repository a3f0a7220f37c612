"""Property tests of the pure planner over random observed states (hypothesis): whatever the
pools look like, no plan breaks the guarantees of product.md §5 that observed state decides.

1. nothing foreign is destroyed or released;
2. the newest common snapshot of a source and target survives (unless a bookmark of it stays
   on the source); nothing a conflicted target still needs is pruned on the source;
3. no rollback, forced receive or destroy of target-only snapshots unless the policy allows;
5. a host that cannot be observed gets no action.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.incremental import find_common_base
from reconciler.core.names import (
    cursor_bookmark,
    parse_cursor_bookmark,
    parse_hold_tag,
    snapshot_name,
    snapshot_time,
)
from reconciler.core.plan import (
    Action,
    DestroyAction,
    Plan,
    Reason,
    ReleaseAction,
    RollbackAction,
    SendAction,
)
from reconciler.core.planner import plan
from reconciler.core.state import (
    FilesystemState,
    HostState,
    Observed,
    ResumeToken,
    Version,
    VersionKind,
)
from reconciler.manifest.loader import Manifests, parse_manifests

PREFIX = "zr_"
SOURCE_FS = "tank/home"
TARGET_FS = "vault/nas/tank/home"
TAG = f"{PREFIX}:home:offsite"
START = 1_795_582_800  # 2026-11-25T05:00:00Z
STEP = 900

MANIFEST = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: nas}}
spec: {{transport: local}}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: backup}}
spec: {{transport: local}}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: home}}
spec:
  source: {{host: nas, filesystems: {{"tank/home": true}}}}
  snapshots: {{prefix: zr_, interval: 15m, include: ["^keep-"]}}
  retention: {{keep: [{source_rule}]}}
  replication:
    - name: offsite
      host: backup
      root: vault/nas
      protection: {protection}
      initialReplication: {initial}
      send: {{raw: {raw}}}
      receive: {{allowRollback: {rollback}, allowFullResync: {resync}}}
      retention: {{keep: [{target_rule}]}}
"""

RULES = [
    '{grid: "1x1h(keep=all) | 6x1h | 3x1d"}',
    "{lastN: 3}",
    '{grid: "4x1h"}',
    "{lastN: 1}",
    '{regex: "T0[0-9]0000Z$"}',
]


@dataclass(frozen=True)
class Case:
    manifests: Manifests
    observed: Observed
    now: int
    allow_rollback: bool
    allow_resync: bool


@st.composite
def cases(draw: st.DrawFn) -> Case:
    text = MANIFEST.format(
        source_rule=draw(st.sampled_from(RULES)),
        target_rule=draw(st.sampled_from(RULES)),
        protection=draw(st.sampled_from(["resumable", "incremental", "none"])),
        initial=draw(st.sampled_from(["mostRecent", "all", "fail"])),
        raw=draw(st.booleans()),
        rollback=(rollback := draw(st.booleans())),
        resync=(resync := draw(st.booleans())),
    )
    manifests = parse_manifests([("case.yaml", text)])
    guid = iter(range(1000, 10**6))
    txg = iter(range(10, 10**6))
    source: list[Version] = []
    count = draw(st.integers(0, 14))
    for index in range(count):
        kind = draw(st.sampled_from(["managed", "managed", "managed", "foreign", "included"]))
        name = {
            "managed": snapshot_name(PREFIX, START + index * STEP),
            "foreign": f"manual-{index}",
            "included": f"keep-{index}",
        }[kind]
        holds = frozenset(draw(st.sets(st.sampled_from([TAG, "audit"]), max_size=2)))
        source.append(
            Version(
                VersionKind.SNAPSHOT,
                name,
                next(guid),
                next(txg),
                START,
                written=draw(st.sampled_from([0, 4096])),
                holds=holds,
            )
        )
    # the target holds some of the source's snapshots (same GUIDs), then maybe its own
    target: list[Version] | None = None
    if draw(st.booleans()):
        kept = [v for v in source if draw(st.booleans())]
        target = [
            Version(
                VersionKind.SNAPSHOT,
                v.name,
                v.guid,
                next(txg),
                v.creation,
                holds=frozenset(draw(st.sets(st.sampled_from([TAG, "mine"]), max_size=1))),
            )
            for v in kept
        ]
        for extra in range(draw(st.integers(0, 2))):
            target.append(
                Version(
                    VersionKind.SNAPSHOT,
                    f"local-{extra}",
                    next(guid),
                    next(txg),
                    START,
                    written=draw(st.sampled_from([0, 1])),
                )
            )
    # the source may have lost some snapshots, keeping bookmarks of a few
    survivors: list[Version] = []
    for version in source:
        gone = draw(st.integers(0, 3)) == 0
        if gone and draw(st.booleans()):
            survivors.append(
                Version(
                    VersionKind.BOOKMARK,
                    cursor_bookmark(version.name, "offsite"),
                    version.guid,
                    version.createtxg,
                    version.creation,
                )
            )
        if not gone:
            survivors.append(version)
    token = None
    if target is not None and source and draw(st.booleans()):
        partial = draw(st.sampled_from(source))
        token = ResumeToken(f"token-{partial.guid}", partial.guid, f"{SOURCE_FS}@{partial.name}")
    hosts = {
        "nas": HostState(
            "nas",
            {
                SOURCE_FS: FilesystemState(
                    SOURCE_FS, tuple(survivors), written=draw(st.sampled_from([0, 9]))
                )
            },
        ),
        "backup": HostState("backup", {"vault": FilesystemState("vault")}),
    }
    if target is not None:
        hosts["backup"] = HostState(
            "backup",
            {
                "vault": FilesystemState("vault"),
                "vault/nas/tank": FilesystemState("vault/nas/tank"),
                TARGET_FS: FilesystemState(
                    TARGET_FS,
                    tuple(target),
                    written=draw(st.sampled_from([0, 0, 7])),
                    resume_token=token,
                ),
            },
        )
    for name in ("nas", "backup"):
        if draw(st.integers(0, 5)) == 0:
            hosts[name] = HostState(name, error="unreachable")
    now = START + count * STEP + draw(st.integers(0, 3 * STEP))
    return Case(manifests, Observed(hosts), now, rollback, resync)


def _destroys(result: Plan, host: str) -> list[tuple[DestroyAction, str]]:
    return [
        (a, v)
        for a in result.actions
        if isinstance(a, DestroyAction) and a.host == host
        for v in a.versions
    ]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(cases())
def test_no_plan_breaks_the_guarantees(case: Case) -> None:
    result = plan(case.manifests, case.observed, case.now)
    actions: list[Action] = list(result.actions)
    # 5: nothing at all on a host that could not be observed
    for name, host in case.observed.hosts.items():
        if not host.reachable:
            assert not [a for a in actions if a.host == name], name
            assert not [a for a in actions if isinstance(a, SendAction) and a.target_host == name]
    # 1: destroys name managed snapshots or our cursor bookmarks; releases our tags
    for action, version in _destroys(result, "nas") + _destroys(result, "backup"):
        if action.reason is Reason.FULL_RESYNC:
            assert case.allow_resync
            continue
        name = version[1:]
        if version.startswith("@"):
            assert snapshot_time(PREFIX, name) is not None, version
        else:
            assert parse_cursor_bookmark(PREFIX, "offsite", name) is not None, version
    for action in actions:
        if isinstance(action, ReleaseAction):
            assert parse_hold_tag(action.tag) == (PREFIX, "home", "offsite")
    # 3: no rollback or forced receive unless allowed
    for action in actions:
        if isinstance(action, RollbackAction):
            assert case.allow_rollback
        if isinstance(action, SendAction) and action.receive_options.force:
            assert case.allow_resync
    # 2: the newest common snapshot survives on both sides
    source = case.observed.hosts["nas"]
    target = case.observed.hosts["backup"]
    if not (source.reachable and target.reachable):
        return
    target_fs = target.filesystem(TARGET_FS)
    if target_fs is None:
        return
    versions = source.filesystems[SOURCE_FS].versions
    base = find_common_base(versions, target_fs.versions)
    if base is None:
        return
    bookmarked = any(
        v.kind is VersionKind.BOOKMARK and v.guid == base.source.guid for v in versions
    )
    bookmarking = any(
        getattr(a, "snapshot", None) == "@" + base.source.name and a.kind == "bookmark"
        for a in actions
    )
    if base.source.is_snapshot and not (bookmarked or bookmarking):
        sends = [a for a in actions if isinstance(a, SendAction)]
        for action, version in _destroys(result, "nas"):
            if version == "@" + base.source.name:
                # only after sends that make a newer common snapshot, and never unless they
                # all succeed (the destroy depends on them)
                assert sends and set(a.id for a in sends) <= set(action.depends_on)
    for action, version in _destroys(result, "backup"):
        if action.reason is not Reason.FULL_RESYNC:
            assert version != "@" + base.target.name or any(
                isinstance(a, SendAction) and a.id in action.depends_on for a in actions
            )
    for action in actions:
        if isinstance(action, RollbackAction):
            assert "@" + base.target.name not in action.destroys


def test_the_base_stays_when_the_target_wants_nothing_newer() -> None:
    """The target's retention keeps only hourly snapshots and the source keeps only its newest:
    no send is planned, so nothing may replace the common base, and the source keeps it."""
    text = MANIFEST.format(
        source_rule="{lastN: 1}",
        target_rule='{regex: "T0[0-9]0000Z$"}',
        protection="none",
        initial="mostRecent",
        raw="false",
        rollback="false",
        resync="false",
    )
    names = [snapshot_name(PREFIX, START + i * STEP) for i in range(3)]  # 05:00, 05:15, 05:30
    source = tuple(
        Version(VersionKind.SNAPSHOT, n, 100 + i, 10 + i, START) for i, n in enumerate(names)
    )
    target = (Version(VersionKind.SNAPSHOT, names[0], 100, 50, START),)
    observed = Observed(
        {
            "nas": HostState("nas", {SOURCE_FS: FilesystemState(SOURCE_FS, source)}),
            "backup": HostState("backup", {TARGET_FS: FilesystemState(TARGET_FS, target)}),
        }
    )
    result = plan(parse_manifests([("case.yaml", text)]), observed, START + 2 * STEP + 60)
    destroyed = [v for _, v in _destroys(result, "nas")]
    assert destroyed == ["@" + names[1]]  # not the base (05:00), not the newest (05:30)
    assert not [a for a in result.actions if isinstance(a, SendAction)]
