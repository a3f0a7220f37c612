"""A replication target's `maxLag`: a duration as every other (manifest/durations.py), optional,
no default; bad values are one `FILE:LINE:COLUMN: field.path: message` line each."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reconciler.cli import EXIT_ERROR, EXIT_OK, Console, main
from reconciler.core.desired import intents
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.models import TargetSpec
from reconciler.manifest.schema import schema_text
from tests.test_cli import MANIFESTS

ROOT = Path(__file__).resolve().parent.parent
FIELD = "spec.replication[0].maxLag"


def test_max_lag_is_seconds_in_python_and_a_duration_in_yaml() -> None:
    target = TargetSpec.model_validate(
        {"name": "offsite", "host": "backup", "root": "vault", "maxLag": "90m"}
    )
    assert target.max_lag == 5400
    assert target.model_dump(by_alias=True)["maxLag"] == "90m"


def test_max_lag_is_optional_with_no_default() -> None:
    target = TargetSpec.model_validate({"name": "offsite", "host": "backup", "root": "vault"})
    assert target.max_lag is None


def test_max_lag_reaches_the_target_intent() -> None:
    with_lag = parse_manifests([("m.yaml", MANIFESTS + "      maxLag: 2h\n")])
    (policy,) = intents(with_lag)
    assert policy.targets[0].max_lag == 7200
    (policy,) = intents(parse_manifests([("m.yaml", MANIFESTS)]))
    assert policy.targets[0].max_lag is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "expected a duration such as '15m' (a count and one unit of s, m, h, d, w), "
              "got the number 0"),
        ("0s", "duration '0s' must be greater than zero"),
        ("-1h", "invalid duration '-1h': expected a positive whole number and a unit, "
                "e.g. '30s', '15m', '1h', '14d', '1w'"),
        ("2x", "unknown unit 'x' in duration '2x' (use s, m, h, d or w)"),
        ("1h30m", "invalid duration '1h30m': expected a positive whole number and a unit, "
                  "e.g. '30s', '15m', '1h', '14d', '1w'"),
        ("99999999999w", "duration '99999999999w': the count has more than 10 digits"),
        ("7200", "expected a duration such as '15m' (a count and one unit of s, m, h, d, w), "
                 "got the number 7200"),
        ("[2h]", "expected a duration such as '15m' (a count and one unit of s, m, h, d, w), "
                 "got a list"),
    ],
)  # fmt: skip
def test_a_bad_max_lag_is_one_line_with_file_line_column(
    tmp_path: Path, value: str, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS + f"      maxLag: {value}\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["validate", "-f", str(path)], Console(out, err)) == EXIT_ERROR
    line = len(MANIFESTS.splitlines()) + 1
    assert err.getvalue().splitlines() == [
        f"{path}:{line}:15: {FIELD}: {message}",
        "1 error(s); nothing was applied",
    ]
    assert out.getvalue() == ""


def test_the_largest_max_lag_is_accepted_and_stays_exact_in_json(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS + "      maxLag: 9999999999w\n")
    assert main(["validate", "-f", str(path)], Console(io.StringIO(), io.StringIO())) == EXIT_OK
    (policy,) = intents(parse_manifests([("m.yaml", path.read_text())]))
    max_lag = policy.targets[0].max_lag
    assert max_lag == 9999999999 * 7 * 86400
    assert max_lag is not None and max_lag < 2**53  # a JSON number any reader keeps exact


def test_the_schema_states_max_lag_as_a_duration() -> None:
    schema = json.loads(schema_text())
    target = schema["$defs"]["TargetSpec"]["properties"]["maxLag"]
    interval = schema["$defs"]["SnapshotsSpec"]["properties"]["interval"]
    assert {k: v for k, v in target.items() if k != "description"} == {
        k: v for k, v in interval.items() if k != "description"
    }
    assert "stale" in target["description"]
    assert (ROOT / "schemas" / "manifests.schema.json").read_text() == schema_text()
