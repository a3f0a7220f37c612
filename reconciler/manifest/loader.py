"""Loading manifests: files and directories → validated `Manifests`, or every error at once.

Owns `load_manifests` (paths → `Manifests`, raising `ManifestErrors`), `parse_manifests` (the
same from in-memory texts, for tests and editors), `manifest_files` (the files a set of paths
stands for, which the watcher also watches) and the translation of pydantic errors and
semantic `Problem`s into `FILE:LINE:COLUMN: field.path: message`. Called by the CLI and the
control loop; the core reads the result through `reconciler.core.desired`.

Every document of every file is checked and all errors are reported together, sorted by file
(in load order), line and column. A file with a YAML syntax error still contributes the
documents before the error. A document whose `apiVersion` or `kind` is unknown is reported
and skipped. Semantic validation (`validate.py`) runs on the documents that passed model
validation.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.collector import collector_paused
from reconciler.manifest.errors import ManifestError, ManifestErrors, SourceLocation
from reconciler.manifest.fields import describe
from reconciler.manifest.limits import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES
from reconciler.manifest.models import (
    API_VERSION,
    KINDS,
    RULE_TAGS,
    Host,
    Manifests,
    Policy,
)
from reconciler.manifest.validate import pattern_problems, validate_manifests
from reconciler.manifest.yamldoc import (
    WHOLE,
    Document,
    ReadBudget,
    format_path,
    locate,
    read_documents,
)

__all__ = [
    "ManifestError",
    "ManifestErrors",
    "Manifests",
    "load_manifests",
    "manifest_files",
    "parse_manifests",
]

SUFFIXES = (".yaml", ".yml")
_MODELS: dict[str, type[Host] | type[Policy]] = {"Host": Host, "Policy": Policy}
_TYPE_MESSAGES = {
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected an integer",
}


def load_manifests(paths: Sequence[str | Path]) -> Manifests:
    """Load and validate every manifest under `paths` (files or directories)."""
    files, errors = manifest_files(paths)
    sources: list[tuple[str, str]] = []
    total = 0
    for file in files:
        text, size, error = _read(file, MAX_TOTAL_BYTES - total)
        total += size
        if error is not None:
            errors.append(error)
        if text is not None:
            sources.append((str(file), text))
        if total > MAX_TOTAL_BYTES:
            break
    return parse_manifests(sources, errors)


def manifest_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[ManifestError]]:
    """The files `paths` stand for, in load order, and errors for paths that yield none.

    A path names a regular file (taken whatever its name) or a directory, which stands for
    every `*.yaml` and `*.yml` file below it (recursively, sorted, skipping names that start
    with '.', not following symbolic links to directories). Anything else is an error: an empty
    path (an unset variable must not mean the current directory), a FIFO, a device, a socket,
    a name that cannot be looked up; so is a `*.yaml` name in a directory that is not a regular
    file. A file named twice is loaded once; more than `MAX_FILES` files is an error.
    """
    files: list[Path] = []
    errors: list[ManifestError] = []
    for given in paths:
        if str(given) == "":
            errors.append(ManifestError("", 1, 1, WHOLE, "an empty path names no manifest"))
            continue
        path = Path(given)
        kind = _kind(path)
        if kind == "directory":
            before = len(errors)
            found = _directory_files(path, errors)
            if not found and len(errors) == before:
                message = "no manifest files (*.yaml, *.yml) in this directory"
                errors.append(ManifestError(str(path), 1, 1, WHOLE, message))
            files += found
        elif kind == "file":
            files.append(path)
        else:
            errors.append(ManifestError(str(path), 1, 1, WHOLE, kind))
        if len(files) > MAX_FILES:
            message = f"more than {MAX_FILES} manifest files in one load"
            errors.append(ManifestError(str(path), 1, 1, WHOLE, message))
            return [], errors
    return _unique(files), errors


def _kind(path: Path) -> str:
    """ "file", "directory", or why the path names neither (symbolic links followed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ENOENT and os.path.lexists(path):
            return "a broken symbolic link"
        if error.errno == errno.ENOENT:
            return "no such file or directory"
        return f"cannot look it up: {error.strerror}"
    except ValueError as error:  # an embedded NUL byte
        return f"not a usable path: {error}"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return _not_regular(mode)


def _not_regular(mode: int) -> str:
    return f"not a regular file or a directory (a {_file_type(mode)})"


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _directory_files(directory: Path, errors: list[ManifestError]) -> list[Path]:
    """The `*.yaml`/`*.yml` files below `directory`; errors for such names that are not
    regular files. Walks without following links to directories; stops past `MAX_FILES`."""
    found: list[Path] = []

    def unreadable(error: OSError) -> None:
        where = error.filename if isinstance(error.filename, str) else str(directory)
        message = f"cannot read the directory: {error.strerror}"
        errors.append(ManifestError(where, 1, 1, WHOLE, message))

    for root, directories, names in os.walk(directory, onerror=unreadable):
        directories[:] = sorted(d for d in directories if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            path = Path(root, name)
            kind = _kind(path)
            if kind == "file":
                found.append(path)
            elif kind != "directory":
                errors.append(ManifestError(str(path), 1, 1, WHOLE, kind))
            if len(found) > MAX_FILES:
                return found
    return sorted(found, key=lambda path: path.relative_to(directory).parts)


def _unique(files: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    unique: list[Path] = []
    for path in files:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def read_text(path: Path) -> tuple[str | None, ManifestError | None]:
    """(text, error) of one regular UTF-8 file of at most 4 MiB, read as manifests are (for
    other tools' configurations that `reconcile import` converts)."""
    text, _, error = _read(path, MAX_FILE_BYTES)
    return text, error


def _read(path: Path, allowance: int) -> tuple[str | None, int, ManifestError | None]:
    """(text, bytes read, error) of one manifest file, reading at most its limit.

    Opened without blocking (a FIFO swapped in after the listing does not hang the load) and
    checked again once open: only a regular file is read."""
    file = str(path)
    limit = min(MAX_FILE_BYTES, max(allowance, 0))
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        return None, 0, ManifestError(file, 1, 1, WHOLE, f"cannot read the file: {error.strerror}")
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            return None, 0, ManifestError(file, 1, 1, WHOLE, _not_regular(mode))
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        return None, 0, ManifestError(file, 1, 1, WHOLE, f"cannot read the file: {error.strerror}")
    finally:
        os.close(descriptor)
    if len(data) > limit:
        which = (
            f"larger than {MAX_FILE_BYTES} bytes"
            if limit == MAX_FILE_BYTES
            else f"over the limit of {MAX_TOTAL_BYTES} bytes for all files of one load"
        )
        return None, len(data), ManifestError(file, 1, 1, WHOLE, f"file too large: {which}")
    try:
        return data.decode("utf-8-sig"), len(data), None
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        byte = data[error.start]
        message = f"not UTF-8 text: byte 0x{byte:02x} cannot start or continue a character"
        return None, len(data), ManifestError(file, line, column, WHOLE, message)


@dataclass
class _Loaded:
    """What the documents read so far have produced."""

    errors: list[ManifestError] = field(default_factory=list)
    hosts: dict[str, tuple[Host, Document]] = field(default_factory=dict)
    policies: dict[str, tuple[Policy, Document]] = field(default_factory=dict)
    first: dict[tuple[str, str], SourceLocation] = field(default_factory=dict)
    invalid_hosts: set[str] = field(default_factory=set)


def parse_manifests(
    sources: Sequence[tuple[str, str]], errors: Sequence[ManifestError] = ()
) -> Manifests:
    """Validate manifests given as (file name, text) pairs; `errors` are reported with any new.
    The cyclic collector is paused meanwhile (`reconciler.collector`): a load builds tens of
    thousands of tracked objects per MB, none in a cycle, and each full collection would walk
    all of them again, a quarter of a 1 MB load's time. Nothing is frozen: what the load leaves
    behind is freed by reference counts."""
    with collector_paused():
        return _parse(sources, errors)


def _parse(sources: Sequence[tuple[str, str]], errors: Sequence[ManifestError]) -> Manifests:
    loaded = _Loaded(errors=list(errors))
    budget = ReadBudget()
    for file, text in sources:
        documents, read_errors = read_documents(file, text, budget)
        loaded.errors += read_errors
        for document in documents:
            _load_document(document, loaded)
    _check_semantics(loaded)
    if loaded.errors:
        files = [error.file for error in errors] + [file for file, _ in sources]
        raise ManifestErrors(_ranked(loaded.errors, files))
    return Manifests(
        hosts={name: host for name, (host, _) in sorted(loaded.hosts.items())},
        policies={name: policy for name, (policy, _) in sorted(loaded.policies.items())},
        sources=dict(sorted(loaded.first.items())),
    )


def _ranked(errors: Sequence[ManifestError], files: Sequence[str]) -> tuple[ManifestError, ...]:
    """Errors by file (in load order), line, column and path."""
    order = {file: index for index, file in enumerate(dict.fromkeys(files))}
    return tuple(
        sorted(errors, key=lambda e: (order.get(e.file, len(order)), e.line, e.column, e.path))
    )


def _load_document(document: Document, loaded: _Loaded) -> None:
    model = _document_model(document, loaded.errors)
    if model is None:
        return
    kind = model.__name__
    name = _raw_name(document)
    duplicate = name is not None and _is_duplicate(document, kind, name, loaded)
    try:
        value = model.model_validate(document.data, by_alias=True, by_name=False)
    except ValidationError as error:
        loaded.errors += [_pydantic_error(document, model, details) for details in error.errors()]
        if kind == "Host" and name is not None:
            loaded.invalid_hosts.add(name)
        if kind == "Policy":
            loaded.errors += _raw_pattern_errors(document)
        return
    if duplicate:
        return
    if isinstance(value, Host):
        loaded.hosts[value.metadata.name] = (value, document)
    else:
        loaded.policies[value.metadata.name] = (value, document)


def _document_model(
    document: Document, errors: list[ManifestError]
) -> type[Host] | type[Policy] | None:
    """The model for the document's apiVersion and kind; errors when either is unknown."""
    data = document.data
    if not isinstance(data, dict):
        found = describe(data)
        message = f"a manifest is a mapping with apiVersion, kind, metadata and spec, not {found}"
        errors.append(ManifestError(document.file, document.line, document.column, WHOLE, message))
        return None
    version, kind = data.get("apiVersion"), data.get("kind")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if version != API_VERSION:
        detail = (
            "required field is missing" if version is None else f"unknown apiVersion {version!r}"
        )
        errors.append(_at(document, ("apiVersion",), f"{detail} (expected {API_VERSION})"))
    if model is None:
        detail = "required field is missing" if kind is None else f"unknown kind {kind!r}"
        errors.append(_at(document, ("kind",), f"{detail} (expected one of {', '.join(KINDS)})"))
    return model if version == API_VERSION else None


def _raw_pattern_errors(document: Document) -> list[ManifestError]:
    """Filter pattern errors of a Policy that failed model validation (reported together)."""
    spec = document.data.get("spec")
    source = spec.get("source") if isinstance(spec, dict) else None
    filesystems = source.get("filesystems") if isinstance(source, dict) else None
    if not isinstance(filesystems, dict):
        return []
    return [_at(document, path, message, True) for path, message in pattern_problems(filesystems)]


def _raw_name(document: Document) -> str | None:
    metadata = document.data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return str(name) if isinstance(name, str) else None


def _is_duplicate(document: Document, kind: str, name: str, loaded: _Loaded) -> bool:
    first = loaded.first.get((kind, name))
    if first is None:
        loaded.first[(kind, name)] = SourceLocation(document.file, document.line, document.column)
        return False
    message = f"duplicate {kind} name {name!r} (first defined at {first})"
    loaded.errors.append(_at(document, ("metadata", "name"), message))
    return True


def _at(
    document: Document, path: tuple[str | int, ...], message: str, at_key: bool = False
) -> ManifestError:
    line, column = locate(document, path, at_key)
    return ManifestError(document.file, line, column, format_path(path), message)


def _pydantic_error(
    document: Document, model: type[BaseModel], details: ErrorDetails
) -> ManifestError:
    raw_loc = tuple(details["loc"])
    at_key = details["type"] == "extra_forbidden" or raw_loc[-1:] == ("[key]",)
    path = tuple(part for part in raw_loc if part not in RULE_TAGS and part != "[key]")
    return _at(document, path, _message(model, raw_loc, details), at_key)


def _message(model: type[BaseModel], loc: tuple[str | int, ...], details: ErrorDetails) -> str:
    error_type = details["type"]
    if error_type == "missing":
        return "required field is missing"
    if error_type == "extra_forbidden":
        allowed = _allowed_fields(model, loc[:-1])
        return f"unknown field (allowed: {', '.join(allowed)})" if allowed else "unknown field"
    if error_type == "too_short" and details.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    if error_type in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[error_type]}, got {describe(details['input'])}"
    return details["msg"]


def _check_semantics(loaded: _Loaded) -> None:
    policies = [policy for policy, _ in loaded.policies.values()]
    problems = validate_manifests(loaded.hosts.keys(), policies, loaded.invalid_hosts)
    documents = {("Host", name): document for name, (_, document) in loaded.hosts.items()}
    documents |= {("Policy", name): document for name, (_, document) in loaded.policies.items()}
    for problem in problems:
        document = documents[(problem.kind, problem.name)]
        loaded.errors.append(_at(document, problem.path, problem.message, problem.at_key))


# --- the fields a model allows at an error location ---------------------------------------------


def _allowed_fields(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The YAML names of the fields allowed in the mapping at `loc` (for unknown-field errors)."""
    current: Any = model
    for part in loc:
        current = _child_type(current, part)
        if current is None:
            return []
    names: set[str] = set()
    for member in _members(current):
        if isinstance(member, type) and issubclass(member, BaseModel):
            names.update(info.alias or name for name, info in member.model_fields.items())
    return sorted(names)


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a (possibly Annotated, possibly optional) type, None left out."""
    origin = get_origin(annotation)
    if origin is not None and getattr(annotation, "__metadata__", None) is not None:
        return _members(get_args(annotation)[0])
    if origin is Union or type(annotation).__name__ == "UnionType":
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [] if annotation is type(None) else [annotation]


def _child_type(annotation: Any, part: str | int) -> Any:
    members = _members(annotation)
    for member in members:  # a union tag names the member directly
        if isinstance(member, type) and member.__name__ == part:
            return member
    for member in members:
        origin = get_origin(member)
        if origin is list and isinstance(part, int):
            return get_args(member)[0]
        if origin is dict:
            return get_args(member)[1]
        if isinstance(member, type) and issubclass(member, BaseModel):
            for name, info in member.model_fields.items():
                if part in (name, info.alias):
                    return info.annotation
    return None
