"""Tests for the JSON Schema export (`reconciler.manifest.schema`): the committed file is
current, and the schema and the models agree on valid and invalid documents."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from reconciler.manifest.models import Host, Policy
from reconciler.manifest.schema import json_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "schemas" / "manifests.schema.json"
VALID_FILES = [
    ROOT / "manifests" / "example.yaml",
    ROOT / "tests" / "manifests" / "tree" / "hosts.yaml",
    ROOT / "tests" / "manifests" / "tree" / "policies" / "home.yaml",
    ROOT / "tests" / "manifests" / "tree" / "policies" / "media.yml",
]


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc is not None]


def schema_accepts(document: dict[str, Any]) -> bool:
    validator = jsonschema.Draft202012Validator(json_schema())
    return bool(validator.is_valid(document))


def models_accept(document: dict[str, Any]) -> bool:
    model = Host if document.get("kind") == "Host" else Policy
    try:
        model.model_validate(document)
    except ValidationError:
        return False
    return True


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == schema_text(), (
        "schemas/manifests.schema.json is stale: run `make schema` and commit the result"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_schema_is_deterministic() -> None:
    assert schema_text() == schema_text()


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda path: path.name)
def test_valid_documents_pass_both(path: Path) -> None:
    for document in documents(path):
        jsonschema.validate(document, json_schema(), cls=jsonschema.Draft202012Validator)
        assert models_accept(document)


def example_policy() -> dict[str, Any]:
    (policy,) = [doc for doc in documents(VALID_FILES[0]) if doc["kind"] == "Policy"]
    return policy


def example_host() -> dict[str, Any]:
    (host,) = [doc for doc in documents(VALID_FILES[0]) if doc["kind"] == "Host"]
    return host


def edited(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `document` with the field at the dotted `path` set (or deleted if value is ...)."""
    result = copy.deepcopy(document)
    *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    node: Any = result
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return result


INVALID_POLICY_EDITS = [
    ("spec.colour", "blue"),  # unknown field
    ("spec.source", ...),  # missing required field
    ("spec.retention.keep.0", {"grid": "24x1h", "lastN": 3}),  # two rules in one item
    ("spec.retention.keep.0", {"lastN": 0}),
    ("spec.retention.keep", []),
    ("spec.snapshots.interval", "15x"),
    ("spec.snapshots.interval", 900),
    ("spec.snapshots.prefix", "zr snap"),
    ("spec.source.filesystems", {}),
    ("spec.source.filesystems", {"tank<": "yes"}),
    ("spec.replication.0.root", "/vault"),
    ("spec.replication.0.name", "Backup"),
    ("spec.replication.0.protection", "always"),
    ("spec.replication.0.send", {"raw": "yes"}),
    ("spec.replication.0.receive.properties.override", {"ReadOnly": "on"}),
    ("spec.replication.0.receive.properties.override", {"readonly": True}),
    ("metadata.name", "Home"),
    ("kind", "Widget"),
    ("apiVersion", "zfs-reconciler.dev/v2"),
]


@pytest.mark.parametrize(("path", "value"), INVALID_POLICY_EDITS)
def test_invalid_policies_fail_both(path: str, value: Any) -> None:
    document = edited(example_policy(), path, value)
    assert not schema_accepts(document)
    assert not models_accept(document)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.transport", "telnet"),
        ("spec.zfsCommand", []),
        ("spec.ssh", {"host": "b", "port": 0}),
        ("metadata.labels", {"tier": 1}),
    ],
)
def test_invalid_hosts_fail_both(path: str, value: Any) -> None:
    document = edited(example_host(), path, value)
    assert not schema_accepts(document)
    assert not models_accept(document)


def test_the_edits_themselves_keep_a_valid_document_valid() -> None:
    """The helper is not what makes the documents above invalid."""
    document = edited(example_policy(), "spec.snapshots.interval", "1h")
    assert schema_accepts(document) and models_accept(document)
