"""Tests for manifest loading (`reconciler.manifest.loader`): files, directories, documents,
and errors reported as `FILE:LINE:COLUMN: field.path: message`, all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.manifest.errors import ManifestError, ManifestErrors, SourceLocation
from reconciler.manifest.loader import load_manifests, manifest_files, parse_manifests
from reconciler.manifest.models import InitialReplication, Protection, Transport
from reconciler.manifest.yamldoc import format_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path("tests/manifests")
EXAMPLE = ROOT / "manifests" / "example.yaml"
HEADER = "apiVersion: zfs-reconciler.dev/v1alpha1\n"


@pytest.fixture(autouse=True)
def _in_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture paths are relative, as a user types them, so error strings are stable."""
    monkeypatch.chdir(ROOT)


def errors_of(paths: list[str | Path]) -> list[str]:
    with pytest.raises(ManifestErrors) as caught:
        load_manifests(paths)
    return [str(error) for error in caught.value.errors]


def text_errors(text: str) -> list[str]:
    with pytest.raises(ManifestErrors) as caught:
        parse_manifests([("m.yaml", text)])
    return [str(error) for error in caught.value.errors]


def test_the_example_loads() -> None:
    manifests = load_manifests([EXAMPLE])
    assert list(manifests.hosts) == ["local"]
    assert manifests.hosts["local"].spec.transport is Transport.LOCAL
    policy = manifests.policies["home"]
    assert policy.spec.source.filesystems == {"tank/home<": True, "tank/home/scratch<": False}
    assert policy.spec.snapshots.prefix == "zr_"
    assert policy.spec.snapshots.interval == 15 * 60
    (target,) = policy.spec.replication
    assert (target.name, target.host, target.root) == ("backup", "local", "backup/tank-replica")
    assert target.protection is Protection.RESUMABLE
    assert target.initial_replication is InitialReplication.MOST_RECENT
    assert target.receive.properties.override == {"readonly": "on", "canmount": "noauto"}
    assert target.retention is not None and len(target.retention.keep) == 2
    assert manifests.sources[("Policy", "home")] == SourceLocation(str(EXAMPLE), 17, 1)


def test_a_directory_loads_every_yaml_file_below_it_in_order() -> None:
    manifests = load_manifests([FIXTURES / "tree"])
    assert list(manifests.hosts) == ["backup", "nas"]  # sorted by name
    assert list(manifests.policies) == ["home", "media"]
    assert manifests.sources == {
        ("Host", "backup"): SourceLocation("tests/manifests/tree/hosts.yaml", 6, 1),
        ("Host", "nas"): SourceLocation("tests/manifests/tree/hosts.yaml", 1, 1),
        ("Policy", "home"): SourceLocation("tests/manifests/tree/policies/home.yaml", 1, 1),
        ("Policy", "media"): SourceLocation("tests/manifests/tree/policies/media.yml", 4, 1),
    }
    files, errors = manifest_files([FIXTURES / "tree"])
    assert errors == []
    assert [path.as_posix() for path in files] == [
        "tests/manifests/tree/hosts.yaml",
        "tests/manifests/tree/policies/home.yaml",
        "tests/manifests/tree/policies/media.yml",
    ]  # README.txt and the hidden .drafts/ directory are not loaded


def test_a_file_named_twice_is_loaded_once() -> None:
    manifests = load_manifests([FIXTURES / "tree", FIXTURES / "tree" / "hosts.yaml"])
    assert list(manifests.hosts) == ["backup", "nas"]


def test_every_error_of_a_multi_document_file_is_reported_together() -> None:
    assert errors_of([FIXTURES / "errors.yaml"]) == [
        "tests/manifests/errors.yaml:3:18: metadata.name: 'Nas' is not a DNS-1123 label (at most"
        " 63 lowercase letters, digits or '-', starting and ending with a letter or digit)",
        "tests/manifests/errors.yaml:4:7: spec.ssh: transport ssh needs an ssh block"
        " (at least ssh.host)",
        "tests/manifests/errors.yaml:4:36: spec.zfsCommand: must not be empty",
        "tests/manifests/errors.yaml:12:3: spec.colour: unknown field"
        " (allowed: commandTimeout, ssh, transport, zfsCommand)",
        'tests/manifests/errors.yaml:20:33: spec.source.filesystems["tank/home<"]:'
        " expected true or false, got the string 'yes'",
        'tests/manifests/errors.yaml:20:38: spec.source.filesystems["/tank"]:'
        " invalid filesystem pattern '/tank': a pattern must not start or end with '/'",
        "tests/manifests/errors.yaml:21:38: spec.snapshots.interval: unknown unit 'x' in"
        " duration '15x' (use s, m, h, d or w)",
        "tests/manifests/errors.yaml:24:9: spec.retention.keep[0]: a retention rule takes exactly"
        " one of grid, lastN, regex; got grid and lastN (write each as its own list item)",
        "tests/manifests/errors.yaml:26:15: spec.retention.keep[1].grid: invalid grid"
        " '2x1d | 1x1h': interval 2 (1x1h) is shorter than interval 1 (2x1d): interval lengths"
        " must not decrease after an interval that is not keep=all",
        "tests/manifests/errors.yaml:27:20: spec.retention.keep[2].foo: unknown field"
        " (allowed: lastN, match)",
        "tests/manifests/errors.yaml:28:16: spec.retention.keep[3].regex: invalid regular"
        " expression '(unclosed': missing ): (unclosed",
        "tests/manifests/errors.yaml:30:7: spec.replication[0].host: required field is missing",
        "tests/manifests/errors.yaml:31:13: spec.replication[0].root: '/vault' is not a"
        " filesystem name (components of A-Z a-z 0-9 _ . : - and space other than '.' and '..',"
        " separated by single '/', no leading or trailing '/', no '@' or '#')",
        "tests/manifests/errors.yaml:32:19: spec.replication[0].send.raw: expected true or false,"
        " got the string 'yes'",
        "tests/manifests/errors.yaml:34:59: spec.replication[0].receive.properties.inherit:"
        " readonly: a property cannot be both overridden and inherited",
        "tests/manifests/errors.yaml:36:13: apiVersion: unknown apiVersion"
        " 'zfs-reconciler.dev/v2' (expected zfs-reconciler.dev/v1alpha1)",
        "tests/manifests/errors.yaml:37:7: kind: unknown kind 'Widget'"
        " (expected one of Host, Policy)",
        "tests/manifests/errors.yaml:39:1: -: a manifest is a mapping with apiVersion, kind,"
        " metadata and spec, not a list",
    ]


def test_a_syntax_error_keeps_the_errors_of_the_documents_before_it() -> None:
    assert errors_of([FIXTURES / "syntax.yaml"]) == [
        "tests/manifests/syntax.yaml:4:7: spec.ssh: transport ssh needs an ssh block"
        " (at least ssh.host)",
        "tests/manifests/syntax.yaml:8:23: -: invalid YAML: did not find expected ',' or ']'"
        " (while parsing a flow sequence at line 8, column 18)",
    ]


def test_duplicate_names_and_duplicate_keys() -> None:
    assert errors_of([FIXTURES / "duplicates.yaml"]) == [
        "tests/manifests/duplicates.yaml:8:18: metadata.name: duplicate Host name 'nas'"
        " (first defined at tests/manifests/duplicates.yaml:1:1)",
        "tests/manifests/duplicates.yaml:16:3: spec.transport: duplicate key 'transport'"
        " (first at line 15, column 3)",
    ]


def test_duplicate_names_across_files_point_at_the_later_file() -> None:
    errors = errors_of([FIXTURES / "tree", FIXTURES / "duplicates.yaml"])
    assert errors[0] == (
        "tests/manifests/duplicates.yaml:3:18: metadata.name: duplicate Host name 'nas'"
        " (first defined at tests/manifests/tree/hosts.yaml:1:1)"
    )


def test_errors_of_several_files_come_in_load_order() -> None:
    errors = errors_of(["missing.yaml", FIXTURES / "syntax.yaml", FIXTURES / "duplicates.yaml"])
    assert [error.split(":", 1)[0] for error in errors] == [
        "missing.yaml",
        "tests/manifests/syntax.yaml",
        "tests/manifests/syntax.yaml",
        "tests/manifests/duplicates.yaml",
        "tests/manifests/duplicates.yaml",
        "tests/manifests/duplicates.yaml",
    ]
    assert errors[0] == "missing.yaml:1:1: -: no such file or directory"
    # syntax.yaml's nas is invalid, but its name is taken: both nas of duplicates.yaml repeat it
    assert errors[3] == (
        "tests/manifests/duplicates.yaml:3:18: metadata.name: duplicate Host name 'nas'"
        " (first defined at tests/manifests/syntax.yaml:1:1)"
    )


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    assert errors_of([tmp_path]) == [
        f"{tmp_path}:1:1: -: no manifest files (*.yaml, *.yml) in this directory"
    ]


def test_empty_files_and_documents_give_an_empty_set() -> None:
    manifests = parse_manifests([("a.yaml", ""), ("b.yaml", "---\n# nothing\n---\n")])
    assert (manifests.hosts, manifests.policies) == ({}, {})


def test_a_missing_field_points_at_the_mapping_that_lacks_it() -> None:
    text = HEADER + "kind: Policy\nmetadata: {name: p}\nspec:\n  snapshots: {prefix: zr_}\n"
    assert text_errors(text) == ["m.yaml:5:3: spec.source: required field is missing"]
    assert text_errors(HEADER + "kind: Host\nmetadata: {name: h}\n") == [
        "m.yaml:1:1: spec: required field is missing"
    ]


def test_unknown_top_level_fields_list_the_allowed_ones() -> None:
    text = HEADER + "kind: Host\nmetadata: {name: h}\nspec: {}\nstatus: {}\n"
    assert text_errors(text) == [
        "m.yaml:5:1: status: unknown field (allowed: apiVersion, kind, metadata, spec)"
    ]


def test_missing_api_version_and_kind() -> None:
    assert text_errors("metadata: {name: h}\nspec: {}\n") == [
        "m.yaml:1:1: apiVersion: required field is missing (expected zfs-reconciler.dev/v1alpha1)",
        "m.yaml:1:1: kind: required field is missing (expected one of Host, Policy)",
    ]


def test_an_empty_value_points_at_its_key() -> None:
    text = HEADER + "kind: Host\nmetadata: {name: h}\nspec:\n  ssh:\n  transport: ssh\n"
    assert text_errors(text) == [
        "m.yaml:5:3: spec.ssh: transport ssh needs an ssh block (at least ssh.host)"
    ]


def test_wrong_types_name_what_was_found() -> None:
    text = HEADER + "kind: Host\nmetadata: {name: h, labels: [a]}\nspec: 3\n"
    assert text_errors(text) == [
        "m.yaml:3:29: metadata.labels: expected a mapping, got a list",
        "m.yaml:4:7: spec: expected a mapping, got the number 3",
    ]


def test_a_bad_property_name_points_at_the_key() -> None:
    text = (
        HEADER + "kind: Policy\nmetadata: {name: p}\nspec:\n"
        "  source: {host: h, filesystems: {a: true}}\n"
        "  snapshots: {prefix: zr_}\n"
        "  replication:\n"
        "    - name: t\n"
        "      host: h\n"
        "      root: r\n"
        "      receive: {properties: {override: {Bad: x}}}\n"
    )
    assert text_errors(text)[0] == (
        "m.yaml:11:41: spec.replication[0].receive.properties.override.Bad: 'Bad' is not a ZFS"
        " property name (lowercase letters, digits, _ . : -)"
    )


def test_manifest_error_format() -> None:
    error = ManifestError("m.yaml", 3, 7, "spec.snapshots.interval", "bad")
    assert str(error) == "m.yaml:3:7: spec.snapshots.interval: bad"
    assert error.location == SourceLocation("m.yaml", 3, 7)
    assert str(ManifestErrors((error, error))) == f"{error}\n{error}"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "-"),
        (("spec", "retention", "keep", 0, "grid"), "spec.retention.keep[0].grid"),
        (("spec", "source", "filesystems", "tank/home<"), 'spec.source.filesystems["tank/home<"]'),
        (("a", 'say "hi"'), 'a["say \\"hi\\""]'),
        (("allow-rollback",), "allow-rollback"),
    ],
)
def test_field_paths(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text
