"""Hostile inputs beyond tree mutations, for the fuzz test (`test_fuzz_manifests.py`).

Owns the strategies:

- `yaml_tricks`: the YAML-level classes of bad input, generated (`_trick_*`): directives,
  tree tricks, alias bombs, deep nesting, huge inputs (sizes in `manifest_strategies.py`),
  hostile regular expressions, plain scalars at the edges of the YAML 1.2 core schema,
  snake_case fields, encodings and bad bytes, empty, non-mapping and broken documents;
- `raw_bytes` and `spliced_bytes`: arbitrary bytes, and a valid manifest's bytes spliced;
- `file_names`: file names with newlines, control characters, quotes, non-UTF-8 bytes.

Built on the seeds and values of `manifest_strategies.py`, the tree of `yaml_emitter.py` and
the mutations of `manifest_mutations.py`.
"""

from __future__ import annotations

import copy
import os

from hypothesis import strategies as st

from tests.manifest_mutations import _mutate_once, snake_case_inputs
from tests.manifest_strategies import (
    ANSI,
    CONTROL_CHARS,
    DEEP_NESTING,
    EXAMPLE_TEXT,
    FREE_MAPS,
    HOST_BACKUP,
    HOST_NAS,
    HUGE_FILE_BYTES,
    MANY_DOCUMENTS,
    POLICY_HOME,
    POLICY_MEDIA,
    REGEXES,
    SEED_DOCUMENTS,
    SEED_SETS,
)
from tests.yaml_emitter import Alias, Map, Scalar, render, render_data, slots, to_tree

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
