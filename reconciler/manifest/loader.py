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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.manifest.errors import ManifestError, ManifestErrors, SourceLocation
from reconciler.manifest.fields import describe
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
    format_path,
    locate,
    read_documents,
    to_plain,
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
    for file in files:
        try:
            sources.append((str(file), file.read_text(encoding="utf-8-sig")))
        except (OSError, UnicodeDecodeError) as error:
            errors.append(ManifestError(str(file), 1, 1, WHOLE, f"cannot read the file: {error}"))
    return parse_manifests(sources, errors)


def manifest_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[ManifestError]]:
    """The files `paths` stand for, in load order, and errors for paths that yield none.

    A file is taken whatever its name; a directory stands for every `*.yaml` and `*.yml` file
    below it (recursively, sorted, skipping names that start with '.'). A file named twice is
    loaded once.
    """
    files: list[Path] = []
    errors: list[ManifestError] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = _directory_files(path)
            if not found:
                message = "no manifest files (*.yaml, *.yml) in this directory"
                errors.append(ManifestError(str(path), 1, 1, WHOLE, message))
            files += found
        elif path.exists():
            files.append(path)
        else:
            errors.append(ManifestError(str(path), 1, 1, WHOLE, "no such file or directory"))
    return _unique(files), errors


def _directory_files(directory: Path) -> list[Path]:
    found = [
        path
        for path in directory.rglob("*")
        if path.suffix in SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]
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
    """Validate manifests given as (file name, text) pairs; `errors` are reported with any new."""
    loaded = _Loaded(errors=list(errors))
    for file, text in sources:
        documents, read_errors = read_documents(file, text)
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
        value = model.model_validate(to_plain(document.data))
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
        found = describe(to_plain(data))
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
