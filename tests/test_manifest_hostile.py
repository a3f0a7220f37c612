"""Broken and hostile manifests: each class of input ends in one error line with file, line and
column, never a traceback, a hang or unbounded memory (`manifest/yamldoc.py`,
`manifest/loader.py`, `manifest/limits.py`, `manifest/regex.py`, `manifest/errors.py`).

Table tests, one per class; `test_fuzz_manifests.py` checks the same properties on generated
input."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from reconciler.manifest import limits
from reconciler.manifest.errors import ManifestError, ManifestErrors, one_line
from reconciler.manifest.loader import load_manifests, parse_manifests
from reconciler.manifest.regex import RegexError, compile_regex

HOST = "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Host\nmetadata: {name: nas}\n"
POLICY = """apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank<": true}}
  snapshots: {prefix: zr_}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ManifestErrors) as caught:
        parse_manifests([("m.yaml", text)])
    return [str(error) for error in caught.value.errors]


def file_errors(paths: list[str | Path]) -> list[str]:
    with pytest.raises(ManifestErrors) as caught:
        load_manifests(paths)
    return [str(error) for error in caught.value.errors]


# --- YAML the reader refuses, each at its place -------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("x: !!bool maybe\n", "m.yaml:4:4: x: !!bool 'maybe' is not a valid bool"),
        ("x: !!int 1.5\n", "m.yaml:4:4: x: !!int '1.5' is not a valid int"),
        ("x: !!pairs [a: 1]\n", "m.yaml:4:4: x: unsupported YAML tag !!pairs"),
        ("x: !!set {a}\n", "m.yaml:4:4: x: unsupported YAML tag !!set"),
        ("x: !!binary aGk=\n", "m.yaml:4:4: x: unsupported YAML tag !!binary"),
        ("x: !local 1\n", "m.yaml:4:4: x: unsupported YAML tag !local"),
        ("? [a, b]\n: 1\n", "m.yaml:4:3: -: a mapping key must be a string, not a sequence"),
        ("? {a: 1}\n: 1\n", "m.yaml:4:3: -: a mapping key must be a string, not a mapping"),
        ("1: x\n", "m.yaml:4:1: -: a mapping key must be a string, not the number 1"),
        ("spec: {true: x}\n", "m.yaml:4:8: spec: a mapping key must be a string, not the boolean"
         " true"),
        ("x: *nowhere\n", "m.yaml:4:4: x: alias *nowhere names no complete anchor"
         " (undefined, or inside itself)"),
        ("x: &a [*a]\n", "m.yaml:4:8: x[0]: alias *a names no complete anchor"
         " (undefined, or inside itself)"),
        ("x: {<<: [1]}\n", "m.yaml:4:5: x: a merge key (<<) takes a mapping or a list of mappings"),
    ],
)  # fmt: skip
def test_what_the_reader_refuses_is_one_error_at_its_place(tail: str, expected: str) -> None:
    assert errors(HOST + tail) == [expected]


def test_a_byte_order_mark_is_allowed_only_at_the_start() -> None:
    text = HOST + "spec: {transport: local}\n"
    assert list(parse_manifests([("m.yaml", "\ufeff" + text)]).hosts) == ["nas"]
    broken = text.replace("spec:", "\ufeffspec:")  # libyaml would skip it, others read a key
    assert errors(broken) == [
        "m.yaml:4:1: -: invalid YAML: a byte order mark (U+FEFF) after the start of the file"
    ]


def test_a_yaml_directive_is_read_with_the_core_schema() -> None:
    text = "%YAML 1.1\n---\n" + HOST + "spec: {transport: local, zfsCommand: [yes]}\n"
    manifests = parse_manifests([("m.yaml", text)])
    assert manifests.hosts["nas"].spec.zfs_command == ["yes"]  # a string, as YAML 1.2 says


def test_an_unknown_yaml_version_is_a_syntax_error() -> None:
    assert errors("%YAML 2.0\n---\n" + HOST) == [
        "m.yaml:1:1: -: invalid YAML: found incompatible YAML document"
    ]


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x7f", "\ufffe"])
def test_a_control_character_in_the_text_is_an_error_with_its_position(character: str) -> None:
    (error,) = errors(HOST + f"spec: {{transport: lo{character}cal}}\n")
    assert error.startswith("m.yaml:4:")
    assert f"#x{ord(character):04x}" in error


def test_a_control_character_after_non_ascii_text_is_placed_by_character() -> None:
    (error,) = errors(HOST + "# é€\nspec: {transport: lo\x01cal}\n")
    assert error.startswith("m.yaml:5:21: -: invalid YAML: #x0001")


def test_values_resolve_by_the_yaml_1_2_core_schema() -> None:
    text = (
        HOST
        + "spec: {transport: local}\n---\n"
        + POLICY.replace(
            "snapshots: {prefix: zr_}",
            "snapshots: {prefix: zr_}\n  replication:\n"
            "    - {name: a, host: nas, root: '2026-01-01', send: {raw: !!bool true}}",
        )
    )
    manifests = parse_manifests([("m.yaml", text)])
    (target,) = manifests.policies["home"].spec.replication
    assert target.root == "2026-01-01" and target.send.raw is True


def test_anchors_aliases_and_merge_keys_work_and_locate_at_the_use() -> None:
    text = (
        HOST
        + "spec: {transport: local}\n---\n"
        + POLICY
        + "  retention: &keep {keep: [{lastN: 3}]}\n"
        + "  replication:\n"
        + "    - <<: &common {host: nas, protection: none}\n"
        + "      name: a\n"
        + "      root: backup/a\n"
        + "      retention: *keep\n"
        + "    - {<<: *common, name: b, root: backup/b, protection: resumable}\n"
    )
    manifests = parse_manifests([("m.yaml", text)])
    a, b = manifests.policies["home"].spec.replication
    assert (a.host, a.protection.value, a.retention) == ("nas", "none", a.retention)
    assert a.retention is not None and a.retention.keep[0].last_n == 3  # type: ignore[union-attr]
    assert (b.host, b.protection.value) == ("nas", "resumable")  # the mapping's own key wins
    broken = text.replace("*keep", "{keep: [{lastN: 0}]}").replace("&keep ", "")
    assert errors(broken) == [
        "m.yaml:17:34: spec.replication[0].retention.keep[0].lastN:"
        " Input should be greater than or equal to 1"
    ]


# --- limits: enforced before the work, reported as ordinary errors --------------------------------


def test_nesting_deeper_than_the_limit_is_an_error_not_a_recursion() -> None:
    depth = 100_000
    (error,) = errors(HOST + "x: " + "[" * depth + "]" * depth + "\n")
    assert error.startswith(f"m.yaml:4:{3 + limits.MAX_DEPTH}: x")
    assert error.endswith(f"nested more than {limits.MAX_DEPTH} levels deep")


def test_nesting_at_the_limit_is_read() -> None:
    depth = limits.MAX_DEPTH - 1  # the document's own mapping is the first level
    assert errors(HOST + "x: " + "[" * depth + "]" * depth + "\n") == [
        "m.yaml:1:1: spec: required field is missing",
        "m.yaml:4:1: x: unknown field (allowed: apiVersion, kind, metadata, spec)",
    ]


def test_aliases_cannot_nest_deeper_than_the_limit() -> None:
    lines = ["a0: &a0 [x]"] + [f"a{k}: &a{k} [*a{k - 1}]" for k in range(1, 40)]
    assert errors(HOST + "\n".join(lines) + "\n") == [
        f"m.yaml:35:12: a31[0]: nested more than {limits.MAX_DEPTH} levels deep (through *a30)"
    ]


def test_an_alias_bomb_stops_at_the_expansion_limit() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):  # 9**10 nodes if expanded
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    (error,) = errors(HOST + "\n".join(lines) + "\n")
    assert error.endswith(f"aliases expand to more than {limits.MAX_ALIAS_NODES} nodes in one load")
    assert error.startswith("m.yaml:")


def test_the_document_limit_counts_every_file_of_a_load() -> None:
    per_file = limits.MAX_DOCUMENTS // 2 + 1
    text = "---\n" * per_file
    with pytest.raises(ManifestErrors) as caught:
        parse_manifests([("a.yaml", text), ("b.yaml", text)])
    (error,) = caught.value.errors
    assert error.file == "b.yaml"
    assert error.message == f"more than {limits.MAX_DOCUMENTS} documents in one load"


def test_the_node_limit_bounds_the_reading_time() -> None:
    text = "x: [" + "a, " * limits.MAX_NODES + "]\n"  # 1.5 MB, under the size limits
    (error,) = errors(text)
    column = 5 + 3 * (limits.MAX_NODES - 3)  # the document's mapping, x and the list count too
    assert error == f"m.yaml:1:{column}: -: more than {limits.MAX_NODES} YAML nodes in one load"


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (limits.MAX_FILE_BYTES + 1))
    assert file_errors([big]) == [
        f"{big}:1:1: -: file too large: larger than {limits.MAX_FILE_BYTES} bytes"
    ]


def test_files_together_over_the_total_limit_stop_the_load(tmp_path: Path) -> None:
    count = limits.MAX_TOTAL_BYTES // limits.MAX_FILE_BYTES + 1
    for index in range(count):
        (tmp_path / f"{index:02}.yaml").write_bytes(b"#" * limits.MAX_FILE_BYTES)
    (error,) = file_errors([tmp_path])
    assert error.startswith(f"{tmp_path / f'{count - 1:02}.yaml'}:1:1: -: file too large: over")


def test_a_regex_is_refused_when_too_long_or_too_large() -> None:
    with pytest.raises(RegexError, match="longer than 1000 characters"):
        compile_regex("a" * (limits.MAX_REGEX_LENGTH + 1))
    with pytest.raises(RegexError, match="invalid repetition size"):
        compile_regex("a{1001}")
    with pytest.raises(RegexError, match="pattern too large"):
        compile_regex(r"\pL{1000}")  # 1000 Unicode letters: a program over 1 MiB
    compile_regex(r"[a-z]{1000}")  # 1000 ASCII letters compile


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"(a|aa)+$", r"(.*a){20}$", "(" * 300 + "a" + ")" * 300],
)
def test_patterns_that_make_backtracking_engines_hang_match_in_linear_time(pattern: str) -> None:
    name = "zr_" + "a" * 200 + "!"
    compiled = compile_regex(pattern)
    assert compiled.search(name) is None or pattern.startswith("(" * 300)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(unclosed", "missing ): (unclosed"),
        (r"(a)\1", r"invalid escape sequence: \1"),
        ("(?=x)", "invalid perl operator: (?="),
        ("a{99999}", "invalid repetition size: {99999}"),
    ],
)
def test_a_refused_regex_is_a_field_error(pattern: str, reason: str) -> None:
    text = POLICY + f"  retention: {{keep: [{{regex: '{pattern}'}}]}}\n"
    shown = repr(pattern)
    assert errors(HOST + "spec: {transport: local}\n---\n" + text) == [
        f"m.yaml:12:30: spec.retention.keep[0].regex: invalid regular expression {shown}: {reason}"
    ]


# --- paths: only regular files and directories ------------------------------------------------


def test_an_empty_path_is_refused_not_read_as_the_current_directory(tmp_path: Path) -> None:
    assert file_errors([""]) == ['"":1:1: -: an empty path names no manifest']


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    found: list[list[str]] = []
    worker = threading.Thread(target=lambda: found.append(file_errors([fifo])), daemon=True)
    worker.start()
    worker.join(timeout=30)  # a hang guard only: the load returns at once
    assert not worker.is_alive(), "the load blocked on a FIFO"
    assert found == [[f"{fifo}:1:1: -: not a regular file or a directory (a FIFO)"]]
    assert file_errors([tmp_path]) == found[0]  # a FIFO found in a directory, too


def test_a_device_is_refused_without_reading_it() -> None:
    assert file_errors(["/dev/zero"]) == [
        "/dev/zero:1:1: -: not a regular file or a directory (a character device)"
    ]


def test_a_path_longer_than_the_system_allows_is_an_error_line() -> None:
    (error,) = file_errors(["x" * 5000])
    assert error.endswith(":1:1: -: cannot look it up: File name too long")


def test_a_broken_link_in_a_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "gone.yaml")
    assert file_errors([tmp_path]) == [f"{tmp_path / 'a.yaml'}:1:1: -: a broken symbolic link"]


def test_text_that_is_not_utf8_is_placed(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(HOST.encode() + b"spec: {transport: \xfflocal}\n")
    assert file_errors([path]) == [
        f"{path}:4:19: -: not UTF-8 text: byte 0xff cannot start or continue a character"
    ]


# --- one line per error --------------------------------------------------------------------------


def test_line_breaks_and_control_characters_are_escaped_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "a\nb\r.yaml"
    path.write_text(HOST + 'spec: {"trans\\nport\\u2028": local, "\\e[31m": x}\n')
    lines = file_errors([path])
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines)
    escaped = one_line(str(path))
    assert lines == [
        f'{escaped}:4:8: spec["trans\\nport\\u2028"]: unknown field'
        " (allowed: commandTimeout, ssh, transport, zfsCommand)",
        f'{escaped}:4:36: spec["\\x1b[31m"]: unknown field'
        " (allowed: commandTimeout, ssh, transport, zfsCommand)",
    ]


def test_one_line_escapes_exactly_what_breaks_a_line() -> None:
    assert one_line("a\nb\rc\td\x00e\x85f\u2028g\u2029h é ü ✓") == (
        "a\\nb\\rc\\td\\x00e\\x85f\\u2028g\\u2029h é ü ✓"
    )
    assert str(ManifestError("f\n", 1, 2, "p\r", "m\n")) == "f\\n:1:2: p\\r: m\\n"


# --- snake_case is not camelCase --------------------------------------------------------------


def target(fields: str) -> str:
    """The policy with one target that has `fields` besides name, host and root."""
    extra = f"  replication: [{{name: a, host: nas, root: b/c, {fields}}}]"
    return POLICY.replace("snapshots: {prefix: zr_}", "snapshots: {prefix: zr_}\n" + extra)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (HOST + "spec: {transport: local, zfs_command: [zfs]}\n", "spec.zfs_command"),
        (
            HOST + "spec: {transport: ssh, ssh: {host: h, identity_file: k}}\n",
            "spec.ssh.identity_file",
        ),
        (target("initial_replication: all"), "spec.replication[0].initial_replication"),
        (target("receive: {allow_rollback: true}"), "spec.replication[0].receive.allow_rollback"),
        (target("send: {large_blocks: true}"), "spec.replication[0].send.large_blocks"),
        (
            target("receive: {allow_full_resync: true}"),
            "spec.replication[0].receive.allow_full_resync",
        ),
        (POLICY.replace("kind: Policy", "kind: Policy\napi_version: x"), "api_version"),
    ],
)
def test_snake_case_spellings_are_unknown_fields(document: str, field: str) -> None:
    text = (HOST + "spec: {transport: local}\n---\n" if "Policy" in document else "") + document
    assert any(f": {field}: unknown field" in line for line in errors(text)), errors(text)


def test_last_n_is_not_a_retention_rule() -> None:
    text = (
        HOST + "spec: {transport: local}\n---\n" + POLICY + "  retention: {keep: [{last_n: 3}]}\n"
    )
    assert errors(text) == [
        "m.yaml:12:22: spec.retention.keep[0]: a retention rule needs exactly one of grid,"
        " lastN, regex"
    ]
