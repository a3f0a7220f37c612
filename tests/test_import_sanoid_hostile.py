"""`reconcile import sanoid` with hostile input: one clear line or findings, a defined exit
code, never a traceback, never a hang; and a hypothesis test that mutates the fixtures and
checks that the converter raises nothing but `ImportInputError` and that what it produces
loads.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifest.loader import parse_manifests
from reconciler.migrate import sanoid
from reconciler.migrate.report import Conversion, ImportInputError, render_documents
from tests.sanoid_import_cases import CASES, arguments, fixture, run_cli


def _run(tmp_path: Path, content: str | bytes, *extra: str) -> tuple[int, str, str, float]:
    path = tmp_path / "sanoid.conf"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    start = time.monotonic()
    code, out, err = run_cli(["import", "sanoid", str(path), "--timezone", "UTC", *extra])
    return code, out, err, time.monotonic() - start


ONE_LINE_ERRORS = {
    "binary": b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 50,
    "yaml_list": "- a\n- b\n",
    "json": '{"tank/a": {"hourly": 5}}\n',
    "key_before_section": "hourly = 5\n[tank/a]\n",
    "no_sections": "# only a comment\n\n",
    "only_templates": "[template_x]\nhourly = 1\n",
    "bad_header": "[tank/a\nhourly = 1\n",
    "empty_header": "[]\n",
    "too_many_sections": "".join(f"[t/d{i}]\n" for i in range(2500)),
    "too_big": "#" * (4 * 1024 * 1024 + 10),
    "huge_section_name": "[" + "a" * (4 * 1024 * 1024 - 100) + "]\n",
    "huge_value": "[t/a]\npre_snapshot_script = " + "x" * (4 * 1024 * 1024 - 100) + "\n",
}


@pytest.mark.parametrize("case", sorted(ONE_LINE_ERRORS))
def test_input_that_is_not_a_sanoid_conf_is_one_line_exit_1(tmp_path: Path, case: str) -> None:
    code, out, err, seconds = _run(tmp_path, ONE_LINE_ERRORS[case])
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert seconds < 10


CONVERTED_WITH_FINDINGS = {
    "wrong_types": "[tank/a]\nhourly = [1, 2]\ndaily = {x: 1}\nautosnap = maybe\nrecursive = 7\n",
    "huge_counts": "[tank/a]\nhourly = 99999999999999999999999999\nfrequent_period = -1\n",
    "odd_names": "[tank/with space]\n[tank/'quote\"]\n[tank/semi;colon]\n[-leading]\n",
    "deep": "[" + "/".join(["d"] * 300) + "]\n" + "[" + "/".join(["e"] * 100) + "]\n",
    "odd_times": "[t/a]\nhourly = 0\ndaily_hour = 25\ndaily_min = x\n",
    "many_keys": "[t/a]\n" + "hourly = 1\n" * 50_000,
    "four_mib_of_comments": "[t/a]\n" + "# sanoid\n" * (4 * 1024 * 1024 // 10 - 10),
    "template_loop": "[template_a]\nuse_template = a\n[t/a]\nuse_template = a, a, , ,\n",
    "path_twice": "[t/a]\n[other]\npath = t/a\n",
}


@pytest.mark.parametrize("case", sorted(CONVERTED_WITH_FINDINGS))
def test_odd_configurations_convert_or_say_why(case: str) -> None:
    start = time.monotonic()
    conversion = sanoid.convert("s.conf", CONVERTED_WITH_FINDINGS[case], timezone="UTC")
    assert conversion.findings
    parse_manifests([("<converted>", render_documents(conversion.documents, "s.conf"))])
    assert time.monotonic() - start < 20


HOSTILE_SYNCOID = [
    "",
    "syncoid",
    "syncoid 'unterminated",
    "syncoid -r",
    "syncoid --sshport=notaport t/a h:x/t/a",
    "syncoid --recvoptions='o' t/a x/t/a",
    "syncoid --recvoptions='o casesensitivity=mixed x -bad' t/a x/t/a",
    "syncoid --sendoptions='RDzo' t/a x/t/a",
    "syncoid 'user name@host;rm -rf /:t/a' x/t/a",
    "syncoid -- -t/a x/-t/a",
    "syncoid t/a\nx/t/a",
    "syncoid " + "-r " * 10_000 + "t/a x/t/a",
    "rm -rf / t/a x/t/a",
]


@pytest.mark.parametrize("line", HOSTILE_SYNCOID)
def test_hostile_syncoid_lines_convert_or_say_why(tmp_path: Path, line: str) -> None:
    code, _, err, seconds = _run(tmp_path, "[t/a]\nautoprune = no\n", "--syncoid", line)
    assert code in (0, 1) and "Traceback" not in err and "internal error" not in err
    assert seconds < 20


def test_the_same_syncoid_line_twice_is_refused_the_second_time() -> None:
    line = "syncoid --no-sync-snap t/a root@h:x/t/a"
    conversion = sanoid.convert("s.conf", "[t/a]\nautoprune = no\n", [line, line])
    assert any("same dataset" in f.why for f in conversion.findings)
    assert conversion.incomplete


# --- hypothesis: mutated fixtures --------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "[t/x]", "[template_default]", "recursive = yes", "recursive = zfs", "hourly = 0",
        "daily = 3", "frequently = 2", "frequent_period = 90", "autosnap = no",
        "autoprune = no", "process_children_only = yes", "skip_children = yes",
        "use_template = production, backup", "path = tank/other", "monthly_mday = 31",
        "weekly_wday = 7", "pre_snapshot_script = -x", "script_timeout = 99999", "= x", "[",
        "yearly = 1", "hourly = 1e9", "\x00", "\u2028", "[tank/home/tmp]", "[data/home/tmp]",
    ]
)  # fmt: skip


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    name = draw(st.sampled_from(CASES))
    lines = fixture(name).read_text().splitlines()
    for _ in range(draw(st.integers(0, 6))):
        where = draw(st.integers(0, len(lines)))
        action = draw(st.sampled_from(["insert", "delete", "duplicate", "garble"]))
        if action == "insert":
            lines.insert(where, draw(_PIECES))
        elif lines and action == "delete":
            del lines[min(where, len(lines) - 1)]
        elif lines and action == "duplicate":
            lines.insert(where, lines[min(where, len(lines) - 1)])
        elif lines:
            index = min(where, len(lines) - 1)
            lines[index] = lines[index] + draw(st.text(max_size=8))
    args = arguments(name)
    syncoid = [args[i + 1] for i, word in enumerate(args) if word == "--syncoid"]
    if syncoid and draw(st.booleans()):
        syncoid[0] = syncoid[0] + " " + draw(st.text(max_size=12))
    return name, "\n".join(lines) + "\n", syncoid


def convert_mutated(case: tuple[str, str, list[str]]) -> Conversion:
    _, text, syncoid = case
    return sanoid.convert("m.conf", text, syncoid, timezone="Europe/Berlin")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixtures())
def test_mutated_fixture_raises_only_input_errors_and_loads(
    case: tuple[str, str, list[str]],
) -> None:
    try:
        conversion = convert_mutated(case)
    except ImportInputError as error:
        assert "\n" not in str(error)
        return
    parse_manifests([("<converted>", render_documents(conversion.documents, "m.conf"))])
