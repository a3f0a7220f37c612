"""The parts of `spec.snapshots` with models of their own: snapshot hooks (`HookSpec`,
docs/hooks.md) and adoption of other tools' names (`AdoptSpec`, docs/manifests.md#adoption).
Gathered by `models.py`, whose `SnapshotsSpec` holds them."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reconciler.manifest.fields import (
    Duration,
    NonEmpty,
    Prefix,
    invalid,
)
from reconciler.manifest.model_base import Model
from reconciler.manifest.name_schemes import (
    MAX_LAYOUT_LENGTH,
    LayoutError,
    compile_layout,
    load_zone,
)


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
