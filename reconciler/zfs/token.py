"""Decoding of `receive_resume_token` values in pure Python, without running `zfs send -nv -t`.

Owned here: `decode_resume_token` (token → `ResumeToken`), `decode_token_nvlist` (token → every
field it carries, as `zfs send -nv -t` prints them) and `ResumeTokenCorrupt`. Called by the
listing parser (`zfs/parse.py`) for each filesystem that has a token, and by tests.

The format (OpenZFS `dsl_dataset.c` get_receive_resume_token, read back by libzfs
`zfs_send_resume_token_to_nvlist`):

    <version>-<checksum hex>-<packed length hex>-<hex of the zlib-compressed packed nvlist>

- `version` is 1, the only one OpenZFS writes or reads.
- `checksum` is word 0 of the fletcher-4 checksum of the *compressed* bytes: the sum, modulo
  2**64, of the payload read as 32-bit words in native byte order (trailing bytes that do not
  fill a word are not counted). libzfs compares only that word.
- `packed length` is the size of the nvlist once decompressed.
- The nvlist is packed with libnvpair's native encoding: a 4-byte header (encoding 0 = native,
  then the endianness: 1 = little endian, 0 = big endian, then two reserved bytes), the list's
  `nvl_version` and `nvl_nvflag` (two int32), then one record per pair, then an int32 0.
  A pair record is `nvp_size` (int32, the whole record), `nvp_name_sz` (int16, with the NUL),
  `nvp_reserve` (int16), `nvp_value_elem` (int32), `nvp_type` (int32), the name padded so that
  the value starts 8-byte aligned, then the value: uint64 for `fromguid`, `object`, `offset`,
  `bytes` and `toguid`; a NUL-terminated string for `toname`; nothing for the flags `embedok`,
  `compressok`, `rawok` and `largeblockok` (type BOOLEAN: present means set); a uint64 array
  for `redact_snaps` / `book_redact_snaps`.

A token zfs wrote always passes these checks; anything else raises `ResumeTokenCorrupt` with
libzfs's own wording ("resume token is corrupt (incorrect checksum)", ...).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

from reconciler.core.state import ResumeToken

TOKEN_VERSION = 1
NvValue = int | str | bool | tuple[int, ...]

_ENCODE_NATIVE = 0
_PAIR_HEADER = 16  # nvp_size, nvp_name_sz, nvp_reserve, nvp_value_elem, nvp_type
# libnvpair data_type_t values (sys/nvpair.h)
_BOOLEAN = 1
_INT64 = 7
_UINT64 = 8
_STRING = 9
_INT64_ARRAY = 15
_UINT64_ARRAY = 16
_NVLIST = 19
_NVLIST_ARRAY = 20
_BOOLEAN_VALUE = 21
_MASK64 = (1 << 64) - 1


class ResumeTokenCorrupt(ValueError):
    """The token cannot be a `receive_resume_token` zfs wrote; the message says why."""


def decode_resume_token(token: str) -> ResumeToken:
    """The decoded token; raises ResumeTokenCorrupt (the reason in zfs's words) if it is not
    a valid version-1 token or lacks `toguid` / `toname`."""
    return resume_token_from_fields(token, decode_token_nvlist(token))


def resume_token_from_fields(token: str, fields: Mapping[str, object]) -> ResumeToken:
    """A token's decoded fields (`toguid`, `toname`, `fromguid`, `bytes`, `rawok`, as zfs
    names them) → ResumeToken; raises ResumeTokenCorrupt when they are missing or mistyped.
    Shared with the in-memory model, whose tokens carry the same fields."""
    to_guid, to_name = fields.get("toguid"), fields.get("toname")
    from_guid, received = fields.get("fromguid"), fields.get("bytes", 0)
    if not isinstance(to_guid, int) or isinstance(to_guid, bool) or not isinstance(to_name, str):
        raise ResumeTokenCorrupt("resume token is corrupt (no toguid or toname)")
    if not isinstance(received, int) or not (from_guid is None or isinstance(from_guid, int)):
        raise ResumeTokenCorrupt("resume token is corrupt (bytes or fromguid is not a number)")
    return ResumeToken(
        token=token,
        to_guid=to_guid,
        to_name=to_name,
        from_guid=from_guid,
        bytes_received=received,
        raw=fields.get("rawok") is True,
    )


def decode_token_nvlist(token: str) -> dict[str, NvValue]:
    """Every pair of the token's nvlist, in order: numbers as int, `toname` as str, flags
    (BOOLEAN pairs) as True, arrays as tuples."""
    packed_length, compressed = _payload(token)
    try:
        packed = zlib.decompress(compressed)
    except zlib.error as error:
        raise ResumeTokenCorrupt("resume token is corrupt (decompression failed)") from error
    if len(packed) != packed_length:
        raise ResumeTokenCorrupt("resume token is corrupt (decompression failed)")
    return unpack_native_nvlist(packed)


def fletcher4_word0(data: bytes, byteorder: str = "<") -> int:
    """Word 0 of fletcher-4 (what a token's checksum field holds): the sum of the 32-bit
    words of `data`, modulo 2**64."""
    words = len(data) // 4
    values: tuple[int, ...] = struct.unpack(f"{byteorder}{words}I", data[: words * 4])
    return sum(values) & _MASK64


def unpack_native_nvlist(packed: bytes) -> dict[str, NvValue]:
    """libnvpair's native encoding of a flat nvlist (no nested nvlists) → name: value."""
    if len(packed) < 12 or packed[0] != _ENCODE_NATIVE:
        raise ResumeTokenCorrupt("resume token is corrupt (nvlist_unpack failed)")
    order = "<" if packed[1] == 1 else ">"
    fields: dict[str, NvValue] = {}
    offset = 12  # header (4), nvl_version (4), nvl_nvflag (4)
    while True:
        size = _read(order + "i", packed, offset)
        if size == 0:
            return fields
        if size < _PAIR_HEADER or offset + size > len(packed):
            raise ResumeTokenCorrupt("resume token is corrupt (nvlist_unpack failed)")
        name, value = _pair(order, packed[offset : offset + size])
        fields[name] = value
        offset += size


def _payload(token: str) -> tuple[int, bytes]:
    """The packed length and the compressed bytes, after the header and checksum checks."""
    parts = token.split("-", 3)
    if len(parts) != 4:
        raise ResumeTokenCorrupt("resume token is corrupt (invalid format)")
    version_text, checksum_text, length_text, payload_text = parts
    try:
        version, checksum = int(version_text), int(checksum_text, 16)
        packed_length = int(length_text, 16)
    except ValueError as error:
        raise ResumeTokenCorrupt("resume token is corrupt (invalid format)") from error
    if version != TOKEN_VERSION:
        raise ResumeTokenCorrupt(f"resume token is corrupt (invalid version {version})")
    try:
        compressed = bytes.fromhex(payload_text)
    except ValueError as error:
        raise ResumeTokenCorrupt("resume token is corrupt (payload is not hex-encoded)") from error
    if checksum not in (fletcher4_word0(compressed, "<"), fletcher4_word0(compressed, ">")):
        raise ResumeTokenCorrupt("resume token is corrupt (incorrect checksum)")
    return packed_length, compressed


def _pair(order: str, record: bytes) -> tuple[str, NvValue]:
    name_size, _reserve, elements, kind = struct.unpack_from(order + "hhii", record, 4)
    value_at = _align8(_PAIR_HEADER + name_size)
    if name_size < 1 or value_at > len(record):
        raise ResumeTokenCorrupt("resume token is corrupt (nvlist_unpack failed)")
    name = record[_PAIR_HEADER : _PAIR_HEADER + name_size - 1].decode("utf-8", "replace")
    return name, _value(order, kind, elements, record, value_at)


def _value(order: str, kind: int, elements: int, record: bytes, at: int) -> NvValue:
    readers: Mapping[int, str] = {_UINT64: "Q", _INT64: "q", _BOOLEAN_VALUE: "i"}
    if kind == _BOOLEAN:
        return True
    if kind in readers:
        number = _read(order + readers[kind], record, at)
        return bool(number) if kind == _BOOLEAN_VALUE else number
    if kind == _STRING:
        end = record.find(b"\0", at)
        if end < 0:
            raise ResumeTokenCorrupt("resume token is corrupt (nvlist_unpack failed)")
        return record[at:end].decode("utf-8", "replace")
    if kind in (_UINT64_ARRAY, _INT64_ARRAY):
        code = "Q" if kind == _UINT64_ARRAY else "q"
        if elements < 0 or at + 8 * elements > len(record):
            raise ResumeTokenCorrupt("resume token is corrupt (nvlist_unpack failed)")
        return tuple(struct.unpack_from(f"{order}{elements}{code}", record, at))
    if kind in (_NVLIST, _NVLIST_ARRAY):  # embedded lists follow the pair: not in a token
        raise ResumeTokenCorrupt("resume token is corrupt (unexpected nested nvlist)")
    return tuple(record[at:])  # a type a token does not use: kept as raw bytes


def _read(code: str, data: bytes, at: int) -> int:
    if at + struct.calcsize(code) > len(data):
        raise ResumeTokenCorrupt("resume token is corrupt (nvlist_unpack failed)")
    value: int = struct.unpack_from(code, data, at)[0]
    return value


def _align8(size: int) -> int:
    return (size + 7) & ~7
