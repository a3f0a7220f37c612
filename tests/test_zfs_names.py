"""The cheap listing (`zfs list -o name,guid,createtxg`, `parse.parse_names`) and its completion
by the details listing (`parse.with_details`): table tests on real-format rows, and any bytes
at all, in it or in the observe listing, either parse or raise ListingParseError, never
anything else."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.state import FilesystemState, Stamp, Version, VersionKind
from reconciler.zfs.parse import (
    ListingParseError,
    parse_listing,
    parse_names,
    parse_stamps,
    with_details,
)

S, B = VersionKind.SNAPSHOT, VersionKind.BOOKMARK
ROWS = (
    "tank\t111\t1\n"
    "tank/a\t222\t5\n"
    "tank/a@s1\t301\t7\n"
    "tank/a@s2\t302\t9\n"
    "tank/a#s1-mark\t301\t7\n"
    "tank/a/%recv\t999\t30\n"
    "tank/b@x\t401\t12\n"
)


def test_versions_come_by_name_guid_and_createtxg_in_createtxg_order() -> None:
    listing = parse_names(ROWS.encode(), "nas")
    assert list(listing.filesystems) == ["tank", "tank/a", "tank/b"]  # no %recv
    assert listing.filesystems["tank"] == FilesystemState(name="tank")
    assert listing.filesystems["tank/a"].versions == (
        Version(S, "s1", 301, 7, 0),
        Version(B, "s1-mark", 301, 7, 0),
        Version(S, "s2", 302, 9, 0),
    )
    # versions without their filesystem's row (the -d 1 listing of a child) still come
    assert listing.filesystems["tank/b"].versions == (Version(S, "x", 401, 12, 0),)
    assert listing.held == ()


def test_snapshots_listed_out_of_createtxg_order_are_put_in_order() -> None:
    listing = parse_names(b"p/f@late\t2\t20\np/f@early\t1\t10\n")
    assert [v.name for v in listing.filesystems["p/f"].versions] == ["early", "late"]


@pytest.mark.parametrize(
    ("output", "line", "what"),
    [
        ("tank\t1\t2\ntank/a\t1\n", 2, "expected 3 tab-separated columns, found 2"),
        ("tank\t1\t2\t3\n", 1, "found 4"),
        ("tank@s\tx\t2\n", 1, "not a number"),
        ("tank\t1\t2\n@s\t3\t4\n", 2, "not a version name"),
        ("tank#\t3\t4\n", 1, "not a version name"),
        ("tank\t1\t2\nt\u00e9\t1\t2\n", 2, "not ASCII"),
    ],
)
def test_a_malformed_row_is_refused_with_its_line(output: str, line: int, what: str) -> None:
    with pytest.raises(ListingParseError) as refused:
        parse_names(output, "nas")
    assert refused.value.line == line and what in refused.value.detail
    assert refused.value.host == "nas"


def test_details_complete_the_asked_snapshots_and_leave_out_the_gone() -> None:
    names = parse_names(ROWS.encode())
    details = parse_listing(
        "tank/a\tfilesystem\t222\t5\t1700000000\t-\t4096\t8192\t-\t-\n"
        "tank/a@s2\tsnapshot\t302\t9\t1700000100\t1\t512\t8192\t-\t-\n"
        "tank\tfilesystem\t111\t1\t1600000000\t-\t0\t100\t-\t-\n"
    )
    done = with_details(names, details, ["tank/a@s1", "tank/a@s2"])
    assert list(done.filesystems) == ["tank", "tank/a"]  # tank/b: not in the details, gone
    a = done.filesystems["tank/a"]
    assert a.written == 4096
    assert a.versions == (
        Version(B, "s1-mark", 301, 7, 0),  # s1 was asked for and is not there: destroyed
        Version(S, "s2", 302, 9, 1700000100, 512, 8192),
    )
    assert done.held == ("tank/a@s2",)


def test_a_snapshot_made_again_under_the_same_name_is_not_taken_for_the_listed_one() -> None:
    names = parse_names(b"p/f\t1\t1\np/f@s\t2\t5\n")
    details = parse_listing(
        "p/f\tfilesystem\t1\t1\t1\t-\t0\t1\t-\t-\np/f@s\tsnapshot\t3\t8\t1\t0\t0\t1\t-\t-\n"
    )
    assert with_details(names, details, ["p/f@s"]).filesystems["p/f"].versions == ()


@settings(max_examples=400, deadline=None)
@given(
    raw=st.binary(max_size=200)
    | st.lists(
        st.lists(
            st.sampled_from(["tank", "tank/a@s", "t#m", "@", "#", "12", "x", "", "a/%b"]),
            min_size=1,
            max_size=4,
        ).map("\t".join),
        max_size=6,
    ).map(lambda lines: "\n".join(lines).encode())
)
def test_any_output_parses_or_is_refused(raw: bytes) -> None:
    try:
        listing = parse_names(raw, "nas")
    except ListingParseError:
        return
    for state in listing.filesystems.values():
        assert [v.createtxg for v in state.versions] == sorted(v.createtxg for v in state.versions)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_any_bytes_in_the_observe_listing_parse_or_are_refused(raw: bytes) -> None:
    with contextlib.suppress(ListingParseError):
        parse_listing(raw, "nas")


def test_a_listing_that_is_not_ascii_is_refused_with_its_line() -> None:
    row = "tank\tfilesystem\t1\t2\t3\t-\t0\t0\t-\t-\n"
    with pytest.raises(ListingParseError, match="line 2: not ASCII"):
        parse_listing((row + row.replace("tank", "t\u00e9")).encode(), "nas")


STAMPS = Path(__file__).parent / "fixtures" / "zfs" / "zfs-list-stamps.txt"


def test_the_stamp_listing_gives_filesystems_their_bookmarks_and_stamps() -> None:
    """Captured on OpenZFS 2.3.2 after a `zfs promote src/c` (its origin `src/a` now has
    `origin` src/c@2) and a bookmark of src/c; `src` never had a snapshot."""
    listing = parse_stamps(STAMPS.read_text().split("\n", 1)[1], "nas")
    assert list(listing.filesystems) == ["src", "src/a", "src/c", "src/c/kid", "src/v"]
    assert listing.filesystems["src/c"].versions == (
        Version(VersionKind.BOOKMARK, "m2", 9095478809446590307, 16, 0),
    )
    assert all(not s.versions for n, s in listing.filesystems.items() if n != "src/c")
    assert listing.stamps["src"] == Stamp(2040768964604995882, None, None)
    assert listing.stamps["src/a"] == Stamp(5573349116097553269, 1796457367, "src/c@2")
    assert listing.stamps["src/v"] == Stamp(16387077791277903911, 1796457410, None)
    assert set(listing.stamps) == set(listing.filesystems)


@pytest.mark.parametrize(
    ("output", "line", "what"),
    [
        ("tank\t1\t2\t3\t-\ntank/a\t1\t2\t3\n", 2, "expected 5 tab-separated columns, found 4"),
        ("tank\t1\t2\tyesterday\t-\n", 1, "not a number"),
        ("tank\tx\t2\t3\t-\n", 1, "not a number"),
        ("tank\t1\t2\t" + "9" * 5000 + "\t-\n", 1, "not a number"),
        ("tank\t1\t2\t-3\t-\n", 1, "not a number"),
        ("tank\t1\t2\t3\t-\ntank/\u00e9\t1\t2\t3\t-\n", 2, "not ASCII"),
    ],
)
def test_a_malformed_stamp_row_is_refused_with_its_line(output: str, line: int, what: str) -> None:
    with pytest.raises(ListingParseError, match=f"line {line}: {what}"):
        parse_stamps(output.encode(), "nas")


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_any_bytes_in_the_stamp_listing_parse_or_are_refused(raw: bytes) -> None:
    with contextlib.suppress(ListingParseError):
        parse_stamps(raw, "nas")
