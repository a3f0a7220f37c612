"""The plan: a frozen, ordered value with a closed set of action kinds.

Owned here: the action types, the machine `Reason` codes, `Conflict`, `Notice` and
`UnobservedHost`, the `Plan` itself, and the receive properties a volume refuses
(`FILESYSTEM_ONLY_PROPERTIES`). The planner builds it; the executor carries it out without
deciding again; the renderers (`core/render.py`) turn it into JSON (with `format_version`) and
text.

Every action names the host, filesystem, versions, the policy and target it serves, a machine
`reason` and a human `message`. `depends_on` lists the ids of earlier actions that must have
succeeded before this one may run (a failed action stops only what depends on it).
Version names carry their sigil: `@snap` for a snapshot, `#mark` for a bookmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

FORMAT_VERSION = 1


class Reason(StrEnum):
    SCHEDULE_DUE = "schedule_due"
    INITIAL_REPLICATION = "initial_replication"
    NOT_YET_REPLICATED = "not_yet_replicated"
    RESUME_INTERRUPTED_RECEIVE = "resume_interrupted_receive"
    RESUME_TOKEN_STALE = "resume_token_stale"
    TARGET_PARENT_MISSING = "target_parent_missing"
    RETENTION_GRID_EXPIRED = "retention_grid_expired"
    RETENTION_GRID_BUCKET_FULL = "retention_grid_bucket_full"
    RETENTION_NOT_KEPT = "retention_not_kept"
    ROLLBACK_DIVERGED = "rollback_diverged"
    ROLLBACK_MODIFIED = "rollback_modified"
    FULL_RESYNC = "full_resync"
    PROTECT_NEWEST_COMMON = "protect_newest_common"
    HOLD_SUPERSEDED = "hold_superseded"
    REPLICATION_CURSOR = "replication_cursor"
    CURSOR_SUPERSEDED = "cursor_superseded"
    TARGET_RETIRING = "target_retiring"


class ActionKind(StrEnum):
    SNAPSHOT = "snapshot"
    CREATE_PARENT = "create_parent"
    ABORT_RESUME = "abort_resume"
    ROLLBACK = "rollback"
    SEND = "send"
    BOOKMARK = "bookmark"
    HOLD = "hold"
    RELEASE = "release"
    DESTROY = "destroy"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionBase:
    id: int
    host: str
    policy: str
    target: str | None
    reason: Reason
    message: str
    depends_on: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Hook:
    """A command run on the snapshot's host before (`when` "pre") or after ("post") it: the
    argv, its timeout in seconds, and for a pre hook whether its failure skips the snapshot."""

    when: str  # "pre" | "post"
    command: tuple[str, ...]
    timeout: int
    skip_on_failure: bool = True  # pre hooks only

    def __post_init__(self) -> None:
        if self.when not in ("pre", "post"):
            raise ValueError(f"a hook runs pre or post, not {self.when!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotAction(ActionBase):
    """One atomic `zfs snapshot fs1@name fs2@name ...` for all due filesystems of a policy,
    between its pre and post hooks (in the order given)."""

    filesystems: tuple[str, ...]
    name: str
    hooks: tuple[Hook, ...] = ()
    kind: ActionKind = ActionKind.SNAPSHOT


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateParentAction(ActionBase):
    """`zfs create -p` of a missing parent on a target, so a receive has somewhere to land."""

    filesystem: str
    kind: ActionKind = ActionKind.CREATE_PARENT


@dataclass(frozen=True, slots=True, kw_only=True)
class AbortResumeAction(ActionBase):
    """`zfs receive -A`: discard a partial receive whose token can no longer be resumed."""

    filesystem: str
    kind: ActionKind = ActionKind.ABORT_RESUME


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackAction(ActionBase):
    """`zfs rollback [-r] fs@snap` on a target; only when the policy allows rollback.

    `destroys` lists the target snapshots that the rollback removes (shown in the plan)."""

    filesystem: str
    snapshot: str
    destroys: tuple[str, ...] = ()
    kind: ActionKind = ActionKind.ROLLBACK


class SendMode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"  # zfs send -i FROM TO
    INTERMEDIATES = "intermediates"  # zfs send -I FROM TO
    RESUME = "resume"  # zfs send -t TOKEN


@dataclass(frozen=True, slots=True)
class SendOptions:
    raw: bool = False
    compressed: bool = False
    large_blocks: bool = False
    embedded_data: bool = False
    properties: bool = False


# Properties that apply to filesystems only: `zfs receive -o P=V` of one into a volume fails,
# `-x P` warns. Checked on OpenZFS 2.3.2 one by one (each refused on a zvol stream); the
# SELinux `context` family is accepted on a volume and is not in this list.
FILESYSTEM_ONLY_PROPERTIES: frozenset[str] = frozenset(
    {
        "aclinherit",
        "aclmode",
        "acltype",
        "atime",
        "canmount",
        "casesensitivity",
        "devices",
        "direct",
        "dnodesize",
        "exec",
        "filesystem_limit",
        "longname",
        "mountpoint",
        "nbmand",
        "normalization",
        "overlay",
        "quota",
        "recordsize",
        "refquota",
        "relatime",
        "setuid",
        "sharenfs",
        "sharesmb",
        "snapdir",
        "special_small_blocks",
        "utf8only",
        "vscan",
        "xattr",
        "zoned",
    }
)


@dataclass(frozen=True, slots=True)
class ReceiveOptions:
    override: tuple[tuple[str, str], ...] = ()  # zfs receive -o P=V
    inherit: tuple[str, ...] = ()  # zfs receive -x P
    force: bool = False  # zfs receive -F: only for an allowed full resync

    def for_volume(self) -> ReceiveOptions:
        """These options without the properties a volume refuses (FILESYSTEM_ONLY_PROPERTIES):
        what a send of a zvol receives with. The planner applies it; the driver passes on
        what the plan says."""
        refused = FILESYSTEM_ONLY_PROPERTIES
        return ReceiveOptions(
            tuple((name, value) for name, value in self.override if name not in refused),
            tuple(name for name in self.inherit if name not in refused),
            self.force,
        )

    def left_out_for_volume(self) -> tuple[str, ...]:
        """The properties `for_volume` leaves out, in the order they are given."""
        names = [name for name, _ in self.override] + list(self.inherit)
        refused = FILESYSTEM_ONLY_PROPERTIES
        return tuple(dict.fromkeys(name for name in names if name in refused))


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAction(ActionBase):
    """One `zfs send | zfs receive -s -u` step from `host:filesystem` to the target."""

    filesystem: str
    target_host: str
    target_filesystem: str
    mode: SendMode
    from_version: str | None  # "@snap" or "#bookmark"; None for a full send
    to_snapshot: str  # "@snap"
    delivers: tuple[str, ...]  # the snapshots this step creates on the target, oldest first
    resume_token: str | None = None
    send_options: SendOptions = field(default_factory=SendOptions)
    receive_options: ReceiveOptions = field(default_factory=ReceiveOptions)
    estimated_bytes: int = 0
    kind: ActionKind = ActionKind.SEND


@dataclass(frozen=True, slots=True, kw_only=True)
class BookmarkAction(ActionBase):
    filesystem: str
    snapshot: str  # "@snap"
    bookmark: str  # "#mark"
    kind: ActionKind = ActionKind.BOOKMARK


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldAction(ActionBase):
    filesystem: str
    snapshot: str  # "@snap"
    tag: str
    kind: ActionKind = ActionKind.HOLD


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseAction(ActionBase):
    filesystem: str
    snapshot: str  # "@snap"
    tag: str
    kind: ActionKind = ActionKind.RELEASE


@dataclass(frozen=True, slots=True, kw_only=True)
class DestroyAction(ActionBase):
    """Destroy a batch of versions (all "@snap" or "#mark") of one filesystem."""

    filesystem: str
    versions: tuple[str, ...]
    kind: ActionKind = ActionKind.DESTROY


Action = (
    SnapshotAction
    | CreateParentAction
    | AbortResumeAction
    | RollbackAction
    | SendAction
    | BookmarkAction
    | HoldAction
    | ReleaseAction
    | DestroyAction
)


class ConflictKind(StrEnum):
    NO_COMMON_BASE = "no_common_base"  # the target has versions but none in common
    DIVERGED = "diverged"  # the target has snapshots after the common base
    TARGET_MODIFIED = "target_modified"  # written to since its newest snapshot
    INITIAL_REPLICATION_FORBIDDEN = "initial_replication_forbidden"  # initialReplication: fail
    TARGET_NOT_EMPTY = "target_not_empty"  # the target exists without any snapshot


@dataclass(frozen=True, slots=True)
class Conflict:
    """A filesystem that cannot be replicated without overwriting the target."""

    policy: str
    target: str
    host: str
    filesystem: str
    target_host: str
    target_filesystem: str
    kind: ConflictKind
    message: str
    source_only: tuple[str, ...] = ()
    target_only: tuple[str, ...] = ()


class NoticeKind(StrEnum):
    HOST_UNREACHABLE = "host_unreachable"
    DESTROYS_WITHHELD = "destroys_withheld"
    DESTROY_GUARD = "destroy_guard"
    SOURCE_FILESYSTEM_MISSING = "source_filesystem_missing"
    WAITING_FOR_PARENT = "waiting_for_parent"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should know that is neither an action nor a conflict."""

    kind: NoticeKind
    host: str
    message: str
    policy: str | None = None
    target: str | None = None
    filesystem: str | None = None


@dataclass(frozen=True, slots=True)
class UnobservedHost:
    """A host a planned policy touches (as source or target) that could not be observed in
    this pass, and why: nothing is done on it, and the pass is an error for the exit code."""

    host: str
    error: str


@dataclass(frozen=True, slots=True)
class Plan:
    now: int  # UNIX seconds the plan was made for
    actions: tuple[Action, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    notices: tuple[Notice, ...] = ()
    unobserved_hosts: tuple[UnobservedHost, ...] = ()  # by host name

    @property
    def is_empty(self) -> bool:
        return not self.actions
