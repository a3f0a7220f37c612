"""The pure parts of platform_tests/bench_peers.py (`make bench-peers`): the wrapper log, the
figures, the checks of a run, the table and the docs section it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_tests import bench_peers as bp


def test_parse_calls_counts_each_program_and_verb() -> None:
    log = "zfs list\nzfs list\nzpool get\nzfs snapshot\n\nzfs\n"
    calls = bp.parse_calls(log)
    assert calls == {"zfs list": 2, "zpool get": 1, "zfs snapshot": 1, "zfs (no verb)": 1}
    assert sum(calls.values()) == 5
    assert bp.parse_calls("") == {}


def test_wrapper_logs_the_verb_and_execs_the_real_program(tmp_path: Path) -> None:
    import subprocess

    real = tmp_path / "real"
    real.write_text('#!/bin/sh\necho "real $*"\n')
    real.chmod(0o755)
    wrapper = tmp_path / "zfs"
    wrapper.write_text(bp.WRAPPER.format(name="zfs", real=real))
    wrapper.chmod(0o755)
    log = tmp_path / "calls"
    # through sh -c, as syncoid and bzfs run it: the log file comes from the environment
    done = subprocess.run(
        ["sh", "-c", "zfs list -H -o name; zfs get creation"],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "ZR_BENCH_LOG": str(log)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "real list -H -o name\nreal get creation\n"
    assert bp.parse_calls(log.read_text()) == {"zfs list": 1, "zfs get": 1}


def test_spread_and_ratio() -> None:
    assert bp.spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0}
    assert bp.spread([4]) == {"median": 4.0, "min": 4.0, "max": 4.0}
    with pytest.raises(ValueError):
        bp.spread([])
    assert bp.ratio(6.0, 2.0) == 3.0
    assert bp.ratio(1.0, 4.0) == 0.25
    assert bp.ratio(1.0, 0) is None
    assert bp.ratio(None, 2.0) is None
    assert bp.ratio(2.0, None) is None


def test_rotated_gives_every_tool_each_position() -> None:
    order = ("a", "b", "c", "d")
    rounds = [bp.rotated(order, r) for r in range(4)]
    assert rounds[0] == ["a", "b", "c", "d"]
    assert rounds[1] == ["b", "c", "d", "a"]
    assert bp.rotated(order, 5) == rounds[1]
    for position in range(4):
        assert sorted(r[position] for r in rounds) == list(order)


def test_listing_and_changes() -> None:
    before = bp.parse_listing("tank/a@s1\ntank/a@s2\nbackup/x/a@s1\n")
    assert before == {"tank/a": {"s1", "s2"}, "backup/x/a": {"s1"}}
    after = bp.parse_listing("tank/a@s2\ntank/a@s3\nbackup/x/a@s1\n")
    assert bp.listing_changes(before, before) == []
    assert bp.listing_changes(before, after) == ["+tank/a@s3", "-tank/a@s1"]


def test_new_snapshot_problems() -> None:
    def target(fs: str) -> str:
        return "backup/t/" + fs.rpartition("/")[2]

    scheme = r"^t_\d+$"
    before = {"tank/a": {"t_1", "other"}, "tank/b": {"t_1"}, "backup/t/a": {"t_1"}}
    good = {
        "tank/a": {"t_1", "t_2", "other", "other2"},  # a foreign new snapshot does not count
        "tank/b": {"t_1", "t_2"},
        "backup/t/a": {"t_1", "t_2"},
        "backup/t/b": {"t_2"},
    }
    assert bp.new_snapshot_problems(before, good, ["tank/a", "tank/b"], scheme, target) == []
    missing_replica = {**good, "backup/t/b": set()}
    problems = bp.new_snapshot_problems(
        before, missing_replica, ["tank/a", "tank/b"], scheme, target
    )
    assert problems == ["tank/b@t_2 is not on backup/t/b"]
    two_new = {**good, "tank/a": {"t_1", "t_2", "t_3"}}
    problems = bp.new_snapshot_problems(before, two_new, ["tank/a"], scheme, target)
    assert len(problems) == 1 and "2 new snapshots" in problems[0]
    assert "0 new" in bp.new_snapshot_problems(before, before, ["tank/a"], scheme, target)[0]


def _run(seconds: float, processes: int, ok: bool = True) -> dict[str, object]:
    return {"seconds": seconds, "processes": processes, "ok": ok, "verbs": {}}


def test_summarize_counts_valid_runs_only() -> None:
    summary = bp.summarize([_run(2.0, 3), _run(4.0, 5), _run(100.0, 99, ok=False), _run(3.0, 3)])
    assert summary.pop("verbs_first_valid_run") == {}
    assert summary == {
        "runs": 4,
        "valid_runs": 3,
        "median_seconds": 3.0,
        "min_seconds": 2.0,
        "max_seconds": 4.0,
        "processes_median": 3,
        "processes_min": 3,
        "processes_max": 5,
    }
    assert bp.summarize([_run(1.0, 1, ok=False)]) == {"runs": 1, "valid_runs": 0}


def test_render_table_ratios_against_us() -> None:
    workload = {
        "tools": {
            "zr": bp.summarize([_run(2.0, 2), _run(4.0, 2), _run(3.0, 2)]),
            "sanoid": bp.summarize([_run(9.0, 300), _run(6.0, 301), _run(12.0, 302)]),
            "zab": bp.summarize([_run(1.0, 1, ok=False)]),
        }
    }
    table = bp.render_table(workload, bp.LABELS).splitlines()
    assert table[0].startswith("| tool | median (s) | min (s) | max (s) | zfs+zpool processes")
    assert table[2] == "| zfs-reconciler (us) | 3.00 | 2.00 | 4.00 | 2 | 1 | 1 |"
    # 9 / 3 = 3 for the seconds; 301 / 2 = 150.5 for the processes
    assert table[3] == "| sanoid + syncoid | 9.00 | 6.00 | 12.00 | 300–302 | 3.00 | 150.50 |"
    assert table[4] == "| zfs-autobackup | – | – | – | – | – | – |"


def test_replace_section_keeps_the_rest_of_the_file() -> None:
    text = (
        "# Benchmarks\n\nintro\n\n## (a) one\n\nA\n\n## (f) peers\n\nold\nold\n\n## (g) next\n\nG\n"
    )
    new = bp.replace_section(text, "## (f) peers", "new body")
    expected = "# Benchmarks\n\nintro\n\n## (a) one\n\nA\n\n## (f) peers\n\nnew body\n\n"
    assert new == expected + "## (g) next\n\nG\n"
    # idempotent, and a ### heading inside the section is part of it
    body = "### sub\n\nx"
    once = bp.replace_section(text, "## (f) peers", body)
    assert bp.replace_section(once, "## (f) peers", body) == once
    assert "### sub" in once and "old" not in once and once.endswith("## (g) next\n\nG\n")


def test_replace_section_at_the_end_or_missing() -> None:
    text = "# B\n\n## (f) peers\n\nold\n"
    assert bp.replace_section(text, "## (f) peers", "new") == "# B\n\n## (f) peers\n\nnew\n"
    assert bp.replace_section("# B\n", "## (f) peers", "new") == "# B\n\n## (f) peers\n\nnew\n"


def test_render_section_has_a_table_per_workload_and_the_commands() -> None:
    result = {
        "filesystems": 4,
        "rounds": 1,
        "seed_hours": 2,
        "setup_seconds": 60.0,
        "versions": {"zr": "reconcile 0.1.0"},
        "commands": {"zr": ["reconcile -f /x"], "sanoid": ["sanoid --cron", "syncoid -r a b"]},
        "p1": {"seconds": 120.0, "tools": {"zr": bp.summarize([_run(2.0, 2)])}, "runs": {}},
        "p4": {
            "seconds": 120.0,
            "tools": {"zr": bp.summarize([_run(5.0, 9)])},
            "runs": {"zr": [{**_run(5.0, 9, ok=False), "tool": "zr", "label": "p4-r1", "exit": 1}]},
        },
    }
    section = bp.render_section([result], 600.0)
    assert "### P1 no-op: 4 filesystems, 1 rounds" in section
    assert "### P4 incremental: 4 filesystems" in section
    assert "`syncoid -r a b`" in section and "`reconcile -f /x`" in section
    assert "Runs that did not do the job: zr p4-r1: exit 1" in section
    assert "took 10 min" in section
    assert bp.render_section([result], 60.0, note="Small run").startswith("**Small run**")


def test_render_verbs_most_frequent_first() -> None:
    runs = [{**_run(1.0, 3), "verbs": {"zfs get": 1, "zfs list": 2}}]
    text = bp.render_verbs({"tools": {"zr": bp.summarize(runs)}}, bp.LABELS)
    assert text.splitlines()[-1] == "- zfs-reconciler: `zfs list` 2, `zfs get` 1"
