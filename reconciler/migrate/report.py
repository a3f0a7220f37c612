"""What a converter returns, and how the result is checked and written (`reconcile import`).

Owns `Finding` (one key of the input that was not converted, or converted with a difference,
printed as `FILE:LINE:COLUMN: path: not converted: why` or `...: path: note: why`), `Conversion`
(the manifest documents and the findings), `ImportInputError` (input that cannot be read at all:
not text, not YAML, not a configuration of that tool) and `render_documents` (the YAML stream
of the documents, Hosts first, with a header saying where they come from). The CLI
(`reconciler/cli/importer.py`) validates the rendered documents with the manifest loader before
writing anything: a converter that produced an invalid manifest is a bug, reported as such.

Exit codes (docs/migrating.md): 0 when everything that decides what is kept or destroyed was
converted (notes may remain); 1 when any `not converted` finding affects retention, or the input
could not be read; the manifests are still written in the first case, so that the user can
finish them by hand.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ruamel.yaml import YAML

from reconciler.manifest.errors import one_line

API_VERSION = "zfs-reconciler.dev/v1alpha1"


class Outcome(StrEnum):
    NOT_CONVERTED = "not converted"  # dropped: the manifests do not express it
    NOTE = "note"  # converted, but something differs or was chosen for the user


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One key of the input that the manifests do not express as it was (1-based position)."""

    file: str
    line: int
    column: int
    path: str  # the key's path in the input, e.g. `jobs[0].connect.type` or `[tank/home].hourly`
    outcome: Outcome
    why: str
    affects_retention: bool = False  # what is kept or destroyed differs from the old tool's

    def text(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return one_line(f"{where}: {self.path}: {self.outcome}: {self.why}")


@dataclass(frozen=True, slots=True)
class Conversion:
    """The manifests (plain mappings, each a whole Host or Policy document) and the findings."""

    documents: tuple[Mapping[str, Any], ...]
    findings: tuple[Finding, ...] = ()

    @property
    def incomplete(self) -> bool:
        """True when something that decides what is kept or destroyed was not converted."""
        dropped = (f for f in self.findings if f.outcome is Outcome.NOT_CONVERTED)
        return any(f.affects_retention for f in dropped)


class ImportInputError(Exception):
    """The input cannot be converted at all; `str()` is one line naming FILE:LINE:COLUMN."""

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        super().__init__(one_line(f"{file}:{line}:{column}: {message}"))
        self.file, self.line, self.column, self.message = file, line, column, message


def document(kind: str, name: str, spec: Mapping[str, Any], **metadata: Any) -> dict[str, Any]:
    """A whole manifest document."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, **metadata},
        "spec": dict(spec),
    }


def render_documents(documents: Sequence[Mapping[str, Any]], origin: str) -> str:
    """The documents as one YAML stream, Hosts first, each with a header naming its origin."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    ordered = sorted(documents, key=lambda d: (d.get("kind") != "Host", d["metadata"]["name"]))
    out = io.StringIO()
    for index, doc in enumerate(ordered):
        if index:
            out.write("---\n")
        out.write(f"# converted by `reconcile import` from {one_line(origin)}\n")
        yaml.dump(_plain(doc), out)
    return out.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
