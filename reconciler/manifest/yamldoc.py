"""YAML documents with positions: read a manifest file, find the line and column of any field.

Owns `read_documents` (every document of one file, with YAML syntax errors and duplicate keys
reported as `ManifestError`s), `locate` (the 1-based line and column of a field path inside a
document, or of the deepest part of it that exists), `format_path` (`spec.keep[0].grid`) and
`to_plain` (ruamel's round-trip values as plain dicts, lists and scalars, for pydantic).
Called by `reconciler.manifest.loader`.

Positions come from ruamel.yaml's round-trip loader (`CommentedMap.lc`, `CommentedSeq.lc`)
and, for duplicate keys, from the composed node tree; both count from the start of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean

from reconciler.manifest.errors import ManifestError

WHOLE = "-"
"""The field path of an error about a whole document or file."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Document:
    """One non-empty YAML document: round-trip data and where it starts (1-based)."""

    file: str
    data: Any
    line: int
    column: int


def read_documents(file: str, text: str) -> tuple[list[Document], list[ManifestError]]:
    """The non-empty documents of `text`, and the errors found while reading it.

    A syntax error ends the file (later documents cannot be found reliably); a document with
    duplicate keys is reported (every duplicate) and left out, and reading goes on.
    """
    documents: list[Document] = []
    errors: list[ManifestError] = []
    constructor, parser = YAML(typ="rt").get_constructor_parser(text)
    try:
        while constructor.check_data():
            node = constructor.composer.get_node()
            duplicates = list(_duplicate_keys(file, node, (), set()))
            if duplicates:
                errors += duplicates
                continue
            document = _construct(file, constructor, node)
            if isinstance(document, ManifestError):
                errors.append(document)
            elif document.data is not None:
                documents.append(document)
    except MarkedYAMLError as error:
        errors.append(_syntax_error(file, error))
    finally:
        parser.dispose()
    return documents, errors


def _construct(file: str, constructor: Any, node: Node) -> Document | ManifestError:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    try:
        data = constructor.construct_document(node)
    except MarkedYAMLError as error:
        return _syntax_error(file, error)
    except ValueError as error:  # e.g. `!!int x`
        return ManifestError(file, line, column, WHOLE, f"invalid YAML value: {error}")
    return Document(file, data, line, column)


def _syntax_error(file: str, error: MarkedYAMLError) -> ManifestError:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = f"invalid YAML: {error.problem or error.context or 'syntax error'}"
    if error.context and error.problem and error.context_mark is not None:
        where = f"line {error.context_mark.line + 1}, column {error.context_mark.column + 1}"
        message += f" ({error.context} at {where})"
    return ManifestError(file, line, column, WHOLE, message)


def _duplicate_keys(
    file: str, node: Node, path: tuple[str | int, ...], seen: set[int]
) -> Iterator[ManifestError]:
    """Every key that repeats an earlier key of the same mapping, depth first."""
    if id(node) in seen:  # an alias to a node already visited
        return
    seen.add(id(node))
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(file, item, (*path, index), seen)
    if not isinstance(node, MappingNode):
        return
    first: dict[tuple[str, str], Node] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode) or key.value == "<<":
            continue
        identity = (str(key.tag), key.value)
        if identity in first:
            mark, earlier = key.start_mark, first[identity].start_mark
            message = (
                f"duplicate key {key.value!r} "
                f"(first at line {earlier.line + 1}, column {earlier.column + 1})"
            )
            where = format_path((*path, key.value))
            yield ManifestError(file, mark.line + 1, mark.column + 1, where, message)
            continue
        first[identity] = key
        yield from _duplicate_keys(file, value, (*path, key.value), seen)


def locate(document: Document, path: Sequence[str | int], at_key: bool = False) -> tuple[int, int]:
    """Line and column (1-based) of `path` in the document, or of its deepest existing part.

    A missing field is located at the mapping that lacks it; with `at_key`, the last element
    of the path is located at its key instead of its value.
    """
    node = document.data
    position = _start(node) or (document.line - 1, document.column - 1)
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        step = _step(node, part, at_key and last)
        if step is None:
            break
        node, position = step
    return position[0] + 1, position[1] + 1


def _start(node: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return lc.line, lc.col


def _step(node: Any, part: str | int, at_key: bool) -> tuple[Any, tuple[int, int]] | None:
    """The child at `part` and its position, or None when it does not exist."""
    try:
        if isinstance(node, CommentedMap) and part in node:
            child = node[part]
            use_key = at_key or child is None  # an empty value has no position of its own
            key_line, key_col = node.lc.key(part)
            line, column = (key_line, key_col) if use_key else node.lc.value(part)
            return child, (line, column)
        if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, column = node.lc.item(part)
            return node[part], (line, column)
    except (AttributeError, KeyError, TypeError):  # merged keys carry no position of their own
        return None
    return None


def format_path(path: Sequence[str | int]) -> str:
    """`spec.replication[0].root`; keys that are not plain words are quoted: `["tank/a<"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            text += f'["{escaped}"]'
    return text or WHOLE


def to_plain(value: Any) -> Any:
    """Round-trip data as plain dicts, lists, str, int, float and bool (for validation)."""
    if isinstance(value, dict):
        return {to_plain(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, ScalarBoolean):  # an anchored boolean
        return bool(value)
    if isinstance(value, bool) or value is None:
        return value
    for plain in (str, int, float):
        if isinstance(value, plain):
            return plain(value)
    return value
