"""Validation of a fleet's manifests (issue 11, item 5): the generated fleet of the benchmark is
valid and loads the same whole or split; the checks between documents do work in proportion to
the fleet, not to its pairs; and the shortcuts that make validation fast (the reader's
resolution of plain words, the parsed field texts kept per process) give what the general
paths give. Timings are the benchmark's business (`tests/bench/validate_bench.py`), not a test's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.manifest import fields, validate
from reconciler.manifest.loader import ManifestErrors, load_manifests, parse_manifests
from reconciler.manifest.yamldoc import _resolve
from tests.bench.fleet import fleet_count, fleet_documents, fleet_text, write_fleet


def test_a_fleet_is_valid_and_each_policy_replicates_to_the_next_host() -> None:
    manifests = parse_manifests([("fleet.yaml", fleet_text(12))])
    assert len(manifests.hosts) == len(manifests.policies) == 12
    for i in range(12):
        policy = manifests.policies[f"p{i}"]
        assert policy.spec.source.host == f"h{i}"
        assert [target.host for target in policy.spec.replication] == [f"h{(i + 1) % 12}"]
        assert manifests.hosts[f"h{i}"].spec.transport == "ssh"


def test_fleet_sizes_are_near_what_is_asked() -> None:
    for size in (250_000, 1_000_000):
        text = fleet_text(fleet_count(size))
        assert 0.97 * size <= len(text) <= 1.03 * size


def test_a_split_fleet_loads_as_the_same_fleet_in_one_file(tmp_path: Path) -> None:
    write_fleet(tmp_path / "one", 45, split=False)
    write_fleet(tmp_path / "split", 45, split=True)
    whole, split = load_manifests([tmp_path / "one"]), load_manifests([tmp_path / "split"])
    assert len(list((tmp_path / "split").rglob("*.yaml"))) == 6  # 3 of hosts, 3 of policies
    assert whole.hosts == split.hosts
    assert whole.policies == split.policies


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Replace `validate.<name>` by a wrapper that records the size of each call's work."""
    sizes: list[int] = []
    original = getattr(validate, name)

    def counted(*args: Any) -> Any:
        sizes.append(len(args[0]) if isinstance(args[0], list) else 1)
        return original(*args)

    monkeypatch.setattr(validate, name, counted)
    return sizes


def test_a_fleet_compares_no_pair_of_policies_or_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every policy has its own source host and every target its own receiving host: the
    groups of the checks between documents have one member each, so nothing is compared
    (the checks before the indexing compared every pair: n(n - 1)/2 of each)."""
    groups = _counting(monkeypatch, "first_overlaps")
    witnesses = _counting(monkeypatch, "filters_may_overlap")
    parse_manifests([("fleet.yaml", fleet_text(300))])
    assert groups == [] and witnesses == []


def test_policies_sharing_a_host_are_compared_in_one_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same fleet with every policy on h0 and every target on h1 under one root: one
    group of n policies and one of n targets, each laid out once (linear work), and no
    witness is looked for since none overlaps."""
    documents = [
        re.sub(
            r"host: h\d+\n      root: backup/h\d+",
            "host: h1\n      root: backup",
            re.sub(r"host: h\d+\n    filesystems", "host: h0\n    filesystems", document),
        )
        for document in fleet_documents(200)
    ]
    groups = _counting(monkeypatch, "first_overlaps")
    witnesses = _counting(monkeypatch, "filters_may_overlap")
    manifests = parse_manifests([("fleet.yaml", "".join(documents))])
    assert {policy.spec.source.host for policy in manifests.policies.values()} == {"h0"}
    assert {t.root for p in manifests.policies.values() for t in p.spec.replication} == {"backup"}
    assert sorted(groups) == [200, 200]
    assert witnesses == []


def _resolve_reference(value: str) -> Any:
    """The YAML 1.2 core schema's resolution as the reader did it before its shortcut for
    words that start like null or a boolean."""
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    booleans = {"true": True, "True": True, "TRUE": True}
    booleans |= {"false": False, "False": False, "FALSE": False}
    if value in booleans:
        return booleans[value]
    if re.fullmatch(r"[-+]?[0-9]+", value):
        return int(value)
    based = re.fullmatch(r"0o([0-7]+)|0x([0-9a-fA-F]+)", value)
    if based:
        octal, hexadecimal = based.groups()
        return int(octal, 8) if octal is not None else int(hexadecimal, 16)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", value):
        return float(value)
    sign = value[0] if value[0] in "+-" else ""
    special = {".inf": "inf", ".Inf": "inf", ".INF": "inf"}
    special |= {".nan": "nan", ".NaN": "nan", ".NAN": "nan"}
    kind = special.get(value[len(sign) :])
    if kind == "inf" or (kind == "nan" and not sign):
        return float(sign + kind)
    return value


WORDS = ["null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", ".inf", ".nan"]


@given(
    st.one_of(
        st.sampled_from(WORDS),
        st.text(alphabet="nNtTfFrueaslUL0123456789+-.~xoeE/<_ ", max_size=8),
    )
)
def test_the_reader_resolves_plain_scalars_as_the_core_schema(value: str) -> None:
    expected = _resolve_reference(value)
    got = _resolve(value)
    assert type(got) is type(expected)
    assert got == expected or (got != got and expected != expected)  # nan


POLICY = """\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: {name}}}
spec:
  source: {{host: h0, filesystems: {{"tank/{name}<": true}}}}
  snapshots: {{prefix: zr_, cron: "{cron}"}}
  retention: {{keep: [{{grid: "{grid}"}}, {{regex: "{regex}"}}]}}
"""
HOST = "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Host\nmetadata: {name: h0}\nspec: {}\n"


def test_texts_parsed_once_give_the_same_values_and_the_same_errors_every_time() -> None:
    """Two policies with the same grid and cron share the parsed values; the same invalid
    texts in two policies give the same errors at both (errors are not kept)."""
    good = {"cron": "*/30 * * * *", "grid": "1x1h(keep=all) | 24x1h", "regex": "T00$"}
    manifests = parse_manifests(
        [("a.yaml", HOST + POLICY.format(name="a", **good) + POLICY.format(name="b", **good))]
    )
    a, b = manifests.policies["a"].spec, manifests.policies["b"].spec
    assert a.snapshots.cron == b.snapshots.cron and a.retention == b.retention
    bad = {"cron": "61 * * * *", "grid": "1x1h | 24y1h", "regex": "(unclosed"}
    texts = [HOST + POLICY.format(name="a", **bad), POLICY.format(name="b", **bad)]
    for _ in range(2):  # the second load finds the valid texts known, the invalid ones not
        with pytest.raises(ManifestErrors) as caught:
            parse_manifests([("a.yaml", texts[0]), ("b.yaml", texts[1])])
        messages = [(error.file, error.path, error.message) for error in caught.value.errors]
        assert len(messages) == 6
        first = [(path, message) for file, path, message in messages if file == "a.yaml"]
        second = [(path, message) for file, path, message in messages if file == "b.yaml"]
        assert first == second
    assert fields._parsed_grid.cache_info().maxsize == fields._PARSED
