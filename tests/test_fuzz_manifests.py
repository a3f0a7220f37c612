"""Fuzz test of `reconcile validate` (hypothesis, structure-aware): mutations of valid
manifests, YAML-level tricks, raw bytes and odd file names, each written to a file and run
through the real CLI in-process (`main(["validate", "-f", path], console)`).

The properties, checked on every input (`problems`):

(a) no exception escapes `main` (nothing is caught around it: a traceback fails the test);
(b) the exit code is 0 or 1;
(c) on 1, every stderr line is one error line `FILE:LINE:COLUMN: field.path: message` whose
    FILE is the path given (escaped, when it holds control characters), or the final
    `N error(s); nothing was applied` (N = the number of error lines); there is at least one
    error line; no line of stdout or stderr holds a raw CR, ESC or other control character;
(d) on 0, every document of the file validates against the committed JSON Schema
    (`schemas/manifests.schema.json`): the models never accept what the schema refuses;
(e) a snake_case spelling of a camelCase field (`zfs_command`, `last_n`...) is never accepted.

Plus direct tests of `-f` on what is not a regular file or a directory (a FIFO, `/dev/zero`,
`/dev/null`, a socket), an empty path, paths longer than PATH_MAX and paths with a newline.

Modes: the default profile (`make test`) runs about 2,000 inputs in about 20 s;
`ZFS_RECONCILER_FUZZ=deep` (`make fuzz`) runs 20 times as many (override the number of
examples per test with `ZFS_RECONCILER_FUZZ_EXAMPLES=N`). Inputs are random on every run;
`--hypothesis-seed=N` replays a run, and a failing example is printed with its
`@reproduce_failure` blob.

Hang guard: `main` runs under a SIGALRM timer (`HANG_SECONDS`, generous: 10 s by default,
30 s deep; `ZFS_RECONCILER_FUZZ_HANG` overrides) that raises `HangGuardFired` inside it. It
is not a performance target (those live in benchmarks): the huge inputs are far beyond any
sane limit (`tests/manifest_strategies.py`), so a reader that enforces its limits refuses
them at once, and one that does not never returns in time. A FIFO cannot be interrupted that
way (a blocked open() is retried), so FIFOs run in a thread joined with a timeout.
`/dev/zero` runs in a child process with an address-space limit: a reader without a size limit
would otherwise fill the machine's memory.

The number of inputs run is printed in pytest's summary (`fuzz: N inputs through ...`);
`--hypothesis-show-statistics` adds hypothesis's per-test statistics.

(d) reads an accepted file twice: with the product's reader (the data the models validated)
and independently (`yaml12_documents`: ruamel's pure-Python parser, YAML 1.2 core schema), so
that a reader that misreads YAML into something the models accept is caught too.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reconciler.cli import Console, main
from tests.manifest_mutations import mutated_manifests, snake_case_inputs
from tests.manifest_strategies import (
    COUNTS,
    DEEP,
    EXAMPLE_TEXT,
    HOST_NAS,
    SEED_SETS,
    count_report,
    fuzz_settings,
    schema_errors,
    snake_keys,
)
from tests.manifest_tricks import file_names, raw_bytes, spliced_bytes, yaml_tricks
from tests.yaml_emitter import render_data
from tests.yaml_oracle import OracleRefusal, product_documents, yaml12_documents

ROOT = Path(__file__).resolve().parent.parent
HANG_SECONDS = float(os.environ.get("ZFS_RECONCILER_FUZZ_HANG") or (30 if DEEP else 10))


# --- running the CLI --------------------------------------------------------------------------


class HangGuardFired(Exception):
    """`main` did not return within HANG_SECONDS."""


@dataclass(frozen=True)
class Outcome:
    code: object
    out: str
    err: str


@contextmanager
def hang_guard(seconds: float) -> Iterator[list[bool]]:
    """Raise HangGuardFired in the main thread after `seconds`; yields a list that is non-empty
    once it fired (so that a `main` which swallows the exception is caught too)."""
    fired: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield fired
        return

    def on_alarm(_signum: int, _frame: object) -> None:
        fired.append(True)
        raise HangGuardFired(f"reconcile validate did not return within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_main(path: str) -> Outcome:
    """`reconcile validate -f PATH`, in-process; whatever `main` raises propagates."""
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", "-f", path], Console(out, err))
    COUNTS["inputs"] += 1
    return Outcome(code, out.getvalue(), err.getvalue())


def run_validate(path: str) -> Outcome:
    with hang_guard(HANG_SECONDS) as fired:
        outcome = call_main(path)
    assert not fired, "the hang guard fired inside main, and main swallowed it"
    return outcome


def run_in_thread(path: str, unblock: Callable[[], None]) -> Outcome:
    """`call_main` in a thread joined with a timeout (for inputs a signal cannot interrupt,
    such as an open() of a FIFO); `unblock` releases a stuck thread before the test fails."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["outcome"] = call_main(path)
        except BaseException as error:  # re-raised below, in the test, with its traceback
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    if thread.is_alive():
        unblock()
        thread.join(5)
        pytest.fail(f"validate -f {path!r} blocked: no result after {HANG_SECONDS:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    outcome = box["outcome"]
    assert isinstance(outcome, Outcome)
    return outcome


def unblock_fifo(fifo: Path) -> Callable[[], None]:
    """Open the FIFO for writing and close it: a reader blocked in open() then reads EOF."""

    def unblock() -> None:
        for _ in range(100):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:  # ENXIO: no reader yet
                time.sleep(0.01)

    return unblock


# --- the properties ---------------------------------------------------------------------------

ERROR_LINE = re.compile(
    r"^(?P<file>[^\n]+):(?P<line>[1-9][0-9]*):(?P<col>[1-9][0-9]*): "
    r"(?P<path>\S[^\n]*?): (?P<msg>.+)$"
)
_AFTER_FILE = re.compile(
    r":(?P<line>[1-9][0-9]*):(?P<col>[1-9][0-9]*): (?P<path>\S[^\n]*?): (?P<msg>.+)$"
)
SUMMARY = re.compile(r"^(?P<count>[0-9]+) error\(s\); nothing was applied$")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|.)", re.S)
_CONTROL_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nrt])")
_SIMPLE_ESCAPES = {
    "n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b",
    "\\": "\\", '"': '"', "'": "'", " ": " ", "/": "/",
}  # fmt: skip


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _unescape(text: str, pattern: re.Pattern[str], as_bytes: bool) -> str | bytes:
    """`text` with the escapes `pattern` finds decoded (\\n, \\x1b, \\u2028, \\033...);
    as bytes, \\xHH is one byte (a name that is not UTF-8)."""
    parts: list[bytes] = []
    position = 0
    for match in pattern.finditer(text):
        parts.append(_encode(text[position : match.start()]))
        code = match.group(1)
        if code[0] in "xuU" and len(code) > 1:
            value = int(code[1:], 16)
            if as_bytes and code[0] == "x":
                parts.append(bytes([value]))
            else:
                parts.append(chr(value).encode("utf-8", "surrogatepass"))
        elif code[0] in "01234567":
            value = int(code, 8)
            parts.append(bytes([value]) if as_bytes and value < 256 else chr(value).encode())
        else:
            parts.append(_SIMPLE_ESCAPES.get(code, "\\" + code).encode("utf-8", "surrogatepass"))
        position = match.end()
    parts.append(_encode(text[position:]))
    data = b"".join(parts)
    return data if as_bytes else data.decode("utf-8", "surrogateescape")


def names_path(shown: str, path: str) -> bool:
    """Whether `shown` (the FILE part of an error line) is `path`, as given or escaped:
    verbatim, or decoding back to it, optionally quoted, under either usual scheme: every
    backslash escaped (`\\\\` is one backslash), or only control characters escaped
    (`\\n`, `\\x1b`; other backslashes are themselves)."""
    if shown == path:
        return True
    candidates = [shown]
    for start, end in (('"', '"'), ("'", "'"), ("$'", "'")):
        quoted = len(shown) >= len(start) + len(end)
        if quoted and shown.startswith(start) and shown.endswith(end):
            candidates.append(shown[len(start) : len(shown) - len(end)])
    raw = os.fsencode(path)
    return any(
        _unescape(candidate, pattern, False) == path or _unescape(candidate, pattern, True) == raw
        for candidate in candidates
        for pattern in (_ESCAPE, _CONTROL_ESCAPE)
    )


def _controls(line: str) -> list[str]:
    return sorted({char for char in line if unicodedata.category(char) == "Cc"})


def _error_line(line: str, paths: list[str]) -> str | None:
    """None if `line` is an error line about one of `paths`; else what is wrong with it."""
    for colon in re.finditer(r"(?<=.):(?=[1-9])", line):
        position = colon.start()
        if _AFTER_FILE.fullmatch(line, position) and any(
            names_path(line[:position], path) for path in paths
        ):
            return None
    parsed = ERROR_LINE.match(line)
    if parsed is None:
        return f"not an error line (FILE:LINE:COLUMN: path: message): {line!r}"
    return f"the file part {parsed['file']!r} is not the path given ({paths!r}): {line!r}"


def accepted_problems(file: str, data: bytes) -> list[str]:
    """(d) and (e) for a file that `reconcile validate` accepted: every document, as the
    product's reader built it (what the models accepted) and as YAML 1.2 reads it (an
    independent reading, which also catches a reader that misreads the YAML), has no snake_case
    field and validates against the committed JSON Schema."""
    found: list[str] = []
    readings: list[tuple[str, list[Any]]] = []
    try:
        documents, errors = product_documents(file, data)
    except Exception as error:  # the product's reader, outside main: reported, not raised
        found.append(f"exit 0, but the product's reader raises {type(error).__name__}: {error}")
    else:
        found += [f"exit 0, but the product's reader reports: {error}" for error in errors]
        readings.append(("as the product read it", documents))
    try:
        readings.append(("as YAML 1.2 reads it", yaml12_documents(data)))
    except OracleRefusal as refusal:
        found.append(f"exit 0, but the YAML subset of docs/manifests.md refuses: {refusal}")
    except Exception:  # ruamel's pure-Python parser cannot read it: the product's reading only
        pass
    if len(readings) == 2 and len(readings[0][1]) != len(readings[1][1]):
        counts = f"{len(readings[0][1])} vs {len(readings[1][1])}"
        found.append(f"exit 0, but the product read another number of documents ({counts})")
    for how, documents in readings:
        for index, document in enumerate(documents, 1):
            for key in snake_keys(document):
                found.append(f"(e) exit 0 with a snake_case field in document {index} {how}: {key}")
            for error in schema_errors(document):
                found.append(f"(d) exit 0, the schema refuses document {index} {how}: {error}")
    return found


def problems(outcome: Outcome, paths: list[str], data: bytes | None = None) -> list[str]:
    """Every way `outcome` breaks the properties; `paths` are the files errors may name,
    `data` the file's bytes (for (d) and (e) on exit 0)."""
    found: list[str] = []
    if outcome.code not in (0, 1):
        found.append(f"(b) exit code {outcome.code!r}, not 0 or 1")
    for stream, text in (("stdout", outcome.out), ("stderr", outcome.err)):
        for number, line in enumerate(text.split("\n"), 1):
            if _controls(line):
                found.append(
                    f"(c) {stream} line {number} holds control characters {_controls(line)!r}: "
                    f"{line!r}"
                )
    if outcome.code == 1:
        if outcome.err and not outcome.err.endswith("\n"):
            found.append(f"(c) stderr does not end with a newline: {outcome.err[-200:]!r}")
        lines = outcome.err.split("\n")
        if lines[-1] == "":
            lines.pop()
        errors = 0
        for number, line in enumerate(lines, 1):
            summary = SUMMARY.match(line)
            if summary is not None:
                if number != len(lines):
                    found.append(f"(c) the summary is not the last line: {line!r}")
                if int(summary["count"]) != errors:
                    found.append(f"(c) the summary says {summary['count']}, {errors} error lines")
                continue
            errors += 1
            wrong = _error_line(line, paths)
            if wrong is not None:
                found.append(f"(c) stderr line {number}: {wrong}")
        if errors == 0:
            found.append(f"(c) exit 1 without any error line (stderr: {outcome.err!r})")
    if outcome.code == 0 and data is not None:
        found += accepted_problems(paths[-1], data)
    return found


def assert_properties(outcome: Outcome, paths: list[str], data: bytes | None = None) -> None:
    found = problems(outcome, paths, data)
    assert not found, "\n".join(
        [
            *found,
            f"exit {outcome.code!r}",
            f"stdout: {outcome.out[:2000]!r}",
            f"stderr: {outcome.err[:4000]!r}",
        ]
    )


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _report_inputs(request: pytest.FixtureRequest) -> Iterator[None]:
    yield from count_report(request.config, "inputs")


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@contextmanager
def scratch(root: Path) -> Iterator[Path]:
    """A fresh directory per example, removed afterwards (some inputs are 64 MiB)."""
    directory = Path(tempfile.mkdtemp(dir=root))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def check_file(root: Path, data: bytes, name: str = "manifest.yaml") -> Outcome:
    """Write `data` to a file, run `reconcile validate -f FILE`, check every property."""
    with scratch(root) as directory:
        path = directory / name
        path.write_bytes(data)
        outcome = run_validate(str(path))
        assert_properties(outcome, [str(path)], data)
    return outcome


# --- the seeds are valid: otherwise the mutations would start from nothing -------------------


@pytest.mark.parametrize("index", range(len(SEED_SETS)))
def test_seed_sets_are_valid(fuzz_root: Path, index: int) -> None:
    data = render_data(SEED_SETS[index]).encode()
    assert yaml12_documents(data) == SEED_SETS[index]
    assert product_documents("m.yaml", data) == (SEED_SETS[index], [])
    outcome = check_file(fuzz_root, data)
    assert outcome.code == 0, outcome.err


def test_the_example_is_valid(fuzz_root: Path) -> None:
    assert check_file(fuzz_root, EXAMPLE_TEXT.encode()).code == 0


# --- fuzzing ----------------------------------------------------------------------------------

BILLION_LAUGHS = (
    render_data([HOST_NAS]).replace("spec:\n  transport: local\n", "")
    + "x-lol: ["
    + ", ".join(["&l0 lol"] + [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)])
    + "]\nspec: {zfsCommand: *l9}\n"
).encode()
HOST = render_data([HOST_NAS])
FIXED_TRICKS = [
    b"%YAML 1.2\n---\n" + HOST.encode(),
    b"%TAG ! tag:example.com,2000:\n---\n" + HOST.encode(),
    HOST.replace("transport: local", "transport: !!bool maybe").encode(),
    HOST.replace("transport: local", "transport: !!pairs [a: 1]").encode(),
    HOST.replace("transport: local", "? [a, b]\n  : local").encode(),
    HOST.replace("transport: local", "<<: {transport: local}").encode(),
    HOST.replace("spec:\n  transport: local", "spec: " + "[" * 500 + "]" * 500).encode(),
    HOST.replace("transport: local", "zfs_command: [zfs]").encode(),
    HOST.replace("transport: local", '"zfsCommand\\n\\x1b[31m": [zfs]').encode(),
    HOST.replace("transport: local", "transport: lo\x1bcal").encode(),
    HOST.encode() + b"\x00",
    b"\xff\xfe" + HOST.encode("utf-16-le"),
    b"\xc3\x28" + HOST.encode(),
    b"",
    b"- a\n",
    BILLION_LAUGHS,
]


def with_examples(values: list[bytes]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        for value in reversed(values):
            test = example(data=value)(test)
        return test

    return decorate


@fuzz_settings(500)
@given(data=mutated_manifests())
def test_mutated_valid_manifests(fuzz_root: Path, data: bytes) -> None:
    check_file(fuzz_root, data)


@fuzz_settings(600)
@with_examples(FIXED_TRICKS)
@given(data=yaml_tricks)
def test_yaml_tricks(fuzz_root: Path, data: bytes) -> None:
    check_file(fuzz_root, data)


@fuzz_settings(300)
@given(data=raw_bytes)
def test_raw_bytes(fuzz_root: Path, data: bytes) -> None:
    check_file(fuzz_root, data)


@fuzz_settings(300)
@given(data=spliced_bytes())
def test_spliced_bytes(fuzz_root: Path, data: bytes) -> None:
    check_file(fuzz_root, data)


@fuzz_settings(100)
@given(case=snake_case_inputs())
def test_snake_case_fields_are_refused(fuzz_root: Path, case: tuple[bytes, str]) -> None:
    data, snake = case
    outcome = check_file(fuzz_root, data)
    assert outcome.code == 1, f"(e) {snake} was accepted:\n{data.decode()}"


INVALID_HOST = HOST.replace("name: nas", "name: Nas").encode()
CONTENTS = [render_data(SEED_SETS[2]).encode(), INVALID_HOST, b"\xff\xfe\x00", b"- a\n", b""]


@fuzz_settings(150)
@given(name=file_names, content=st.sampled_from(CONTENTS), as_directory=st.booleans())
def test_file_names(fuzz_root: Path, name: str, content: bytes, as_directory: bool) -> None:
    """Names with newlines, CR, tabs, ANSI escapes, quotes and non-UTF-8 bytes, given as the
    file itself or through its directory: every error line still names it, on one line."""
    if as_directory:
        name = "m" + name + ".yaml"
    with scratch(fuzz_root) as directory:
        path = directory / name
        path.write_bytes(content)
        given_path = str(directory) if as_directory else str(path)
        outcome = run_validate(given_path)
        assert_properties(outcome, [given_path, str(path)], content)


# --- -f on what is not a regular file or a directory ----------------------------------------


def assert_one_error(outcome: Outcome, paths: list[str]) -> None:
    assert_properties(outcome, paths)
    assert outcome.code == 1, f"accepted (exit {outcome.code!r}): {outcome.out!r}"
    errors = [line for line in outcome.err.splitlines() if not SUMMARY.match(line)]
    assert len(errors) == 1, f"expected one error line, got {errors!r}"


@pytest.mark.parametrize("via", ["fifo", "symlink-to-fifo"])
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, via: str) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    path = fifo
    if via == "symlink-to-fifo":
        path = tmp_path / "link.yaml"
        path.symlink_to(fifo)
    outcome = run_in_thread(str(path), unblock_fifo(fifo))
    assert_one_error(outcome, [str(path)])


def test_a_directory_holding_a_fifo_named_yaml_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    outcome = run_in_thread(str(tmp_path), unblock_fifo(fifo))
    assert_one_error(outcome, [str(tmp_path), str(fifo)])


def test_a_fifo_next_to_a_manifest_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "b.yaml"
    os.mkfifo(fifo)
    (tmp_path / "a.yaml").write_text(EXAMPLE_TEXT)
    outcome = run_in_thread(str(tmp_path), unblock_fifo(fifo))
    assert_properties(outcome, [str(tmp_path), str(fifo), str(tmp_path / "a.yaml")])


def test_dev_null_is_refused() -> None:
    assert_one_error(run_validate("/dev/null"), ["/dev/null"])


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        assert_one_error(run_validate(str(path)), [str(path)])


_CHILD = r"""
import io, json, resource, sys, traceback
sys.path.insert(0, sys.argv[1])
from reconciler.cli import Console, main
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[2]), resource.RLIM_INFINITY))
out, err = io.StringIO(), io.StringIO()
try:
    code = main(sys.argv[3:], Console(out, err))
except BaseException:
    result = {"traceback": traceback.format_exc()}
else:
    result = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
print(json.dumps(result))
"""


def run_limited(path: str, memory: int = 1 << 30) -> Outcome:
    """`reconcile validate -f PATH` in a child process allowed `memory` more bytes of address
    space than it has after the imports, and HANG_SECONDS of time."""
    argv = [sys.executable, "-c", _CHILD, str(ROOT), str(memory), "validate", "-f", path]
    try:
        child = subprocess.run(argv, capture_output=True, text=True, timeout=HANG_SECONDS + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"validate -f {path} did not return within {HANG_SECONDS + 10:g} s")
    assert child.stdout, f"the child died: exit {child.returncode}, stderr {child.stderr[-2000:]}"
    result = json.loads(child.stdout.splitlines()[-1])
    if "traceback" in result:
        pytest.fail(f"(a) an exception escaped main:\n{result['traceback']}")
    return Outcome(result["code"], result["out"], result["err"])


def test_dev_zero_is_refused() -> None:
    assert_one_error(run_limited("/dev/zero"), ["/dev/zero"])


def test_an_empty_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-f ""` is refused, not read as the current directory (which here holds a valid
    manifest, so reading it would succeed)."""
    (tmp_path / "manifest.yaml").write_text(EXAMPLE_TEXT)
    monkeypatch.chdir(tmp_path)
    outcome = run_validate("")
    assert outcome.code == 1, f"-f '' was accepted: {outcome.out!r}"
    # the path given is empty: any non-empty rendering of it (e.g. '' or "") may name it
    errors = [line for line in outcome.err.splitlines() if not SUMMARY.match(line)]
    assert len(errors) == 1, errors
    assert ERROR_LINE.match(errors[0]) and not _controls(outcome.err.replace("\n", "")), errors


@pytest.mark.parametrize("shape", ["long-name", "many-components"])
def test_a_path_longer_than_path_max_is_refused(tmp_path: Path, shape: str) -> None:
    if shape == "long-name":  # one component longer than NAME_MAX, path longer than PATH_MAX
        path = str(tmp_path / ("a" * 5000))
    else:
        path = str(tmp_path) + "/" + "/".join(["abcdefgh"] * 600) + "/m.yaml"
    assert len(os.fsencode(path)) > os.pathconf("/", "PC_PATH_MAX")
    assert_one_error(run_validate(path), [path])


@pytest.mark.parametrize("name", ["new\nline.yaml", "cr\rname.yaml", "ansi\x1b[31mred.yaml"])
def test_a_missing_path_with_control_characters_is_one_line(tmp_path: Path, name: str) -> None:
    path = str(tmp_path / name)
    assert_one_error(run_validate(path), [path])


@pytest.mark.parametrize("name", ["new\nline.yaml", "tab\there.yaml", "\x1b[2J.yaml"])
def test_errors_in_a_file_with_control_characters_in_its_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(INVALID_HOST)
    outcome = run_validate(str(path))
    assert_properties(outcome, [str(path)], INVALID_HOST)
    assert outcome.code == 1


# --- the checks themselves can fail ----------------------------------------------------------

GOOD_ERR = (
    "/m.yaml:3:11: metadata.name: 'Nas' is not a DNS-1123 label\n1 error(s); nothing was applied\n"
)


@pytest.mark.parametrize(
    ("outcome", "paths", "data", "expected"),
    [
        (Outcome(0, "1 documents valid\n", ""), ["/m.yaml"], None, None),
        (Outcome(1, "", GOOD_ERR), ["/m.yaml"], None, None),
        (Outcome(1, "", GOOD_ERR.replace("/m.yaml", "/m\\ny.yaml")), ["/m\ny.yaml"], None, None),
        (
            Outcome(1, "", GOOD_ERR.replace("/m.yaml", '"/m\\x1b.yaml"')),
            ["/m\x1b.yaml"],
            None,
            None,
        ),
        (
            Outcome(1, "", GOOD_ERR.replace("/m.yaml", "/m\\xff.yaml")),
            ["/m\udcff.yaml"],
            None,
            None,
        ),
        (
            Outcome(1, "", GOOD_ERR.replace("/m.yaml", "/m\\\\x1b.y")),
            ["/m\\\x1b.y"],
            None,
            None,
        ),
        (Outcome(2, "", GOOD_ERR), ["/m.yaml"], None, "(b)"),
        (Outcome(None, "", ""), ["/m.yaml"], None, "(b)"),
        (Outcome(1, "", ""), ["/m.yaml"], None, "without any error line"),
        (Outcome(1, "", GOOD_ERR.replace("Nas", "N\ras")), ["/m.yaml"], None, "control"),
        (Outcome(1, "", GOOD_ERR.replace("Nas", "N\x1b[0mas")), ["/m.yaml"], None, "control"),
        (Outcome(1, "", GOOD_ERR.replace("Nas", "N\nas")), ["/m.yaml"], None, "not an error line"),
        (Outcome(1, "", GOOD_ERR.replace("/m.yaml", "/n.yaml")), ["/m.yaml"], None, "file part"),
        (Outcome(1, "", GOOD_ERR.replace(":3:11:", ":0:11:")), ["/m.yaml"], None, "error line"),
        (Outcome(1, "", GOOD_ERR.replace("1 error", "2 error")), ["/m.yaml"], None, "summary"),
        (Outcome(1, "", GOOD_ERR.rstrip("\n")), ["/m.yaml"], None, "newline"),
        (Outcome(1, "", "Traceback (most recent call last):\n"), ["/m.yaml"], None, "error line"),
        (Outcome(0, "", ""), ["/m.yaml"], INVALID_HOST, "(d)"),
        (
            Outcome(0, "", ""),
            ["/m.yaml"],
            HOST.replace("transport: local", "zfs_command: [z]").encode(),
            "(e)",
        ),
        (Outcome(0, "", ""), ["/m.yaml"], HOST.encode(), None),
    ],
)
def test_the_checks_catch_what_they_should(
    outcome: Outcome, paths: list[str], data: bytes | None, expected: str | None
) -> None:
    found = problems(outcome, paths, data)
    if expected is None:
        assert found == []
    else:
        assert any(expected in problem for problem in found), found


def test_the_hang_guard_interrupts() -> None:
    start = time.monotonic()
    with pytest.raises(HangGuardFired), hang_guard(0.2):
        while True:
            pass
    assert time.monotonic() - start < 5
