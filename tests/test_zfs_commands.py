"""The argv builders of the real driver: exact arguments, batching under the argument budget,
and the names they refuse."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from reconciler.core.plan import FILESYSTEM_ONLY_PROPERTIES, ReceiveOptions, SendOptions
from reconciler.zfs import commands
from reconciler.zfs.port import SendRequest

FIXTURES = Path(__file__).parent / "fixtures" / "zfs"
COLUMNS = "name,type,guid,createtxg,creation,userrefs,written,referenced,receive_resume_token"


def _header_argv(fixture: str) -> list[str]:
    """The zfs arguments of a fixture's `# command:` line (after `zfs`)."""
    first = (FIXTURES / fixture).read_text().splitlines()[0]
    argv = shlex.split(first.removeprefix("# command: "))
    assert argv[0] == "zfs"
    return argv[1:]


def _bytes(argv: tuple[str, ...]) -> int:
    return sum(len(arg.encode()) + 1 for arg in argv)


# --- the listing ------------------------------------------------------------------------------


def test_the_observe_fixture_was_captured_with_exactly_this_argv() -> None:
    argv = commands.list_versions(["src/parselist"])
    assert list(argv) == _header_argv("zfs-list-observe.txt")


def test_list_columns_hold_what_a_filesystem_state_needs() -> None:
    assert ",".join(commands.LIST_COLUMNS) == f"{COLUMNS},encryptionroot"


def test_list_versions_without_roots_lists_every_pool() -> None:
    assert commands.list_versions() == (
        "list",
        "-H",
        "-p",
        "-o",
        f"{COLUMNS},encryptionroot",
        "-t",
        "filesystem,volume,snapshot,bookmark",
    )


def test_list_versions_keeps_only_outermost_roots() -> None:
    argv = commands.list_versions(["tank/a/b", "tank/a", "tank/a b", "back", "tank/a"])
    assert argv[-4:] == ("-r", "back", "tank/a", "tank/a b")


def test_list_filesystems_fixture_argv() -> None:
    argv = commands.list_filesystems(["src/depth/fs", "src/depth/missing", "src/depth/fs"])
    assert [list(a) for a in argv] == [_header_argv("zfs-list-depth1.txt")]


def test_list_filesystems_is_split_under_the_budget_in_order() -> None:
    names = [f"tank/data/fs{i:04d}" for i in range(1000)]
    batches = commands.list_filesystems(names, max_bytes=2000)
    assert len(batches) >= 10
    assert all(_bytes(argv) <= 2000 for argv in batches)
    assert all(argv[:2] == ("list", "-H") and argv[7:9] == ("-d", "1") for argv in batches)
    assert [name for argv in batches for name in argv[9:]] == names
    with pytest.raises(ValueError, match="not a filesystem name"):
        commands.list_filesystems(["tank/a@snap"])


# --- holds, snapshot ----------------------------------------------------------------------------


def test_holds_fixture_argv() -> None:
    argv = commands.holds(
        [
            "src/parselist/home@zr_20260101T001500Z",
            "src/parselist/home/with space@zr_20260101T001500Z",
        ]
    )
    assert [list(a) for a in argv] == [_header_argv("zfs-holds-observe.txt")]


def test_holds_are_split_under_the_budget_in_order() -> None:
    names = [f"tank/data/fs{i:04d}@zr_20261126T{i:06d}Z" for i in range(1000)]
    batches = commands.holds(names, max_bytes=2000)
    assert len(batches) > 10
    assert all(_bytes(argv) <= 2000 for argv in batches)
    assert all(argv[:3] == ("holds", "-H", "-p") for argv in batches)
    assert [name for argv in batches for name in argv[3:]] == names
    assert commands.holds([]) == []


def test_a_single_name_longer_than_the_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        commands.holds(["p/" + "x" * 300 + "@s"], max_bytes=100)


def test_default_budget_fits_a_single_linux_argument() -> None:
    assert commands.ARG_MAX_BYTES < 131072  # MAX_ARG_STRLEN: ssh sends one argument
    names = [f"tank/data/fs{i:05d}@zr_20261126T041500Z" for i in range(20000)]
    batches = commands.holds(names)
    assert all(_bytes(argv) <= commands.ARG_MAX_BYTES for argv in batches)
    assert all(_bytes(argv) > 0.99 * commands.ARG_MAX_BYTES for argv in batches[:-1])
    assert len(batches) == 8  # 20,000 names of 38 bytes (+1) in 100,000-byte calls


def test_snapshot_is_one_call_with_names_as_they_are() -> None:
    assert commands.snapshot(["tank/a@zr_1", "tank/with space@zr_1"]) == (
        "snapshot",
        "tank/a@zr_1",
        "tank/with space@zr_1",
    )
    with pytest.raises(ValueError):
        commands.snapshot([])
    with pytest.raises(ValueError):
        commands.snapshot(["tank/a"])


# --- send -----------------------------------------------------------------------------------------


def test_full_send_reports_progress() -> None:
    request = SendRequest("tank/with space", "zr_1")
    assert commands.send(request) == ("send", "-v", "-P", "tank/with space@zr_1")
    assert commands.send(request, estimate=True) == (
        "send",
        "-n",
        "-v",
        "-P",
        "tank/with space@zr_1",
    )


def test_incremental_from_a_snapshot_or_a_bookmark_names_the_base_in_full() -> None:
    assert commands.send(SendRequest("tank/a", "s2", "@s1")) == (
        "send",
        "-v",
        "-P",
        "-i",
        "tank/a@s1",
        "tank/a@s2",
    )
    assert commands.send(SendRequest("tank/a", "s2", "#m1"))[-3:] == (
        "-i",
        "tank/a#m1",
        "tank/a@s2",
    )
    intermediates = commands.send(SendRequest("tank/a", "s3", "@s1", intermediates=True))
    assert intermediates[-3:] == ("-I", "tank/a@s1", "tank/a@s3")


def test_send_options_become_flags() -> None:
    options = SendOptions(
        raw=True, compressed=True, large_blocks=True, embedded_data=True, properties=True
    )
    argv = commands.send(SendRequest("tank/a", "s1", options=options))
    assert argv == ("send", "-w", "-c", "-L", "-e", "-p", "-v", "-P", "tank/a@s1")
    compressed = commands.send(SendRequest("tank/a", "s1", options=SendOptions(compressed=True)))
    assert compressed == ("send", "-c", "-v", "-P", "tank/a@s1")


def test_resume_uses_the_token_flags_only() -> None:
    options = SendOptions(raw=True, properties=True, compressed=True)
    request = SendRequest("tank/a", None, resume_token="1-abc-10-789c", options=options)
    assert commands.send(request) == ("send", "-v", "-P", "-t", "1-abc-10-789c")
    assert commands.send(request, estimate=True) == (
        "send",
        "-n",
        "-v",
        "-P",
        "-t",
        "1-abc-10-789c",
    )


def test_the_progress_fixtures_were_made_with_these_flags() -> None:
    # the fixtures say `-vP`, the same getopt flags as `-v -P`
    first = (FIXTURES / "zfs-send-vP-progress-full.txt").read_text().splitlines()[0]
    assert first.startswith("# command: zfs send -vP src/parseprog@s3 |")
    assert set("".join(commands.send(SendRequest("src/parseprog", "s3"))[1:3])) == set("-vP")


def test_impossible_send_requests_are_refused() -> None:
    with pytest.raises(ValueError):
        commands.send(SendRequest("tank/a", None))
    with pytest.raises(ValueError):
        commands.send(SendRequest("tank/a", "s2", "s1"))
    with pytest.raises(ValueError):
        commands.send(SendRequest("tank/a", None, resume_token="-n"))


# --- receive --------------------------------------------------------------------------------------


def test_receive_is_resumable_and_unmounted() -> None:
    assert commands.receive("back/tank/a", ReceiveOptions()) == (
        "receive",
        "-s",
        "-u",
        "back/tank/a",
    )


def test_receive_force_and_properties() -> None:
    options = ReceiveOptions(
        override=(("readonly", "on"), ("canmount", "noauto")),
        inherit=("mountpoint", "com.example:x"),
        force=True,
    )
    assert commands.receive("back/with space", options) == (
        "receive",
        "-s",
        "-u",
        "-F",
        "-o",
        "readonly=on",
        "-o",
        "canmount=noauto",
        "-x",
        "mountpoint",
        "-x",
        "com.example:x",
        "back/with space",
    )


def test_receive_options_for_a_volume_leave_out_filesystem_only_properties() -> None:
    options = ReceiveOptions(
        override=(("readonly", "on"), ("canmount", "noauto"), ("volmode", "dev")),
        inherit=("mountpoint", "compression"),
    )
    assert options.left_out_for_volume() == ("canmount", "mountpoint")
    argv = commands.receive("back/vol", options.for_volume())
    assert argv == (
        "receive",
        "-s",
        "-u",
        "-o",
        "readonly=on",
        "-o",
        "volmode=dev",
        "-x",
        "compression",
        "back/vol",
    )


def test_the_refused_volume_property_of_the_fixture_is_dropped() -> None:
    # stderr/recv-property-not-for-volume.txt: `-o canmount=noauto` on a zvol stream fails
    argv = _header_argv("stderr/recv-property-not-for-volume.txt")
    receive = argv[argv.index("|") + 2 :]
    assert receive[:4] == ["recv", "-s", "-u", "-o"]
    name = receive[4].partition("=")[0]
    assert name in FILESYSTEM_ONLY_PROPERTIES
    kept = commands.receive(
        "dst/e13/vol", ReceiveOptions(override=((name, "noauto"),)).for_volume()
    )
    assert kept == ("receive", "-s", "-u", "dst/e13/vol")


@pytest.mark.parametrize(
    "name", ["context", "fscontext", "snapshot_limit", "volmode", "compression"]
)
def test_properties_a_volume_accepts_are_kept(name: str) -> None:
    options = ReceiveOptions(override=((name, "x"),))
    assert options.for_volume() == options and not options.left_out_for_volume()
    argv = commands.receive("b/vol", options)
    assert argv == ("receive", "-s", "-u", "-o", f"{name}=x", "b/vol")


# --- the rest -------------------------------------------------------------------------------------


def test_single_verbs() -> None:
    assert commands.abort_resume("back/a") == ("receive", "-A", "back/a")
    assert commands.hold("zr_:home:offsite", "tank/a@s1") == (
        "hold",
        "zr_:home:offsite",
        "tank/a@s1",
    )
    assert commands.release("tag with space", "tank/a b@s1") == (
        "release",
        "tag with space",
        "tank/a b@s1",
    )
    assert commands.bookmark("tank/a@s1", "tank/a#s1_x") == ("bookmark", "tank/a@s1", "tank/a#s1_x")
    assert commands.destroy_bookmark("tank/a#mark one") == ("destroy", "tank/a#mark one")
    assert commands.rollback("tank/a@s1", destroy_newer=False) == ("rollback", "tank/a@s1")
    assert commands.rollback("tank/a@s1", destroy_newer=True) == ("rollback", "-r", "tank/a@s1")


def test_create_get_set() -> None:
    assert commands.create("back/a/b", parents=True) == ("create", "-u", "-p", "back/a/b")
    assert commands.create("back/a", parents=False, properties={"canmount": "off"}) == (
        "create",
        "-u",
        "-o",
        "canmount=off",
        "back/a",
    )
    assert commands.get(["encryption", "keystatus"], ["tank/a", "tank/b c"]) == (
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value,source",
        "encryption,keystatus",
        "tank/a",
        "tank/b c",
    )
    assert commands.set("tank/a", {"readonly": "on", "com.example:x": "a b"}) == (
        "set",
        "readonly=on",
        "com.example:x=a b",
        "tank/a",
    )
    with pytest.raises(ValueError):
        commands.set("tank/a", {})


def test_destroy_batches_one_comma_list_per_call() -> None:
    assert commands.destroy_snapshots("tank/a b", ["s1", "s2", "s3"]) == [
        ("destroy", "tank/a b@s1,s2,s3")
    ]
    assert commands.destroy_snapshots("tank/a", []) == []


def test_destroy_batches_stay_under_the_budget_and_keep_every_name() -> None:
    names = [f"zr_20261126T{i:06d}Z" for i in range(5000)]
    batches = commands.destroy_snapshots("tank/data/fs0001", names, max_bytes=4096)
    assert len(batches) > 20
    assert all(_bytes(argv) <= 4096 for argv in batches)
    assert all(len(argv) == 2 and argv[0] == "destroy" for argv in batches)
    listed = [name for _, arg in batches for name in arg.partition("@")[2].split(",")]
    assert listed == names


def test_destroy_batch_just_at_the_limit() -> None:
    names = ["a" * 10, "b" * 10]
    exact = _bytes(("destroy", "p/fs@" + ",".join(names)))
    assert commands.destroy_snapshots("p/fs", names, max_bytes=exact) == [
        ("destroy", "p/fs@aaaaaaaaaa,bbbbbbbbbb")
    ]
    assert len(commands.destroy_snapshots("p/fs", names, max_bytes=exact - 1)) == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda: commands.destroy_snapshots("tank/a", ["s1,s2"]),
        lambda: commands.destroy_snapshots("tank/a", ["@s1"]),
        lambda: commands.destroy_snapshots("-r", ["s1"]),
        lambda: commands.hold("-r", "tank/a@s1"),
        lambda: commands.hold("tag", "tank/a"),
        lambda: commands.bookmark("tank/a@s1", "tank/a@s1"),
        lambda: commands.destroy_bookmark("tank/a@s1"),
        lambda: commands.create("tank/a@s1", parents=True),
        lambda: commands.create("tank/a\nb", parents=True),
        lambda: commands.receive("", ReceiveOptions()),
        lambda: commands.get([], ["tank/a"]),
        lambda: commands.set("tank/a", {"a=b": "c"}),
    ],
)
def test_names_zfs_would_misread_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
