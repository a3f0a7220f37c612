"""Manifest errors and source positions.

Owns `SourceLocation` (where a document or field sits in a file), `ManifestError` (one problem,
printed as `FILE:LINE:COLUMN: field.path: message`) and `ManifestErrors` (all problems of one
load, raised by `reconciler.manifest.loader.load_manifests`). The CLI prints them one per line.
Lines and columns are 1-based and counted from the start of the file; the path `-` stands for a
whole document or file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class SourceLocation:
    """A position in a manifest file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


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
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"


class ManifestErrors(Exception):
    """Every problem found while loading and validating a set of manifests."""

    def __init__(self, errors: tuple[ManifestError, ...]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)
