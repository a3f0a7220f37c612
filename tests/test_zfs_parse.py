"""Parsers of zfs output, on real captured output (tests/fixtures/zfs/) and, for the fast
listing parser, against a plain line-by-line reference on generated listings."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import pytest

from reconciler.core.plan import ReceiveOptions
from reconciler.core.state import (
    FilesystemKind,
    FilesystemState,
    ResumeToken,
    Version,
    VersionKind,
    sort_versions,
)
from reconciler.zfs.errors import StreamInterrupted, ZFSError
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.observe import observe_hosts
from reconciler.zfs.parse import (
    Listing,
    ListingParseError,
    ListingParser,
    SendProgress,
    SendProgressTracker,
    apply_holds,
    parse_holds,
    parse_listing,
    parse_send_estimate,
    parse_send_progress,
    parse_send_progress_line,
    parse_send_sizes,
)
from reconciler.zfs.port import SendRequest
from reconciler.zfs.token import decode_resume_token
from tests.bench.parse_bench import synthetic_listing
from tests.test_collector import collector  # noqa: F401 (a fixture)

FIXTURES = Path(__file__).parent / "fixtures" / "zfs"
S, B = VersionKind.SNAPSHOT, VersionKind.BOOKMARK
ROOT = "src/parselist"


def _output(name: str) -> str:
    """A fixture's output, without its `# command:` header."""
    return (FIXTURES / name).read_text().split("\n", 1)[1]


@pytest.fixture(scope="module")
def observed() -> Listing:
    return parse_listing(_output("zfs-list-observe.txt"), "src")


# --- the captured listing ---------------------------------------------------------------------


def test_every_filesystem_and_volume_is_listed_by_name(observed: Listing) -> None:
    assert list(observed.filesystems) == [
        ROOT,
        f"{ROOT}/backup",
        f"{ROOT}/backup/flags",
        f"{ROOT}/backup/home",
        f"{ROOT}/backup/sec",
        f"{ROOT}/backup/secpartial",
        f"{ROOT}/backup/with space",
        f"{ROOT}/home",
        f"{ROOT}/home/vol",
        f"{ROOT}/home/with space",
        f"{ROOT}/sec",
    ]
    assert observed.filesystems[f"{ROOT}/home/vol"].kind is FilesystemKind.VOLUME
    assert observed.filesystems[f"{ROOT}/home"].kind is FilesystemKind.FILESYSTEM


def test_versions_in_createtxg_order_with_bookmarks(observed: Listing) -> None:
    home = observed.filesystems[f"{ROOT}/home"]
    assert home == FilesystemState(
        name=f"{ROOT}/home",
        versions=(
            Version(
                S, "zr_20260101T000000Z", 8480481798357789904, 215, 1795681754, 1163264, 1163264
            ),
            Version(S, "manual-1", 9178969249546332354, 219, 1795681755, 1122304, 2220032),
            Version(
                S, "zr_20260101T001500Z", 15568031895079996358, 223, 1795681756, 4268032, 6422528
            ),
            Version(
                B, "zr_20260101T001500Z_offsite", 15568031895079996358, 223, 1795681756, 0, 6422528
            ),
        ),
        written=598016,  # modified after its newest snapshot
    )


def test_a_bookmark_listed_after_the_snapshots_sorts_by_createtxg(observed: Listing) -> None:
    spaced = observed.filesystems[f"{ROOT}/home/with space"]
    assert [(v.sigil + v.name, v.createtxg) for v in spaced.versions] == [
        ("@zr_20260101T000000Z", 215),
        ("#mark one", 215),
        ("@zr_20260101T001500Z", 223),
    ]
    assert spaced.versions == sort_versions(spaced.versions)


def test_one_snapshot_call_shares_one_createtxg(observed: Listing) -> None:
    first = {
        name: state.versions[0].createtxg
        for name, state in observed.filesystems.items()
        if state.versions and not name.startswith(f"{ROOT}/backup")
    }
    assert set(first.values()) == {215}
    assert len(first) == 4  # home, home/vol, home/with space, sec


def test_received_snapshots_keep_guid_and_creation(observed: Listing) -> None:
    sent = observed.filesystems[f"{ROOT}/home"].versions[0]
    received = observed.filesystems[f"{ROOT}/backup/home"].versions[0]
    assert (received.guid, received.creation) == (sent.guid, sent.creation)
    assert received.createtxg != sent.createtxg


def test_partial_incremental_receive_keeps_its_snapshots_and_token(observed: Listing) -> None:
    backup = observed.filesystems[f"{ROOT}/backup/home"]
    assert [v.name for v in backup.versions] == ["zr_20260101T000000Z"]
    assert backup.written == 0
    token = backup.resume_token
    assert token is not None
    assert token.from_guid == backup.versions[0].guid
    assert token.to_name == f"{ROOT}/home@zr_20260101T001500Z"
    assert token.to_guid == observed.filesystems[f"{ROOT}/home"].versions[2].guid
    assert token == decode_resume_token(token.token)


def test_partial_full_receive_is_a_filesystem_with_only_a_token(observed: Listing) -> None:
    partial = observed.filesystems[f"{ROOT}/backup/with space"]
    token = partial.resume_token
    assert token is not None and token.from_guid is None and not token.raw
    assert partial == FilesystemState(
        name=f"{ROOT}/backup/with space", written=2088960, resume_token=token
    )
    assert token.to_name == f"{ROOT}/home/with space@zr_20260101T001500Z"


def test_the_model_represents_a_partial_full_receive_the_same_way(observed: Listing) -> None:
    host = ModelZFS("m")
    host.create_pool("p")
    host.create("p/a")
    host.write("p/a", 8 << 20)
    host.snapshot(["p/a"], "s1")
    host.create("p/b")
    host.interrupt_next_receive(2 << 20)
    with pytest.raises(StreamInterrupted):
        host.receive("p/b/a", host.send(SendRequest("p/a", "s1")), ReceiveOptions())
    model = host.observe().filesystems["p/b/a"]
    real = observed.filesystems[f"{ROOT}/backup/with space"]
    for state in (model, real):
        assert state.versions == () and state.kind is FilesystemKind.FILESYSTEM
        assert state.written > 0 and not state.encrypted
        assert state.resume_token is not None and state.resume_token.from_guid is None


def test_encryption_of_a_source_its_raw_copy_and_a_raw_partial(observed: Listing) -> None:
    encrypted = {name for name, state in observed.filesystems.items() if state.encrypted}
    assert encrypted == {f"{ROOT}/sec", f"{ROOT}/backup/sec", f"{ROOT}/backup/secpartial"}
    partial = observed.filesystems[f"{ROOT}/backup/secpartial"]
    assert partial.resume_token is not None and partial.resume_token.raw
    assert partial.versions == ()


def test_held_snapshots_are_named_for_the_holds_call(observed: Listing) -> None:
    assert observed.held == (
        f"{ROOT}/home@zr_20260101T001500Z",
        f"{ROOT}/home/with space@zr_20260101T001500Z",
    )
    assert all(not v.holds for s in observed.filesystems.values() for v in s.versions)


def test_fast_built_versions_equal_normal_construction(observed: Listing) -> None:
    versions = [v for state in observed.filesystems.values() for v in state.versions]
    assert len(versions) == 11
    for version in versions:
        values = {name: getattr(version, name) for name in Version._fields}
        normal = Version(**values)
        assert type(version) is Version and len(version) == len(Version._fields)
        assert version == normal and hash(version) == hash(normal)
        assert repr(version) == repr(normal)
        assert type(version.kind) is VersionKind and type(version.holds) is frozenset
    with pytest.raises(AttributeError):
        versions[0].name = "x"  # type: ignore[misc]


def test_the_older_nine_column_listing_is_refused_at_its_first_line() -> None:
    with pytest.raises(ListingParseError) as refused:
        parse_listing(_output("zfs-list-pool.txt"), "fix")
    assert refused.value.line == 1 and refused.value.host == "fix"
    assert "expected 10 tab-separated columns, found 9" in refused.value.detail
    assert isinstance(refused.value, ZFSError)


# --- holds ------------------------------------------------------------------------------------


def test_holds_output_and_tags_with_spaces() -> None:
    assert parse_holds(_output("zfs-holds-observe.txt")) == {
        f"{ROOT}/home@zr_20260101T001500Z": frozenset({"zr_:home:local", "zr_:home:offsite"}),
        f"{ROOT}/home/with space@zr_20260101T001500Z": frozenset({"tag with space"}),
    }
    assert parse_holds("") == {}
    assert parse_holds("p/a@s\ttag\twith\ttabs\t1795681756\n") == {
        "p/a@s": frozenset({"tag\twith\ttabs"})
    }


def test_malformed_holds_output_is_refused_with_its_line() -> None:
    with pytest.raises(ListingParseError) as refused:
        parse_holds("p/a@s\tt\t1\nnot a holds line\n", "nas")
    assert refused.value.line == 2


def test_apply_holds_fills_in_tags(observed: Listing) -> None:
    filesystems = apply_holds(observed, parse_holds(_output("zfs-holds-observe.txt")))
    home = filesystems[f"{ROOT}/home"]
    assert [sorted(v.holds) for v in home.versions] == [
        [],
        [],
        ["zr_:home:local", "zr_:home:offsite"],
        [],
    ]
    spaced = filesystems[f"{ROOT}/home/with space"]
    assert spaced.versions[2].holds == frozenset({"tag with space"})
    assert spaced.versions[1].kind is B and not spaced.versions[1].holds
    untouched = f"{ROOT}/sec"
    assert filesystems[untouched] is observed.filesystems[untouched]
    assert observed.filesystems[f"{ROOT}/home"].versions[2].holds == frozenset()


def test_holds_of_unknown_snapshots_are_ignored(observed: Listing) -> None:
    holds = {"other/fs@x": frozenset({"t"}), f"{ROOT}/home@gone": frozenset({"t"})}
    assert apply_holds(observed, holds) == observed.filesystems


# --- errors -----------------------------------------------------------------------------------

ROW = "p/a@s1\tsnapshot\t11\t5\t1700000000\t0\t10\t20\t-\t-"
FS_ROW = "p/a\tfilesystem\t10\t2\t1700000000\t-\t0\t20\t-\t-"


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        ([FS_ROW, ROW, "p/a@s2\tsnapshot\t12\t6\t1700000000\t0\t10\t20\t-"], 3, "found 9"),
        ([FS_ROW, ROW + "\textra"], 2, "found 11"),
        ([FS_ROW, "", ROW], 2, "found 1"),
        ([FS_ROW, ROW.replace("\t11\t", "\televen\t")], 2, "not a number: 'eleven'"),
        ([FS_ROW, ROW.replace("\t10\t20", "\t-\t20")], 2, "not a number: '-'"),
        ([FS_ROW, ROW.replace("p/a@s1", "p/a")], 2, "not a snapshot name"),
        ([FS_ROW.replace("filesystem", "pool")], 1, "unexpected 'pool' row"),
        ([FS_ROW, ROW.replace("p/a@s1\tsnapshot", "p/a#m\tfilesystem")], 2, "unexpected"),
        ([FS_ROW.replace("\t-\t-", "\t1-00-10-789c\t-")], 1, "resume token is corrupt"),
    ],
)
def test_bad_rows_are_refused_with_their_line(lines: list[str], line: int, words: str) -> None:
    for chunk_bytes in (1, 1 << 20):
        with pytest.raises(ListingParseError) as refused:
            parse_listing("\n".join(lines) + "\n", "nas", chunk_bytes=chunk_bytes)
        assert refused.value.line == line, chunk_bytes
        assert words in refused.value.detail


def test_an_empty_listing_and_a_missing_last_newline() -> None:
    assert parse_listing("") == Listing(filesystems={})
    with_newline = parse_listing(f"{FS_ROW}\n{ROW}\n")
    assert parse_listing(f"{FS_ROW}\n{ROW}") == with_newline
    assert with_newline.filesystems["p/a"].versions == (
        Version(S, "s1", 11, 5, 1700000000, 10, 20),
    )


def test_hidden_datasets_are_skipped() -> None:
    hidden = "p/a/%recv\tfilesystem\t13\t9\t1700000000\t-\t0\t20\t-\t-"
    hidden_snapshot = "p/a/%recv@x\tsnapshot\t14\t9\t1700000000\t1\t0\t20\t-\t-"
    listing = parse_listing("\n".join([FS_ROW, ROW, hidden, hidden_snapshot]))
    assert list(listing.filesystems) == ["p/a"] and listing.held == ()


# --- against a plain reference, on generated listings ------------------------------------------


def _reference(text: str) -> Listing:
    """What parse_listing must return, computed the plain way: one line at a time."""
    rows: dict[str, tuple[str, ...]] = {}
    versions: dict[str, list[Version]] = {}
    held: list[str] = []
    for line in text.splitlines():
        name, kind, guid, txg, creation, refs, written, referenced, token, crypt = line.split("\t")
        if kind in ("filesystem", "volume"):
            rows[name] = (kind, written, token, crypt)
            versions.setdefault(name, [])
            continue
        filesystem, _, short = name.partition("@" if kind == "snapshot" else "#")
        version = Version(
            VersionKind(kind),
            short,
            int(guid),
            int(txg),
            int(creation),
            0 if written == "-" else int(written),
            int(referenced),
        )
        versions.setdefault(filesystem, []).append(version)
        if refs not in ("0", "-") and "%" not in name:
            held.append(name)
    states = {}
    for name in sorted(versions):
        if "%" in name:
            continue
        kind, written, token, crypt = rows.get(name, ("filesystem", "0", "-", "-"))
        states[name] = FilesystemState(
            name=name,
            versions=sort_versions(versions[name]),
            kind=FilesystemKind(kind),
            written=int(written),
            resume_token=None if token == "-" else decode_resume_token(token),
            encrypted=crypt != "-",
        )
    return Listing(filesystems=states, held=tuple(held))


TOKEN = _output("zfs-list-observe.txt").splitlines()[2].split("\t")[8]


def _generated(seed: int) -> str:
    """Filesystems and volumes with names that nest and contain spaces, snapshots whose
    createtxgs tie or go backwards, bookmarks here and there, holds, tokens, hidden rows."""
    rnd = random.Random(seed)
    lines = []
    names = ["p", "p/a", "p/a b", "p/a/b", "p/a b/c", "p/vol", "p/a/%recv", "q"]
    for name in rnd.sample(names, rnd.randint(1, len(names))):
        kind = "volume" if "vol" in name else "filesystem"
        token = TOKEN if rnd.random() < 0.2 else "-"
        crypt = rnd.choice(["-", f"{name.partition('/')[0]}/enc"])
        lines.append(
            f"{name}\t{kind}\t{rnd.getrandbits(64)}\t{rnd.randint(1, 9)}\t1700000000"
            f"\t-\t{rnd.randint(0, 9999)}\t{rnd.randint(0, 9999)}\t{token}\t{crypt}"
        )
        txg = rnd.randint(10, 20)
        for index in range(rnd.randint(0, 30)):
            txg += rnd.choice([0, 1, 1, 5, -2]) if rnd.random() < 0.1 else 1
            refs = rnd.choice(["0", "0", "0", "0", "0", "1", "2", "12"])
            lines.append(
                f"{name}@s{rnd.randint(0, 5)}_{index}\tsnapshot\t{rnd.getrandbits(64)}"
                f"\t{txg}\t{1700000000 + index}\t{refs}\t{rnd.randint(0, 99)}"
                f"\t{rnd.randint(0, 999)}\t-\t{crypt}"
            )
        for index in range(rnd.randint(0, 3)):
            lines.append(
                f"{name}#m {index}\tbookmark\t{rnd.getrandbits(64)}"
                f"\t{rnd.randint(10, txg)}\t1700000000\t-\t-\t{rnd.randint(0, 99)}\t-\t-"
            )
    if rnd.random() < 0.5:
        rnd.shuffle(lines)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(60))
def test_generated_listings_match_the_reference(seed: int) -> None:
    text = _generated(seed)
    expected = _reference(text)
    for chunk_bytes in (1, 97, 1 << 20):
        assert parse_listing(text, chunk_bytes=chunk_bytes) == expected, chunk_bytes


@pytest.mark.parametrize(
    "userrefs", [("", "0", "12"), ("12", "0", ""), ("-", "0", "1"), ("10", "1", "0"), ("", "", "")]
)
def test_userrefs_of_any_width_match_the_reference(userrefs: tuple[str, ...]) -> None:
    # one byte per row is the usual case, read from the column joined; any other mix must not
    # shift which rows count as held or as not being snapshots
    rows = [
        ROW.replace("@s1", f"@s{n}").replace("\t0\t", f"\t{refs}\t")
        for n, refs in enumerate(userrefs)
    ]
    text = "\n".join([FS_ROW, *rows, FS_ROW.replace("p/a", "p/b")])
    assert parse_listing(text) == _reference(text)


def test_the_benchmark_listing_matches_the_reference() -> None:
    text = synthetic_listing(filesystems=30, snapshots=40)
    expected = _reference(text)
    assert len(expected.held) == 30
    assert parse_listing(text) == expected
    assert parse_listing(text, chunk_bytes=500) == expected


@pytest.mark.parametrize("seed", range(5))
def test_fed_in_pieces_cut_anywhere_gives_the_same_listing(seed: int) -> None:
    text = _output("zfs-list-observe.txt") + _generated(seed)
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(len(text)), 40))
    parser = ListingParser("nas", chunk_bytes=64)
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        parser.feed(text[start:end])
    assert parser.finish() == parse_listing(text, "nas")


def test_fed_pieces_report_the_line_of_a_bad_row() -> None:
    parser = ListingParser("nas")
    parser.feed(f"{FS_ROW}\n{ROW[:20]}")
    parser.feed(f"{ROW[20:]}\n{FS_ROW.replace('p/a', 'p/b')}\np/b@x\tsnapshot")
    with pytest.raises(ListingParseError) as refused:
        parser.finish()
    assert refused.value.line == 4


def test_shared_values_are_shared_objects() -> None:
    listing = parse_listing(synthetic_listing(filesystems=3, snapshots=5))
    first, second = (state.versions for state in list(listing.filesystems.values())[:2])
    assert first[0].name is second[0].name and first[0].createtxg is second[0].createtxg


# --- send estimates and progress --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("zfs-send-nvP-full.txt", 1101872),
        ("zfs-send-nvP-incremental.txt", 5291824),
        ("zfs-send-nvP-intermediates.txt", 5325216),
        ("zfs-send-nvP-token-incremental.txt", 4369600),
        ("zfs-send-vP-progress-full.txt", 315173416),
        ("zfs-send-vP-progress-resume.txt", 210324800),
    ],
)
def test_send_estimates(name: str, size: int) -> None:
    assert parse_send_estimate(_output(name)) == size


def test_no_estimate() -> None:
    assert parse_send_estimate(_output("zfs-send-nv-token-full.txt")) is None
    assert parse_send_estimate("") is None


def test_progress_lines_of_a_real_send() -> None:
    lines = _output("zfs-send-vP-progress-full.txt").splitlines()
    sent = [parse_send_progress(line) for line in lines]
    assert sent[:2] == [None, None]  # the estimate lines
    assert sent[2:] == [
        9464144,
        52163944,
        87112088,
        135461400,
        159111320,
        192351472,
        238467256,
        312042296,
    ]
    assert parse_send_progress_line(lines[2]) == SendProgress(
        "08:28:06", 9464144, "src/parseprog@s3"
    )


@pytest.mark.parametrize(
    "line",
    [
        "",
        "size\t315168808",
        "full\tsrc/parseprog@s1\t315168808",
        "\tbytes = 0x63fdce8",
        "warning: cannot send 'a@b': signal received",
        "TIME        SENT   SNAPSHOT src/parseprog@a",
        "8:27:36\t19973216\tsrc/parseprog@s2",
    ],
)
def test_other_lines_are_not_progress(line: str) -> None:
    assert parse_send_progress(line) is None


def test_intermediates_progress_restarts_per_snapshot_and_the_tracker_adds_up() -> None:
    lines = _output("zfs-send-vP-progress-intermediates.txt").splitlines()
    assert parse_send_sizes("\n".join(lines)) == {
        "src/parseprog@s2": 157597936,
        "src/parseprog@s3": 157597936,
    }
    raw = [parse_send_progress(line) for line in lines]
    assert raw[3:] == [60439488, 146364624, 28776744, 111417280]
    tracker = SendProgressTracker()
    totals = [tracker(line) for line in lines]
    assert totals[:3] == [None, None, None]
    assert totals[3:] == [60439488, 146364624, 157597936 + 28776744, 157597936 + 111417280]


def test_resume_progress_counts_from_the_resume_point() -> None:
    lines = _output("zfs-send-vP-progress-resume.txt").splitlines()
    tracker = SendProgressTracker()
    totals = [t for t in map(tracker, lines) if t is not None]
    assert totals == [55051904, 130203552, 203121672]
    assert totals[-1] < parse_send_estimate("\n".join(lines))  # type: ignore[operator]


def test_resume_token_type_is_the_core_one(observed: Listing) -> None:
    token = observed.filesystems[f"{ROOT}/backup/home"].resume_token
    assert type(token) is ResumeToken


@pytest.mark.usefixtures("collector")
def test_parsed_versions_are_frozen_out_of_the_collector() -> None:
    listing = parse_listing(_output("zfs-list-observe.txt"))
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    # the values built are frozen, so no later collection walks them
    gc.collect()
    versions = [v for state in listing.filesystems.values() for v in state.versions]
    assert versions and all(gc.is_tracked(v) for v in versions)
    young = {id(o) for generation in (0, 1, 2) for o in gc.get_objects(generation)}
    assert not young & set(map(id, versions))


@pytest.mark.usefixtures("collector")
def test_a_parse_with_the_collector_off_leaves_it_off_and_freezes_nothing() -> None:
    gc.disable()
    parse_listing(_output("zfs-list-observe.txt"))
    assert not gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector")
def test_observing_hosts_returns_frozen_objects_to_the_collector() -> None:
    parse_listing(_output("zfs-list-observe.txt"))
    assert gc.get_freeze_count() > 0
    observe_hosts({})
    assert gc.get_freeze_count() == 0
