"""`reconcile import sanoid`: goldens, the mapping's rules, and the CLI around the converter.

The goldens (tests/sanoid_import_cases.py) are compared with the converter's output here and
with the CLI's output in tests/test_import_sanoid_validity.py, which also loads each result.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest.loader import parse_manifests
from reconciler.migrate import sanoid
from reconciler.migrate.names import Names, label
from reconciler.migrate.report import ImportInputError, Outcome, render_documents
from reconciler.migrate.syncoid import read_syncoid
from tests.sanoid_import_cases import (
    CASES,
    GOLDEN,
    ROOT,
    arguments,
    convert_case,
    expected_from_converter,
    from_cli,
    golden,
    run_cli,
)


def test_there_are_enough_fixtures() -> None:
    assert len(CASES) >= 12
    assert sum(1 for name in CASES if "--syncoid" in arguments(name)) >= 2


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    expected = expected_from_converter(name)
    folder = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifests.yaml").write_text(expected.manifests)
        (folder / "findings.txt").write_text(expected.findings)
        (folder / "exit").write_text(f"{expected.exit}\n")
    assert expected == golden(name)


@pytest.mark.parametrize("name", CASES)
def test_conversion_loads(name: str) -> None:
    conversion = convert_case(name)
    parse_manifests([("<converted>", render_documents(conversion.documents, name))])


@pytest.mark.parametrize("name", CASES)
def test_cli_prints_the_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT.parent)
    assert from_cli(name) == golden(name)


# --- the mapping --------------------------------------------------------------------------------


def _policies(text: str, *syncoid: str, **options: str) -> dict[str, dict]:
    conversion = sanoid.convert("s.conf", text, syncoid, **options)
    return {d["metadata"]["name"]: d["spec"] for d in conversion.documents if d["kind"] == "Policy"}


def test_default_counts_become_a_grid_for_own_snapshots_and_rules_for_sanoid_ones() -> None:
    spec = _policies("[tank/home]\n")["tank-home"]
    keep = spec["retention"]["keep"]
    assert keep[0] == {"grid": "48x1h | 90x1d | 6x31d", "match": "^zr_"}
    assert {"lastN": 48, "match": "^autosnap_.*_hourly$"} in keep
    assert {"grid": "1x72h(keep=all)", "match": "^autosnap_.*_hourly$"} in keep  # 48h + 1d
    assert {"lastN": 6, "match": "^autosnap_.*_monthly$"} in keep
    assert {"grid": "1x4488h(keep=all)", "match": "^autosnap_.*_monthly$"} in keep  # 6x31d + 1d
    assert spec["snapshots"]["interval"] == "1h"
    assert spec["snapshots"]["adopt"] == [
        {"prefix": "autosnap_", "format": "sanoid", "timezone": "UTC"}
    ]


def test_a_period_at_zero_has_no_rule_so_sanoid_snapshots_of_it_go_as_sanoid_would() -> None:
    keep = _policies("[tank/a]\nmonthly = 0\n")["tank-a"]["retention"]["keep"]
    assert not any("monthly" in rule["match"] for rule in keep)


def test_autoprune_off_keeps_everything_and_autosnap_off_takes_nothing() -> None:
    spec = _policies("[tank/a]\nautoprune = no\n[tank/b]\nautosnap = no\n")
    assert "retention" not in spec["tank-a"] and spec["tank-a"]["snapshots"]["interval"] == "1h"
    assert "interval" not in spec["tank-b"]["snapshots"] and "retention" in spec["tank-b"]


def test_daily_schedule_is_a_cron_in_utc_from_the_local_preferred_time() -> None:
    text = "[tank/a]\nhourly = 0\ndaily_hour = 1\ndaily_min = 15\n"
    berlin = _policies(text, timezone="Europe/Berlin")["tank-a"]["snapshots"]
    assert berlin["cron"] == "15 0 * * *"
    tokyo = _policies(text.replace("daily_hour = 1", "daily_hour = 3"), timezone="Asia/Tokyo")
    assert tokyo["tank-a"]["snapshots"]["cron"] == "15 18 * * *"


def test_weekly_cron_moves_to_the_previous_weekday_when_utc_is_a_day_earlier() -> None:
    text = "[t/a]\nhourly = 0\ndaily = 0\nweekly = 4\nweekly_wday = 1\nweekly_hour = 3\n"
    spec = _policies(text, timezone="Asia/Tokyo")["t-a"]
    assert spec["snapshots"]["cron"] == "30 18 * * 0"


def test_frequent_period_sets_the_interval_and_the_first_bucket() -> None:
    spec = _policies("[t/a]\nfrequently = 4\nfrequent_period = 10\n")["t-a"]
    assert spec["snapshots"]["interval"] == "10m"
    assert spec["retention"]["keep"][0]["grid"] == "4x10m | 48x1h | 90x1d | 6x31d"


def test_nested_sections_split_the_filesystems_between_policies() -> None:
    text = "[t/a]\nrecursive = yes\n[t/a/b]\nhourly = 1\n[t/a/c]\nautosnap = no\nautoprune = no\n"
    specs = _policies(text)
    assert specs["t-a"]["source"]["filesystems"] == {"t/a<": True, "t/a/b": False, "t/a/c": False}
    assert specs["t-a-b"]["source"]["filesystems"] == {"t/a/b": True}


def test_process_children_only_and_skip_children() -> None:
    text = "[t/vm]\nrecursive = yes\nprocess_children_only = yes\n[t/ct]\nskip_children = yes\n"
    specs = _policies(text)
    assert specs["t-vm"]["source"]["filesystems"] == {"t/vm<": True, "t/vm": False, "t/ct": True}


def test_hooks_follow_no_inconsistent_snapshot() -> None:
    text = "[t/a]\npre_snapshot_script = /bin/freeze\nscript_timeout = 7\n"
    hooks = _policies(text)["t-a"]["snapshots"]["hooks"]
    assert hooks == [
        {
            "when": "pre",
            "command": ["sh", "-c", "/bin/freeze"],
            "timeout": "7s",
            "onFailure": "snapshot",
        },
    ]
    text += "no_inconsistent_snapshot = yes\n"
    assert _policies(text)["t-a"]["snapshots"]["hooks"][0]["onFailure"] == "skip"


def test_syncoid_target_root_is_the_part_before_the_source_path() -> None:
    line = "syncoid -r --no-sync-snap --sendoptions=wc tank/home root@b.example:vault/x/tank/home"
    specs = _policies("[tank/home]\nrecursive = yes\n", line)
    (target,) = specs["tank-home"]["replication"]
    assert target["root"] == "vault/x" and target["host"] == "b-example"
    assert target["send"] == {"compressed": True, "raw": True}


def test_syncoid_layout_that_no_root_expresses_is_not_converted_and_decides_retention() -> None:
    conversion = sanoid.convert("s.conf", "[tank/a]\n", ["syncoid tank/a backup/a"])
    (finding,) = [f for f in conversion.findings if f.outcome is Outcome.NOT_CONVERTED]
    assert finding.affects_retention and finding.file == "--syncoid[1]"
    assert conversion.incomplete


def test_syncoid_columns_point_at_the_option() -> None:
    line = "syncoid  --bogus='a b'  --source-bwlimit 1m x y/x"
    job = read_syncoid(2, line)
    columns = {f.path: f.column for f in job.findings}
    assert columns == {"--bogus=a b": 10, "--source-bwlimit": line.index("--source") + 1}
    assert {f.file for f in job.findings} == {"--syncoid[2]"}
    assert job.source is not None and job.source.dataset == "x"


def test_syncoid_excludes_become_filter_patterns_only_when_literal() -> None:
    line = "syncoid -r --exclude=t/m/cache --exclude='^t/m/tmp$' --exclude='.*' t/m r@h:v/t/m"
    conversion = sanoid.convert("s.conf", "[other/x]\n", [line])
    (extra,) = [d for d in conversion.documents if d["metadata"]["name"] == "replicate-t-m"]
    assert extra["spec"]["source"]["filesystems"] == {
        "t/m<": True,
        "t/m/cache<": False,
        "t/m/tmp": False,
    }
    assert any("--exclude=.*" in f.why for f in conversion.findings)


def test_names_are_labels_and_unique() -> None:
    names = Names()
    assert names.unique("policy", "Tank/Home") == "tank-home"
    assert names.unique("policy", "tank_home") == "tank-home-2"
    assert label("--;;--", "policy") == "policy"
    assert len(names.unique("policy", "x" * 100)) == 63


@pytest.mark.parametrize("prefix", ["autosnap_", "syncoid_", "bad prefix", ""])
def test_prefix_that_would_mix_with_sanoid_is_refused(prefix: str) -> None:
    with pytest.raises(ImportInputError, match="--prefix"):
        sanoid.convert("s.conf", "[t/a]\n", prefix=prefix)


# --- the command ----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sanoid.conf"
    path.write_text(text)
    return str(path)


def test_unknown_timezone_is_one_line_exit_1(tmp_path: Path) -> None:
    code, out, err = run_cli(
        ["import", "sanoid", _write(tmp_path, "[t/a]\n"), "--timezone", "Mars/Base"]
    )
    assert (code, out) == (1, "") and err.count("\n") == 1 and "--timezone" in err


def test_prefix_option_names_the_own_snapshots(tmp_path: Path) -> None:
    path = _write(tmp_path, "[t/a]\nautoprune = no\n")
    code, out, _ = run_cli(["import", "sanoid", path, "--prefix", "zfsr-", "--timezone", "UTC"])
    assert code == 0 and "prefix: zfsr-" in out


def test_out_writes_one_file_per_document(tmp_path: Path) -> None:
    path = _write(tmp_path, "[t/a]\nautoprune = no\n")
    code, out, _ = run_cli(["import", "sanoid", path, "--out", str(tmp_path / "m")])
    assert code == 0 and out == ""
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "host-local.yaml",
        "policy-t-a.yaml",
    ]


# --- the adopted rules keep at least what sanoid keeps -------------------------------------------

_PERIOD_SECONDS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 31 * 86400}


def _sanoid_keeps(snapshots: list[tuple[int, str]], counts: dict[str, int], now: int) -> set:
    """sanoid 2.1's prune_snapshots, per period: oldest first, destroy while older than
    count x period and more than count remain."""
    kept = set(snapshots)
    for period, count in counts.items():
        ordered = sorted(s for s in snapshots if s[1] == period)
        remaining = len(ordered)
        for snapshot in ordered:
            if snapshot[0] < now - count * _PERIOD_SECONDS[period] and remaining > count:
                kept.discard(snapshot)
                remaining -= 1
    return kept


def _rules_keep(snapshots: list[tuple[int, str]], keep: list[dict]) -> set:
    """The converted rules, read as documented: `lastN` keeps the newest N it sees, a
    `1xD(keep=all)` grid every one within D of the youngest it sees; `match` picks what a
    rule sees."""
    kept: set = set()
    for rule in keep:
        period = rule["match"].removeprefix("^autosnap_.*_").removesuffix("$")
        seen = sorted(s for s in snapshots if s[1] == period)
        if not seen:
            continue
        if "lastN" in rule:
            kept.update(seen[-rule["lastN"] :])
        elif rule["grid"].startswith("1x"):
            span = rule["grid"].removeprefix("1x").removesuffix("(keep=all)")
            seconds = int(span[:-1]) * (3600 if span.endswith("h") else 60)
            kept.update(s for s in seen if s[0] >= seen[-1][0] - seconds)
    return kept


@settings(max_examples=200, deadline=None)
@given(
    counts=st.fixed_dictionaries({p: st.integers(0, 12) for p in _PERIOD_SECONDS}),
    snapshots=st.lists(
        st.tuples(st.integers(0, 400 * 86400), st.sampled_from(sorted(_PERIOD_SECONDS))),
        max_size=60,
        unique=True,
    ),
    later=st.integers(1, 90 * 86400),  # sanoid runs after the snapshots it sees
)
def test_adopted_rules_never_destroy_what_sanoid_keeps(
    counts: dict[str, int], snapshots: list[tuple[int, str]], later: int
) -> None:
    text = "[t/a]\nautosnap = no\n" + "".join(f"{p} = {n}\n" for p, n in counts.items())
    spec = _policies(text, timezone="UTC")["t-a"]
    keep = [r for r in spec.get("retention", {}).get("keep", []) if "autosnap" in r["match"]]
    now = max((s[0] for s in snapshots), default=0) + later
    sanoid_kept = _sanoid_keeps(snapshots, counts, now)
    if "retention" not in spec:  # every count 0: the policy keeps everything
        return
    assert sanoid_kept <= _rules_keep(snapshots, keep)
