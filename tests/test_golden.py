"""Golden plans: manifests + observed state → plan, compared byte for byte.

Each case is a folder under tests/golden/ with `manifests.yaml`, `observed.yaml` (`now:` and
`hosts:` in the notation of tests/notation.py) and the expected `plan.json` and `plan.txt`.
Run with UPDATE_GOLDEN=1 to rewrite the expected files after a deliberate change, then read
the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.core.planner import plan
from reconciler.core.render import dump_plan_json, render_text
from reconciler.manifest.loader import load_manifests
from tests.notation import observed_from

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "observed.yaml").is_file())
"""Plan cases only: tests/golden/import/ holds the goldens of `reconcile import`."""


def _now(text: object) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())


def render_case(case: Path) -> tuple[str, str]:
    data = YAML(typ="safe").load((case / "observed.yaml").read_text())
    manifests = load_manifests([case / "manifests.yaml"])
    result = plan(manifests, observed_from(data["hosts"]), _now(data["now"]))
    return dump_plan_json(result), render_text(result)


@pytest.mark.parametrize("case", CASES)
def test_golden_plan(case: str) -> None:
    folder = GOLDEN / case
    plan_json, plan_text = render_case(folder)
    if os.environ.get("UPDATE_GOLDEN"):
        (folder / "plan.json").write_text(plan_json)
        (folder / "plan.txt").write_text(plan_text)
    assert plan_json == (folder / "plan.json").read_text(), f"{case}: plan.json differs"
    assert plan_text == (folder / "plan.txt").read_text(), f"{case}: plan.txt differs"


@pytest.mark.parametrize("case", CASES)
def test_golden_plan_is_deterministic(case: str) -> None:
    assert render_case(GOLDEN / case) == render_case(GOLDEN / case)
