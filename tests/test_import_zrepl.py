"""`reconcile import zrepl`: golden conversions, validation of what is written, hostile input.

Each case is a fixture under tests/fixtures/import/zrepl/ (`NAME.yml`, one machine, or a folder
`NAME/` of `.yml` files, one per machine; `NAME.args` holds extra arguments, one per line) and a
golden folder tests/golden/import/zrepl/NAME/ with `manifests.yaml` (stdout), `findings.txt`
(stderr) and `exit`. UPDATE_GOLDEN=1 rewrites the goldens; read the diff before committing.
"""

from __future__ import annotations

import copy
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.cli import EXIT_ERROR, EXIT_OK, Console, Services, main
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.models import Host
from reconciler.migrate import zrepl
from reconciler.migrate.report import ImportInputError, render_documents
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS
from tests.manifest_strategies import fuzz_settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path("tests/fixtures/import/zrepl")
GOLDEN = ROOT / "tests/golden/import/zrepl"
CASES = sorted(
    p.stem if p.is_file() else p.name
    for p in (ROOT / FIXTURES).iterdir()
    if p.suffix == ".yml" or p.is_dir()
)
NOTHING_CONVERTED = {"sink_only"}  # a sink alone: its pushing machine's file is needed
FINDING = re.compile(r"^[^:\n]+:[0-9]+:[0-9]+: .+: (not converted|note): .+$")


def run(argv: list[str]) -> tuple[int, str, str]:
    console = Console(stdout=io.StringIO(), stderr=io.StringIO())
    code = main(["import", *argv], console=console)
    assert isinstance(console.stdout, io.StringIO) and isinstance(console.stderr, io.StringIO)
    return code, console.stdout.getvalue(), console.stderr.getvalue()


def case_argv(case: str) -> list[str]:
    fixture = FIXTURES / case
    paths = sorted(str(p) for p in fixture.glob("*.yml")) if fixture.is_dir() else []
    paths = paths or [str(fixture.with_suffix(".yml"))]
    extra = ROOT / FIXTURES / f"{case}.args"
    args = extra.read_text().split("\n") if extra.is_file() else []
    return ["zrepl", *paths, *(arg for arg in args if arg)]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # findings name the fixtures by their relative path


@pytest.mark.parametrize("case", CASES)
def test_golden_conversion(case: str) -> None:
    code, out, err = run(case_argv(case))
    folder = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifests.yaml").write_text(out)
        (folder / "findings.txt").write_text(err)
        (folder / "exit").write_text(f"{code}\n")
    assert out == (folder / "manifests.yaml").read_text(), f"{case}: manifests differ"
    assert err == (folder / "findings.txt").read_text(), f"{case}: findings differ"
    assert f"{code}\n" == (folder / "exit").read_text(), f"{case}: exit code differs"


@pytest.mark.parametrize("case", CASES)
def test_converted_manifests_validate(case: str) -> None:
    code, out, err = run(case_argv(case))
    assert code in (EXIT_OK, EXIT_ERROR)
    manifests = parse_manifests([("converted.yaml", out)])
    assert bool(manifests.policies) == (case not in NOTHING_CONVERTED), case
    lines = err.splitlines()
    assert all(FINDING.match(line) for line in lines[:-1]), err
    assert lines[-1].startswith("converted ")


def test_push_and_sink_pair_across_two_files() -> None:
    code, out, _ = run(case_argv("push_sink_ssh"))
    policy = parse_manifests([("x", out)]).policies["prod-to-backup"]
    (target,) = policy.spec.replication
    assert (target.root, code) == ("storage/zrepl/prod", EXIT_OK)
    assert policy.spec.snapshots.adopt[0].prefix == "zrepl_"


def test_without_the_sink_file_the_target_is_left_out_and_the_exit_is_one() -> None:
    code, out, err = run(["zrepl", str(FIXTURES / "push_sink_ssh/prod.yml")])
    policy = parse_manifests([("x", out)]).policies["prod-to-backup"]
    assert (policy.spec.replication, code) == ([], EXIT_ERROR)
    assert "keep_receiver: not converted: no target is made" in err


def test_local_timestamps_need_the_timezone_option() -> None:
    without, _, err = run(["zrepl", str(FIXTURES / "local_time_unknown.yml")])
    given_zone, out, _ = run(
        ["zrepl", str(FIXTURES / "local_time_unknown.yml"), "--timezone", "Europe/Berlin"]
    )
    assert (without, given_zone) == (EXIT_ERROR, EXIT_OK)
    assert "rerun with --timezone ZONE" in err
    adopt = parse_manifests([("x", out)]).policies["media"].spec.snapshots.adopt
    assert adopt[0].timezone == "Europe/Berlin"


def test_an_unknown_timezone_is_one_line_and_exit_one() -> None:
    code, out, err = run(["zrepl", str(FIXTURES / "go_layout.yml"), "--timezone", "Mars/Base"])
    assert (code, out) == (EXIT_ERROR, "")
    assert err.count("\n") == 1 and "unknown time zone" in err


def test_out_writes_one_file_per_document(tmp_path: Path) -> None:
    code, out, _ = run([*case_argv("pull_ssh"), "--out", str(tmp_path / "m")])
    written = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert (code, out) == (EXIT_OK, "")
    assert written == ["host-app1-example-org.yaml", "host-backup.yaml", "policy-pull-app1.yaml"]


def test_converted_manifests_run_a_pass_on_the_model(tmp_path: Path) -> None:
    """push_sink_ssh converted, then applied: prod snapshots tank and sends it to the backup
    machine below the sink's root_fs/<client identity>."""
    code, _, _ = run([*case_argv("push_sink_ssh"), "--out", str(tmp_path / "m")])
    prod = ModelZFS("prod", seed=1)
    prod.create_pool("tank")
    prod.create("tank/home")
    backup = ModelZFS("backup", seed=2)
    backup.create_pool("storage")
    hosts = {"prod": prod, "backup-example-org": backup}

    def connect(host: Host) -> ZFS:
        return hosts[host.metadata.name]

    console = Console(stdout=io.StringIO(), stderr=io.StringIO())
    now = "2026-11-26T12:00:00Z"
    applied = main(["-f", str(tmp_path / "m"), "--now", now], console, Services(connect=connect))
    received = backup.observe().filesystems
    assert (code, applied) == (EXIT_OK, EXIT_OK)
    home = received["storage/zrepl/prod/tank/home"]
    assert home.snapshots[-1].name == "zrepl_20261126T120000Z"


# --- hostile input ---------------------------------------------------------------------------

HOSTILE = {
    "scalar": "just a string\n",
    "list": "- jobs\n- global\n",
    "empty": "",
    "not_zrepl": "apiVersion: v1\nkind: Pod\n",
    "syntax": "jobs: [\n",
    "wrong_types": (
        "jobs:\n  - 5\n  - name: [1]\n    type: snap\n  - name: a\n    type: {x: 1}\n"
        "  - name: b\n    type: snap\n    filesystems: tank\n    snapshotting: []\n"
        "    pruning: {keep: 3}\n  - name: c\n    type: push\n    connect: {type: 7}\n"
        "    filesystems: {'tank<': 'yes'}\n    snapshotting: {type: periodic, prefix: 3}\n"
    ),
    "huge_counts": (
        "jobs:\n  - name: a\n    type: snap\n    filesystems: {'tank<': true}\n"
        "    snapshotting: {type: periodic, prefix: z_, interval: 99999999999999999h}\n"
        "    pruning: {keep: [{type: last_n, count: 100000000000000000000000}]}\n"
    ),
    "hostile_names": (
        'jobs:\n  - name: "-rf; rm -rf / \'x\' \\"y\\"\\n"\n    type: push\n'
        "    connect: {type: ssh+stdinserver, host: '-oProxyCommand=sh', user: 'a b',"
        " options: ['x\\ny', 'ProxyCommand=sh -c id']}\n"
        "    filesystems: {'tank/a b<': true, 'tank/;x': true, 'tank/@s': true, '-x': true}\n"
        '    snapshotting: {type: periodic, prefix: "z\'; ", interval: 1h}\n'
        "    pruning: {keep_sender: [], keep_receiver: []}\n"
    ),
    "deep": "jobs:\n  - name: a\n    x: " + "[" * 40 + "]" * 40 + "\n",
    "many_jobs": "jobs:\n"
    + "".join(
        f"  - {{name: j{i}, type: snap, filesystems: {{'p{i}<': true}},"
        f" snapshotting: {{type: periodic, prefix: z_, interval: 1h}},"
        f" pruning: {{keep: [{{type: last_n, count: 1}}]}}}}\n"
        for i in range(300)
    ),
    "overlapping": "jobs:\n"
    + "".join(
        f"  - {{name: j{i}, type: snap, filesystems: {{'tank<': true}},"
        f" snapshotting: {{type: periodic, prefix: z_, interval: 1h}}}}\n"
        for i in range(250)
    ),
    "four_mib": (
        "jobs:\n  - {name: a, type: snap, filesystems: {'t<': true},"
        " snapshotting: {type: periodic, prefix: z_, interval: 1h}, pruning: {keep: []}}\n# "
    )
    + "x" * (4 * 1024 * 1024 - 200)
    + "\n",
    "too_big": "jobs: []\n# " + "x" * (4 * 1024 * 1024) + "\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_reported_never_a_traceback(name: str, tmp_path: Path) -> None:
    path = tmp_path / "zrepl.yml"
    path.write_text(HOSTILE[name])
    code, out, err = run(["zrepl", str(path)])
    assert code == EXIT_ERROR or (code == EXIT_OK and out), (code, err[-300:])
    assert "Traceback" not in err and "internal error" not in err
    if out:
        parse_manifests([("x", out)])
    else:
        assert err.count("\n") == 1 and err.startswith(str(path)), err


def test_binary_junk_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "zrepl.yml"
    path.write_bytes(bytes(range(256)) * 8)
    code, out, err = run(["zrepl", str(path)])
    assert (code, out, err.count("\n")) == (EXIT_ERROR, "", 1)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    code, _, err = run(["zrepl", str(FIXTURES / "snap_grid.yml"), str(tmp_path / "none.yml")])
    assert (code, err.count("\n")) == (EXIT_ERROR, 1)
    assert "none.yml" in err


# --- mutations of the fixtures ---------------------------------------------------------------

_YAML = YAML(typ="safe", pure=True)
_FOLDERS = [ROOT / FIXTURES, *sorted(p for p in (ROOT / FIXTURES).iterdir() if p.is_dir())]
_LOADED = [
    [(str(p.relative_to(ROOT)), _YAML.load(p.read_text())) for p in sorted(folder.glob("*.yml"))]
    for folder in _FOLDERS
]
SEEDS = [[one] for one in _LOADED[0]] + _LOADED[1:]  # each single file alone, each pair together
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=12),
    st.sampled_from(["ssh+stdinserver", "local", "push", "sink", "<", "tank<", "1h", "grid"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _slots(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _slots(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _slots(value, (*path, index))
    return found


@st.composite
def mutated_configs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """The files of one fixture (one machine, or a pair), one of them changed 1-4 times."""
    files = draw(st.sampled_from(SEEDS))
    chosen = draw(st.integers(0, len(files) - 1))
    seed = files[chosen][1]
    data = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_slots(data)))
        value = draw(_VALUES)
        if not path:
            data = value
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    texts = []
    for index, (file, original) in enumerate(files):
        out = io.StringIO()
        _YAML.dump(data if index == chosen else original, out)
        texts.append((file, out.getvalue()))
    return texts


@fuzz_settings(150)
@given(mutated_configs())
def test_mutated_fixtures_convert_to_valid_manifests_or_a_clear_error(
    files: list[tuple[str, str]],
) -> None:
    try:
        conversion = zrepl.convert(files, timezone="UTC")
    except ImportInputError as error:
        assert "\n" not in str(error)
        return
    parse_manifests([("converted.yaml", render_documents(conversion.documents, "x"))])


def test_names_are_sanitized_kept_unique_and_noted(tmp_path: Path) -> None:
    jobs = "".join(
        f"  - {{name: {name!r}, type: snap, filesystems: {{'p{index}<': true}},"
        f" snapshotting: {{type: periodic, prefix: z{index}_, interval: 1h}},"
        f" pruning: {{keep: [{{type: last_n, count: 1}}]}}}}\n"
        for index, name in enumerate(["Daily Backup", "daily_backup", "!!!", "x" * 100])
    )
    path = tmp_path / "prod.yml"
    path.write_text("jobs:\n" + jobs)
    code, out, err = run(["zrepl", str(path)])
    names = sorted(parse_manifests([("x", out)]).policies)
    assert (code, names) == (EXIT_OK, sorted(["daily-backup", "daily-backup-2", "job", "x" * 63]))
    assert err.count("note: the policy is named") == 4
