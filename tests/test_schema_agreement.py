"""Differential test: the pydantic models and the committed JSON Schema
(`schemas/manifests.schema.json`) agree on every generated document.

Documents are Python data (what the YAML reader hands the models): near-valid Host and Policy
documents with every field, right and wrong types, boundary values, patterns at their edges,
snake_case and unknown keys (`near_valid_documents` in `tests/manifest_mutations.py`), and any
JSON value as a whole document. Each goes through

- the models, exactly as the loader validates a document (`reconciler/manifest/loader.py`,
  `_document_model` then `_load_document`: the apiVersion and kind pick the model, which
  validates by alias only), and
- the JSON Schema (`jsonschema.Draft202012Validator` with format checking on, for whatever
  formats the schema declares; a `format: regex` would be checked with Python's `re`, as
  jsonschema does).

Any disagreement fails, with the document printed, except where the schema is deliberately
looser (docs/manifests.md, "JSON Schema"): grid and cron syntax, regular expressions the schema
cannot judge as RE2 does, upper bounds of durations (a hook's `timeout`, `commandTimeout`), the
words of a hook's `command`, the confirm-destroy annotation's digest, and the rules that combine
fields (`ssh` with `transport`, `interval` with `cron`, `override` with `inherit`, creation-only
properties, `onFailure` with `when`). There the test is one-sided:
the models may refuse what the schema accepts, but only for those reasons (`MODEL_ONLY`), and
never accept what it refuses. Filter patterns and cross-document rules are not part of model
validation at all.

Default: about 1,850 documents in about 10 s; `ZFS_RECONCILER_FUZZ=deep` (`make fuzz`): 20 times
as many.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from reconciler.manifest import loader
from reconciler.manifest.models import API_VERSION, Host, Policy
from tests.manifest_mutations import near_valid_documents
from tests.manifest_strategies import (
    COUNTS,
    HOST_BACKUP,
    HOST_NAS,
    POLICY_HOME,
    POLICY_MEDIA,
    SEED_DOCUMENTS,
    count_report,
    fuzz_settings,
    json_values,
    schema_errors,
)

MODELS: dict[str, type[Host] | type[Policy]] = {"Host": Host, "Policy": Policy}
MODEL_ONLY = frozenset(
    {
        "grid",  # grid syntax: the schema only asks for a string
        "cron",  # cron syntax: likewise
        "regex",  # RE2 syntax and limits: the schema checks the length only
        "ssh_missing",  # ssh with transport
        "ssh_forbidden",
        "schedule_conflict",  # interval with cron
        "property_conflict",  # override with inherit
        "property_creation_only",  # casesensitivity, normalization, utf8only
        "hook_command",  # a hook's first word (no leading '-', no '='), no newline in any
        "hook_on_failure",  # onFailure with when: post
        "hook_timeout",  # a duration at most 1h: the schema sees a duration string
        "timeout_too_long",  # commandTimeout at most 1d: likewise
        "confirm_destroy_format",  # the confirm-destroy annotation's 12-hex digest
        "adopt_scheme",  # an adopt entry has exactly one of format and layout
        "adopt_layout",  # a Go layout that reads back to a time, in snapshot-name characters
        "adopt_timezone",  # a zone the system knows (zoneinfo), not Local
    }
)
"""Error types of rules only the models check: the one-sided part of the comparison."""


def validate_like_loader(model: type[BaseModel], data: Any) -> BaseModel:
    """The loader's call (`loader._load_document`): by alias only, as the schema reads field
    names. `test_the_helper_follows_the_loader` fails if the loader's call changes."""
    return model.model_validate(data, by_alias=True, by_name=False)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    errors: tuple[tuple[str, str, str], ...] = ()
    """(error type, location, message) of each refusal."""

    def text(self) -> str:
        return "; ".join(f"{where}: {message} [{kind}]" for kind, where, message in self.errors)


def models_verdict(document: Any) -> Verdict:
    """Accepted or refused as the loader decides: a mapping whose apiVersion is the one known
    and whose kind names a model (`loader._document_model`), then the model."""
    if not isinstance(document, dict):
        return Verdict(False, (("document_type", "-", "not a mapping"),))
    version, kind = document.get("apiVersion"), document.get("kind")
    model = MODELS.get(kind) if isinstance(kind, str) else None
    refusals = []
    if version != API_VERSION:
        refusals.append(("api_version", "apiVersion", f"unknown apiVersion {version!r}"))
    if model is None:
        refusals.append(("kind", "kind", f"unknown kind {kind!r}"))
    if refusals or model is None:
        return Verdict(False, tuple(refusals))
    try:
        validate_like_loader(model, document)
    except ValidationError as error:
        return Verdict(
            False,
            tuple(
                (str(e["type"]), ".".join(map(str, e["loc"])) or "-", str(e["msg"]))
                for e in error.errors()
            ),
        )
    return Verdict(True)


def disagreement(document: Any) -> str | None:
    """What the models and the schema disagree on about `document`, or None."""
    verdict = models_verdict(document)
    refused_by_schema = schema_errors(document)
    if verdict.accepted and refused_by_schema:
        return "the models accept what the JSON Schema refuses: " + "; ".join(refused_by_schema)
    if not verdict.accepted and not refused_by_schema:
        unexplained = [kind for kind, _, _ in verdict.errors if kind not in MODEL_ONLY]
        if unexplained:
            return "the JSON Schema accepts what the models refuse: " + verdict.text()
    return None


def shown(document: Any) -> str:
    try:
        return json.dumps(document, indent=1, ensure_ascii=True, allow_nan=True)[:6000]
    except (TypeError, ValueError):
        return repr(document)[:6000]


def assert_agree(document: Any) -> None:
    COUNTS["documents"] += 1
    found = disagreement(document)
    assert found is None, f"{found}\ndocument:\n{shown(document)}"


@pytest.fixture(scope="module", autouse=True)
def _report_documents(request: pytest.FixtureRequest) -> Iterator[None]:
    yield from count_report(request.config, "documents")


# --- the comparison is sound ------------------------------------------------------------------


def test_the_helper_follows_the_loader() -> None:
    """`validate_like_loader` makes the loader's call: if this fails, update it to match."""
    source = re.sub(r"\s+", " ", inspect.getsource(loader._load_document))
    assert "model.model_validate(document.data, by_alias=True, by_name=False)" in source


@pytest.mark.parametrize("index", range(len(SEED_DOCUMENTS)))
def test_the_seeds_are_valid_for_both(index: int) -> None:
    document = SEED_DOCUMENTS[index]
    assert models_verdict(document).accepted, models_verdict(document).text()
    assert schema_errors(document) == []


def edited(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(document)
    node: Any = result
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return result


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (HOST_NAS, None),
        (edited(HOST_NAS, ("metadata", "name"), "Nas"), None),  # both refuse
        (edited(HOST_NAS, ("spec", "transport"), "ssh"), None),  # models only: ssh_missing
        (edited(POLICY_MEDIA, ("spec", "snapshots", "cron"), "61 * * * *"), None),  # models only
    ],
)
def test_agreements_pass(document: Any, expected: None) -> None:
    assert disagreement(document) is expected


def test_a_disagreement_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both directions are caught: a schema that refuses everything, one that accepts all."""
    import tests.test_schema_agreement as this

    monkeypatch.setattr(this, "schema_errors", lambda document: ["-: refused"])
    assert disagreement(HOST_NAS) is not None and "models accept" in str(disagreement(HOST_NAS))
    monkeypatch.setattr(this, "schema_errors", lambda document: [])
    found = disagreement(edited(HOST_NAS, ("metadata", "name"), "Nas"))
    assert found is not None and "Schema accepts" in found
    # a model-only refusal alone is not a disagreement, next to another refusal it is
    assert disagreement(edited(HOST_NAS, ("spec", "transport"), "ssh")) is None
    both = edited(edited(HOST_NAS, ("spec", "transport"), "ssh"), ("metadata", "name"), "Nas")
    assert disagreement(both) is not None


# --- edges, one case each ---------------------------------------------------------------------


def _host(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    return edited(HOST_BACKUP, path, value)


def _policy(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    return edited(POLICY_HOME, path, value)


TARGET = ("spec", "replication", 0)
EDGES = {
    "name-63": _host(("metadata", "name"), "a" * 63),
    "name-64": _host(("metadata", "name"), "a" * 64),
    "name-trailing-newline": _host(("metadata", "name"), "nas\n"),
    "name-leading-dash": _host(("metadata", "name"), "-nas"),
    "label-value-number": _host(("metadata", "labels"), {"tier": 1}),
    "port-0": _host(("spec", "ssh", "port"), 0),
    "port-65535": _host(("spec", "ssh", "port"), 65535),
    "port-65536": _host(("spec", "ssh", "port"), 65536),
    "port-float-22.0": _host(("spec", "ssh", "port"), 22.0),
    "port-string": _host(("spec", "ssh", "port"), "22"),
    "port-bool": _host(("spec", "ssh", "port"), True),
    "user-empty": _host(("spec", "ssh", "user"), ""),
    "user-null": _host(("spec", "ssh", "user"), None),
    "ssh-option-trailing-newline": _host(("spec", "ssh", "options"), ["A=b\n"]),
    "ssh-option-no-value": _host(("spec", "ssh", "options"), ["A="]),
    "zfs-command-empty": _host(("spec", "zfsCommand"), []),
    "zfs-command-snake": edited(HOST_NAS, ("spec", "zfs_command"), ["zfs"]),
    "transport-yes": _host(("spec", "transport"), "yes"),
    "interval-15m": _policy(("spec", "snapshots", "interval"), "15m"),
    "interval-0m": _policy(("spec", "snapshots", "interval"), "0m"),
    "interval-number": _policy(("spec", "snapshots", "interval"), 900),
    "interval-trailing-newline": _policy(("spec", "snapshots", "interval"), "15m\n"),
    "interval-5000-digits": _policy(("spec", "snapshots", "interval"), "9" * 5000 + "s"),
    "interval-leading-zeros": _policy(("spec", "snapshots", "interval"), "0" * 5000 + "1s"),
    "prefix-64": _policy(("spec", "snapshots", "prefix"), "a" * 64),
    "prefix-65": _policy(("spec", "snapshots", "prefix"), "a" * 65),
    "prefix-trailing-newline": _policy(("spec", "snapshots", "prefix"), "zr_\n"),
    "root-leading-slash": _policy((*TARGET, "root"), "/vault"),
    "root-dotdot": _policy((*TARGET, "root"), "vault/../nas"),
    "root-space": _policy((*TARGET, "root"), "vault nas/x"),
    "root-255": _policy((*TARGET, "root"), "a" * 255),
    "root-256": _policy((*TARGET, "root"), "a" * 256),
    "root-trailing-newline": _policy((*TARGET, "root"), "vault/nas\n"),
    "property-uppercase": _policy(
        (*TARGET, "receive", "properties", "override"), {"ReadOnly": "on"}
    ),
    "property-trailing-newline": _policy(
        (*TARGET, "receive", "properties", "override"), {"readonly\n": "on"}
    ),
    "inherit-trailing-newline": _policy(
        (*TARGET, "receive", "properties", "inherit"), ["mountpoint\n"]
    ),
    "last-n-0": _policy(("spec", "retention", "keep"), [{"lastN": 0}]),
    "last-n-float": _policy(("spec", "retention", "keep"), [{"lastN": 3.0}]),
    "last-n-snake": _policy(("spec", "retention", "keep"), [{"last_n": 3}]),
    "rule-two-keys": _policy(("spec", "retention", "keep"), [{"grid": "1x1h", "lastN": 3}]),
    "regex-backreference": _policy(("spec", "retention", "keep"), [{"regex": "(a)\\1"}]),
    "regex-z": _policy(("spec", "retention", "keep"), [{"regex": "T000000Z\\z"}]),
    "regex-unicode-class": _policy(("spec", "retention", "keep"), [{"regex": "\\pL"}]),
    "regex-huge-repeat": _policy(("spec", "retention", "keep"), [{"regex": "a{99999999999}"}]),
    "regex-1000": _policy(("spec", "snapshots", "include"), ["x" * 1000]),
    "regex-1001": _policy(("spec", "snapshots", "include"), ["x" * 1001]),
    "regex-500-groups": _policy(("spec", "snapshots", "include"), ["(" * 500 + ")" * 500]),
    "send-flag-string": _policy((*TARGET, "send", "raw"), "true"),
    "initial-replication-snake": _policy((*TARGET, "initial_replication"), "all"),
    "extra-top-level": edited(HOST_NAS, ("status",), {}),
    "targets-16": _policy(("spec", "replication"), POLICY_HOME["spec"]["replication"] * 8),
    "targets-17": _policy(("spec", "replication"), POLICY_HOME["spec"]["replication"] * 9),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edges_agree(name: str) -> None:
    assert_agree(EDGES[name])


# --- generated documents ----------------------------------------------------------------------


@fuzz_settings(1500)
@given(document=near_valid_documents())
def test_near_valid_documents_agree(document: Any) -> None:
    assert_agree(document)


@fuzz_settings(300)
@given(document=st.one_of(json_values(max_leaves=12), st.sampled_from(SEED_DOCUMENTS)))
def test_any_json_document_agrees(document: Any) -> None:
    assert_agree(document)
