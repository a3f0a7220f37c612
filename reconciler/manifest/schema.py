"""JSON Schema of the manifests, generated from the models (the single source of truth).

Owns `json_schema()` (one JSON Schema document: a `oneOf` over the `Host` and `Policy` kinds,
selected by `kind`, with every model in `$defs`) and `schema_text()` (its committed form:
`schemas/manifests.schema.json`, sorted keys, two-space indent, final newline). Called by
`reconcile schema` (which `make schema` redirects into the committed file) and by the test
that fails when that file is stale.

The schema accepts what the models accept, with one known gap: semantic rules (host
references, overlapping filters, ...) and grid, cron and regular-expression syntax are checked
by `reconcile validate` only (the schema refuses nothing the models accept: the differential
test `tests/test_schema_agreement.py` checks it).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from reconciler.manifest.models import API_VERSION, Manifest

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    """Pydantic's generator without per-field titles (`Zfscommand` helps nobody)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document (either kind)."""
    schema = TypeAdapter(Manifest).json_schema(
        by_alias=True, mode="validation", schema_generator=_Generator
    )
    return {
        "$schema": DRAFT,
        "title": "zfs-reconciler manifest",
        "description": (
            f"One YAML document of kind Host or Policy (apiVersion {API_VERSION}). "
            "Generated from reconciler/manifest/models.py: run `make schema` after changing it."
        ),
        **schema,
    }


def schema_text() -> str:
    """The schema as committed in `schemas/manifests.schema.json`."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
