"""Mutations of the valid seed documents: the strategies `mutated_manifests` and
`snake_case_inputs` for the fuzz test (`test_fuzz_manifests.py`), and `near_valid_documents`
for the models-vs-JSON-Schema differential test (`test_schema_agreement.py`).

Owns:

- mutations of a seed set as a YAML tree (`yaml_emitter.py`): one random change at a time
  (`_mutate_once`, also used by `manifest_tricks.py`): a field dropped, duplicated, renamed or
  replaced, a value pushed to an edge of its type, a node nested, aliased, merged, tagged,
  restyled, a complex key, control characters, a document that is not a mapping;
- `mutated_manifests`: a seed set after a few of those, as bytes;
- `snake_case_inputs`: a seed set with one camelCase field spelled snake_case;
- `near_valid_documents`: a seed document as Python data with a few fields changed.

The seeds and the values drawn come from `manifest_strategies.py`.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from tests.manifest_strategies import (
    CAMEL_FIELDS,
    FREE_MAPS,
    SEED_DOCUMENTS,
    SEED_SETS,
    SNAKE_FIELDS,
    _rename_choices,
    _snake,
    control_text,
    edge_values,
    field_values,
    json_values,
)
from tests.yaml_emitter import Alias, Map, Node, Scalar, Seq, Slot, render, slots, to_tree

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
