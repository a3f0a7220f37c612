"""The real driver end to end on this machine, with a stand-in `zfs` that replays real output.

The stand-in answers `list` and `holds` with the captured OpenZFS 2.3.2 output in
`tests/fixtures/zfs/`, plays a sender (`send`: bytes on stdout, real-format `-v -P` lines on
stderr) and a receiver (`receive`: counts its stdin), refuses what a test tells it to with real
stderr captures, and logs every argv it was started with. This checks the glue the platform
tests check on real ZFS (runner → argv → parse → typed errors, pipeline, process count) in
every `make test`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import Console, main
from reconciler.core.plan import ReceiveOptions
from reconciler.core.scope import ObservationScope
from reconciler.zfs import commands
from reconciler.zfs.driver import ZfsDriver
from reconciler.zfs.errors import (
    DatasetExists,
    DatasetNotFound,
    ModifiedSinceSnapshot,
    PermissionDenied,
    SnapshotHeld,
    StampsUnsupported,
)
from reconciler.zfs.parse import apply_holds, parse_holds, parse_listing, parse_stamps
from reconciler.zfs.pipeline import TransferProgress
from reconciler.zfs.port import SendRequest
from reconciler.zfs.runner import LocalRunner

FIXTURES = Path(__file__).parent / "fixtures" / "zfs"

FAKE_ZFS = """
import json, os, sys, time
args = sys.argv[1:]
state = os.environ["FAKE_ZFS_DIR"]
with open(os.path.join(state, "log"), "a") as log:
    log.write(json.dumps(args) + "\\n")
def body(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return "".join(f.readlines()[1:])
def listed(name):  # a captured listing, as the columns and names of this call ask
    rows = [line.split("\\t") for line in body(name).splitlines()]
    if args[args.index("-o") + 1] == "name,guid,createtxg":
        rows = [[row[0], row[2], row[3]] for row in rows]
    if args[args.index("-t") + 1] == "snapshot":
        rows = [row for row in rows if "@" in row[0]]
    named = args[args.index("-t") + 2 :]
    if named and "-r" not in args and "-d" not in args:  # the named datasets alone
        rows = [row for row in rows if row[0] in named]
    return "".join("\\t".join(row) + "\\n" for row in rows)
if args[0] == "list" and "-d" in args:  # its stdout comes even when a dataset is missing
    sys.stdout.write(listed("zfs-list-depth1.txt"))
    sys.stdout.flush()
refuse = os.path.join(state, "refuse-" + args[0])
if os.path.exists(refuse):
    with open(refuse) as f:
        lines = f.readlines()
    sys.stderr.write("".join(lines[2:]))
    sys.exit(int(lines[1].split(":")[1]))
if args[0] == "list" and "snapshots_changed" in args[args.index("-o") + 1]:
    sys.stdout.write(body("zfs-list-stamps.txt"))
elif args[0] == "list" and "-d" not in args:
    sys.stdout.write(listed("zfs-list-observe.txt"))
elif args[0] == "holds":
    sys.stdout.write(body("zfs-holds-observe.txt"))
elif args[0] == "send":
    size = 3 << 20
    sys.stderr.write(f"full\\t{args[-1]}\\t{size}\\nsize\\t{size}\\n")
    sys.stderr.flush()
    chunk = b"z" * (1 << 20)
    for i in range(3):
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        sys.stderr.write(f"12:00:0{i}\\t{(i + 1) << 20}\\t{args[-1]}\\n")
        sys.stderr.flush()
elif args[0] == "program":
    with open(os.path.join(state, "program-stdin"), "wb") as f:
        f.write(sys.stdin.buffer.read())
    answer = os.path.join(state, "program-answer")
    codes = json.load(open(answer)) if os.path.exists(answer) else {}
    print(json.dumps({"return": {mark: codes.get(mark, 0) for mark in args[5::2]}}))
elif args[0] == "receive":
    n = len(sys.stdin.buffer.read())
    with open(os.path.join(state, "received"), "w") as f:
        f.write(str(n))
"""


@pytest.fixture
def fake_zfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    script = tmp_path / "zfs.py"
    script.write_text(f"FIXTURES = {str(FIXTURES)!r}\n" + textwrap.dedent(FAKE_ZFS))
    monkeypatch.setenv("FAKE_ZFS_DIR", str(tmp_path))
    return (sys.executable, str(script))


def _calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _refuse(tmp_path: Path, verb: str, capture: str) -> None:
    (tmp_path / f"refuse-{verb}").write_text((FIXTURES / "stderr" / capture).read_text())


def _fixture_body(name: str) -> str:
    return "".join((FIXTURES / name).read_text().splitlines(keepends=True)[1:])


def test_observe_is_one_listing_and_one_holds_call(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    seen = ZfsDriver(LocalRunner("nas"), fake_zfs).observe()
    listing = parse_listing(_fixture_body("zfs-list-observe.txt"))
    expected = apply_holds(listing, parse_holds(_fixture_body("zfs-holds-observe.txt")))
    assert seen.host == "nas" and seen.reachable
    assert dict(seen.filesystems) == expected
    assert [call[0] for call in _calls(tmp_path)] == ["list", "holds"]
    assert any(v.holds for fs in expected.values() for v in fs.versions)


def test_the_cheap_listing_and_the_details_of_every_snapshot_are_the_whole_observation(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    whole = driver.observe()
    listed = driver.list_versions()
    assert all(
        v.creation == v.written == v.referenced == 0 and not v.holds
        for fs in listed.filesystems.values()
        for v in fs.versions
    )
    snapshots = [f"{fs.name}@{v.name}" for fs in whole.filesystems.values() for v in fs.snapshots]
    detailed = driver.add_details(listed, snapshots)
    assert detailed.filesystems == {  # bookmarks are never detailed: nothing reads that
        name: dataclasses.replace(
            state,
            versions=tuple(
                v if v.is_snapshot else v._replace(creation=0, referenced=0) for v in state.versions
            ),
        )
        for name, state in whole.filesystems.items()
    }
    one = snapshots[0]
    partly = driver.add_details(listed, [one])
    fs, _, short = one.partition("@")
    assert partly.filesystems[fs].versions == tuple(
        next(w for w in whole.filesystems[fs].versions if w.name == short and w.is_snapshot)
        if v.name == short and v.is_snapshot
        else v
        for v in listed.filesystems[fs].versions
    )
    assert partly.filesystems[fs].kind == whole.filesystems[fs].kind
    assert [c[0] for c in _calls(tmp_path)] == ["list", "holds", "list", "list", "holds", "list"]


def test_observing_some_filesystems_keeps_what_zfs_listed_beside_a_missing_one(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    _refuse(tmp_path, "list", "list-depth1-missing.txt")  # exit 1 after the listing
    seen = driver.observe_filesystems(["src/depth/fs", "src/depth/missing"])
    listing = parse_listing(_fixture_body("zfs-list-depth1.txt"))
    assert list(listing.filesystems) == ["src/depth/fs", "src/depth/fs/child"]
    assert list(seen) == ["src/depth/fs"]  # the child is listed, but was not asked for
    assert [v.name for v in seen["src/depth/fs"].versions] == ["s1", "s1-mark", "s2"]
    assert [call[0] for call in _calls(tmp_path)] == ["list", "holds"]
    _refuse(tmp_path, "list", "permission-denied-not-root.txt")
    with pytest.raises(PermissionDenied):
        driver.observe_filesystems(["src/depth/fs"])


def test_the_stamp_listing_and_the_snapshots_of_the_filesystems_it_names(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    stamped = driver.list_stamps(ObservationScope.of(["src"]))
    expected = parse_stamps(_fixture_body("zfs-list-stamps.txt"))
    assert stamped.state.host == "nas" and dict(stamped.state.filesystems) == expected.filesystems
    assert stamped.stamps == expected.stamps
    _refuse(tmp_path, "list", "list-depth1-missing.txt")  # exit 1 after the listing
    found = driver.list_snapshots(["src/depth/fs", "src/depth/missing"])
    assert {fs: [v.name for v in versions] for fs, versions in found.items()} == {
        "src/depth/fs": ["s1", "s2"]
    }
    assert _calls(tmp_path) == [
        [*commands.list_versions(["src"], commands.STAMP_COLUMNS, commands.STAMP_TYPES)],
        [
            "list",
            "-H",
            "-p",
            "-o",
            "name,guid,createtxg",
            "-t",
            "snapshot",
            "-d",
            "1",
            "src/depth/fs",
            "src/depth/missing",
        ],
    ]
    _refuse(tmp_path, "list", "list-invalid-property.txt")
    with pytest.raises(StampsUnsupported, match="invalid property"):
        driver.list_stamps(ObservationScope.of(["src"]))


def test_every_command_starts_with_the_hosts_zfs_command(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    driver.snapshot(["tank/a", "tank/b c"], "zr_1")
    driver.hold("tank/a", "zr_1", "zr_:p:t")
    driver.destroy("tank/a", ["@zr_0", "#zr_0_t"])
    assert _calls(tmp_path) == [
        ["snapshot", "tank/a@zr_1", "tank/b c@zr_1"],
        ["hold", "zr_:p:t", "tank/a@zr_1"],
        ["destroy", "tank/a@zr_0"],
        ["destroy", "tank/a#zr_0_t"],
    ]


def test_refusals_become_typed_errors_naming_the_host_and_command(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    _refuse(tmp_path, "destroy", "destroy-held.txt")
    with pytest.raises(SnapshotHeld) as held:
        driver.destroy("src/e22/fs", ["@a", "@b", "@c", "@d"])
    assert held.value.host == "nas"
    assert sorted(held.value.held) == ["@a", "@b", "@c"]
    assert held.value.command[: len(fake_zfs)] == fake_zfs
    _refuse(tmp_path, "hold", "hold-snapshot-missing.txt")
    with pytest.raises(DatasetNotFound):
        driver.hold("tank/a", "gone", "t")


def test_a_transfer_runs_as_one_pipeline_with_progress(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    seen: list[TransferProgress] = []
    source = ZfsDriver(LocalRunner("nas"), fake_zfs)
    target = ZfsDriver(LocalRunner("backup"), fake_zfs, on_progress=seen.append)
    stream = source.send(SendRequest("tank/a", "zr_1"))
    target.receive("vault/tank/a", stream, ReceiveOptions())
    assert (tmp_path / "received").read_text() == str(3 << 20)
    assert [p.bytes_done for p in seen][-1] == 3 << 20
    assert seen[-1].finished and seen[-1].bytes_total == 3 << 20
    assert seen[0].label == "nas:tank/a → backup:vault/tank/a"
    verbs = [call[0] for call in _calls(tmp_path)]
    assert sorted(verbs) == ["receive", "send"]


def test_a_refused_receive_reports_the_receivers_error(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    _refuse(tmp_path, "receive", "recv-modified.txt")
    source = ZfsDriver(LocalRunner("nas"), fake_zfs)
    target = ZfsDriver(LocalRunner("backup"), fake_zfs)
    with pytest.raises(ModifiedSinceSnapshot) as refused:
        target.receive("vault/a", source.send(SendRequest("tank/a", "s2", "@s1")), ReceiveOptions())
    assert refused.value.host == "backup"


def test_a_dry_run_pass_starts_at_most_three_zfs_processes_per_host(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    command = ", ".join(json.dumps(part) for part in fake_zfs)
    (tmp_path / "m.yaml").write_text(
        "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Host\nmetadata: {name: nas}\n"
        f"spec: {{zfsCommand: [{command}]}}\n---\n"
        "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Policy\nmetadata: {name: home}\n"
        "spec:\n  source: {host: nas, filesystems: {'src/parselist/home<': true}}\n"
        "  snapshots: {prefix: zr_, interval: 15m}\n"
        "  retention: {keep: [{lastN: 3}]}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--dry-run", "-f", str(tmp_path / "m.yaml"), "--output", "json"],
        Console(out, err),
    )
    assert code == 0, err.getvalue()
    plan = json.loads(out.getvalue())
    assert plan["actions"]  # the listing was understood: a snapshot is due
    calls = _calls(tmp_path)
    assert [call[0] for call in calls] == ["list", "list", "holds"]
    names, details, _ = calls
    assert names[names.index("-o") + 1] == "name,guid,createtxg"
    assert names[-2:] == ["-r", "src/parselist/home"]
    assert details[details.index("-o") + 1] == ",".join(commands.LIST_COLUMNS)
    detailed = details[details.index("-t") + 2 :]
    assert "src/parselist/home" in detailed  # every filesystem, and the snapshots needed
    assert any("@" in name for name in detailed)


def test_bookmarks_are_one_channel_program_per_pool_with_each_refusal_its_own(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    wanted = [("tank/a", "s1", "m"), ("tank/b", "s1", "m"), ("other/c", "s1", "m")]
    (tmp_path / "program-answer").write_text(json.dumps({"tank/b#m": 17, "other/c#m": 2}))
    failed = driver.bookmark_many(wanted)
    assert sorted(failed) == [("other/c", "m"), ("tank/b", "m")]
    assert isinstance(failed[("tank/b", "m")], DatasetExists)
    assert "bookmark exists" in failed[("tank/b", "m")].detail
    assert isinstance(failed[("other/c", "m")], DatasetNotFound)
    assert _calls(tmp_path) == [
        ["program", "-j", "tank", "-", "tank/a@s1", "tank/a#m", "tank/b@s1", "tank/b#m"],
        ["program", "-j", "other", "-", "other/c@s1", "other/c#m"],
    ]
    assert (tmp_path / "program-stdin").read_bytes() == commands.BOOKMARK_PROGRAM


def test_bookmarks_fall_back_to_one_zfs_bookmark_each_where_programs_are_refused(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    _refuse(tmp_path, "program", "program-not-root.txt")
    assert driver.bookmark_many([("tank/a", "s1", "m"), ("tank/b", "s1", "m")]) == {}
    assert [call[0] for call in _calls(tmp_path)] == ["program", "bookmark", "bookmark"]
    assert driver.bookmark_many([("tank/a", "s2", "n")]) == {}  # no program tried again
    assert [call[0] for call in _calls(tmp_path)][3:] == ["bookmark"]


def test_an_unreadable_program_answer_settles_nothing(
    fake_zfs: tuple[str, ...], tmp_path: Path
) -> None:
    driver = ZfsDriver(LocalRunner("nas"), fake_zfs)
    (tmp_path / "program-answer").write_text(json.dumps({"tank/a#m": "yes"}))
    assert driver.bookmark_many([("tank/a", "s1", "m")]) == {}
    assert [call[0] for call in _calls(tmp_path)] == ["program", "bookmark"]
