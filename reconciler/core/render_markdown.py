"""The plan as Markdown, for a pull request comment: `reconcile --dry-run --output markdown`.

Owned here: `render_markdown` (plan → GitHub-flavoured Markdown) and the escaping it relies on
(`markdown_text`, `code_span`). Called by the CLI. Pure: no I/O, no clock, no logging.

Rendered from the JSON document (`core/render.py`), like the text view, so the two agree: a
heading with the summary line; callouts for what a reviewer must not miss (versions destroyed,
hosts not observed, conflicts); one table per policy (filesystem, action, versions, reason,
message), grouped and ordered as the text view; then conflicts and notices. Names (hosts,
filesystems, versions, tags) are code spans, so that `@name` never mentions a user and `#12`
never links an issue; every other text is escaped, and `|` is escaped everywhere inside
tables. Deterministic: equal plans, equal bytes. Documented in docs/plan-format.md section 10.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reconciler.core.plan import ActionKind, Plan
from reconciler.core.render import (
    JsonObject,
    _by_policy,
    _obj,
    _objs,
    _opt_str,
    _plan_document,
    _policy_groups,
    _str,
    _strs,
)

_ESCAPED = re.compile(r"([\\`*_\[\]<>|~&$#!])")
# a version or tag-like name inside a message: @snap or #mark, not in the middle of a word
_NAME_IN_TEXT = re.compile(r"(?<![\w@#])[@#][^\s,;()]+")
_DESTRUCTIVE = frozenset({ActionKind.DESTROY, ActionKind.ROLLBACK})
_TABLE_HEAD = (
    "| Filesystem | Action | Versions | Reason | Message |",
    "|---|---|---|---|---|",
)


def markdown_text(text: str, *, in_table: bool = False) -> str:
    """Plain text with every Markdown special character escaped; `@name`/`#name` words
    become code spans. One line: line breaks become spaces."""
    text = _one_line(text)
    parts: list[str] = []
    position = 0
    for match in _NAME_IN_TEXT.finditer(text):
        parts.append(_ESCAPED.sub(r"\\\1", text[position : match.start()]))
        parts.append(code_span(match.group(), in_table=in_table))
        position = match.end()
    parts.append(_ESCAPED.sub(r"\\\1", text[position:]))
    return "".join(parts)


def code_span(text: str, *, in_table: bool = False) -> str:
    """`text` as an inline code span whatever it holds: a fence longer than any run of
    backticks inside, padded when it starts or ends with one; in a table, `|` as `\\|`
    (GitHub splits cells before it reads code spans)."""
    text = _one_line(text) or " "
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.strip() and (text[0] in "` " or text[-1] in "` "):
        text = f" {text} "  # Markdown strips one space from each end of a code span
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}"


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def render_markdown(plan: Plan) -> str:
    """The Markdown view of a plan (module doc)."""
    document = _plan_document(plan)
    actions = _objs(document["actions"])
    conflicts = _objs(document["conflicts"])
    summary = _str(_obj(document["summary"]), "text")
    lines = [f"### Plan: {markdown_text(summary)}", ""]
    lines += [f"Planned for {markdown_text(_str(document, 'now'))}.", ""]
    lines += _callouts(actions, conflicts, _objs(document["unobserved_hosts"]))
    lines += _policy_tables(actions, conflicts)
    lines += _conflict_section(conflicts)
    lines += _notice_section(_objs(document["notices"]))
    return "\n".join(lines).rstrip("\n") + "\n"


def _where(obj: JsonObject, host_key: str = "host", fs_key: str = "filesystem") -> str:
    return code_span(f"{_str(obj, host_key)}:{_str(obj, fs_key)}")


def _callouts(
    actions: Sequence[JsonObject], conflicts: Sequence[JsonObject], unobserved: list[JsonObject]
) -> list[str]:
    lines: list[str] = []
    destroyed = [(a, _destroyed(a)) for a in actions if _str(a, "kind") in _DESTRUCTIVE]
    if destroyed:
        count = sum(len(versions) for _, versions in destroyed)
        lines += [f"> **Destroys {count} version(s):**", ">"]
        for action, versions in destroyed:
            names = ", ".join(code_span(v) for v in versions) or "(none)"
            kind = _str(action, "kind").replace("_", " ")
            policy = code_span(_str(action, "policy"))
            lines.append(f"> - {kind} on {_where(action)} (policy {policy}): {names}")
        lines.append("")
    if conflicts:
        lines += [f"> **Conflicts:** {len(conflicts)} filesystem(s) cannot be replicated:", ">"]
        for conflict in conflicts:
            target = _where(conflict, "target_host", "target_filesystem")
            kind = markdown_text(_str(conflict, "kind"))
            lines.append(f"> - {_where(conflict)} to {target}: {kind}")
        lines.append("")
    if unobserved:
        lines += [f"> **Hosts not observed:** nothing is done on {len(unobserved)} host(s):", ">"]
        for host in unobserved:
            error = markdown_text(_str(host, "error"))
            lines.append(f"> - {code_span(_str(host, 'host'))}: {error}")
        lines.append("")
    return lines


def _destroyed(action: JsonObject) -> list[str]:
    return _strs(action, "versions" if _str(action, "kind") == "destroy" else "destroys")


def _policy_tables(actions: list[JsonObject], conflicts: list[JsonObject]) -> list[str]:
    lines: list[str] = []
    conflicts_by_policy = _by_policy(conflicts)
    for policy, policy_actions in sorted(_by_policy(actions).items()):
        lines += [f"#### Policy {code_span(policy)}", "", *_TABLE_HEAD]
        groups = _policy_groups(policy_actions, conflicts_by_policy.get(policy, []))
        for label, group in groups:
            for action in group:
                lines.append(_action_row(label, action))
        lines.append("")
    return lines


def _action_row(label: str, action: JsonObject) -> str:
    kind = _str(action, "kind")
    name = kind.replace("_", " ")
    shown = f"**{name}**" if kind in _DESTRUCTIVE else name
    cells = [
        code_span(label, in_table=True),
        shown,
        _versions(action),
        code_span(_str(action, "reason"), in_table=True),
        markdown_text(_str(action, "message"), in_table=True),
    ]
    return "| " + " | ".join(cells) + " |"


def _names(versions: Sequence[str]) -> str:
    return ", ".join(code_span(v, in_table=True) for v in versions)


def _versions(action: JsonObject) -> str:
    match _str(action, "kind"):
        case ActionKind.SNAPSHOT:
            return code_span("@" + _str(action, "name"), in_table=True)
        case ActionKind.ROLLBACK:
            to = "to " + _names([_str(action, "snapshot")])
            destroys = _strs(action, "destroys")
            return f"{to}, destroying {_names(destroys)}" if destroys else to
        case ActionKind.SEND:
            return _send_versions(action)
        case ActionKind.BOOKMARK:
            return _names([_str(action, "snapshot")]) + " → " + _names([_str(action, "bookmark")])
        case ActionKind.HOLD | ActionKind.RELEASE:
            tag = code_span(_str(action, "tag"), in_table=True)
            return f"{_names([_str(action, 'snapshot')])} (tag {tag})"
        case ActionKind.DESTROY:
            return _names(_strs(action, "versions"))
        case _:
            return ""


def _send_versions(action: JsonObject) -> str:
    from_version = _opt_str(action, "from_version")
    versions = _names([_str(action, "to_snapshot")])
    if from_version is not None:
        versions = f"{_names([from_version])} → {versions}"
    target = code_span(
        f"{_str(action, 'target_host')}:{_str(action, 'target_filesystem')}", in_table=True
    )
    return f"{versions} to {target} ({_str(action, 'mode')})"


def _conflict_section(conflicts: list[JsonObject]) -> list[str]:
    if not conflicts:
        return []
    lines = ["#### Conflicts", ""]
    for conflict in conflicts:
        target = _where(conflict, "target_host", "target_filesystem")
        context = f"policy {code_span(_str(conflict, 'policy'))}, "
        context += f"target {code_span(_str(conflict, 'target'))}"
        kind = markdown_text(_str(conflict, "kind"))
        message = markdown_text(_str(conflict, "message"))
        lines.append(f"- **{kind}**: {_where(conflict)} to {target} ({context}): {message}")
        for side in ("source", "target"):
            versions = _strs(conflict, f"{side}_only")
            names = ", ".join(code_span(v) for v in versions) or "(none)"
            lines.append(f"  - only on {side}: {names}")
    lines.append("")
    return lines


def _notice_section(notices: list[JsonObject]) -> list[str]:
    if not notices:
        return []
    lines = ["#### Notices", ""]
    for notice in notices:
        filesystem = _opt_str(notice, "filesystem")
        where = _str(notice, "host") + (f":{filesystem}" if filesystem is not None else "")
        context = [
            f"{key} {code_span(value)}"
            for key in ("policy", "target")
            if (value := _opt_str(notice, key)) is not None
        ]
        about = f" ({', '.join(context)})" if context else ""
        message = markdown_text(_str(notice, "message"))
        kind = markdown_text(_str(notice, "kind"))
        lines.append(f"- {kind}: {code_span(where)}{about}: {message}")
    lines.append("")
    return lines
