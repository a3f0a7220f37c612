"""Saved plans end to end through the CLI (`--dry-run --out PATH`, then `--plan PATH`), on the
in-memory ZFS model: a plan that still fits is applied exactly; a stale one (state or
manifests changed) and a hostile file are refused with a clear message and nothing applied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.saved_plan import MAX_SAVED_PLAN_BYTES
from reconciler.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from reconciler.core.state import HostState
from reconciler.zfs.model import ModelZFS
from tests.test_cli import ATTIC, MANIFESTS, Fleet

T0, T1, T2 = "2026-11-26T12:00:00Z", "2026-11-26T12:15:00Z", "2026-11-26T12:30:00Z"
TAG = "zr_:home:offsite"


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFS_RECONCILER_LOCK_DIR", str(tmp_path / "locks"))


@pytest.fixture
def fleet(manifest: Path) -> Fleet:
    """Two passes done (T0, T1): the next plan (T2) snapshots, sends, moves holds, prunes."""
    fleet = Fleet()
    for now in (T0, T1):
        assert fleet.run("-f", str(manifest), "--now", now)[0] == EXIT_OK
    return fleet


@pytest.fixture
def saved(fleet: Fleet, manifest: Path, tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    code, out, err = fleet.run("--dry-run", "-f", str(manifest), "--now", T2, "--out", str(path))
    assert code == EXIT_OK, err
    assert "2 snapshots, 2 sends" in out  # stdout shows the plan as usual
    return path


def state(fleet: Fleet) -> dict[str, HostState]:
    return {name: host.observe() for name, host in fleet.hosts.items()}


def snapshot_names(host: ModelZFS, filesystem: str) -> list[str]:
    return [v.name for v in host.observe().filesystems[filesystem].snapshots]


# --- a plan that still fits is applied, exactly --------------------------------------------


def test_a_saved_plan_applies_exactly_its_actions_and_converges(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    document = json.loads(saved.read_text())
    planned = [action["id"] for action in document["plan"]["actions"]]
    code, out, err = fleet.run("-f", str(manifest), "--plan", str(saved), "--output", "json")
    assert code == EXIT_OK, err
    result = json.loads(out)
    assert result["plan"] == document["plan"]
    assert [r["id"] for r in result["results"]] == planned
    assert {r["status"] for r in result["results"]} == {"ok"}
    backup = fleet.hosts["backup"]
    assert snapshot_names(backup, "vault/nas/tank/home/alice")[-1] == "zr_20261126T123000Z"
    holds = {v.name: v.holds for v in backup.observe().filesystems["vault/nas/tank/home"].snapshots}
    assert holds["zr_20261126T123000Z"] == {TAG} and holds["zr_20261126T121500Z"] == set()
    code, out, _ = fleet.run("--dry-run", "-f", str(manifest), "--now", T2)
    assert code == EXIT_OK and "No changes." in out


def test_a_saved_plan_is_made_at_its_own_time_whatever_the_clock_says(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    code, _, err = fleet.run("-f", str(manifest), "--plan", str(saved))  # the clock: today
    assert code == EXIT_OK, err
    assert snapshot_names(fleet.hosts["nas"], "tank/home")[-1] == "zr_20261126T123000Z"


def test_a_saved_plan_of_some_policies_applies_only_those(fleet: Fleet, tmp_path: Path) -> None:
    attic = ModelZFS("attic", seed=3)
    attic.create_pool("pool")
    attic.create("pool/media")
    fleet.hosts["attic"] = attic
    both = tmp_path / "two.yaml"
    both.write_text(MANIFESTS + ATTIC)
    path = tmp_path / "home.json"
    args = ("-f", str(both), "--policy", "home", "--now", T2, "--out", str(path))
    assert fleet.run("--dry-run", *args)[0] == EXIT_OK
    assert json.loads(path.read_text())["policies"] == ["home"]
    assert fleet.run("-f", str(both), "--plan", str(path))[0] == EXIT_OK
    assert attic.observe().filesystems["pool/media"].snapshots == ()
    assert snapshot_names(fleet.hosts["nas"], "tank/home")[-1] == "zr_20261126T123000Z"


def test_writes_to_a_source_do_not_make_a_plan_stale(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    fleet.hosts["nas"].write("tank/home", 1 << 20)  # a busy source: only estimates move
    code, out, err = fleet.run("-f", str(manifest), "--plan", str(saved))
    assert code == EXIT_OK, err
    assert "0 failed" in out


def test_out_replaces_a_file_atomically_and_leaves_no_temporary_file(
    fleet: Fleet, manifest: Path, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    path.write_text("old")
    assert fleet.run("--dry-run", "-f", str(manifest), "--now", T2, "--out", str(path))[0] == 0
    assert json.loads(path.read_text())["kind"] == "saved_plan"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_out_with_markdown_output_saves_the_same_plan(
    fleet: Fleet, manifest: Path, saved: Path, tmp_path: Path
) -> None:
    path = tmp_path / "again.json"
    args = ("--dry-run", "-f", str(manifest), "--now", T2, "--output", "markdown")
    code, out, _ = fleet.run(*args, "--out", str(path))
    assert code == EXIT_OK and out.startswith("### Plan: 2 snapshots, 2 sends")
    assert path.read_text() == saved.read_text()  # deterministic, byte for byte


# --- a stale plan is refused, and nothing is applied ---------------------------------------


def _stale(fleet: Fleet, manifest: Path, saved: Path) -> str:
    before = state(fleet)
    code, out, err = fleet.run("-f", str(manifest), "--plan", str(saved))
    assert code == EXIT_ERROR and out == ""
    assert err.startswith(f"error: the saved plan {saved} is stale; nothing was applied;")
    assert state(fleet) == before
    return err


def test_a_snapshot_added_on_the_source_makes_the_plan_stale(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    fleet.hosts["nas"].snapshot(["tank/home"], "manual")
    err = _stale(fleet, manifest, saved)
    assert "  nas:tank/home: snapshot @manual created since the plan was made\n" in err


def test_a_snapshot_added_on_the_target_makes_the_plan_stale(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    fleet.hosts["backup"].snapshot(["vault/nas/tank/home"], "by-hand")
    err = _stale(fleet, manifest, saved)
    assert "backup:vault/nas/tank/home: snapshot @by-hand created since the plan was made" in err


def test_a_snapshot_destroyed_on_the_target_makes_the_plan_stale(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    fleet.hosts["backup"].destroy("vault/nas/tank/home", ["@zr_20261126T120000Z"])
    err = _stale(fleet, manifest, saved)
    assert (
        "backup:vault/nas/tank/home: snapshot @zr_20261126T120000Z destroyed since the plan" in err
    )


def test_a_snapshot_destroyed_on_the_source_makes_the_plan_stale(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    fleet.hosts["nas"].destroy("tank/home/alice", ["@zr_20261126T120000Z"])
    err = _stale(fleet, manifest, saved)
    assert "nas:tank/home/alice: snapshot @zr_20261126T120000Z destroyed since" in err


def test_a_released_hold_makes_the_plan_stale(fleet: Fleet, manifest: Path, saved: Path) -> None:
    fleet.hosts["nas"].release("tank/home", "zr_20261126T121500Z", TAG)
    err = _stale(fleet, manifest, saved)
    expected = f"nas:tank/home: hold {TAG} on @zr_20261126T121500Z released since the plan"
    assert expected in err


def test_a_write_to_a_target_makes_the_plan_stale(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    fleet.hosts["backup"].write("vault/nas/tank/home", 4096)
    err = _stale(fleet, manifest, saved)
    assert "backup:vault/nas/tank/home: written to since the plan was made" in err


def test_edited_manifests_make_the_plan_stale_before_any_host_is_reached(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    manifest.write_text(MANIFESTS.replace("lastN: 5", "lastN: 4"))
    reached: list[str] = []
    connect = fleet.connect
    fleet.connect = lambda host: reached.append(host.metadata.name) or connect(host)  # type: ignore[method-assign]
    err = _stale(fleet, manifest, saved)
    assert "  the manifests changed since the plan was made (generation " in err
    assert reached == []


def test_a_host_that_cannot_be_observed_now_makes_the_plan_stale(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    fleet.hosts["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
    before = fleet.hosts["nas"].observe()
    code, _, err = fleet.run("-f", str(manifest), "--plan", str(saved))
    assert code == EXIT_ERROR
    assert "  host backup cannot be observed now; it could when the plan was made\n" in err
    assert fleet.hosts["nas"].observe() == before  # not even the source's snapshot


def test_a_long_list_of_changes_is_capped(fleet: Fleet, manifest: Path, saved: Path) -> None:
    for n in range(30):
        fleet.hosts["nas"].snapshot(["tank/home"], f"manual{n:02d}")
    err = _stale(fleet, manifest, saved)
    lines = err.splitlines()[1:]
    assert len(lines) == 21 and lines[-1] == "  ... and 10 more"


# --- a tampered plan is a plan that differs from the one made now --------------------------


def _edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _action(document: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in document["plan"]["actions"] if a["kind"] == kind)
    return found


def test_a_tampered_destroy_is_refused(fleet: Fleet, manifest: Path, saved: Path) -> None:
    _edit(saved, lambda d: _action(d, "destroy").update(versions=["#zr_20261126T123000Z_offsite"]))
    err = _stale(fleet, manifest, saved)
    assert "action 7 (destroy on nas:tank/home): versions[0] is #zr_20261126T123000Z_offsite" in err


def test_an_action_added_to_a_saved_plan_is_refused(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    def add(document: dict[str, Any]) -> None:
        extra = dict(_action(document, "destroy"), id=99, versions=["@zr_20261126T120000Z"])
        document["plan"]["actions"].append(extra)

    _edit(saved, add)
    err = _stale(fleet, manifest, saved)
    assert "the saved plan has action 99 (destroy on nas:tank/home); the plan made now" in err


def test_a_changed_fingerprint_is_refused(fleet: Fleet, manifest: Path, saved: Path) -> None:
    _edit(saved, lambda d: d["fingerprint"]["nas"]["filesystems"].pop("tank/home"))
    err = _stale(fleet, manifest, saved)
    assert "nas:tank/home: filesystem created since the plan was made" in err


def test_a_malformed_fingerprint_is_stale_even_where_deepdiff_sees_no_change(
    fleet: Fleet, manifest: Path, saved: Path
) -> None:
    _edit(saved, lambda d: d["fingerprint"]["nas"].update(filesystems=[]))
    err = _stale(fleet, manifest, saved)
    assert "  the observed state differs from the one saved with the plan" in err


# --- hostile files: one line, exit 1, nothing observed or applied -------------------------


def _refused(fleet: Fleet, manifest: Path, path: Path) -> str:
    before = state(fleet)
    code, out, err = fleet.run("-f", str(manifest), "--plan", str(path))
    assert code == EXIT_ERROR and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cannot use the saved plan "), err
    assert state(fleet) == before
    return err


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON (line 1 column 1)"),
        (b"[]", "not a saved plan: the file is not a JSON object"),
        (b'"plan"', "not a saved plan: the file is not a JSON object"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"kind": "saved_plan", "format_version": 2}', "unsupported saved plan format_version 2"),
        (b'{"kind": "saved_plan", "format_version": 1}', "missing key 'now'"),
        (b'{"format_version": 1, "actions": []}', "a plan printed by --output json?"),
    ],
    ids=["empty", "list", "string", "binary", "deep", "version", "missing", "plain_plan"],
)
def test_a_file_that_is_not_a_saved_plan_is_refused(
    fleet: Fleet, manifest: Path, tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(content)
    assert reason in _refused(fleet, manifest, path)


def test_a_truncated_saved_plan_is_refused(fleet: Fleet, manifest: Path, saved: Path) -> None:
    text = saved.read_bytes()
    saved.write_bytes(text[: len(text) // 2])
    assert "not valid JSON (line " in _refused(fleet, manifest, saved)


def test_a_huge_file_is_refused_unread(fleet: Fleet, manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as file:
        file.truncate(MAX_SAVED_PLAN_BYTES + 1)
    assert "larger than 64 MiB" in _refused(fleet, manifest, path)


def test_a_missing_file_and_a_directory_are_refused(
    fleet: Fleet, manifest: Path, tmp_path: Path
) -> None:
    assert "No such file or directory" in _refused(fleet, manifest, tmp_path / "nope.json")
    assert "Is a directory" in _refused(fleet, manifest, tmp_path)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["plan"]["actions"][0].update(kind="format"), "plan.actions[0].kind"),
        (lambda d: d["plan"]["actions"][0].update(id="0"), "plan.actions[0].id: expected an"),
        (lambda d: d.update(now="2026-11-26T12:45:00Z"), "now differs from plan.now"),
        (lambda d: d.update(policies="home"), "policies: expected null or a list"),
        (lambda d: d.update(fingerprint=[]), "fingerprint: expected an object of hosts"),
        (lambda d: d["plan"].update(format_version=7), "plan.format_version: expected 1"),
    ],
    ids=["kind", "id", "now", "policies", "fingerprint", "plan_version"],
)
def test_a_malformed_saved_plan_is_refused_naming_the_field(
    fleet: Fleet, manifest: Path, saved: Path, change: Any, reason: str
) -> None:
    _edit(saved, change)
    assert reason in _refused(fleet, manifest, saved)


# --- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--dry-run", "--plan", "p.json"), "--plan applies a saved plan and cannot be combined"),
        (("--plan", "p.json", "--policy", "home"), "drop --policy/--now"),
        (("--plan", "p.json", "--now", T2), "drop --policy/--now"),
        (("--out", "p.json"), "--out applies to --dry-run only"),
        (("--output", "markdown"), "--output markdown applies to --dry-run only"),
    ],
)
def test_saved_plan_options_that_do_not_combine_are_usage_errors(
    fleet: Fleet,
    manifest: Path,
    args: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = state(fleet)
    with pytest.raises(SystemExit) as exited:
        fleet.run("-f", str(manifest), *args)
    assert exited.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err  # argparse writes to sys.stderr
    assert state(fleet) == before


@pytest.mark.parametrize("target", ["directory", "missing_parent", "parent_is_a_file"])
def test_out_to_a_path_that_cannot_be_written_exits_one_before_observing(
    fleet: Fleet, manifest: Path, tmp_path: Path, target: str
) -> None:
    (tmp_path / "file").write_text("x")
    path = {
        "directory": tmp_path,
        "missing_parent": tmp_path / "no" / "plan.json",
        "parent_is_a_file": tmp_path / "file" / "plan.json",
    }[target]
    code, out, err = fleet.run("--dry-run", "-f", str(manifest), "--out", str(path))
    assert code == EXIT_ERROR and out == ""
    assert err.startswith(f"error: cannot save the plan: {path}: ") and err.count("\n") == 1
