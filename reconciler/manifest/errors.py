"""Manifest errors and source positions.

Owns `SourceLocation` (where a document or field sits in a file), `ManifestError` (one problem,
printed as `FILE:LINE:COLUMN: field.path: message`) and `ManifestErrors` (all problems of one
load, raised by `reconciler.manifest.loader.load_manifests`). The CLI prints them one per line.
Lines and columns are 1-based and counted from the start of the file; the path `-` stands for a
whole document or file.

Every printed error is exactly one line, whatever the file name, key or value holds: `one_line`
escapes line breaks, other control characters and Unicode line separators (`\n`, `\r`, `\t`,
`\x1b`, `\u2028`), so that CI can split the output on newlines and parse each line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """`text` with every character that would break or hide part of a line escaped."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    escaped = _ESCAPES.get(character)
    if escaped is not None:
        return escaped
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True, slots=True, order=True)
class SourceLocation:
    """A position in a manifest file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{_file_text(self.file)}:{self.line}:{self.column}"


def _file_text(file: str) -> str:
    return one_line(file) if file else '""'


@dataclass(frozen=True, slots=True)
class ManifestError:
    """One problem in the manifests, with the field path relative to its document."""

    file: str
    line: int
    column: int
    path: str
    message: str

    @property
    def location(self) -> SourceLocation:
        return SourceLocation(self.file, self.line, self.column)

    def __str__(self) -> str:
        where = f"{_file_text(self.file)}:{self.line}:{self.column}"
        return one_line(f"{where}: {self.path}: {self.message}")


class ManifestErrors(Exception):
    """Every problem found while loading and validating a set of manifests."""

    def __init__(self, errors: tuple[ManifestError, ...]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)
