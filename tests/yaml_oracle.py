"""Two readings of an accepted manifest file, for the fuzz test (`test_fuzz_manifests.py`), which
checks that what the product accepted validates against the committed JSON Schema.

Owns:

- `yaml12_documents`: an independent reading, ruamel's pure-Python parser with values by the
  YAML 1.2 core schema (`core_scalar`) and the subset of docs/manifests.md (core tags only,
  string keys, merge keys); `OracleRefusal` for what that subset refuses;
- `product_documents`: the product's own reading (`reconciler.manifest.yamldoc`), the data
  the models validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML


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
