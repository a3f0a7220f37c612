"""A small YAML emitter over a YAML-level tree, for the manifest strategies
(`manifest_mutations.py`, `manifest_tricks.py`) and the fuzz test (`test_fuzz_manifests.py`,
which renders seed documents with `render_data`).

Owns the tree (`Node`: `Map`, `Seq`, `Scalar`, `Alias`, with tags, anchors, flow or block style
and raw text) built from Python data by `to_tree`; its rendering to YAML text (`render`,
`render_document`, `render_data`, `double_quoted`); and the walk over it that gives every node
with a function that replaces it (`slots`, `Slot`). Mutations of the tree can so produce what a
Python dumper never would: duplicate keys, complex keys, merge keys, aliases, odd tags, raw
control characters, deep nesting.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
