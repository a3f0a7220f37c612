"""zrepl keep rules → retention rule mappings (INTERIM: replaced by the full version at merge).

Owns `convert_keep_rules`, called by the zrepl converter (`zrepl_jobs.py`) for a push or pull
job's `pruning.keep_sender` / `keep_receiver` and a snap job's `pruning.keep`. It returns the
rule mappings of our `retention.keep`, whether the rules keep everything, and a `RuleProblem`
for each rule or key that was not converted exactly. Pure; never raises on any input.

This minimal version converts `grid` → `{grid}`, `last_n` → `{lastN}` and `regex` → `{regex}`.
A grid's or last_n's own `regex` filter and a regex rule's `negate` are left out with the rule
(the manifests of this branch have no `match`/`negate`), reported with affects_retention=True;
`not_replicated` becomes nothing, with a note (protection keeps what a target still needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Side = Literal["sender", "receiver", "local"]


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """Rule `index` (its key `key`, or the whole rule when None) was not converted exactly."""

    index: int
    key: str | None
    why: str
    affects_retention: bool


@dataclass(frozen=True, slots=True)
class ConvertedRules:
    rules: tuple[dict[str, Any], ...]
    keep_all: bool  # the rules keep every snapshot: no retention at all
    problems: tuple[RuleProblem, ...]


def convert_keep_rules(rules: Sequence[Any], *, side: Side) -> ConvertedRules:
    """Our rules for zrepl's keep `rules` on `side` (the sender's, receiver's or a snap job's)."""
    converted: list[dict[str, Any]] = []
    problems: list[RuleProblem] = []
    for index, rule in enumerate(rules):
        result = _one(index, rule)
        if isinstance(result, RuleProblem):
            problems.append(result)
        else:
            converted.append(result)
    return ConvertedRules(tuple(converted), False, tuple(problems))


def _one(index: int, rule: Any) -> dict[str, Any] | RuleProblem:
    if not isinstance(rule, dict):
        return RuleProblem(index, None, "a keep rule is a mapping with a type", True)
    kind = rule.get("type")
    if kind == "grid" and isinstance(rule.get("grid"), str):
        if rule.get("regex") is not None:
            return RuleProblem(index, "regex", "a grid's regex filter is not converted", True)
        return {"grid": rule["grid"].strip()}
    if kind == "last_n" and type(rule.get("count")) is int:
        if rule.get("regex") is not None:
            return RuleProblem(index, "regex", "a last_n's regex filter is not converted", True)
        return {"lastN": rule["count"]}
    if kind == "regex" and isinstance(rule.get("regex"), str):
        if rule.get("negate") is True:
            return RuleProblem(index, "negate", "a negated regex is not converted", True)
        return {"regex": rule["regex"]}
    if kind == "not_replicated":
        why = "nothing: the target's protection keeps what it has not received yet"
        return RuleProblem(index, None, why, False)
    return RuleProblem(index, None, f"unknown or malformed keep rule {kind!r}", True)
