"""The retention rules of `spec.retention` and of a target's `retention`: `{grid}`, `{lastN}`,
`{regex}` (with `match` and `negate`, docs/retention.md), their tagged union `Rule` and
`RetentionSpec`. Gathered by `models.py`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
)

from reconciler.manifest.fields import (
    Count,
    Flag,
    GridText,
    Regex,
    describe,
    invalid,
)
from reconciler.manifest.model_base import Model


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
