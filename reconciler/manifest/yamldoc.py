"""YAML documents with positions: read a manifest file, find the line and column of any field.

Owns `read_documents` (every document of one file as plain dicts, lists and scalars, with YAML
syntax errors, duplicate keys and breached limits reported as `ManifestError`s), `ReadBudget`
(what a load has used of the limits that span files), `locate` (the 1-based line and column of
a field path inside a document, or of the deepest part of it that exists) and `format_path`
(`spec.keep[0].grid`). Called by `reconciler.manifest.loader`.

Documents are built here from libyaml's event stream (ruamel.yaml.clib's `CParser`): the parser
is a state machine in C, about thirty times faster than a pure-Python loader, and building from
events needs no recursion, so that every limit of `limits.py` (documents, nesting depth, alias
expansion, nodes) is checked as the events arrive, before anything grows. Positions count from the
start of the file.

What a document may hold: mappings with string keys, sequences and scalars. Plain scalars are
resolved by the YAML 1.2 core schema (`true`/`false`, `null`/`~`/empty, decimal, `0o` and `0x`
integers, floats with `.inf` and `.nan`; everything else, `yes` and `2026-01-01` included, is a
string); quoted and block scalars are strings. The tags `!!str`, `!!int`, `!!float`, `!!bool`,
`!!null`, `!!map`, `!!seq` and `!` are understood; any other tag (`!!pairs`, `!!binary`,
`!custom`, ...), a key that is a mapping or a sequence, a key that is not a string, and an alias
to an anchor that is not complete are errors. Anchors, aliases and merge keys (`<<: *base`) work
as in YAML; an alias shares its anchor's value (nothing is copied) and counts, for the limit,
as many nodes as its anchor holds. A document with an error is reported and left out; a syntax
error ends the file (later documents cannot be found reliably).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]  # from ruamel.yaml.clib
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

from reconciler.manifest.errors import ManifestError
from reconciler.manifest.fields import describe
from reconciler.manifest.limits import MAX_ALIAS_NODES, MAX_DEPTH, MAX_DOCUMENTS, MAX_NODES

WHOLE = "-"
"""The field path of an error about a whole document or file."""

FieldPath = tuple[str | int, ...]
Position = tuple[int, int]  # 0-based line and column

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_CORE = "tag:yaml.org,2002:"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_BOOLS["FALSE"] = False
_INT = re.compile(r"[-+]?[0-9]+")
_INT_BASED = re.compile(r"0o([0-7]+)|0x([0-9a-fA-F]+)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_FLOAT_SPECIAL = {".inf": "inf", ".Inf": "inf", ".INF": "inf", ".nan": "nan", ".NaN": "nan"}
_FLOAT_SPECIAL |= {".NAN": "nan"}
_MAYBE_NOT_STRING = frozenset("0123456789+-.~nNtTfF")
_WORD_STARTS = frozenset("nNtTfF")  # of null and booleans: numbers start with 0-9, +, - or .
_MAX_NUMBER_DIGITS = 4300
_NODE_EVENTS = frozenset({ScalarEvent, AliasEvent, MappingStartEvent, SequenceStartEvent})
_MAP_TAGS = ("!", _CORE + "map")  # the tags a mapping may have (or none)
_SEQ_TAGS = ("!", _CORE + "seq")


@dataclass(frozen=True, slots=True)
class Document:
    """One non-empty YAML document: plain data, where it starts (1-based) and where its parts
    are (0-based `Position`s by field path: the value's, and for mapping entries the key's)."""

    file: str
    data: Any
    line: int
    column: int
    values: dict[FieldPath, Position] = field(default_factory=dict, repr=False)
    keys: dict[FieldPath, Position] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class ReadBudget:
    """What one load has used so far of the limits that span its files."""

    documents: int = 0
    nodes: int = 0
    alias_nodes: int = 0


class _Stop(Exception):
    """The rest of the file is not read (the error is already recorded)."""


class _Skip(Exception):
    """The rest of the document is not built (the error is already recorded)."""


class _Undefined:
    """The state of a mapping that waits for its next key."""


_NO_KEY = _Undefined()


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence being built."""

    container: dict[str, Any] | list[Any]
    path: FieldPath
    anchor: str | None
    size: int = 1  # nodes, each alias counted as a copy of its anchor
    height: int = 1  # levels of collections, itself included
    key: Any = _NO_KEY
    key_position: Position = (0, 0)
    key_plain: bool = False
    merges: list[tuple[Any, Position]] = field(default_factory=list)


def read_documents(
    file: str, text: str, budget: ReadBudget | None = None
) -> tuple[list[Document], list[ManifestError]]:
    """The non-empty documents of `text`, and the errors found while reading it."""
    reader = _Reader(file, budget if budget is not None else ReadBudget())
    mark = text.find("\ufeff", 1)
    if mark > 0:  # libyaml skips it at the start of a line, other YAML readers read it as text
        line = text.count("\n", 0, mark) + 1
        column = mark - (text.rfind("\n", 0, mark) + 1) + 1
        message = "invalid YAML: a byte order mark (U+FEFF) after the start of the file"
        return [], [ManifestError(file, line, column, WHOLE, message)]
    parser = CParser(text)
    try:
        reader.read(parser)
    except _Stop:
        pass
    except MarkedYAMLError as error:
        reader.errors.append(_syntax_error(file, error))
    except ReaderError as error:
        reader.errors.append(_reader_error(file, text, error))
    except YAMLError as error:
        reader.errors.append(ManifestError(file, 1, 1, WHOLE, f"invalid YAML: {error}"))
    finally:
        parser.dispose()
    return reader.documents, reader.errors


class _Reader:
    """Builds documents from events, one at a time, under the limits."""

    def __init__(self, file: str, budget: ReadBudget) -> None:
        self.file = file
        self.budget = budget
        self.documents: list[Document] = []
        self.errors: list[ManifestError] = []
        self._start_document()

    def _start_document(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int, int]] = {}  # value, size, height
        self.root: Any = None
        self.root_position: Position = (0, 0)
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self.skipping = False
        self.faulty = False

    def read(self, parser: Any) -> None:
        """Every event of `parser` (a `CParser`), dispatched on its exact class (the parser
        makes no subclasses). Scalars, two thirds of a manifest's events, and the starts and
        ends of collections are handled without going through `feed`."""
        check_event, get_event = parser.check_event, parser.get_event
        budget, feed = self.budget, self.feed
        scalar_event, open_collection, close = self._scalar_event, self._open, self._close
        while check_event():
            event = get_event()
            kind = type(event)
            if kind is ScalarEvent or kind is MappingStartEvent or kind is SequenceStartEvent:
                budget.nodes += 1
                if budget.nodes > MAX_NODES:
                    self._error(event, WHOLE, f"more than {MAX_NODES} YAML nodes in one load")
                    raise _Stop
                if self.skipping:
                    continue
                try:
                    if kind is ScalarEvent:
                        scalar_event(event)
                    else:
                        open_collection(event)
                except _Skip:
                    self.skipping = self.faulty = True
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                if self.skipping:
                    continue
                try:
                    close()
                except _Skip:
                    self.skipping = self.faulty = True
            else:
                feed(event)

    def feed(self, event: Event) -> None:
        """One event of any kind (`read` handles the common ones itself)."""
        if type(event) in _NODE_EVENTS:
            self.budget.nodes += 1
            if self.budget.nodes > MAX_NODES:
                self._error(event, WHOLE, f"more than {MAX_NODES} YAML nodes in one load")
                raise _Stop
        if isinstance(event, DocumentStartEvent):
            self._start_document()
            self.budget.documents += 1
            if self.budget.documents > MAX_DOCUMENTS:
                self._error(event, WHOLE, f"more than {MAX_DOCUMENTS} documents in one load")
                raise _Stop
            return
        if isinstance(event, DocumentEndEvent):
            if not self.faulty and self.root is not None:
                line, column = self.root_position
                document = Document(
                    self.file, self.root, line + 1, column + 1, self.values, self.keys
                )
                self.documents.append(document)
            return
        if self.skipping:
            return
        try:
            self._node(event)
        except _Skip:
            self.skipping = self.faulty = True

    def _node(self, event: Event) -> None:
        if isinstance(event, ScalarEvent):
            self._scalar_event(event)
        elif isinstance(event, AliasEvent):
            self._alias(event)
        elif isinstance(event, MappingStartEvent | SequenceStartEvent):
            self._open(event)
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            self._close()

    def _scalar_event(self, event: ScalarEvent) -> None:
        """A scalar; the common cases (a key, a value of a new key, a list item, no anchor)
        inline what `_add` does: most events of a manifest are such scalars."""
        value = event.value
        untagged = event.ctag is None  # `tag` is a property computed from `ctag`
        plain = untagged and bool(event.implicit[0])
        if not untagged:
            value = _scalar(self, event)
        elif plain and (not value or value[0] in _MAYBE_NOT_STRING):
            value = _resolved(self, event, value)
        mark = event.start_mark
        position = (mark.line, mark.column)
        if not self.stack or event.anchor is not None:
            self._add(value, position, 1, event.anchor, plain)
            return
        frame = self.stack[-1]
        container = frame.container
        if type(container) is list:
            path = (*frame.path, len(container))
            self.values[path] = position
            container.append(value)
            frame.size += 1
            return
        key = frame.key
        if key is _NO_KEY and type(value) is str:
            frame.key, frame.key_position, frame.key_plain = value, position, plain
            return
        if key is _NO_KEY or (key == "<<" and frame.key_plain) or key in container:
            self._add(value, position, 1, None, plain)
            return
        path = (*frame.path, key)
        self.keys[path] = frame.key_position
        self.values[path] = frame.key_position if value is None else position
        container[key] = value
        frame.key = _NO_KEY
        frame.size += 1

    def _open(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        """A mapping or sequence starts (one event in five); `_expects_key`, `_child_path`
        and `_record` inlined."""
        is_mapping = isinstance(event, MappingStartEvent)
        if event.ctag is not None and event.tag not in (_MAP_TAGS if is_mapping else _SEQ_TAGS):
            self._fatal(event, f"unsupported YAML tag {_tag_text(event.tag)}")
        stack = self.stack
        position = _position(event)
        path: FieldPath = ()
        if stack:
            frame = stack[-1]
            parent = frame.container
            if type(parent) is dict and frame.key is _NO_KEY:
                what = "mapping" if is_mapping else "sequence"
                self._fatal(event, f"a mapping key must be a string, not a {what}")
            if len(stack) >= MAX_DEPTH:  # the rest of the file is not even parsed: libyaml
                # keeps a possible simple key per flow level, so reading deeper costs O(depth²)
                message = f"nested more than {MAX_DEPTH} levels deep"
                self._error(event, format_path(self._child_path()), message)
                raise _Stop
            if type(parent) is list:
                path = (*frame.path, len(parent))
                self.values[path] = position
            else:
                key = frame.key
                path = (*frame.path, key)
                if not ((key == "<<" and frame.key_plain) or key in parent):
                    self.keys[path] = frame.key_position
                    self.values[path] = position
        else:
            self.root_position = position
        container: dict[str, Any] | list[Any] = {} if is_mapping else []
        stack.append(_Frame(container, path, event.anchor))

    def _close(self) -> None:
        frame = self.stack.pop()
        if frame.merges:  # only a mapping has any
            self._merge(frame)
        self._place(frame.container, frame.size, frame.anchor, frame.height)

    def _alias(self, event: AliasEvent) -> None:
        anchored = self.anchors.get(event.anchor)
        if anchored is None:
            self._fatal(
                event,
                f"alias *{event.anchor} names no complete anchor (undefined, or inside itself)",
            )
        value, size, height = anchored
        if len(self.stack) + height > MAX_DEPTH:
            self._fatal(
                event, f"nested more than {MAX_DEPTH} levels deep (through *{event.anchor})"
            )
        self.budget.alias_nodes += size
        if self.budget.alias_nodes > MAX_ALIAS_NODES:
            self._fatal(
                event,
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes in one load",
            )
        self._add(value, _position(event), size, None, False, height)

    def _add(
        self,
        value: Any,
        position: Position,
        size: int,
        anchor: str | None,
        plain: bool,
        height: int = 0,
    ) -> None:
        """A scalar or an alias: a key of the mapping on top, or a value."""
        if self.stack and self._expects_key():
            if not isinstance(value, str):
                self._fatal_at(position, f"a mapping key must be a string, not {describe(value)}")
            frame = self.stack[-1]
            frame.key, frame.key_position, frame.key_plain = value, position, plain
            if anchor is not None:
                self.anchors[anchor] = (value, 1, 0)
            return
        path = self._child_path()
        if self.stack:
            self._record(path, position, value_is_null=value is None)
        else:
            self.root_position = position
        self._place(value, size, anchor, height)

    def _place(self, value: Any, size: int, anchor: str | None, height: int = 0) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size, height)
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if isinstance(frame.container, list):
            frame.container.append(value)
            return
        key, frame.key = frame.key, _NO_KEY
        if key == "<<" and frame.key_plain:
            frame.merges.append((value, frame.key_position))
        elif key in frame.container:
            self._duplicate(frame, key)
        else:
            frame.container[key] = value

    def _merge(self, frame: _Frame) -> None:
        """`<<: *a` or `<<: [*a, *b]`: keys of the mapping itself win, then earlier merges."""
        assert isinstance(frame.container, dict)
        for value, position in frame.merges:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                message = "a merge key (<<) takes a mapping or a list of mappings"
                self._fatal_at(position, message)
            for source in sources:
                for key, item in source.items():
                    frame.container.setdefault(key, item)

    def _duplicate(self, frame: _Frame, key: str) -> None:
        """Reported with its first occurrence; the document is left out, reading goes on."""
        path = (*frame.path, key)
        line, column = self.keys[path]
        message = f"duplicate key {key!r} (first at line {line + 1}, column {column + 1})"
        here_line, here_column = frame.key_position
        self.errors.append(
            ManifestError(self.file, here_line + 1, here_column + 1, format_path(path), message)
        )
        self.faulty = True

    def _expects_key(self) -> bool:
        frame = self.stack[-1]
        return isinstance(frame.container, dict) and frame.key is _NO_KEY

    def _child_path(self) -> FieldPath:
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            return (*frame.path, len(frame.container))
        return (*frame.path, frame.key)

    def _error_path(self) -> FieldPath:
        """The path of the node being read, or of its mapping while a key is awaited."""
        if self.stack and self._expects_key():
            return self.stack[-1].path
        return self._child_path()

    def _record(self, path: FieldPath, position: Position, value_is_null: bool) -> None:
        """Where the value at `path` is; an empty value has no position of its own: its key's."""
        frame = self.stack[-1]
        if isinstance(frame.container, dict):
            if (frame.key == "<<" and frame.key_plain) or frame.key in frame.container:
                return  # merged or duplicate: keep the first position
            self.keys[path] = frame.key_position
            self.values[path] = frame.key_position if value_is_null else position
        else:
            self.values[path] = position

    def _error(self, event: Event, path: str, message: str) -> None:
        line, column = _position(event)
        self.errors.append(ManifestError(self.file, line + 1, column + 1, path, message))

    def _fatal(self, event: Event, message: str) -> NoReturn:
        self._fatal_at(_position(event), message)

    def _fatal_at(self, position: Position, message: str) -> NoReturn:
        path = format_path(self._error_path())
        line, column = position
        self.errors.append(ManifestError(self.file, line + 1, column + 1, path, message))
        raise _Skip


def _position(event: Event) -> Position:
    mark = event.start_mark
    return (mark.line, mark.column) if mark is not None else (0, 0)


def _is_plain(event: ScalarEvent) -> bool:
    return bool(event.implicit[0]) and event.tag is None


def _scalar(reader: _Reader, event: ScalarEvent) -> Any:
    """The value of a scalar by the YAML 1.2 core schema, or an error for what it cannot be."""
    value: str = event.value
    tag = event.tag
    if tag is None:
        return _resolved(reader, event, value) if event.implicit[0] else value
    if tag in ("!", _CORE + "str"):
        return value
    kind = tag[len(_CORE) :] if tag.startswith(_CORE) else None
    resolved = _resolved(reader, event, value)
    if kind == "null" and resolved is None:
        return None
    if kind == "bool" and isinstance(resolved, bool):
        return resolved
    if kind == "int" and type(resolved) is int:
        return resolved
    if kind == "float" and type(resolved) in (int, float):
        return float(resolved)
    if kind in ("null", "bool", "int", "float"):
        return reader._fatal(event, f"{_tag_text(tag)} {value!r} is not a valid {kind}")
    return reader._fatal(event, f"unsupported YAML tag {_tag_text(tag)}")


class _TooLong(Exception):
    """A decimal integer longer than Python converts."""


def _resolved(reader: _Reader, event: ScalarEvent, value: str) -> Any:
    try:
        return _resolve(value)
    except _TooLong:
        reader._fatal(event, f"a number of more than {_MAX_NUMBER_DIGITS} digits")


def _resolve(value: str) -> Any:
    if value and value[0] not in _MAYBE_NOT_STRING:
        return value
    if value and value[0] in _WORD_STARTS:  # `tank/home<`, `name`: a null, a boolean or text
        return None if value in _NULLS else _BOOLS.get(value, value)
    if value in _NULLS:
        return None
    boolean = _BOOLS.get(value)
    if boolean is not None:
        return boolean
    if _INT.fullmatch(value):
        if len(value) > _MAX_NUMBER_DIGITS:  # what Python's int() refuses
            raise _TooLong
        return int(value)
    based = _INT_BASED.fullmatch(value)
    if based:
        octal, hexadecimal = based.groups()
        return int(octal, 8) if octal is not None else int(hexadecimal, 16)
    if _FLOAT.fullmatch(value):
        return float(value)
    sign = value[0] if value[0] in "+-" else ""
    special = _FLOAT_SPECIAL.get(value[len(sign) :])
    if special == "inf" or (special == "nan" and not sign):
        return float(sign + special)
    return value


def _tag_text(tag: str | None) -> str:
    if tag is None:
        return "(none)"
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _syntax_error(file: str, error: MarkedYAMLError) -> ManifestError:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = f"invalid YAML: {error.problem or error.context or 'syntax error'}"
    if error.context and error.problem and error.context_mark is not None:
        where = f"line {error.context_mark.line + 1}, column {error.context_mark.column + 1}"
        message += f" ({error.context} at {where})"
    return ManifestError(file, line, column, WHOLE, message)


def _reader_error(file: str, text: str, error: ReaderError) -> ManifestError:
    """A character YAML does not allow (control characters, NUL): where it is, and which."""
    offset = getattr(error, "position", 0)
    offset = offset if isinstance(offset, int) and offset > 0 else 0
    before = text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "ignore")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    character = getattr(error, "character", None)
    if isinstance(character, int):
        what = f"#x{character:04x}"
    elif isinstance(character, str) and character:
        what = f"#x{ord(character[0]):04x}"
    else:
        what = "a character"
    reason = getattr(error, "reason", None) or "special characters are not allowed"
    return ManifestError(file, line, column, WHOLE, f"invalid YAML: {what}: {reason}")


def locate(document: Document, path: Sequence[str | int], at_key: bool = False) -> tuple[int, int]:
    """Line and column (1-based) of `path` in the document, or of its deepest existing part.

    A missing field is located at the mapping that lacks it; with `at_key`, the last element
    of the path is located at its key instead of its value.
    """
    position = document.values.get((), (document.line - 1, document.column - 1))
    for depth in range(1, len(path) + 1):
        prefix = tuple(path[:depth])
        found = document.values.get(prefix)
        if found is None:
            break
        key = document.keys.get(prefix)
        position = key if at_key and depth == len(path) and key is not None else found
    return position[0] + 1, position[1] + 1


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
