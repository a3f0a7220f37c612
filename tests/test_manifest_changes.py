"""Tests for `reconciler.manifest.changes`: generations and change lines between two manifest
sets, built from small YAML texts with `parse_manifests`."""

from __future__ import annotations

import pytest

from reconciler.manifest.changes import (
    MAX_VALUE_TEXT,
    Change,
    affected_policies,
    changes,
    generation,
    normalized,
)
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.models import Manifests

HEADER = "apiVersion: zfs-reconciler.dev/v1alpha1\n"

NAS = HEADER + "kind: Host\nmetadata: {name: nas}\nspec: {transport: local}\n"
BACKUP = HEADER + (
    "kind: Host\nmetadata: {name: backup}\n"
    "spec: {transport: ssh, ssh: {host: backup.example.org, port: 22}}\n"
)
BACKUP_2222 = BACKUP.replace("port: 22}", "port: 2222}")
BACKUP_NO_PORT = BACKUP.replace(", port: 22}", "}")


def policy(name: str, grid: str = "24x1h", *, source: str = "nas", fs: str = "tank/home<") -> str:
    return HEADER + (
        f"kind: Policy\nmetadata: {{name: {name}}}\n"
        "spec:\n"
        f"  source: {{host: {source}, filesystems: {{'{fs}': true}}}}\n"
        f"  snapshots: {{prefix: {name}_, interval: 15m}}\n"
        "  retention:\n"
        "    keep:\n"
        f"      - grid: '{grid}'\n"
        "      - lastN: 3\n"
        "  replication:\n"
        "    - {name: offsite, host: backup, root: vault/nas}\n"
    )


HOME = policy("home")
DB = policy("db", fs="tank/db")
LOCAL = policy("local", fs="tank/local")
LOCAL = LOCAL[: LOCAL.index("  replication:")]  # no target: only the source host


def load(*files: str | list[str]) -> Manifests:
    """Manifests from files, each one text or a list of documents joined with `---`."""
    sources = [
        (f"f{index}.yaml", "---\n".join(text) if isinstance(text, list) else text)
        for index, text in enumerate(files)
    ]
    return parse_manifests(sources)


def lines(old: Manifests | None, new: Manifests) -> list[str]:
    return [str(change) for change in changes(old, new)]


BASE = load([NAS, BACKUP], [HOME])


# --- generation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "same",
    [
        pytest.param(load([HOME], [NAS, BACKUP]), id="files-reordered"),
        pytest.param(load([BACKUP, HOME, NAS]), id="one-file-reordered"),
        pytest.param(load([NAS], [BACKUP], [HOME]), id="split-in-files"),
        pytest.param(
            load(["# a comment\n" + NAS, BACKUP], [HOME.replace("\n", "  # note\n")]),
            id="comments",
        ),
        pytest.param(load([NAS, BACKUP_NO_PORT], [HOME]), id="default-port-omitted"),
        pytest.param(
            load([NAS.replace("spec: {transport: local}", "spec: {}"), BACKUP], [HOME]),
            id="default-transport-omitted",
        ),
        pytest.param(
            load([NAS, BACKUP], [HOME.replace("interval: 15m", "interval: 900s")]),
            id="same-duration-other-unit",
        ),
    ],
)
def test_equal_manifests_have_the_same_generation_and_no_changes(same: Manifests) -> None:
    assert generation(same) == generation(BASE)
    assert changes(BASE, same) == ()
    assert affected_policies(BASE, same) == frozenset()


def test_the_generation_is_short_hex_and_sees_any_change() -> None:
    value = generation(BASE)
    assert len(value) == 12 and int(value, 16) >= 0
    assert generation(load([NAS, BACKUP], [policy("home", "48x1h")])) != value
    assert generation(load([NAS, BACKUP_2222], [HOME])) != value


def test_normalized_is_json_of_effective_values_by_alias() -> None:
    form = normalized(BASE)
    assert list(form) == ["host backup", "host nas", "policy home"]
    assert form["host backup"]["spec"]["ssh"]["port"] == 22
    assert form["host nas"]["spec"] == {
        "transport": "local",
        "ssh": None,
        "zfsCommand": ["zfs"],
        "commandTimeout": "10m",
    }
    assert form["policy home"]["spec"]["snapshots"]["interval"] == "15m"
    assert form["policy home"]["spec"]["replication"][0]["initialReplication"] == "mostRecent"


# --- change lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(
            load([NAS, BACKUP], [policy("home", "48x1h")]),
            ["policy home: spec.retention.keep[0].grid: '24x1h' -> '48x1h'"],
            id="grid-edited",
        ),
        pytest.param(
            load([NAS, BACKUP], [HOME, DB]),
            ["policy db: added"],
            id="policy-added",
        ),
        pytest.param(
            load([NAS], [LOCAL]),
            ["host backup: removed", "policy home: removed", "policy local: added"],
            id="host-and-policy-removed",
        ),
        pytest.param(
            load([NAS, BACKUP_2222], [HOME]),
            ["host backup: spec.ssh.port: 22 -> 2222"],
            id="host-port",
        ),
        pytest.param(
            load([NAS, BACKUP], [HOME + "    - {name: second, host: nas, root: tank/copy}\n"]),
            ["policy home: spec.replication[1]: added"],
            id="target-added",
        ),
        pytest.param(
            load([NAS, BACKUP], [HOME.replace("      - lastN: 3\n", "")]),
            ["policy home: spec.retention.keep[1]: removed"],
            id="rule-removed",
        ),
        pytest.param(
            load([NAS, BACKUP], [HOME.replace("'tank/home<': true", "'tank/home<': false")]),
            ['policy home: spec.source.filesystems["tank/home<"]: True -> False'],
            id="quoted-key",
        ),
        pytest.param(
            load([NAS, BACKUP], [HOME.replace("{name: home}", "{name: home, labels: {a: b}}")]),
            ["policy home: metadata.labels.a: added"],
            id="label-added",
        ),
        pytest.param(
            load([NAS, BACKUP], [HOME.replace("interval: 15m", "cron: '@daily'")]),
            [
                "policy home: spec.snapshots.cron: None -> '@daily'",
                "policy home: spec.snapshots.interval: '15m' -> None",
            ],
            id="type-change-both-ways",
        ),
    ],
)
def test_change_lines(new: Manifests, expected: list[str]) -> None:
    assert lines(BASE, new) == expected


def test_everything_is_added_after_nothing() -> None:
    assert lines(None, BASE) == ["host backup: added", "host nas: added", "policy home: added"]
    assert changes(None, BASE)[0] == Change(
        "host", "backup", "added", "", None, normalized(BASE)["host backup"]
    )


def test_a_change_keeps_the_values() -> None:
    (change,) = changes(BASE, load([NAS, BACKUP], [policy("home", "48x1h")]))
    assert change == Change(
        "policy", "home", "changed", "spec.retention.keep[0].grid", "24x1h", "48x1h"
    )


def test_changes_are_sorted_with_indexes_as_numbers() -> None:
    rules = "".join(f"      - lastN: {n}\n" for n in range(1, 13))
    old = load([NAS, BACKUP], [HOME.replace("      - lastN: 3\n", rules)])
    new = load([NAS, BACKUP], [HOME.replace("      - lastN: 3\n", rules.replace(": ", ": 1"))])
    paths = [change.path for change in changes(old, new)]
    assert paths == [f"spec.retention.keep[{index}].lastN" for index in range(1, 13)]


def test_a_long_value_is_truncated_with_an_ellipsis() -> None:
    long_grid = " | ".join(["1x1h(keep=all)"] + [f"{n}x1d" for n in range(1, 40)])
    (change,) = changes(BASE, load([NAS, BACKUP], [policy("home", long_grid)]))
    text = str(change)
    before, after = text.split(": ")[-1].split(" -> ")
    assert before == "'24x1h'"
    assert len(after) == MAX_VALUE_TEXT and after.endswith("…")
    assert after.startswith("'1x1h(keep=all) | 1x1d | 2x1d")
    assert change.after == long_grid  # the value itself is whole


def test_a_removed_target_block_is_one_line_not_a_flood() -> None:
    new = load(
        [NAS, BACKUP],
        [
            HOME.replace(
                "  replication:\n    - {name: offsite, host: backup, root: vault/nas}\n", ""
            )
        ],
    )
    (line,) = lines(BASE, new)
    assert line.startswith("policy home: spec.replication[0]: removed")


# --- affected policies ------------------------------------------------------------------------

TWO = load([NAS, BACKUP], [HOME, LOCAL])


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(TWO, set(), id="nothing"),
        pytest.param(load([NAS, BACKUP_2222], [HOME, LOCAL]), {"home"}, id="target-host"),
        pytest.param(
            load(
                [
                    NAS.replace("spec: {transport: local}", "spec: {zfsCommand: [sudo, zfs]}"),
                    BACKUP,
                ],
                [HOME, LOCAL],
            ),
            {"home", "local"},
            id="source-host",
        ),
        pytest.param(load([NAS, BACKUP], [policy("home", "48x1h"), LOCAL]), {"home"}, id="edited"),
        pytest.param(load([NAS, BACKUP], [HOME, LOCAL, DB]), {"db"}, id="added"),
        pytest.param(load([NAS, BACKUP], [HOME]), set(), id="removed-is-not-affected"),
    ],
)
def test_affected_policies(new: Manifests, expected: set[str]) -> None:
    assert affected_policies(TWO, new) == expected


def test_every_policy_is_affected_at_the_start() -> None:
    assert affected_policies(None, TWO) == {"home", "local"}
