"""Hypothesis strategies and oracles for the manifest fuzz test (`test_fuzz_manifests.py`) and the
models-vs-JSON-Schema differential test (`test_schema_agreement.py`).

Owns:

- the seed documents: `manifests/example.yaml` and a richer valid set that uses every field
  of both kinds (`SEED_SETS`, each one a file that `reconcile validate` accepts);
- a small YAML emitter over a YAML-level tree (`Map`, `Seq`, `Scalar`, `Alias`, with tags,
  anchors, flow or block style and raw text), so that mutations can produce what a Python
  dumper never would: duplicate keys, complex keys, merge keys, aliases, odd tags, raw control
  characters, deep nesting;
- the strategies: `mutated_manifests` (mutations of valid manifests), `yaml_tricks` (the
  YAML-level classes of bad input), `raw_bytes` and `spliced_bytes` (bytes), `snake_case_inputs`
  (one camelCase field spelled snake_case in an otherwise valid file), `file_names`, and
  `near_valid_documents` (Python data for the differential test);
- the oracles shared by both tests: the committed JSON Schema with its format checker
  (`schema_errors`), the snake_case spellings of the schema's camelCase fields
  (`SNAKE_FIELDS`, `snake_keys`), and an independent YAML reading of an accepted file
  (`yaml12_documents`; `product_documents` is the product's own) to check what the product
  accepted against the schema.

Sizes: the "huge" inputs are far beyond any sane manifest limit (64 MiB files, 100,000
documents, 100,000 nesting levels, alias expansions of 10^9 and more), so that a reader that
enforces limits refuses them at once and one that does not is caught by the tests' hang guard;
the "large but plausible" ones stay small enough (at most a few hundred KiB of YAML) for any
reader to finish in well under a second of parsing on a slow machine.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schemas" / "manifests.schema.json"
EXAMPLE_PATH = ROOT / "manifests" / "example.yaml"
API_VERSION = "zfs-reconciler.dev/v1alpha1"

MiB = 1 << 20
HUGE_FILE_BYTES = 64 * MiB
"""A file this large is beyond any manifest size limit: refused before it is parsed."""
MANY_DOCUMENTS = 100_000
"""More documents than any document limit allows."""
DEEP_NESTING = 100_000
"""More nesting levels than any depth limit allows."""

# --- profiles and counts ----------------------------------------------------------------------

DEEP = os.environ.get("ZFS_RECONCILER_FUZZ", "").strip().lower() == "deep"
DEEP_FACTOR = 20
"""Deep mode runs this many times the default number of examples of each test."""


def fuzz_settings(examples: int) -> settings:
    """`examples` per test by default; `DEEP_FACTOR` times more with ZFS_RECONCILER_FUZZ=deep
    (`make fuzz`); exactly N with ZFS_RECONCILER_FUZZ_EXAMPLES=N. No deadline: the tests keep
    their own hang guard, and performance targets live in benchmarks."""
    override = os.environ.get("ZFS_RECONCILER_FUZZ_EXAMPLES")
    count = int(override) if override else examples * (DEEP_FACTOR if DEEP else 1)
    return settings(
        max_examples=count,
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


COUNTS = {"inputs": 0, "documents": 0}
"""Inputs run through `reconcile validate`; documents compared by the differential test."""


class _CountReport:
    """Prints the counts in pytest's terminal summary (registered by `count_report`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        profile = "deep" if DEEP else "default"
        for what, label in (
            ("inputs", "inputs through `reconcile validate`"),
            ("documents", "documents through the models and the JSON Schema"),
        ):
            if what in self.seconds:
                terminalreporter.write_line(
                    f"fuzz: {COUNTS[what]} {label} in {self.seconds[what]:.1f} s "
                    f"(profile {profile})"
                )


def count_report(config: Any, what: str) -> Iterator[None]:
    """For a module-scoped fixture: time the module and report the count of `what`."""
    manager = config.pluginmanager
    plugin = manager.get_plugin("zfs-reconciler-fuzz-counts")
    if plugin is None:
        plugin = _CountReport()
        manager.register(plugin, "zfs-reconciler-fuzz-counts")
    start = time.monotonic()
    yield
    plugin.seconds[what] = plugin.seconds.get(what, 0.0) + time.monotonic() - start


# --- seeds ------------------------------------------------------------------------------------

HOST_NAS: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "Host",
    "metadata": {"name": "nas"},
    "spec": {"transport": "local"},
}
HOST_BACKUP: dict[str, Any] = {  # every Host field
    "apiVersion": API_VERSION,
    "kind": "Host",
    "metadata": {"name": "backup", "labels": {"tier": "gold", "example.com/role": "replica"}},
    "spec": {
        "transport": "ssh",
        "ssh": {
            "host": "backup.example.org",
            "port": 2222,
            "user": "zrep",
            "identityFile": "/etc/zfs-reconciler/id_ed25519",
            "options": ["ServerAliveInterval=30", "StrictHostKeyChecking=yes"],
        },
        "zfsCommand": ["sudo", "zfs"],
    },
}
POLICY_HOME: dict[str, Any] = {  # every Policy field
    "apiVersion": API_VERSION,
    "kind": "Policy",
    "metadata": {"name": "home", "labels": {"tier": "gold"}},
    "spec": {
        "source": {
            "host": "nas",
            "filesystems": {"tank/home<": True, "tank/home/scratch<": False, "tank/db": True},
        },
        "snapshots": {"prefix": "zr_", "interval": "15m", "include": ["^manual-", "T000000Z$"]},
        "retention": {
            "keep": [
                {"grid": "1x1h(keep=all) | 24x1h | 14x1d"},
                {"lastN": 3},
                {"regex": "T000000Z$"},
            ]
        },
        "replication": [
            {
                "name": "offsite",
                "host": "backup",
                "root": "vault/nas",
                "retention": {"keep": [{"grid": "1x1h(keep=all) | 24x1h | 35x1d"}, {"lastN": 3}]},
                "protection": "incremental",
                "initialReplication": "all",
                "send": {
                    "raw": True,
                    "compressed": True,
                    "largeBlocks": True,
                    "embeddedData": False,
                    "properties": True,
                },
                "receive": {
                    "properties": {
                        "override": {"readonly": "on", "com.example:backup": "yes"},
                        "inherit": ["mountpoint"],
                    },
                    "allowRollback": True,
                    "allowFullResync": False,
                },
            },
            {
                "name": "local-copy",
                "host": "nas",
                "root": "tank/replica",
                "protection": "none",
                "initialReplication": "fail",
            },
        ],
    },
}
POLICY_MEDIA: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "Policy",
    "metadata": {"name": "media"},
    "spec": {
        "source": {"host": "nas", "filesystems": {"<": False, "tank/media<": True}},
        "snapshots": {"prefix": "zm_", "cron": "0 3 * * *"},
        "retention": {"keep": [{"lastN": 7}]},
        "replication": [],
    },
}


def _example_documents() -> list[dict[str, Any]]:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(EXAMPLE_PATH.read_text()) if doc]


EXAMPLE_TEXT = EXAMPLE_PATH.read_text()
SEED_SETS: list[list[dict[str, Any]]] = [
    _example_documents(),
    [HOST_NAS, HOST_BACKUP, POLICY_HOME, POLICY_MEDIA],
    [HOST_NAS, POLICY_MEDIA],
]
"""Sets of documents; each set, as one file, is valid (`test_seed_sets_are_valid` checks it)."""
SEED_DOCUMENTS = [doc for seeds in SEED_SETS for doc in seeds]

FREE_MAPS = frozenset({"labels", "filesystems", "override"})
"""Mappings whose keys are data (labels, filter patterns, property names), not field names."""

# --- the JSON Schema oracle -------------------------------------------------------------------

SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
_FORMATS = jsonschema.FormatChecker()  # every format jsonschema knows, checked


@_FORMATS.checks("regex", raises=(re.error, OverflowError, RecursionError, ValueError))
def _is_regex(instance: object) -> bool:
    """`format: regex` as jsonschema checks it (Python's `re` compiles it), except that what
    jsonschema's own checker lets escape (OverflowError for `a{99999999999}`, RecursionError
    for 500 nested groups) counts as "not a regex" instead of crashing the oracle."""
    if isinstance(instance, str):
        re.compile(instance)
    return True


VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=_FORMATS)


def _explained(error: Any) -> Any:
    """The error inside a `oneOf` that says what is wrong: in the branch the document's `kind`
    selects (the branch without an error at `kind`), else in the branch with fewest errors."""
    while error.context:
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        plausible = [
            errors
            for errors in branches.values()
            if not any(list(sub.relative_path) == ["kind"] for sub in errors)
        ]
        group = plausible[0] if len(plausible) == 1 else min(branches.values(), key=len)
        error = jsonschema.exceptions.best_match(group)
    return error


def schema_errors(document: Any) -> list[str]:
    """What the committed JSON Schema says about one document (empty: it accepts it)."""
    found = []
    for error in VALIDATOR.iter_errors(document):
        best = _explained(error)
        where = "/".join(map(str, best.absolute_path)) or "-"
        message = best.message if len(best.message) < 300 else best.message[:300] + "..."
        found.append(f"{where}: {message}")
    return found


def _schema_field_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            yield from properties
        for value in node.values():
            yield from _schema_field_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_field_names(value)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


CAMEL_FIELDS = frozenset(name for name in _schema_field_names(SCHEMA) if _snake(name) != name)
SNAKE_FIELDS: dict[str, str] = {_snake(name): name for name in CAMEL_FIELDS}
"""`zfs_command` -> `zfsCommand`, ... for every camelCase field of the committed schema."""


def snake_keys(document: Any, path: tuple[Any, ...] = ()) -> list[str]:
    """The snake_case spellings of camelCase fields used as field names in `document`."""
    found: list[str] = []
    if isinstance(document, dict):
        free = bool(path) and path[-1] in FREE_MAPS
        for key, value in document.items():
            if not free and isinstance(key, str) and key in SNAKE_FIELDS:
                where = ".".join(map(str, (*path, key)))
                found.append(f"{where} (snake_case of {SNAKE_FIELDS[key]})")
            found += snake_keys(value, (*path, key))
    elif isinstance(document, list):
        for index, item in enumerate(document):
            found += snake_keys(item, (*path, index))
    return found


class OracleRefusal(Exception):
    """The YAML subset of docs/manifests.md refuses the input (a tag, a key, an alias...)."""


_CORE = "tag:yaml.org,2002:"
_CORE_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_CORE_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_CORE_BOOL["FALSE"] = False
_CORE_INT = re.compile(r"[-+]?[0-9]+")
_CORE_OCT = re.compile(r"0o[0-7]+")
_CORE_HEX = re.compile(r"0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_CORE_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_CORE_NAN = re.compile(r"\.(nan|NaN|NAN)")


def core_scalar(text: str) -> Any:
    """A plain scalar by the YAML 1.2 core schema (null, bool, int, float, else a string)."""
    if text in _CORE_NULL:
        return None
    if text in _CORE_BOOL:
        return _CORE_BOOL[text]
    if _CORE_INT.fullmatch(text):
        return int(text)
    if _CORE_OCT.fullmatch(text):
        return int(text[2:], 8)
    if _CORE_HEX.fullmatch(text):
        return int(text[2:], 16)
    if _CORE_FLOAT.fullmatch(text):
        return float(text)
    if _CORE_INF.fullmatch(text):
        return float("-inf" if text.startswith("-") else "inf")
    if _CORE_NAN.fullmatch(text):
        return float("nan")
    return text


def _tagged(tag: str, text: str) -> Any:
    if tag in ("!", _CORE + "str"):
        return text
    value = core_scalar(text)
    kind = tag[len(_CORE) :] if tag.startswith(_CORE) else None
    if kind == "null" and value is None:
        return None
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and type(value) is int:
        return value
    if kind == "float" and type(value) in (int, float):
        return float(value)
    raise OracleRefusal(f"{tag} {text!r}")


@dataclass
class _Frame:
    container: dict[str, Any] | list[Any]
    anchor: str | None
    key: Any = None
    has_key: bool = False
    key_plain: bool = False
    merges: list[Any] = field(default_factory=list)


def yaml12_documents(data: bytes) -> list[Any]:
    """The non-empty documents of a manifest file read independently of the product: ruamel's
    pure-Python parser, values by the YAML 1.2 core schema whatever a `%YAML` directive says,
    the subset of docs/manifests.md (core tags only, string keys, merge keys). Raises
    `OracleRefusal` for what that subset refuses, ruamel's errors for what it cannot parse."""
    text = data.decode("utf-8-sig")
    documents: list[Any] = []
    stack: list[_Frame] = []
    anchors: dict[str, Any] = {}
    root: Any = None

    def add(value: Any, anchor: str | None, plain: bool) -> None:
        nonlocal root
        if anchor is not None:
            anchors[anchor] = value
        if not stack:
            root = value
            return
        frame = stack[-1]
        if isinstance(frame.container, list):
            frame.container.append(value)
        elif not frame.has_key:
            if not isinstance(value, str):
                raise OracleRefusal(f"a key that is not a string: {value!r}")
            frame.key, frame.has_key, frame.key_plain = value, True, plain
        else:
            frame.has_key = False
            if frame.key == "<<" and frame.key_plain:
                frame.merges.append(value)
            elif frame.key in frame.container:
                raise OracleRefusal(f"duplicate key {frame.key!r}")
            else:
                frame.container[frame.key] = value

    for event in YAML(typ="safe", pure=True).parse(text):
        kind = type(event).__name__
        if kind == "DocumentStartEvent":
            anchors, root = {}, None
        elif kind == "DocumentEndEvent":
            if root is not None:
                documents.append(root)
        elif kind == "ScalarEvent":
            plain = event.tag is None and bool(event.implicit[0])
            if event.tag is not None:
                value = _tagged(str(event.tag), event.value)
            else:
                value = core_scalar(event.value) if plain else event.value
            add(value, event.anchor, plain)
        elif kind == "AliasEvent":
            if event.anchor not in anchors:
                raise OracleRefusal(f"alias *{event.anchor} names no complete anchor")
            add(anchors[event.anchor], None, False)
        elif kind in ("MappingStartEvent", "SequenceStartEvent"):
            mapping = kind == "MappingStartEvent"
            if event.tag not in (None, "!", _CORE + ("map" if mapping else "seq")):
                raise OracleRefusal(f"tag {event.tag}")
            if stack and isinstance(stack[-1].container, dict) and not stack[-1].has_key:
                raise OracleRefusal("a key that is a mapping or a sequence")
            stack.append(_Frame({} if mapping else [], event.anchor))
        elif kind in ("MappingEndEvent", "SequenceEndEvent"):
            frame = stack.pop()
            if isinstance(frame.container, dict):
                for merged in frame.merges:
                    sources = merged if isinstance(merged, list) else [merged]
                    if not all(isinstance(source, dict) for source in sources):
                        raise OracleRefusal("a merge key (<<) takes mappings")
                    for source in sources:
                        for key, value in source.items():
                            frame.container.setdefault(key, value)
            add(frame.container, frame.anchor, False)
    return documents


def product_documents(file: str, data: bytes) -> tuple[list[Any], list[str]]:
    """The documents of a manifest file as the product's reader builds them (what the models
    validate: `reconciler.manifest.yamldoc.read_documents`), and the errors it reports."""
    from reconciler.manifest.yamldoc import read_documents

    documents, errors = read_documents(file, data.decode("utf-8-sig"))
    return [document.data for document in documents], [str(error) for error in errors]


# --- a YAML tree and its emitter --------------------------------------------------------------


@dataclass(eq=False)
class Node:
    tag: str | None = field(default=None, kw_only=True)
    anchor: str | None = field(default=None, kw_only=True)


@dataclass(eq=False)
class Scalar(Node):
    value: Any = None
    style: str = "auto"
    """auto, plain, single, double, literal or raw (`value` is emitted verbatim)."""


@dataclass(eq=False)
class Seq(Node):
    items: list[Node] = field(default_factory=list)
    flow: bool = False


@dataclass(eq=False)
class Map(Node):
    pairs: list[tuple[Node, Node]] = field(default_factory=list)
    flow: bool = False


@dataclass(eq=False)
class Alias(Node):
    name: str = "a"


def to_tree(data: Any, flow: bool = False) -> Node:
    if isinstance(data, dict):
        return Map([(Scalar(k), to_tree(v, flow)) for k, v in data.items()], flow=flow)
    if isinstance(data, list):
        return Seq([to_tree(item, flow) for item in data], flow=flow)
    return Scalar(data)


_PLAIN_SAFE = re.compile(r"[A-Za-z_/][A-Za-z0-9_./<-]*")
_RESERVED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"})


def _printable(char: str) -> bool:
    code = ord(char)
    if 0x20 <= code <= 0x7E:
        return True
    if code in (0x2028, 0x2029, 0xFEFF):
        return False
    return 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def double_quoted(text: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly `text`."""
    out = []
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _printable(char):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _scalar_text(node: Scalar, flow: bool) -> str:
    value, style = node.value, node.style
    if style == "raw":
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    text = str(value)
    if style == "plain" and text and "\n" not in text:
        return text
    if style == "single" and all(_printable(c) for c in text):
        return "'" + text.replace("'", "''") + "'"
    if style == "double" or style == "literal":
        return double_quoted(text)
    if _PLAIN_SAFE.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    if text and all(_printable(c) for c in text) and text[0] != " " and text[-1] != " ":
        return "'" + text.replace("'", "''") + "'"
    return double_quoted(text)


def _props(node: Node) -> str:
    parts = []
    if node.anchor is not None:
        parts.append("&" + node.anchor)
    if node.tag is not None:
        parts.append(node.tag)
    return " ".join(parts)


def _inline(node: Node) -> str:
    """The node in flow style (with its tag and anchor)."""
    props = _props(node)
    if isinstance(node, Alias):
        return "*" + node.name
    if isinstance(node, Scalar):
        body = _scalar_text(node, flow=True)
    elif isinstance(node, Seq):
        body = "[" + ", ".join(_inline(item) for item in node.items) + "]"
    else:
        assert isinstance(node, Map)
        body = "{" + ", ".join(_flow_pair(key, value) for key, value in node.pairs) + "}"
    return f"{props} {body}" if props else body


def _flow_pair(key: Node, value: Node) -> str:
    if _simple_key(key):
        return f"{_inline(key)}: {_inline(value)}"
    return f"? {_inline(key)} : {_inline(value)}"


def _simple_key(key: Node) -> bool:
    return (
        isinstance(key, Scalar)
        and key.anchor is None
        and (key.style == "raw" or len(_scalar_text(key, True)) < 1000)
    )


def _is_block(node: Node) -> bool:
    if isinstance(node, Map):
        return not node.flow and bool(node.pairs)
    if isinstance(node, Seq):
        return not node.flow and bool(node.items)
    return False


def _literal(node: Node) -> bool:
    if not (isinstance(node, Scalar) and node.style == "literal" and isinstance(node.value, str)):
        return False
    lines = node.value.split("\n")
    return all(line and line[0] not in " #" and all(_printable(c) for c in line) for line in lines)


def _attach(head: str, node: Node, indent: int) -> list[str]:
    """`head` (`key:`, `-`, `?`, `:`) followed by `node`, whose block content sits at `indent`."""
    props = _props(node)
    if _is_block(node):
        return [head + (" " + props if props else ""), *_block_lines(node, indent)]
    if _literal(node):
        assert isinstance(node, Scalar)
        lines = [" " * indent + line for line in str(node.value).split("\n")]
        return [head + (" " + props if props else "") + " |-", *lines]
    return [head + " " + _inline(node)]


def _block_lines(node: Node, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(node, Seq):
        for item in node.items:
            lines += _attach(pad + "-", item, indent + 2)
        return lines
    assert isinstance(node, Map)
    for key, value in node.pairs:
        if _simple_key(key):
            text = _inline(key)
            if isinstance(key, Alias) or text.startswith("*"):
                text += " "
            lines += _attach(pad + text + ":", value, indent + 2)
        else:
            lines += _attach(pad + "?", key, indent + 2)
            lines += _attach(pad + ":", value, indent + 2)
    return lines


def render_document(node: Node) -> str:
    """One document, without its `---` line."""
    if _is_block(node):
        props = _props(node)
        head = f"--- {props}\n" if props else ""
        return head + "\n".join(_block_lines(node, 0)) + "\n"
    return "--- " + _inline(node) + "\n"


def render(documents: list[Node], explicit_start: bool = False) -> str:
    texts = [render_document(doc) for doc in documents]
    out = []
    for index, text in enumerate(texts):
        if (index or explicit_start) and not text.startswith("---"):
            out.append("---\n")
        out.append(text)
    return "".join(out)


def render_data(documents: list[Any]) -> str:
    return render([to_tree(doc) for doc in documents])


# --- walking the tree: every node with a setter -----------------------------------------------


@dataclass(eq=False)
class Slot:
    node: Node
    set: Callable[[Node], None]
    path: tuple[Any, ...]
    """Field path of the node (keys as text), for choosing replacement values."""
    parent: Node | None = None
    is_key: bool = False


def _children(node: Node, path: tuple[Any, ...]) -> list[Slot]:
    out: list[Slot] = []
    if isinstance(node, Map):
        for index, (key, _value) in enumerate(node.pairs):
            name = key.value if isinstance(key, Scalar) else "?"

            def set_key(new: Node, n: Map = node, i: int = index) -> None:
                n.pairs[i] = (new, n.pairs[i][1])

            def set_value(new: Node, n: Map = node, i: int = index) -> None:
                n.pairs[i] = (n.pairs[i][0], new)

            out.append(Slot(key, set_key, (*path, name), node, True))
            out.append(Slot(node.pairs[index][1], set_value, (*path, name), node))
    elif isinstance(node, Seq):
        for index, item in enumerate(node.items):

            def set_item(new: Node, n: Seq = node, i: int = index) -> None:
                n.items[i] = new

            out.append(Slot(item, set_item, (*path, index), node))
    return out


def slots(root: Node, limit: int = 400) -> list[Slot]:
    """The nodes below `root` in document order (root excluded), each with a function that
    replaces it; at most `limit` of them."""
    out: list[Slot] = []
    stack = list(reversed(_children(root, ())))
    while stack and len(out) < limit:
        slot = stack.pop()
        out.append(slot)
        stack.extend(reversed(_children(slot.node, slot.path)))
    return out


# --- values -----------------------------------------------------------------------------------

CONTROL_CHARS = "\n\r\t\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\x9b\u2028\u2029\ufeff\u202e\u200b"
ANSI = ["\x1b[31m", "\x1b[0m", "\x1b]0;owned\x07", "\x1b[2J\x1b[H", "\x1b[1A\r"]

control_text = st.one_of(
    st.text(
        alphabet=st.sampled_from(list(CONTROL_CHARS) + list("ab:-_ /\\\"'#&*!{}[],")), max_size=12
    ),
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(["", "nas", "tank/home", "zfsCommand"]),
        st.sampled_from(ANSI + list(CONTROL_CHARS)),
        st.sampled_from(["", "x", "ssh"]),
    ),
)
"""Strings with newlines, CR, tabs, ANSI escapes, NUL, DEL, C1 controls, line separators."""

# fmt: off
LABELS = [
    "a", "nas", "off-site-2", "0", "a" * 63, "a" * 64, "a-", "-a", "a--b", "Nas", "NAS", "na s",
    "na_s", "ná", "", "nas\n", "\nnas", "nas ", "1" * 63, "a.b",
]
FILESYSTEMS = [
    "vault", "vault/nas", "vault nas/x", "/vault", "vault/", "vault//nas", "vault/./nas",
    "vault/../nas", ".", "..", "...", ".x/y", "x./y", "a/.", "vault@snap", "vault#bm", "a" * 255,
    "a" * 256, "/".join(["a"] * 128), "vault/nas\n", "vault\n/nas", "vault:x/y-z_1.2", " ", "",
    "tank/home<", "ü",
]
PREFIXES = ["zr_", "a", "a" * 64, "a" * 65, "", "zr snap", "zr/", "zr@", "zr_\n", ":.-_", "Zr9"]
PROPERTIES = [
    "readonly", "com.example:backup", "a", "0", "ReadOnly", "", "-x", "_x", ".x", "x y", "x\n",
    "casesensitivity", "normalization", "utf8only", "mountpoint", "a" * 300, "ü",
]
DURATIONS = [
    "15m", "1s", "1w", "0m", "00m", "01m", "0s", "1h30m", "15", "15M", "1.5h", " 15m", "15m ",
    "15m\n", "-1m", "+1m", "1y", "m", "", "0" * 5000 + "1s", "9" * 5000 + "s",
    "99999999999999999999w", "\u0663m", "1\u200bm",
]
GRIDS = [
    "1x1h(keep=all) | 24x1h | 14x1d", "1x1h", "24x1h | 1x1d", "2x1d | 1x1h", "0x1h", "1x0h",
    "1x1h(keep=0)", "1x1h(keep=all", "x", "", " ", "|", "1x1h|", "1x1h(keep=all) | 1x1m",
    "99999999999999999999x1h", "1x1h\n",
]
CRONS = [
    "0 3 * * *", "*/30 * * * *", "@daily", "@hourly", "@reboot", "0 3 * *", "60 * * * *",
    "* * 31 2 *", "0 0 * * 7", "0 0 * jan-dec sun-sat", "*/0 * * * *", "", " ", "@", "* * * * * *",
    "0 3 * * *\n", "9999999999999999999 * * * *",
]
REGEXES = [
    "T000000Z$", "^manual-", "", ".*", "(a+)+$", "(a|a)*b", "(.*a){20}", "a{99999999999}",
    "x{4294967295}", "(" * 500 + ")" * 500, "(" * 99 + ")" * 99, "(unclosed", "[", "\\", "a**",
    "(?<=a+)b", "(?P<x>a)(?P<x>b)", "(?i)a(?s)", "\\p{L}", "(?P<n>a)(?P=n", "[z-a]", "\n", "a\x00b",
    "(?#comment", "\\1(a)", "(a)\\1", "(?<=a|bc)d", "x" * 10_000, "x" * 1000, "x" * 1001,
    "a{1000}", "a{1001}", "(a{1000}){1000}", "T000000Z\\z", "\\pL", "\\p{Greek}", "\\Q.\\E",
    "(?U)a*", "[[:alpha:]]", "\\C", "(?P<n>a)", "(?<n>a)", "\\b", "\\Z",
]
SSH_OPTIONS = [
    "ServerAliveInterval=30", "A=b", "a=b", "=b", "A=", "A b=c", "A=b\n", "1A=b", "A=b c", "A=b=c",
    "",
]
PORTS: list[Any] = [1, 22, 65535, 0, 65536, -1, 2**31, 2**63, 2**64, 22.0, 22.5, "22", True]
LAST_NS: list[Any] = [1, 3, 2**63, 2**100, 0, -1, 1.0, 3.5, "3", True, False]
BOOLEANS: list[Any] = [True, False, "yes", "no", "true", "True", "on", 1, 0, 1.0]
SCALARS: list[Any] = [
    None, True, False, 0, 1, -1, 22, 2**64, 1.5, 22.0, float("inf"), "", " ", "yes", "no", "on",
    "true", "22", "null", "~", "15m", "0x1F", "1_000", "2001-12-14", "local", "ssh",
]
# fmt: on
ENUMS = {
    "transport": ["local", "ssh", "Local", "SSH", "telnet", ""],
    "protection": ["resumable", "incremental", "none", "None", "always", ""],
    "initialReplication": ["mostRecent", "all", "fail", "most_recent", "mostrecent", "All"],
    "kind": ["Host", "Policy", "host", "HOST", "Widget", "Manifests", ""],
    "apiVersion": [API_VERSION, "zfs-reconciler.dev/v1", "zfs-reconciler.dev/v1alpha1 ", "v1", ""],
}

_FIELD_VALUES: dict[str, list[Any]] = {
    "name": LABELS,
    "root": FILESYSTEMS,
    "prefix": PREFIXES,
    "interval": DURATIONS,
    "grid": GRIDS,
    "cron": CRONS,
    "regex": REGEXES,
    "port": PORTS,
    "lastN": LAST_NS,
    "host": ["nas", "backup", "b", "", "backup.example.org", "::1", "nas\n"],
    "user": ["zrep", "", None, "root\n"],
    "identityFile": ["/etc/key", "", None, "key\x00"],
    **ENUMS,
}
_LIST_VALUES: dict[str, list[Any]] = {
    "include": REGEXES,
    "options": SSH_OPTIONS,
    "inherit": PROPERTIES,
    "zfsCommand": ["zfs", "sudo", "", "zfs\n", "-", " "],
}
RULES: list[Any] = [
    {"grid": "24x1h"},
    {"lastN": 3},
    {"regex": "x$"},
    {"last_n": 3},
    {"LastN": 3},
    {"lastn": 3},
    {"grid": "24x1h", "lastN": 3},
    {},
    {"keep": 1},
    {"lastN": 3, "foo": 1},
    "lastN: 3",
    3,
    None,
    [{"lastN": 3}],
]
_FLAGS = {"raw", "compressed", "largeBlocks", "embeddedData", "allowRollback", "allowFullResync"}


def json_values(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    """Any JSON-like value: what a document could hold anywhere."""
    scalars = st.one_of(
        st.sampled_from(SCALARS),
        st.integers(),
        st.text(max_size=12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def field_values(path: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """Values for the field at `path`: right, boundary and wrong ones for that field."""
    name = next((part for part in reversed(path) if isinstance(part, str)), "")
    parent = path[-2] if len(path) > 1 else None
    options: list[st.SearchStrategy[Any]] = []
    if path and isinstance(path[-1], int) and name in _LIST_VALUES:
        options.append(st.sampled_from(_LIST_VALUES[name]))
    elif name in _LIST_VALUES:
        options.append(st.lists(st.sampled_from(_LIST_VALUES[name]), max_size=3))
    if name in _FIELD_VALUES:
        options.append(st.sampled_from(_FIELD_VALUES[name]))
    if name == "keep":
        rules = st.sampled_from(RULES)
        options.append(rules if isinstance(path[-1], int) else st.lists(rules, max_size=3))
    if name in _FLAGS or (name == "properties" and parent == "send"):
        options.append(st.sampled_from(BOOLEANS))
    if name == "filesystems" or parent == "filesystems":
        options.append(
            st.dictionaries(st.sampled_from(FILESYSTEMS), st.sampled_from(BOOLEANS), max_size=3)
        )
    if name == "override" or parent == "override":
        options.append(
            st.dictionaries(st.sampled_from(PROPERTIES), st.sampled_from(SCALARS), max_size=3)
        )
    if name == "labels" or parent == "labels":
        values = st.one_of(st.text(max_size=10), st.sampled_from(SCALARS), control_text)
        options.append(st.dictionaries(st.text(max_size=10), values, max_size=3))
    generic = st.one_of(st.sampled_from(SCALARS), control_text, json_values())
    if not options:
        return generic
    specific = st.one_of(*options)
    return st.one_of(specific, specific, specific, generic)  # mostly the field's own values


def edge_values(value: Any) -> st.SearchStrategy[Any]:
    """`value` pushed to the edges of its type: for a string, a trailing or leading newline or
    space, a control character, other case, padded to the lengths where limits sit (63, 64,
    255, 256, 1000, 1001), emptied; for a number, its float twin, its string, its neighbours;
    for a boolean, its string and number; for a list, its items repeated to 0, 1, 15, 16, 17
    or 100 of them."""
    if isinstance(value, bool):
        return st.sampled_from([str(value).lower(), int(value), float(value), None, not value])
    if isinstance(value, int):
        numbers = [value - 1, value + 1, 0, -value, 2**63, 2**64, -(2**63)]
        return st.sampled_from([float(value), float(value) + 0.5, str(value), True, *numbers])
    if isinstance(value, list):  # lengths where limits sit (16 replication targets...)
        if not value:
            return st.sampled_from([[], [None], [""]])
        lengths = [0, 1, 15, 16, 17, 100]
        return st.sampled_from([(value * (n // len(value) + 1))[:n] for n in lengths])
    if not isinstance(value, str):
        return st.sampled_from([None, "", 0])
    return st.one_of(
        st.sampled_from(
            [
                value + "\n", "\n" + value, value + " ", " " + value, value + "\r\n",
                value + "\x00", value + "\x1b[0m", value.upper(), value.title(), "", " ",
                value + "\u2028", value + "/", "/" + value, value + "..", value * 2,
            ]
        ),
        st.sampled_from([63, 64, 255, 256, 1000, 1001]).map(
            lambda n: (value * (n // max(len(value), 1) + 1))[:n] if value else "a" * n
        ),
    )  # fmt: skip


def _rename_choices(name: str) -> list[str]:
    snake = _snake(name)
    choices = [
        snake,
        name.lower(),
        name.upper(),
        name[:1].upper() + name[1:],
        name + " ",
        " " + name,
        name.replace("a", "\u0430", 1),  # Cyrillic a
        snake.replace("_", "-"),
        name + "\n",
        name + "\x1b[0m",
        "",
    ]
    return [choice for choice in choices if choice != name]


# --- mutations of valid manifests -------------------------------------------------------------

# fmt: off
TAGS = [
    "!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!set", "!!omap", "!!pairs",
    "!!map", "!!seq", "!!timestamp", "!!merge", "!!value", "!custom", "!", "!e!x",
    "!<tag:yaml.org,2002:str>", "!<tag:yaml.org,2002:bool>", "!!python/object/apply:os.system",
    "!!python/name:os.system", "!<!>",
]
# fmt: on
TAGGED_SCALARS = ["maybe", "yes", "x", "aGVsbG8=", "!!!", "1", "2001-12-14", "", "~", "0x1F"]


@st.composite
def _new_node(draw: st.DrawFn, path: tuple[Any, ...]) -> Node:
    """A replacement node for the field at `path`."""
    kind = draw(st.sampled_from(["value", "value", "value", "tagged", "raw", "control"]))
    if kind == "value":
        return to_tree(draw(field_values(path)), flow=draw(st.booleans()))
    if kind == "tagged":
        return Scalar(draw(st.sampled_from(TAGGED_SCALARS)), tag=draw(st.sampled_from(TAGS)))
    if kind == "raw":
        raw = draw(
            st.sampled_from(
                [
                    "yes",
                    "no",
                    "on",
                    "off",
                    "~",
                    "null",
                    "Null",
                    "NULL",
                    "TRUE",
                    "True",
                    "0x1F",
                    "0o17",
                    "017",
                    "1_000",
                    "1e3",
                    ".inf",
                    "-.inf",
                    ".nan",
                    ".NaN",
                    "2001-12-14",
                    "2001-12-14t21:59:43.10-05:00",
                    "12:30:00",
                    "=",
                    "<<",
                    "!",
                    "&",
                    "*",
                    "|",
                    ">",
                    "-",
                    "?",
                    ":",
                    "%",
                    "@x",
                    "`x",
                    "'",
                    '"',
                    "{",
                    "[",
                    "]",
                    "}",
                    "\\",
                    "#",
                    "\t",
                    "[]",
                    "{}",
                    '""',
                    "''",
                    "!!binary |",
                ]
            )
        )
        return Scalar(raw, style="raw")
    text = draw(control_text)
    return Scalar(text, style=draw(st.sampled_from(["double", "raw", "single", "plain"])))


def _pick(draw: st.DrawFn, candidates: list[Slot]) -> Slot | None:
    if not candidates:
        return None
    return candidates[draw(st.integers(0, len(candidates) - 1))]


def _nest(node: Node, depth: int, seq: bool, flow: bool) -> Node:
    for _ in range(depth):
        node = Seq([node], flow=flow) if seq else Map([(Scalar("a"), node)], flow=flow)
    return node


_anchor_counter = st.integers(0, 10**6).map(lambda n: f"x{n}")


_TREE_OPS = [
    "edge", "edge", "drop", "duplicate", "rename", "replace", "replace", "swap", "nest", "alias",
    "merge", "tag", "complex_key", "control", "style", "extra", "null_doc",
]  # fmt: skip


def _mutate_once(draw: st.DrawFn, docs: list[Node]) -> None:
    """One random mutation of one document (in place)."""
    index = draw(st.integers(0, len(docs) - 1))
    root = docs[index]
    every = slots(root)
    values = [s for s in every if not s.is_key]
    keys = [s for s in every if s.is_key]
    maps = [s for s in values if isinstance(s.node, Map)]
    if isinstance(root, Map):
        maps.append(Slot(root, lambda new: docs.__setitem__(index, new), ()))
    op = draw(st.sampled_from(_TREE_OPS))
    if op in ("drop", "duplicate", "extra", "merge", "complex_key"):
        slot = _pick(draw, maps)
        if slot is None:
            return
        node = slot.node
        assert isinstance(node, Map)
        if op == "drop" and node.pairs:
            del node.pairs[draw(st.integers(0, len(node.pairs) - 1))]
        elif op == "duplicate" and node.pairs:
            pair = node.pairs[draw(st.integers(0, len(node.pairs) - 1))]
            same = draw(st.booleans())
            new_value = copy.deepcopy(pair[1]) if same else draw(_new_node(slot.path))
            node.pairs.insert(
                draw(st.integers(0, len(node.pairs))), (copy.deepcopy(pair[0]), new_value)
            )
        elif op == "extra":
            key = draw(
                st.one_of(st.sampled_from(sorted(SNAKE_FIELDS)), st.text(max_size=8), control_text)
            )
            node.pairs.append((Scalar(key), draw(_new_node((*slot.path, key)))))
        elif op == "merge":
            earlier = [s for s in maps if s.node is not node and isinstance(s.node, Map)]
            target = _pick(draw, earlier)
            if target is not None and draw(st.booleans()):
                name = draw(_anchor_counter)
                target.node.anchor = name
                merged: Node = Alias(name=name)
                if draw(st.booleans()):
                    merged = Seq([Alias(name=name), Alias(name=name)], flow=True)
            else:
                merged = draw(
                    st.sampled_from(
                        [
                            to_tree({"transport": "local"}, flow=True),
                            to_tree({"name": "nas"}, flow=True),
                            Scalar(1),
                            Scalar("x"),
                            to_tree([{"a": 1}, 2], flow=True),
                        ]
                    )
                )
            node.pairs.insert(draw(st.integers(0, len(node.pairs))), (Scalar("<<"), merged))
        else:  # complex key
            key = draw(
                st.sampled_from(
                    [
                        to_tree(["a", "b"], flow=True),
                        to_tree({"a": 1}, flow=True),
                        to_tree(["apiVersion"], flow=False),
                        Scalar(None),
                        Scalar(True),
                        Scalar(22),
                        Scalar(1.5),
                        Scalar("x", tag="!!binary"),
                    ]
                )
            )
            node.pairs.insert(
                draw(st.integers(0, len(node.pairs))), (copy.deepcopy(key), Scalar(1))
            )
        return
    if op == "null_doc":
        docs[index] = draw(
            st.sampled_from(
                [
                    Scalar(None),
                    Scalar("foo"),
                    Scalar(1),
                    to_tree([root]),
                    Seq(),
                    Map(),
                    Scalar("", style="raw"),
                ]
            )
        )
        return
    if op == "rename":
        slot = _pick(
            draw, [s for s in keys if isinstance(s.node, Scalar) and isinstance(s.node.value, str)]
        )
        if slot is not None:
            assert isinstance(slot.node, Scalar)
            slot.set(Scalar(draw(st.sampled_from(_rename_choices(slot.node.value) or ["x"]))))
        return
    slot = _pick(draw, values if op != "control" else values + keys)
    if slot is None:
        return
    if op == "replace":
        slot.set(draw(_new_node(slot.path)))
    elif op == "edge":
        node = slot.node
        if isinstance(node, Scalar) and node.style != "raw":
            value = draw(edge_values(node.value))
            slot.set(Scalar(value, style=draw(st.sampled_from(["auto", "double", "single"]))))
    elif op == "swap":
        node = slot.node
        if isinstance(node, Seq):
            slot.set(
                Map([(Scalar(str(i)), item) for i, item in enumerate(node.items)], flow=node.flow)
            )
        elif isinstance(node, Map):
            as_items = draw(st.booleans())
            slot.set(
                Seq(
                    [v for _, v in node.pairs] if as_items else [Map([p]) for p in node.pairs],
                    flow=node.flow,
                )
            )
        else:
            slot.set(Seq([node], flow=draw(st.booleans())))
    elif op == "nest":
        depth = draw(st.integers(1, 50))  # deeper nesting: `_trick_deep`, as text
        slot.set(_nest(slot.node, depth, draw(st.booleans()), draw(st.booleans())))
    elif op == "alias":
        position = {id(s): i for i, s in enumerate(every)}
        later = [s for s in values if position[id(s)] > position[id(slot)]]
        target = _pick(draw, later)
        if target is not None:
            name = draw(_anchor_counter)
            slot.node.anchor = name
            target.set(Alias(name=name))
    elif op == "tag":
        slot.node.tag = draw(st.sampled_from(TAGS))
    elif op == "control":
        text = draw(control_text)
        style = draw(st.sampled_from(["double", "double", "raw", "single", "plain"]))
        node = slot.node
        if isinstance(node, Scalar) and isinstance(node.value, str):
            at = draw(st.integers(0, len(node.value)))
            text = node.value[:at] + text + node.value[at:]
        slot.set(Scalar(text, style=style))
    elif op == "style":
        node = slot.node
        if isinstance(node, Map | Seq):
            node.flow = not node.flow
        elif isinstance(node, Scalar):
            node.style = draw(st.sampled_from(["plain", "single", "double", "literal", "auto"]))


@st.composite
def mutated_trees(draw: st.DrawFn, max_mutations: int = 4) -> list[Node]:
    seeds = draw(st.sampled_from(SEED_SETS))
    flow = draw(st.sampled_from([False, False, True]))
    docs = [to_tree(copy.deepcopy(doc), flow=flow) for doc in seeds]
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, max_mutations]))):
        _mutate_once(draw, docs)
    return docs


@st.composite
def mutated_manifests(draw: st.DrawFn) -> bytes:
    """A valid manifest file (example.yaml or a richer set) after a few random mutations."""
    docs = draw(mutated_trees())
    text = render(docs, explicit_start=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def snake_case_inputs(draw: st.DrawFn) -> tuple[bytes, str]:
    """A valid file with exactly one camelCase field (where it is a field) spelled snake_case,
    sometimes next to its camelCase spelling; and that key, for messages."""
    seeds = draw(st.sampled_from(SEED_SETS))
    docs = [to_tree(copy.deepcopy(doc), flow=draw(st.booleans())) for doc in seeds]
    candidates = [
        slot
        for doc in docs
        for slot in slots(doc)
        if slot.is_key
        and isinstance(slot.node, Scalar)
        and slot.node.value in CAMEL_FIELDS
        and not (len(slot.path) > 1 and slot.path[-2] in FREE_MAPS)
    ]
    slot = candidates[draw(st.integers(0, len(candidates) - 1))]
    assert isinstance(slot.node, Scalar)
    camel = slot.node.value
    snake = _snake(camel)
    if draw(st.booleans()):
        slot.set(Scalar(snake, style=draw(st.sampled_from(["auto", "double", "single"]))))
    else:  # both spellings: the snake one must not be taken as the same field
        parent = slot.parent
        assert isinstance(parent, Map)
        value = next(v for k, v in parent.pairs if k is slot.node)
        parent.pairs.insert(
            draw(st.integers(0, len(parent.pairs))), (Scalar(snake), copy.deepcopy(value))
        )
    return render(docs).encode(), snake


# --- YAML-level tricks ------------------------------------------------------------------------

# fmt: off
DIRECTIVES = [
    "%YAML 1.2", "%YAML 1.1", "%YAML 1.3", "%YAML 2.0", "%YAML 1.2\n%YAML 1.2", "%YAML",
    "%YAML 1.2 extra", "%TAG ! tag:example.com,2000:", "%TAG !e! tag:example.com,2000:app/",
    "%TAG !! tag:evil.example,2000:", "%TAG !", "%FOO bar baz", "%", "%YAML 01.02",
]
# fmt: on


def _seed_text(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)) == 0:
        return EXAMPLE_TEXT
    return render_data(draw(st.sampled_from(SEED_SETS)))


@st.composite
def _trick_directives(draw: st.DrawFn) -> str:
    text = _seed_text(draw)
    directives = draw(st.lists(st.sampled_from(DIRECTIVES), min_size=1, max_size=3))
    head = "\n".join(directives) + "\n"
    where = draw(st.sampled_from(["start", "start-no-marker", "later", "comment-first"]))
    if where == "start":
        return head + "---\n" + text
    if where == "start-no-marker":
        return head + text
    if where == "comment-first":
        return "# a comment\n" + head + "---\n" + text
    return text + "...\n" + head + "---\n" + render_data([HOST_NAS])


@st.composite
def _trick_tree(draw: st.DrawFn) -> str:
    """Tags, complex keys, merges, aliases, control characters: tree mutations only."""
    docs = [to_tree(copy.deepcopy(doc)) for doc in draw(st.sampled_from(SEED_SETS))]
    for _ in range(draw(st.integers(1, 6))):
        _mutate_once(draw, docs)
    return render(docs)


def _bomb(name: str, width: int, depth: int, as_map: bool, leaf: str) -> str:
    """A flow list of anchored levels, each `width` aliases of the one before: the last
    stands for width**depth leaves."""
    levels = [f"&{name}0 {leaf}"]
    for level in range(1, depth + 1):
        refs = [f"*{name}{level - 1}"] * width
        if as_map:
            body = "{" + ", ".join(f"k{i}: {ref}" for i, ref in enumerate(refs)) + "}"
        else:
            body = "[" + ", ".join(refs) + "]"
        levels.append(f"&{name}{level} {body}")
    return "[" + ", ".join(levels) + "]"


@st.composite
def _trick_alias_bomb(draw: st.DrawFn) -> str:
    width = draw(st.integers(2, 10))
    depth = draw(st.one_of(st.integers(1, 6), st.integers(7, 40)))
    name = draw(st.sampled_from(["a", "lol", "x_"]))
    as_map = draw(st.booleans())
    leaf = draw(st.sampled_from(['"lol"', "zfs", "{a: 1}", "[x]", "''"]))
    bomb = _bomb(name, width, depth, as_map, leaf)
    docs = [to_tree(copy.deepcopy(doc)) for doc in draw(st.sampled_from(SEED_SETS))]
    root = docs[draw(st.integers(0, len(docs) - 1))]
    style = draw(st.sampled_from(["in-place", "define-then-use", "self", "merge"]))
    targets = [s for s in slots(root) if not s.is_key]
    slot = targets[draw(st.integers(0, len(targets) - 1))]
    if style == "in-place":
        slot.set(Scalar(bomb, style="raw"))
    elif style == "define-then-use" and isinstance(root, Map):
        root.pairs.insert(0, (Scalar("x-bomb"), Scalar(bomb, style="raw")))
        slot.set(Alias(name=f"{name}{depth}"))
    elif style == "self":  # an alias inside the node it names
        slot.set(Scalar(f"&{name} [*{name}, *{name}]", style="raw"))
    else:
        merge = f"{{<<: *{name}{depth}}}"
        slot.set(Scalar(f"[{_bomb(name, width, depth, True, '{a: 1}')}, {merge}]", style="raw"))
    return render(docs)


@st.composite
def _trick_deep(draw: st.DrawFn) -> str:
    depth = draw(
        st.one_of(
            st.sampled_from(
                [10, 100, 200, 255, 256, 300, 500, 999, 1000, 1001, 5000, DEEP_NESTING]
            ),
            st.integers(1, 2000),
        )
    )
    kind = draw(
        st.sampled_from(["flow-seq", "flow-map", "unclosed", "block-seq", "block-map", "mixed"])
    )
    docs = [to_tree(copy.deepcopy(doc)) for doc in draw(st.sampled_from(SEED_SETS))]
    root = docs[draw(st.integers(0, len(docs) - 1))]
    if kind in ("block-seq", "block-map") and isinstance(root, Map):
        # block nesting only fits at the end of a top-level block mapping
        depth = min(depth, 600) if kind == "block-map" else depth
        key = draw(st.sampled_from(["spec", "metadata", "extra"]))
        root.pairs = [p for p in root.pairs if not (isinstance(p[0], Scalar) and p[0].value == key)]
        position = docs.index(root)
        text = render(docs[: position + 1])
        rest = docs[position + 1 :]
        if kind == "block-seq":
            nested = f"{key}:\n  " + "- " * depth + "x\n"
        else:
            nested = f"{key}:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(depth))
        return text + nested + ("---\n" + render(rest) if rest else "")
    if kind == "flow-seq":
        raw = "[" * depth + "]" * depth
    elif kind == "flow-map":
        raw = "{a: " * depth + "x" + "}" * depth
    elif kind == "unclosed":
        raw = draw(st.sampled_from(["[", "{a: ", "[{a: "])) * depth
    else:
        raw = "[{a: " * (depth // 2) + "x" + "}]" * (depth // 2)
    targets = [s for s in slots(root) if not s.is_key]
    targets[draw(st.integers(0, len(targets) - 1))].set(Scalar(raw, style="raw"))
    return render(docs)


@st.composite
def _trick_huge(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            [
                "long-scalar",
                "many-keys",
                "many-docs",
                "many-valid-docs",
                "huge-file",
                "long-key",
                "long-line",
                "many-nodes",
            ]
        )
    )
    if kind == "huge-file":
        text = _seed_text(draw).encode()
        filler = draw(st.sampled_from([b"# padding\n", b"\n", b" ", b"---\n"]))
        return text + filler * (HUGE_FILE_BYTES // len(filler) + 1)
    if kind in ("many-docs", "many-valid-docs"):
        if kind == "many-docs":
            count = draw(st.sampled_from([1000, 10_000, 10_001, MANY_DOCUMENTS]))
            body = draw(st.sampled_from(["{}\n", "x\n", "\n", "# c\n", "[]\n"]))
            return ("---\n" + body).encode() * count
        # valid documents: a few hundred (checking every one of an accepted file costs), or
        # more than any document limit allows
        count = draw(st.sampled_from([300, 20_000, MANY_DOCUMENTS]))
        host = "---\n" + render_data([HOST_NAS]).replace("name: nas", "name: h{}")
        return "".join(host.format(i) for i in range(count)).encode()
    if kind == "many-nodes":  # a small file of many nodes: a long flow list
        count = draw(st.sampled_from([5_000, 600_000]))  # accepted (cheap to check), refused
        text = render_data([HOST_NAS]).replace("transport: local", "zfsCommand: [")
        return (text.rstrip("\n") + ", ".join(["z"] * count) + "]\n").encode()
    if kind == "many-keys":
        count = draw(st.sampled_from([100, 1000, 10_000]))
        labels = {f"k{i}": "v" for i in range(count)}
        doc = copy.deepcopy(HOST_NAS)
        doc["metadata"]["labels"] = labels
        return render_data([doc]).encode()
    length = draw(st.sampled_from([63, 64, 255, 256, 1023, 1024, 1025, 65_536, 200_000]))
    doc = copy.deepcopy(draw(st.sampled_from(SEED_DOCUMENTS)))
    if kind == "long-key":
        doc["spec"]["k" * length] = 1
    elif kind == "long-line":
        return (render_data([doc]).rstrip("\n") + " " * length + "# x" * 10 + "\n").encode()
    else:
        doc["metadata"]["name"] = draw(st.sampled_from(["a", "ab-", "x y"])) * (length // 2)
    return render_data([doc]).encode()


@st.composite
def _trick_regex(draw: st.DrawFn) -> str:
    policy = copy.deepcopy(draw(st.sampled_from([POLICY_HOME, POLICY_MEDIA])))
    regex = draw(
        st.one_of(
            st.sampled_from(REGEXES),
            st.integers(1, 1200).map(lambda n: "(" * n + "a" + ")" * n),
            st.integers(1, 10**12).map(lambda n: f"a{{{n}}}"),
            st.integers(1, 60).map(lambda n: "(a+)+" * n + "$"),
            st.text(alphabet=st.sampled_from(list("()[]{}*+?|\\^$.a1-:=<!P#")), max_size=30),
        )
    )
    where = draw(st.sampled_from(["keep", "include"]))
    if where == "keep":
        policy["spec"].setdefault("retention", {"keep": []})["keep"].append({"regex": regex})
    else:
        policy["spec"]["snapshots"].setdefault("include", []).append(regex)
    return render_data([HOST_NAS, HOST_BACKUP, policy])


CORE_SCALARS = [
    "1" * 100, "1" * 101, "-" + "1" * 100, "0x" + "f" * 99, "0o" + "7" * 99, "1." + "1" * 99,
    "1e999", "-1e999", "1e-999", ".5", "1.", "+1", "-0", "0o8", "0x", "0b101", "1_000", "0017",
    "1e3", "1E3", ".Inf", "-.INF", ".NaN", "+.nan", "~", "Null", "NULL", "nULL", "TRUE", "tRUE",
    "y", "Yes", "ON", "2001-12-14", "12:30", "\u0663", "\uff11", "0x1F", "0X1F", "1__0",
]  # fmt: skip
"""Plain scalars at the edges of the YAML 1.2 core schema (numbers of 100 characters and more,
other bases, case variants of null and booleans, 1.1-only forms)."""


@st.composite
def _trick_scalars(draw: st.DrawFn) -> str:
    """A seed with plain scalars at core-schema edges in place of some values (most often the
    free-form ones, labels and property values, where a string is valid)."""
    docs = [to_tree(copy.deepcopy(doc)) for doc in draw(st.sampled_from(SEED_SETS))]
    targets = [
        slot
        for doc in docs
        for slot in slots(doc)
        if not slot.is_key and isinstance(slot.node, Scalar)
    ]
    free = [slot for slot in targets if len(slot.path) > 1 and slot.path[-2] in FREE_MAPS]
    for _ in range(draw(st.integers(1, 3))):
        pool = free if free and draw(st.booleans()) else targets
        slot = pool[draw(st.integers(0, len(pool) - 1))]
        raw = draw(st.sampled_from(CORE_SCALARS))
        tag = draw(st.sampled_from([None, None, None, "!!str", "!!int", "!!float", "!!bool", "!"]))
        slot.set(Scalar(raw, style="raw", tag=tag))
    return render(docs)


@st.composite
def _trick_snake(draw: st.DrawFn) -> str:
    data, _ = draw(snake_case_inputs())
    return data.decode()


ENCODINGS = ["utf-16-le", "utf-16-be", "utf-16", "utf-32", "utf-32-le", "utf-8-sig", "latin-1"]
# fmt: off
BAD_BYTES = [
    b"\xff", b"\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80",
    b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x00\x00", b"\xe2\x80\xa8", b"\xc2\x85",
    b"\xf4\x90\x80\x80", b"\xe2\x82",
]
# fmt: on


@st.composite
def _trick_encoding(draw: st.DrawFn) -> bytes:
    text = _seed_text(draw)
    if draw(st.booleans()):
        text = text.replace("nas", "näs\u00e9\U0001f600")
    kind = draw(st.sampled_from(["encode", "bad-bytes", "bom-middle", "nul", "truncate"]))
    if kind == "encode":
        return text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    data = text.encode()
    at = draw(st.integers(0, len(data)))
    if kind == "bad-bytes":
        return data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    if kind == "bom-middle":
        return data[:at] + b"\xef\xbb\xbf" + data[at:]
    if kind == "nul":
        return data[:at] + b"\x00" * draw(st.integers(1, 3)) + data[at:]
    return data[: max(0, len(data) - draw(st.integers(1, 3)))] + "é".encode()[:1]


# fmt: off
EMPTY_INPUTS = [
    b"", b"\n", b"   ", b"---", b"---\n", b"---\n...\n", b"...\n", b"# only a comment\n",
    b"\xef\xbb\xbf", b"~", b"null", b"--- |\n  text\n", b"--- >\n", b"---\n---\n---\n", b"\t",
    b"\r\n", b"\r", b"%YAML 1.2\n---\n", b"--- !!null\n", b"--- ''\n", b"{}", b"[]", b"- \n",
]
NON_MAPPINGS = [
    "- a list is not a manifest\n", "just a string\n", "42\n", "3.14\n", "true\n", "null\n", "[]\n",
    "[[]]\n", "!!binary aGVsbG8=\n", "!!set {a, b}\n", "!!omap [a: 1]\n", "!!pairs [a: 1]\n",
    "!custom {}\n", "2001-12-14\n", "'apiVersion: x'\n", "|\n  apiVersion: x\n", "- {}\n- {}\n",
    "--- !!str\napiVersion: x\n",
]
SYNTAX = [
    'a: "unterminated\n', "a: 'unterminated\n", "a: [1, 2\n", "a: {b: 1\n", "a:\n\tb: 1\n",
    "a: b: c\n", "- a\nb: c\n", "a: &\n", "a: *nope\n", "a: !\n", "@foo\n", "`x\n", "a: 1\n%x\n",
    "? \n", ": x\n", 'a: "\\q"\n', 'a: "\\u00"\n', 'a: "\\x00\\x1b[31m"\n', "a: |\n b\n  c\n",
    "---\n--- a\n---", "a: 1\n a: 2\n", "&a a: *a\n", "[a, b]: c\n", "? [a]\n: [b]\n",
    "a: b\n---\n---\n!!python/object/apply:os.system [echo]\n", "a:\n- b\n -c\n", "a: >-\n\n\n",
    "\ufeffa: 1\n", "a: 1\r\nb: 2\r", "a: 1\x85b: 2\n", "a: 1\u2028b: 2\n", "'a\nb': 1\n",
]
# fmt: on


@st.composite
def _trick_small(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["empty", "non-mapping", "syntax", "line-endings"]))
    if kind == "empty":
        return draw(st.sampled_from(EMPTY_INPUTS))
    if kind == "line-endings":
        ending = draw(st.sampled_from(["\r\n", "\r", "\x85", "\u2028", "\n\r", "\r\r\n"]))
        return _seed_text(draw).replace("\n", ending).encode()
    parts = draw(
        st.lists(
            st.sampled_from(NON_MAPPINGS if kind == "non-mapping" else SYNTAX),
            min_size=1,
            max_size=3,
        )
    )
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), render_data([HOST_NAS]))
    return "---\n".join(parts).encode()


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


yaml_tricks: st.SearchStrategy[bytes] = st.one_of(
    _trick_directives().map(_to_bytes),
    _trick_tree().map(_to_bytes),
    _trick_alias_bomb().map(_to_bytes),
    _trick_deep().map(_to_bytes),
    _trick_huge(),
    _trick_regex().map(_to_bytes),
    _trick_scalars().map(_to_bytes),
    _trick_snake().map(_to_bytes),
    _trick_encoding(),
    _trick_small(),
)
"""The YAML-level classes of bad input, generated."""

# --- bytes ------------------------------------------------------------------------------------

_YAMLISH = st.sampled_from([*"abc019 \n\t\r:-?[]{},#&*!|>'\"%@`<=~.\\/", "\x00", "\x1b", "é"])
raw_bytes = st.one_of(
    st.binary(max_size=2000),
    st.text(alphabet=_YAMLISH, max_size=400).map(lambda text: text.encode()),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
"""Arbitrary bytes, and arbitrary UTF-8 text made of YAML's punctuation (which gets past the
decoder to the parser)."""

# fmt: off
INTERESTING_BYTES = [
    b"\x00", b"\r", b"\n", b"\t", b"\x1b", b"\x7f", b"\xff", b"\xfe", b"\xef\xbb\xbf", b"\xc0\x80",
    b":", b"{", b"[", b"&", b"*", b"!", b"%", b"|", b">", b'"', b"'", b"\\", b"---", b"...",
    b"<<: ", b"? ", b"- ", b"#", b"!!binary ", b"&a ", b"*a", b"\n  ", b"\n---\n",
]
# fmt: on


@st.composite
def spliced_bytes(draw: st.DrawFn) -> bytes:
    """A valid manifest's bytes with random bytes inserted, removed, replaced or copied."""
    data = bytearray(_seed_text(draw).encode())
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "copy"]))
        at = draw(st.integers(0, len(data)))
        chunk = draw(
            st.one_of(st.sampled_from(INTERESTING_BYTES), st.binary(min_size=1, max_size=8))
        )
        if op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "replace":
            data[at : at + len(chunk)] = chunk
        else:
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + draw(st.integers(1, 64))]
    return bytes(data)


# --- file names -------------------------------------------------------------------------------

_NAME_CHARS = list("abcXYZ019 .-_:\\\"'$;&|<>*?[]#%()=+,~`@!") + list(
    CONTROL_CHARS.replace("\x00", "")
)


def _valid_name(name: str) -> bool:
    try:
        encoded = os.fsencode(name)
    except UnicodeError:
        return False
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\x00" not in name
        and len(encoded) <= 200
    )


file_names = st.one_of(
    st.text(alphabet=st.sampled_from(_NAME_CHARS), min_size=1, max_size=20),
    st.text(min_size=1, max_size=12),
    st.binary(min_size=1, max_size=20).map(os.fsdecode),  # not UTF-8: surrogate-escaped
    st.sampled_from(ANSI).map(lambda ansi: f"red{ansi}.yaml"),
).filter(_valid_name)
"""File names with newlines, CR, tabs, ANSI escapes, quotes, non-UTF-8 bytes..."""

# --- Python data for the differential test ----------------------------------------------------


def _data_slots(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) inside `data`."""
    out: list[tuple[Any, ...]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.append((*path, key))
            out += _data_slots(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            out.append((*path, index))
            out += _data_slots(item, (*path, index))
    return out


def _value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


# Fields that are absent from a seed but can be added (path of the parent, field name).
_OPTIONAL_FIELDS = [
    (("metadata",), "labels"),
    (("spec",), "transport"),
    (("spec",), "ssh"),
    (("spec",), "zfsCommand"),
    (("spec", "ssh"), "port"),
    (("spec", "ssh"), "user"),
    (("spec", "ssh"), "identityFile"),
    (("spec", "ssh"), "options"),
    (("spec", "snapshots"), "interval"),
    (("spec", "snapshots"), "cron"),
    (("spec", "snapshots"), "include"),
    (("spec",), "retention"),
    (("spec",), "replication"),
    (("spec", "replication", 0), "retention"),
    (("spec", "replication", 0), "send"),
    (("spec", "replication", 0), "receive"),
    (("spec", "replication", 0, "receive"), "properties"),
    (("spec", "replication", 0, "send"), "properties"),
]


_DOCUMENT_OPS = [
    "edge", "edge", "edge", "leaf", "leaf", "leaf", "set", "drop", "add", "add", "rename", "extra",
    "whole",
]  # fmt: skip


@st.composite
def near_valid_documents(draw: st.DrawFn) -> Any:
    """A valid Host or Policy document (Python data) with a few fields changed: right and
    wrong types, boundary values, patterns at their edges, snake_case and unknown keys,
    fields dropped or added."""
    document = copy.deepcopy(draw(st.sampled_from(SEED_DOCUMENTS)))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3, 4]))):  # mostly one change
        op = draw(st.sampled_from(_DOCUMENT_OPS))
        paths = _data_slots(document)
        if op == "edge":  # the value a field has, pushed to an edge of its type or pattern
            edges = [p for p in paths if not isinstance(_value_at(document, p), dict)]
            if edges:
                path = edges[draw(st.integers(0, len(edges) - 1))]
                parent = _parent(document, path)
                parent[path[-1]] = draw(edge_values(parent[path[-1]]))
            continue
        if op == "leaf":  # a scalar or a list of scalars: where the edges of a field are
            leaves = [
                path
                for path in paths
                if not isinstance(_value_at(document, path), dict)
                and not (
                    isinstance(_value_at(document, path), list)
                    and any(isinstance(item, dict | list) for item in _value_at(document, path))
                )
            ]
            paths, op = leaves or paths, "set"
        if op == "whole":
            if draw(st.integers(0, 9)) == 0:
                document = draw(json_values(max_leaves=4))
            continue
        if not paths or not isinstance(document, dict):
            continue
        if op == "add":
            parent_path, name = draw(st.sampled_from(_OPTIONAL_FIELDS))
            try:
                parent = document
                for part in parent_path:
                    parent = parent[part]
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(parent, dict):
                parent[name] = draw(field_values((*parent_path, name)))
            continue
        path = paths[draw(st.integers(0, len(paths) - 1))]
        parent = _parent(document, path)
        if op == "set":
            parent[path[-1]] = draw(field_values(path))
        elif op == "drop":
            del parent[path[-1]]
        elif op == "rename" and isinstance(parent, dict) and isinstance(path[-1], str):
            new = draw(st.sampled_from(_rename_choices(path[-1]) or ["x"]))
            parent[new] = parent.pop(path[-1])
        elif op == "extra" and isinstance(parent, dict):
            key = draw(st.one_of(st.sampled_from(sorted(SNAKE_FIELDS)), st.text(max_size=8)))
            parent[key] = draw(json_values(max_leaves=3))
    return document
