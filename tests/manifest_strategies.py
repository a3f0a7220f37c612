"""Shared ground of the manifest fuzz test (`test_fuzz_manifests.py`), the models-vs-JSON-Schema
differential test (`test_schema_agreement.py`) and the strategy modules built for them
(`manifest_mutations.py`, `manifest_tricks.py`).

Owns:

- the sizes of the "huge" inputs (`HUGE_FILE_BYTES`, `MANY_DOCUMENTS`, `DEEP_NESTING`) and the
  fuzz profile: `fuzz_settings` (default or deep), `COUNTS` and `count_report` (the counts in
  pytest's summary);
- the seed documents: `manifests/example.yaml` and a richer valid set that uses every field
  of both kinds (`SEED_SETS`, each one a file that `reconcile validate` accepts);
- the JSON Schema oracle shared by both tests: the committed JSON Schema with its format
  checker (`schema_errors`), and the snake_case spellings of the schema's camelCase fields
  (`SNAKE_FIELDS`, `snake_keys`);
- the values the mutations draw from: right, boundary and wrong values for each field
  (`field_values`, `edge_values`), any JSON value (`json_values`), strings with control
  characters (`control_text`).

Elsewhere: the YAML tree and its emitter in `yaml_emitter.py`; the independent YAML reading of
an accepted file in `yaml_oracle.py`; the strategies `mutated_manifests`, `snake_case_inputs`
and `near_valid_documents` in `manifest_mutations.py`; `yaml_tricks`, `raw_bytes`,
`spliced_bytes` and `file_names` in `manifest_tricks.py`.

Sizes: the "huge" inputs are far beyond any sane manifest limit (64 MiB files, 100,000
documents, 100,000 nesting levels, alias expansions of 10^9 and more), so that a reader that
enforces limits refuses them at once and one that does not is caught by the tests' hang guard;
the "large but plausible" ones stay small enough (at most a few hundred KiB of YAML) for any
reader to finish in well under a second of parsing on a slow machine.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
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
        "commandTimeout": "5m",
    },
}
POLICY_HOME: dict[str, Any] = {  # every Policy field
    "apiVersion": API_VERSION,
    "kind": "Policy",
    "metadata": {
        "name": "home",
        "labels": {"tier": "gold"},
        "annotations": {
            "zfs-reconciler.dev/confirm-destroy": "3f9a2c1b7d4e",
            "example.com/owner": "ops",
        },
    },
    "spec": {
        "source": {
            "host": "nas",
            "filesystems": {"tank/home<": True, "tank/home/scratch<": False, "tank/db": True},
        },
        "snapshots": {
            "prefix": "zr_",
            "interval": "15m",
            "include": ["^manual-", "T000000Z$"],
            "hooks": [
                {
                    "when": "pre",
                    "command": ["/usr/local/sbin/db-freeze", "--all"],
                    "timeout": "30s",
                    "onFailure": "snapshot",
                },
                {"when": "post", "command": ["/usr/local/sbin/db-thaw"], "timeout": "1m"},
            ],
            "adopt": [
                {"prefix": "zrepl_", "format": "dense"},
                {"prefix": "autosnap_", "format": "sanoid", "timezone": "Europe/Berlin"},
                {"prefix": "old-", "layout": "2006-01-02_15:04"},
            ],
        },
        "retention": {
            "keep": [
                {"grid": "1x1h(keep=all) | 24x1h | 14x1d"},
                {"lastN": 3},
                {"regex": "T000000Z$"},
                {"grid": "1x1h(keep=all) | 7x1d", "match": "T0[06]0000Z$"},
                {"lastN": 2, "match": "T000000Z$"},
                {"regex": "T..0000Z$", "negate": True},
                {"regex": "T120000Z$", "negate": False},
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
                "maxLag": "2h",
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
                "retiring": True,
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

FREE_MAPS = frozenset({"labels", "annotations", "filesystems", "override"})
"""Mappings whose keys are data (labels, annotations, filter patterns, property names), not
field names."""

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
    "match": [*REGEXES, None],
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
    {"grid": "24x1h", "match": "^zr_"},
    {"lastN": 3, "match": "T000000Z$"},
    {"lastN": 3, "match": None},
    {"regex": "x$", "negate": True},
    {"regex": "x$", "negate": "true"},
    {"regex": "x$", "match": "y"},
    {"grid": "24x1h", "negate": True},
    {"lastN": 3, "negate": False},
    {"match": "x"},
    {"negate": True},
    "lastN: 3",
    3,
    None,
    [{"lastN": 3}],
]
_FLAGS = {
    "raw", "compressed", "largeBlocks", "embeddedData", "allowRollback", "allowFullResync", "negate"
}  # fmt: skip


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
