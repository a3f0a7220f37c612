"""The manifest models: the single source of truth for the `Host` and `Policy` kinds.

Owns the pydantic v2 models of every manifest document (camelCase aliases in YAML, snake_case
attributes in Python; unknown fields are errors; values are frozen), the choice enums the
planner compares (`Transport`, `Protection`, `InitialReplication`) and `Manifests`, the loaded
and validated set. Built by `reconciler.manifest.loader`; read by `reconciler.core.desired` and
the CLI; exported as JSON Schema by `reconciler.manifest.schema`.

Documents are shaped like Kubernetes objects (`apiVersion`, `kind`, `metadata`, `spec`) so that
the same YAML can later be served as custom resources. This module imports nothing from
`reconciler.core`: checks that need the filesystem filters live in `validate.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from reconciler.manifest.errors import SourceLocation
from reconciler.manifest.fields import (
    PROPERTY_MAP_SCHEMA,
    Count,
    CronText,
    Duration,
    FilesystemName,
    Flag,
    GridText,
    Label,
    NonEmpty,
    Port,
    Prefix,
    PropertyName,
    Regex,
    SSHOption,
    describe,
    invalid,
)
from reconciler.manifest.limits import MAX_TARGETS
from reconciler.manifest.name_schemes import (
    MAX_LAYOUT_LENGTH,
    LayoutError,
    compile_layout,
    load_zone,
)

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


class Model(BaseModel):
    """Base of every manifest model: camelCase aliases, unknown fields forbidden, frozen."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
    )


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


class HookPhase(StrEnum):
    PRE = "pre"
    POST = "post"


class HookFailure(StrEnum):
    SKIP = "skip"
    SNAPSHOT = "snapshot"


MAX_HOOKS = 16
MAX_HOOK_ARGS = 256
MAX_HOOK_TIMEOUT = 3600


class HookSpec(Model):
    """A command run on the source host before (`pre`) or after (`post`) the policy's snapshot;
    docs/hooks.md."""

    when: HookPhase
    """`pre`: before the snapshot; `post`: after it (also after one that failed or was skipped)."""
    command: list[NonEmpty] = Field(min_length=1, max_length=MAX_HOOK_ARGS)
    """The argv, run without a shell (over ssh, each argument quoted as zfs's are)."""
    timeout: Duration = 30
    """Stopped (and failed) when it runs longer than this; at most 1h."""
    on_failure: HookFailure | None = Field(default=None, validate_default=True)
    """Pre hooks: `skip` the snapshot (the default) or take the `snapshot` anyway."""

    @field_validator("command")
    @classmethod
    def _runnable(cls, command: list[str]) -> list[str]:
        program = command[0]
        if "=" in program or program.startswith("-") or "\n" in "".join(command):
            raise invalid(
                "hook_command",
                "a hook's program (its first word) may not start with '-' or contain '=', "
                "and no word may contain a newline",
            )
        return command

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, timeout: int) -> int:
        if timeout > MAX_HOOK_TIMEOUT:
            raise invalid("hook_timeout", "a hook's timeout is at most 1h")
        return timeout

    @field_validator("on_failure")
    @classmethod
    def _pre_only(cls, on_failure: HookFailure | None, info: ValidationInfo) -> HookFailure | None:
        when = info.data.get("when")
        if when is HookPhase.POST and on_failure is not None:
            raise invalid(
                "hook_on_failure",
                "onFailure applies to pre hooks only: a post hook runs after the snapshot",
            )
        if when is HookPhase.PRE and on_failure is None:
            return HookFailure.SKIP
        return on_failure


class AdoptFormat(StrEnum):
    DENSE = "dense"
    HUMAN = "human"
    ISO_8601 = "iso-8601"
    UNIX_SECONDS = "unix-seconds"
    SANOID = "sanoid"


MAX_ADOPT = 16
_ZONE_KEY = re.compile(r"[A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2}")
_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_.: -]*")


class AdoptSpec(Model):
    """Snapshots named by another tool's scheme that the policy owns (docs/migrating.md)."""

    prefix: Prefix
    """The other tool's prefix, e.g. `zrepl_` or `autosnap_`."""
    format: AdoptFormat | None = None
    """zrepl's `dense`, `human`, `iso-8601`, `unix-seconds`, or `sanoid`
    (`YYYY-MM-DD_HH:MM:SS_<period>`). Exclusive with layout."""
    layout: str | None = Field(default=None, min_length=1, max_length=MAX_LAYOUT_LENGTH)
    """A Go time layout as zrepl's `timestamp_format` takes it, e.g. `2006-01-02_15:04`."""
    timezone: str = "UTC"
    """The zone the names were written in when they carry no offset (IANA name, e.g.
    `Europe/Berlin`); zrepl's `timestamp_location`; sanoid writes the host's local time."""

    @field_validator("layout")
    @classmethod
    def _readable(cls, layout: str | None) -> str | None:
        if layout is None:
            return None
        if _NAME_CHARACTERS.fullmatch(layout) is None:
            raise invalid(
                "adopt_layout",
                "a layout may hold only the characters of snapshot names "
                "(A-Z a-z 0-9 _ . : - and space)",
            )
        try:
            compile_layout(layout)
        except LayoutError as error:
            raise invalid("adopt_layout", str(error)) from None
        return layout

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, key: str) -> str:
        if key == "Local":
            raise invalid(
                "adopt_timezone", "name the zone (e.g. Europe/Berlin): Local differs by host"
            )
        if _ZONE_KEY.fullmatch(key) is None or load_zone(key) is None:
            raise invalid("adopt_timezone", f"unknown time zone {key!r} (an IANA name such as UTC)")
        return key

    @model_validator(mode="after")
    def _one_way(self) -> AdoptSpec:
        if (self.format is None) == (self.layout is None):
            raise invalid("adopt_scheme", "an adopt entry takes exactly one of format and layout")
        return self


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


class _RuleModel(Model):
    """Base of the rule models: a dump leaves out `match` and `negate` at their defaults, so
    that the spec digest (`confirm.py`) of a rule written without them does not change."""

    @model_serializer(mode="wrap")
    def _without_default_filters(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            if data.get("match", "") is None:
                del data["match"]
            if data.get("negate") is False:
                del data["negate"]
        return data


class GridRule(_RuleModel):
    grid: GridText
    """Keep snapshots by age buckets (zrepl grid), e.g. `1x1h(keep=all) | 24x1h | 14x1d`."""
    match: Regex | None = None
    """Only the managed snapshots whose name matches (RE2, anywhere in the name) are seen by
    this rule; "now" is the youngest of them (zrepl's grid `regex`). Absent: all of them."""


class LastNRule(_RuleModel):
    last_n: Count
    """Keep the newest N managed snapshots."""
    match: Regex | None = None
    """Only the managed snapshots whose name matches (RE2, anywhere in the name) are counted:
    the N newest of them are kept (zrepl's last_n `regex`). Absent: all of them."""


class RegexRule(_RuleModel):
    regex: Regex
    """Keep managed snapshots whose full name matches (RE2, anywhere in the name)."""
    negate: Flag = False
    """Keep the managed snapshots whose name does NOT match instead (zrepl's `negate`)."""


_RULE_KEYS = {"grid": "GridRule", "lastN": "LastNRule", "regex": "RegexRule"}
RULE_TAGS = frozenset(_RULE_KEYS.values())
"""Union tags that pydantic puts in error locations; the loader leaves them out of paths."""


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, GridRule | LastNRule | RegexRule):
        return type(value).__name__
    if isinstance(value, dict):
        tags = {_RULE_KEYS[key] for key in value if key in _RULE_KEYS}
        return tags.pop() if len(tags) == 1 else None
    return None


def _check_rule_shape(value: Any) -> Any:
    """A rule is exactly one of grid, lastN, regex; say so before the union is tried.

    `match` filters grid and lastN rules, `negate` inverts regex rules: either one on the
    other kinds is refused here with a sentence, not as an unknown field."""
    if isinstance(value, GridRule | LastNRule | RegexRule):
        return value
    if not isinstance(value, dict):
        raise invalid(
            "rule_type",
            f"a retention rule is a mapping with grid, lastN or regex, not {describe(value)}",
        )
    keys = [key for key in _RULE_KEYS if key in value]
    if not keys:
        raise invalid("rule_missing", "a retention rule needs exactly one of grid, lastN, regex")
    if len(keys) > 1:
        raise invalid(
            "rule_ambiguous",
            f"a retention rule takes exactly one of grid, lastN, regex; got {' and '.join(keys)} "
            "(write each as its own list item)",
        )
    if keys == ["regex"] and "match" in value:
        raise invalid(
            "rule_match",
            "match filters grid and lastN rules only; a regex rule is its own filter "
            "(write one regex that selects what to keep)",
        )
    if keys != ["regex"] and "negate" in value:
        raise invalid(
            "rule_negate",
            f"negate applies to regex rules only, not to a {keys[0]} rule "
            "(use match to choose which snapshots it sees)",
        )
    return value


Rule = Annotated[
    Annotated[GridRule, Tag("GridRule")]
    | Annotated[LastNRule, Tag("LastNRule")]
    | Annotated[RegexRule, Tag("RegexRule")],
    Discriminator(_rule_tag),
    BeforeValidator(_check_rule_shape),
]
"""One retention rule: `{grid: ..., match: ...}`, `{lastN: N, match: ...}` or
`{regex: ..., negate: ...}` (`match` and `negate` optional)."""


MAX_RETENTION_RULES = 255
"""Rules in one `keep` list at most (the core marks snapshots with one byte per rule)."""


class RetentionSpec(Model):
    keep: list[Rule] = Field(min_length=1, max_length=MAX_RETENTION_RULES)
    """A snapshot is kept if any rule keeps it; rules see managed snapshots only."""


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
