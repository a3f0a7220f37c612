"""Reading one zrepl.yml for the converter: typed access with positions, and what was left unread.

Owns `ZreplFile` (one configuration: its document, the findings about it, and the record of
which keys the converter read) and `Node` (a value at a field path of that file). Every read goes
through a `Node`: a value of the wrong type is reported as a `not converted` finding at its
position and read as absent, so the converter never meets a type it did not expect.
`unread_findings` reports every key that no part of the converter read, so that nothing of the
input is dropped silently. Called by `zrepl.py`, `zrepl_jobs.py` and `zrepl_connect.py`. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from reconciler.manifest.fields import describe
from reconciler.manifest.yamldoc import Document, FieldPath, format_path, locate, read_documents
from reconciler.migrate.report import Finding, ImportInputError, Outcome

_SUMMARY = 60


@dataclass(slots=True)
class ZreplFile:
    """One zrepl configuration file and what the converter has done with its keys."""

    file: str
    document: Document
    findings: list[Finding] = field(default_factory=list)
    read: dict[FieldPath, bool] = field(default_factory=dict)  # path → whole subtree handled

    @property
    def root(self) -> Node:
        return Node(self, (), self.document.data)


def read_zrepl(file: str, text: str) -> ZreplFile:
    """The first YAML document of `text` as a zrepl configuration (a mapping)."""
    documents, errors = read_documents(file, text)
    if errors:
        first = errors[0]
        raise ImportInputError(first.file, first.line, first.column, first.message)
    if not documents:
        raise ImportInputError(file, 1, 1, "not a zrepl configuration: the file is empty")
    config = ZreplFile(file, documents[0])
    data = config.document.data
    if not isinstance(data, dict):
        line, column = config.document.line, config.document.column
        message = f"not a zrepl configuration: expected a mapping with jobs, got {describe(data)}"
        raise ImportInputError(file, line, column, message)
    if not {"jobs", "global", "include"} & set(data):
        line, column = config.document.line, config.document.column
        message = "not a zrepl configuration: it has none of jobs, global, include"
        raise ImportInputError(file, line, column, message)
    for extra in documents[1:]:
        config.findings.append(
            Finding(file, extra.line, extra.column, "-", Outcome.NOT_CONVERTED, _EXTRA_DOCUMENT)
        )
    return config


_EXTRA_DOCUMENT = "zrepl reads only the first YAML document of its configuration"


@dataclass(frozen=True, slots=True)
class Node:
    """The value at `path` of a zrepl file."""

    config: ZreplFile
    path: FieldPath
    value: Any

    @property
    def where(self) -> str:
        return format_path(self.path)

    def child(self, key: str | int) -> Node | None:
        """The value under `key` (marked as read), or None when absent or null."""
        container = self.value
        in_mapping = isinstance(key, str) and isinstance(container, dict) and key in container
        in_list = isinstance(key, int) and isinstance(container, list) and 0 <= key < len(container)
        if not (in_mapping or in_list):
            return None
        value = container[key]
        path = (*self.path, key)
        self.config.read.setdefault(path, False)
        return None if value is None else Node(self.config, path, value)

    def entries(self) -> Iterator[Node]:
        """The items of a list (each marked as read); nothing when this is not a list."""
        if isinstance(self.value, list):
            for index in range(len(self.value)):
                item = self.child(index)
                if item is not None:
                    yield item

    def typed(self, key: str, kind: type | tuple[type, ...], affects: bool = False) -> Any:
        """The value under `key` when it has type `kind`; else None, reported when present."""
        node = self.child(key)
        if node is None:
            return None
        wanted = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(node.value, bool) and bool not in wanted:
            node.drop(f"expected {_names(wanted)}, got {describe(node.value)}", affects)
            return None
        if not isinstance(node.value, wanted):
            node.drop(f"expected {_names(wanted)}, got {_short(node.value)}", affects)
            return None
        return node.value

    def text(self, key: str, affects: bool = False) -> str | None:
        return self.typed(key, str, affects)  # type: ignore[no-any-return]

    def flag(self, key: str, affects: bool = False) -> bool | None:
        return self.typed(key, bool, affects)  # type: ignore[no-any-return]

    def mapping(self, key: str, affects: bool = False) -> Node | None:
        found = self.typed(key, dict, affects)
        return None if found is None else self.child(key)

    def sequence(self, key: str, affects: bool = False) -> Node | None:
        found = self.typed(key, list, affects)
        return None if found is None else self.child(key)

    def handled(self) -> None:
        """This value and everything below it were converted (or reported) as a whole."""
        self.config.read[self.path] = True

    def drop(self, why: str, affects: bool = False) -> None:
        self.report(Outcome.NOT_CONVERTED, why, affects)

    def note(self, why: str, affects: bool = False, whole: bool = False) -> None:
        """A note; its keys are still checked one by one unless `whole`."""
        self.report(Outcome.NOTE, why, affects, whole)

    def report(self, outcome: Outcome, why: str, affects: bool = False, whole: bool = True) -> None:
        if whole:
            self.handled()
        line, column = locate(self.config.document, self.path)
        finding = Finding(self.config.file, line, column, self.where, outcome, why, affects)
        self.config.findings.append(finding)


def _names(kinds: tuple[type, ...]) -> str:
    words = {str: "a string", bool: "true or false", int: "a number", dict: "a mapping"}
    words[list] = "a list"
    return " or ".join(words.get(kind, kind.__name__) for kind in kinds)


def _short(value: Any) -> str:
    text = describe(value)
    return text if len(text) <= _SUMMARY else text[:_SUMMARY] + "..."


def unread_findings(config: ZreplFile) -> list[Finding]:
    """A `not converted` finding for each key that no part of the converter read."""
    found: list[Finding] = []
    stack: list[tuple[FieldPath, Any]] = [((), config.document.data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            children: list[tuple[str | int, Any]] = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        for key, child in children:
            inner = (*path, key)
            whole = config.read.get(inner)
            if whole is None:
                if isinstance(key, str):
                    found.append(_unknown(config, inner))
            elif not whole:
                stack.append((inner, child))
    return found


def _unknown(config: ZreplFile, path: FieldPath) -> Finding:
    line, column = locate(config.document, path, at_key=True)
    affects = "pruning" in path
    why = "not a key this converter knows here (zrepl would refuse it, or it was not read)"
    return Finding(
        config.file, line, column, format_path(path), Outcome.NOT_CONVERTED, why, affects
    )
