"""The pure `receive_resume_token` decoder against zfs's own decoding of real tokens.

Each fixture `tests/fixtures/zfs/zfs-send-nv*-token-*.txt` whose command names its token
literally holds what `zfs send -nv -t TOKEN` printed: every field the decoder finds must be
there with the same value, and the other way round.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest

from reconciler.core.state import ResumeToken
from reconciler.zfs.model import encode_token
from reconciler.zfs.token import (
    ResumeTokenCorrupt,
    decode_resume_token,
    decode_token_nvlist,
    fletcher4_word0,
    unpack_native_nvlist,
)

FIXTURES = Path(__file__).parent / "fixtures" / "zfs"
TOKEN_IN_COMMAND = re.compile(r" -t (1-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+)")
LITERAL = sorted(
    path
    for path in FIXTURES.glob("zfs-send-*token*.txt")
    if TOKEN_IN_COMMAND.search(path.read_text().splitlines()[0])
) + sorted(FIXTURES.glob("zfs-send-vP-progress-resume.txt"))
INCREMENTAL = FIXTURES / "zfs-send-nv-token-observe-incremental.txt"
RAW = FIXTURES / "zfs-send-nv-token-observe-raw.txt"
FULL = FIXTURES / "zfs-send-nv-token-observe-full.txt"


def _token(path: Path) -> str:
    match = TOKEN_IN_COMMAND.search(path.read_text().splitlines()[0])
    assert match is not None
    return match.group(1)


def _printed(path: Path) -> dict[str, object]:
    """The `resume token contents:` block zfs printed: `\\tname = value` lines."""
    fields: dict[str, object] = {}
    for line in path.read_text().splitlines()[1:]:
        if not line.startswith("\t"):
            continue
        name, _, value = line.strip().partition(" = ")
        if name == "toname":
            fields[name] = value
        elif value.startswith("0x"):
            fields[name] = int(value, 16)
        else:
            assert value == "1", line  # a flag (embedok, compressok, rawok, largeblockok)
            fields[name] = True
    return fields


def test_there_are_literal_tokens_of_every_kind() -> None:
    names = {path.name for path in LITERAL}
    assert {INCREMENTAL.name, RAW.name, FULL.name} <= names
    assert len(LITERAL) >= 7


@pytest.mark.parametrize("path", LITERAL, ids=lambda path: path.name)
def test_every_field_matches_what_zfs_printed(path: Path) -> None:
    printed = _printed(path)
    assert printed, "the fixture shows the token's contents"
    assert decode_token_nvlist(_token(path)) == printed


@pytest.mark.parametrize("path", LITERAL, ids=lambda path: path.name)
def test_decoded_token_carries_zfs_fields(path: Path) -> None:
    printed = _printed(path)
    token = _token(path)
    decoded = decode_resume_token(token)
    assert decoded == ResumeToken(
        token=token,
        to_guid=printed["toguid"],  # type: ignore[arg-type]
        to_name=printed["toname"],  # type: ignore[arg-type]
        from_guid=printed.get("fromguid"),  # type: ignore[arg-type]
        bytes_received=printed["bytes"],  # type: ignore[arg-type]
        raw=printed.get("rawok") is True,
    )


def test_incremental_raw_and_full_tokens() -> None:
    incremental = decode_resume_token(_token(INCREMENTAL))
    assert incremental.from_guid == 0x75B0B9439B482CD0
    assert incremental.to_guid == 0xD80CC2868E31CBC6
    assert incremental.to_name == "src/parselist/home@zr_20260101T001500Z"
    assert incremental.bytes_received == 0x1E1F50
    assert not incremental.raw
    raw = decode_resume_token(_token(RAW))
    assert raw.raw and raw.from_guid is None
    full = decode_resume_token(_token(FULL))
    assert full.to_name == "src/parselist/home/with space@zr_20260101T001500Z"
    assert full.from_guid is None and not full.raw


def test_the_checksum_field_is_fletcher4_word0_of_the_payload() -> None:
    token = _token(INCREMENTAL)
    _, checksum, _, payload = token.split("-")
    assert fletcher4_word0(bytes.fromhex(payload)) == int(checksum, 16)


def _flip(token: str, index: int) -> str:
    digit = token[index]
    return token[:index] + ("0" if digit != "0" else "1") + token[index + 1 :]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("1-garbage-12-zz", "invalid format"),  # tests/fixtures/zfs/stderr/send-token-corrupt.txt
        ("", "invalid format"),
        ("1-abc-12", "invalid format"),
        ("2-eb767a29e-f8-789c", "invalid version 2"),
        ("1-eb767a29e-f8-789cZZ", "payload is not hex-encoded"),
        ("1-0-0-", "decompression failed"),
    ],
)
def test_malformed_tokens_are_refused_in_zfs_words(token: str, reason: str) -> None:
    with pytest.raises(ResumeTokenCorrupt, match=re.escape(f"resume token is corrupt ({reason}")):
        decode_resume_token(token)


def test_a_changed_payload_fails_the_checksum() -> None:
    token = _token(INCREMENTAL)
    with pytest.raises(ResumeTokenCorrupt, match="incorrect checksum"):
        decode_resume_token(_flip(token, len(token) - 10))


def test_a_wrong_packed_length_fails_decompression() -> None:
    version, checksum, _, payload = _token(INCREMENTAL).split("-")
    with pytest.raises(ResumeTokenCorrupt, match="decompression failed"):
        decode_resume_token(f"{version}-{checksum}-f9-{payload}")


def test_the_model_tokens_are_not_real_tokens() -> None:
    token = encode_token(to_guid=1, to_name="p/fs@s", from_guid=None, bytes_received=5, raw=False)
    with pytest.raises(ResumeTokenCorrupt):
        decode_resume_token(token)


def _pair(order: str, name: str, kind: int, value: bytes, elements: int) -> bytes:
    encoded = name.encode() + b"\0"
    head = 16 + len(encoded)
    padded = encoded + b"\0" * (((head + 7) & ~7) - head)
    body = padded + value + b"\0" * (-len(value) % 8)
    return struct.pack(f"{order}ihhii", 16 + len(body), len(encoded), 0, elements, kind) + body


def _token_of(packed: bytes, order: str) -> str:
    compressed = zlib.compress(packed)
    return f"1-{fletcher4_word0(compressed, order):x}-{len(packed):x}-{compressed.hex()}"


@pytest.mark.parametrize(("order", "endian"), [("<", 1), (">", 0)])
def test_both_byte_orders_decode(order: str, endian: int) -> None:
    pairs = [
        _pair(order, "fromguid", 8, struct.pack(f"{order}Q", 7), 1),
        _pair(order, "bytes", 8, struct.pack(f"{order}Q", 4096), 1),
        _pair(order, "toguid", 8, struct.pack(f"{order}Q", 2**64 - 1), 1),
        _pair(order, "toname", 9, b"pool/fs with space@snap\0", 1),
        _pair(order, "rawok", 1, b"", 0),
        _pair(order, "redact_snaps", 16, struct.pack(f"{order}2Q", 3, 4), 2),
    ]
    packed = bytes([0, endian, 0, 0]) + struct.pack(f"{order}ii", 0, 1) + b"".join(pairs)
    packed += struct.pack(f"{order}i", 0)
    assert unpack_native_nvlist(packed)["redact_snaps"] == (3, 4)
    decoded = decode_resume_token(_token_of(packed, order))
    assert (decoded.from_guid, decoded.to_guid, decoded.bytes_received) == (7, 2**64 - 1, 4096)
    assert decoded.to_name == "pool/fs with space@snap" and decoded.raw


def test_a_token_without_toguid_is_refused() -> None:
    packed = bytes([0, 1, 0, 0]) + struct.pack("<ii", 0, 1)
    packed += _pair("<", "toname", 9, b"p/fs@s\0", 1) + struct.pack("<i", 0)
    with pytest.raises(ResumeTokenCorrupt, match="no toguid"):
        decode_resume_token(_token_of(packed, "<"))


def test_a_truncated_nvlist_is_refused() -> None:
    packed = bytes([0, 1, 0, 0]) + struct.pack("<ii", 0, 1)
    packed += _pair("<", "toguid", 8, struct.pack("<Q", 1), 1)[:20]
    with pytest.raises(ResumeTokenCorrupt, match="nvlist_unpack failed"):
        decode_resume_token(_token_of(packed, "<"))
