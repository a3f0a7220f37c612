"""`reconcile import sanoid`: every converted fixture and hostile case is a valid manifest set
(the converted retention uses `match` on grid and lastN rules). The rest of the converter is
tested in tests/test_import_sanoid.py and tests/test_import_sanoid_hostile.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from reconciler.manifest.loader import parse_manifests
from reconciler.migrate.report import ImportInputError, render_documents
from tests.sanoid_import_cases import CASES, GOLDEN, ROOT, from_cli, golden, run_cli
from tests.test_import_sanoid_hostile import (
    CONVERTED_WITH_FINDINGS,
    convert_mutated,
    mutated_fixtures,
)


@pytest.mark.parametrize("name", CASES)
def test_cli_prints_the_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT.parent)
    assert from_cli(name) == golden(name)


@pytest.mark.parametrize("name", CASES)
def test_golden_manifests_validate(name: str) -> None:
    parse_manifests([(name, (GOLDEN / name / "manifests.yaml").read_text())])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixtures())
def test_mutated_fixture_converts_to_valid_manifests(case: tuple[str, str, list[str]]) -> None:
    try:
        conversion = convert_mutated(case)
    except ImportInputError:
        return
    parse_manifests([("<converted>", render_documents(conversion.documents, "m.conf"))])


@pytest.mark.parametrize("case", sorted(CONVERTED_WITH_FINDINGS))
def test_odd_configurations_through_the_cli(tmp_path: Path, case: str) -> None:
    path = tmp_path / "sanoid.conf"
    path.write_text(CONVERTED_WITH_FINDINGS[case])
    code, _, err = run_cli(["import", "sanoid", str(path), "--timezone", "UTC"])
    assert code in (0, 1) and "Traceback" not in err and "internal error" not in err
