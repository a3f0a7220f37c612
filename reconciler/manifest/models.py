"""The manifest models: the single source of truth for the `Host` and `Policy` kinds.

Owns the pydantic v2 models of every manifest document (camelCase aliases in YAML, snake_case
attributes in Python; unknown fields are errors; values are frozen), the choice enums the
planner compares (`Transport`, `Protection`, `InitialReplication`) and `Manifests`, the loaded
and validated set. Built by `reconciler.manifest.loader`; read by `reconciler.core.desired` and
the CLI; exported as JSON Schema by `reconciler.manifest.schema`.

Documents are shaped like Kubernetes objects (`apiVersion`, `kind`, `metadata`, `spec`) so that
the same YAML can later be served as custom resources. This module imports nothing from
`reconciler.core`: checks that need the filesystem filters live in `validate.py`. The models of
snapshot hooks and adoption (`hook_models.py`) and of retention rules (`retention_models.py`)
live in modules of their own and are read from here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from reconciler.manifest.errors import SourceLocation
from reconciler.manifest.fields import (
    PROPERTY_MAP_SCHEMA,
    CronText,
    Duration,
    FilesystemName,
    Flag,
    Label,
    NonEmpty,
    Port,
    Prefix,
    PropertyName,
    Regex,
    SSHOption,
    invalid,
)
from reconciler.manifest.hook_models import (
    MAX_ADOPT,
    MAX_HOOK_ARGS,
    MAX_HOOK_TIMEOUT,
    MAX_HOOKS,
    AdoptFormat,
    AdoptSpec,
    HookFailure,
    HookPhase,
    HookSpec,
)
from reconciler.manifest.limits import MAX_TARGETS
from reconciler.manifest.model_base import Model
from reconciler.manifest.retention_models import (
    MAX_RETENTION_RULES,
    RULE_TAGS,
    GridRule,
    LastNRule,
    RegexRule,
    RetentionSpec,
    Rule,
)

__all__ = [  # the models of hook_models.py and retention_models.py are read from here too
    "MAX_ADOPT",
    "MAX_HOOKS",
    "MAX_HOOK_ARGS",
    "MAX_HOOK_TIMEOUT",
    "MAX_RETENTION_RULES",
    "RULE_TAGS",
    "AdoptFormat",
    "AdoptSpec",
    "GridRule",
    "HookFailure",
    "HookPhase",
    "HookSpec",
    "LastNRule",
    "RegexRule",
    "RetentionSpec",
    "Rule",
]

API_VERSION = "zfs-reconciler.dev/v1alpha1"
MAX_COMMAND_TIMEOUT = 86400  # a Host's commandTimeout, at most 1d
KINDS = ("Host", "Policy")


class Transport(StrEnum):
    LOCAL = "local"
    SSH = "ssh"


class Protection(StrEnum):
    RESUMABLE = "resumable"
    INCREMENTAL = "incremental"
    NONE = "none"


class InitialReplication(StrEnum):
    MOST_RECENT = "mostRecent"
    ALL = "all"
    FAIL = "fail"


CONFIRM_DESTROY = "zfs-reconciler.dev/confirm-destroy"
_DIGEST = re.compile(r"[0-9a-f]{12}")


class Metadata(Model):
    name: Label
    """The object's name, unique per kind: a DNS-1123 label."""
    labels: dict[str, str] = {}
    """Free-form labels, as on Kubernetes objects."""
    annotations: dict[str, str] = {}
    """Free-form annotations, as on Kubernetes objects. On a Policy,
    `zfs-reconciler.dev/confirm-destroy: DIGEST` confirms the destroys its current spec implies
    (the destroy guard names the digest: docs/destroy-guard.md)."""

    @field_validator("annotations")
    @classmethod
    def _confirmation_is_a_digest(cls, annotations: dict[str, str]) -> dict[str, str]:
        value = annotations.get(CONFIRM_DESTROY)
        if value is not None and not _DIGEST.fullmatch(value):
            raise invalid(
                "confirm_destroy_format",
                f"{CONFIRM_DESTROY} takes the 12-character digest the destroy guard printed, "
                f"e.g. 3f9a2c1b7d4e; got {value[:40]!r}",
            )
        return annotations


# --- Host -------------------------------------------------------------------------------------


class SSHSpec(Model):
    host: NonEmpty
    """The address ssh connects to."""
    port: Port = 22
    user: NonEmpty | None = None
    """The remote user; ssh's default when absent."""
    identity_file: NonEmpty | None = None
    """A private key file (`ssh -i`)."""
    options: list[SSHOption] = []
    """Extra `ssh -o Key=Value` options."""


class HostSpec(Model):
    transport: Transport = Transport.LOCAL
    """How zfs is reached: `local` runs it here, `ssh` runs it over ssh."""
    ssh: SSHSpec | None = Field(default=None, validate_default=True)
    """Connection settings; required with transport ssh, forbidden with local."""
    zfs_command: list[NonEmpty] = Field(default=["zfs"], min_length=1)
    """The argv that runs zfs on the host, e.g. `[sudo, zfs]`."""
    command_timeout: Duration = Field(default="10m", validate_default=True)
    """How long a zfs command other than a transfer may run before it is killed and the host
    is treated as unreachable for the pass (default 10m; at most 1d). Transfers have none."""

    @field_validator("command_timeout")
    @classmethod
    def _timeout_bounded(cls, seconds: int) -> int:
        if seconds > MAX_COMMAND_TIMEOUT:
            raise invalid("timeout_too_long", "commandTimeout must be at most 1d")
        return seconds

    @field_validator("ssh")
    @classmethod
    def _ssh_matches_transport(cls, ssh: SSHSpec | None, info: ValidationInfo) -> SSHSpec | None:
        transport = info.data.get("transport")
        if transport is Transport.SSH and ssh is None:
            raise invalid("ssh_missing", "transport ssh needs an ssh block (at least ssh.host)")
        if transport is Transport.LOCAL and ssh is not None:
            raise invalid("ssh_forbidden", "an ssh block needs transport: ssh")
        return ssh


class Host(Model):
    """A machine where zfs runs."""

    api_version: Literal["zfs-reconciler.dev/v1alpha1"]
    kind: Literal["Host"]
    metadata: Metadata
    spec: HostSpec


# --- Policy: source and snapshots --------------------------------------------------------------


class SourceSpec(Model):
    host: NonEmpty
    """The name of the Host whose filesystems are snapshotted and replicated."""
    filesystems: dict[str, Flag] = Field(min_length=1)
    """Filter: `"tank/home<": true` selects it and all below, false excludes; most specific wins."""


class SnapshotsSpec(Model):
    prefix: Prefix
    """The managed namespace: snapshots are named `<prefix>YYYYMMDDTHHMMSSZ` (UTC)."""
    interval: Duration | None = None
    """Take a snapshot when the newest managed one is at least this old."""
    cron: CronText | None = None
    """Take a snapshot at these times (5-field cron, UTC). Exclusive with interval."""
    include: list[Regex] = []
    """Regexes of foreign snapshot names that are replicated too (never destroyed)."""
    hooks: list[HookSpec] = Field(default=[], max_length=MAX_HOOKS)
    """Commands run on the source host around each snapshot the policy takes (docs/hooks.md)."""
    adopt: list[AdoptSpec] = Field(default=[], max_length=MAX_ADOPT)
    """Snapshots named by other tools (zrepl, sanoid) that the policy owns: their time is read
    from the name, retention applies to them, and they are incremental bases."""

    @field_validator("cron")
    @classmethod
    def _one_schedule(cls, cron: Any, info: ValidationInfo) -> Any:
        if cron is not None and info.data.get("interval") is not None:
            raise invalid("schedule_conflict", "interval and cron are mutually exclusive")
        return cron


# --- Policy: retention ------------------------------------------------------------------------

# --- Policy: replication ----------------------------------------------------------------------


class SendSpec(Model):
    raw: Flag = False
    """`zfs send -w`: send encrypted data as is."""
    compressed: Flag = False
    """`zfs send -c`."""
    large_blocks: Flag = False
    """`zfs send -L`."""
    embedded_data: Flag = False
    """`zfs send -e`."""
    properties: Flag = False
    """`zfs send -p`: send the filesystem's properties."""


# zfs receive refuses `-o P=V` of these for any stream (OpenZFS 2.3.2: "invalid property";
# docs/zfs-verified.md): they are fixed when a filesystem is created.
CREATION_ONLY_PROPERTIES = frozenset({"casesensitivity", "normalization", "utf8only"})


class ReceivePropertiesSpec(Model):
    override: Annotated[dict[PropertyName, str], PROPERTY_MAP_SCHEMA] = {}
    """Properties set on received filesystems (`zfs receive -o P=V`)."""
    inherit: list[PropertyName] = []
    """Properties received filesystems inherit (`zfs receive -x P`)."""

    @field_validator("override")
    @classmethod
    def _settable_on_receive(cls, override: dict[str, str]) -> dict[str, str]:
        fixed = sorted(CREATION_ONLY_PROPERTIES.intersection(override))
        if fixed:
            raise invalid(
                "property_creation_only",
                f"{', '.join(fixed)}: set only when a filesystem is created; zfs receive"
                " refuses `-o` of it for every stream (send it with the filesystem instead)",
            )
        return override

    @field_validator("inherit")
    @classmethod
    def _not_both(cls, inherit: list[str], info: ValidationInfo) -> list[str]:
        both = sorted(set(inherit) & set(info.data.get("override", {})))
        if both:
            raise invalid(
                "property_conflict",
                f"{', '.join(both)}: a property cannot be both overridden and inherited",
            )
        return inherit


class ReceiveSpec(Model):
    properties: ReceivePropertiesSpec = ReceivePropertiesSpec()
    allow_rollback: Flag = False
    """Allow rolling a target back (`recv -F`, destroying target-only snapshots)."""
    allow_full_resync: Flag = False
    """Allow replacing a diverged target filesystem by a full send."""


class TargetSpec(Model):
    name: Label
    """The target's name, unique within the policy (used in hold and bookmark names)."""
    host: NonEmpty
    """The name of the Host that receives."""
    root: FilesystemName
    """Source filesystem `tank/x` is received as `<root>/tank/x`."""
    retention: RetentionSpec | None = None
    """The target's own retention; absent keeps everything managed."""
    protection: Protection = Protection.RESUMABLE
    """How the source keeps what the target still needs: `resumable`, `incremental`, `none`."""
    initial_replication: InitialReplication = InitialReplication.MOST_RECENT
    """What a first send transfers: `mostRecent`, `all`, or `fail` (refuse)."""
    send: SendSpec = SendSpec()
    receive: ReceiveSpec = ReceiveSpec()
    max_lag: Duration | None = None
    """Replication lag beyond which a pair is `stale` in `reconcile status` (e.g. `2h`);
    absent: no threshold."""
    retiring: Flag = False
    """Retire the target: nothing more is sent to it or kept for it; its holds (on both sides)
    are released and its cursor bookmarks destroyed, its snapshots stay. `reconcile status`
    says when it can be removed from the manifest (docs/retiring-targets.md)."""


class PolicySpec(Model):
    source: SourceSpec
    snapshots: SnapshotsSpec
    retention: RetentionSpec | None = None
    """Source retention; absent keeps everything managed."""
    replication: list[TargetSpec] = Field(default=[], max_length=MAX_TARGETS)


class Policy(Model):
    """What must exist for a set of filesystems on one source host."""

    api_version: Literal["zfs-reconciler.dev/v1alpha1"]
    kind: Literal["Policy"]
    metadata: Metadata
    spec: PolicySpec


Manifest = Annotated[Host | Policy, Field(discriminator="kind")]
"""Any manifest document."""


@dataclass(frozen=True, slots=True)
class Manifests:
    """A loaded, validated set of manifests; mappings are sorted by name."""

    hosts: Mapping[str, Host] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    sources: Mapping[tuple[str, str], SourceLocation] = field(default_factory=dict)
    """(kind, name) → where the document starts."""
