"""`core/render_markdown.py`: the plan as Markdown for a pull request comment, compared byte for
byte with `plan.md` in some golden cases (UPDATE_GOLDEN=1 rewrites them), and its escaping."""

from __future__ import annotations

import os

import pytest

from reconciler.core.plan import ActionKind, DestroyAction, Plan, Reason, UnobservedHost
from reconciler.core.render_markdown import code_span, markdown_text, render_markdown
from tests.test_golden import GOLDEN
from tests.test_plan_decode import golden_plan

MARKDOWN_CASES = (
    "allow_rollback",
    "diverged_target",
    "first_run",
    "resume_interrupted_receive",
    "target_host_unreachable",
)


@pytest.mark.parametrize("case", MARKDOWN_CASES)
def test_golden_markdown(case: str) -> None:
    rendered = render_markdown(golden_plan(case))
    expected = GOLDEN / case / "plan.md"
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(rendered)
    assert rendered == expected.read_text(), f"{case}: plan.md differs"
    assert rendered == render_markdown(golden_plan(case))


def test_the_heading_carries_the_summary_line() -> None:
    assert render_markdown(Plan(now=0)).startswith("### Plan: No changes.\n")


def _destroy(filesystem: str, *versions: str) -> DestroyAction:
    return DestroyAction(
        id=0,
        host="nas",
        policy="home",
        target=None,
        reason=Reason.RETENTION_NOT_KEPT,
        message="no rule keeps *these* | [x](y) <b> @daily #12",
        filesystem=filesystem,
        versions=versions,
    )


def test_names_with_pipes_and_backticks_cannot_break_the_table() -> None:
    plan = Plan(now=0, actions=(_destroy("tank/a|b`c", "@x|y"),))
    rows = [line for line in render_markdown(plan).splitlines() if line.startswith("| `")]
    (row,) = rows
    # five cells: every | that is not a cell border is escaped
    borders = [i for i, c in enumerate(row) if c == "|" and row[i - 1 : i] != "\\"]
    assert len(borders) == 6, row
    assert "``tank/a\\|b`c``" in row


def test_messages_are_escaped_and_names_in_them_are_code() -> None:
    text = markdown_text("no rule keeps *these* | [x](y) <b> @daily #12 a_b $x$")
    assert text == ("no rule keeps \\*these\\* \\| \\[x\\](y) \\<b\\> `@daily` `#12` a\\_b \\$x\\$")


def test_destroys_are_called_out_before_the_tables() -> None:
    plan = Plan(now=0, actions=(_destroy("tank/home", "@a", "@b"),))
    rendered = render_markdown(plan)
    callout = rendered.index("> **Destroys 2 version(s):**")
    assert callout < rendered.index("| Filesystem |")
    assert "> - destroy on `nas:tank/home` (policy `home`): `@a`, `@b`" in rendered
    assert f"**{ActionKind.DESTROY}**" in rendered


def test_unobserved_hosts_are_called_out_with_their_error() -> None:
    plan = Plan(now=0, unobserved_hosts=(UnobservedHost("backup", "ssh: *refused*\nagain"),))
    assert "> - `backup`: ssh: \\*refused\\* again" in render_markdown(plan)


@pytest.mark.parametrize(
    ("text", "span"),
    [("a", "`a`"), ("a`b", "``a`b``"), ("`a", "`` `a ``"), (" a", "`  a `"), ("", "` `")],
)
def test_code_spans_hold_any_text(text: str, span: str) -> None:
    assert code_span(text) == span
