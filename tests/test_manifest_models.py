"""Tests for the manifest models (`reconciler.manifest.models`): aliases, defaults, typed
values, and the rules a single document must follow."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.manifest.cron import CronSchedule
from reconciler.manifest.grid import Grid
from reconciler.manifest.models import (
    API_VERSION,
    GridRule,
    Host,
    HostSpec,
    InitialReplication,
    LastNRule,
    Policy,
    Protection,
    ReceivePropertiesSpec,
    RegexRule,
    RetentionSpec,
    SnapshotsSpec,
    TargetSpec,
    Transport,
)


def errors(model: Any, data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(tuple(error["loc"]), error["msg"]) for error in caught.value.errors()]


def policy_data(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": {"host": "nas", "filesystems": {"tank<": True}},
        "snapshots": {"prefix": "zr_"},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Policy",
        "metadata": {"name": "p"},
        "spec": base | spec,
    }


def test_host_defaults() -> None:
    host = Host.model_validate(
        {"apiVersion": API_VERSION, "kind": "Host", "metadata": {"name": "nas"}, "spec": {}}
    )
    assert host.spec.transport is Transport.LOCAL
    assert host.spec.ssh is None
    assert host.spec.zfs_command == ["zfs"]
    assert host.metadata.labels == {}


def test_ssh_host_with_camel_case_fields() -> None:
    spec = HostSpec.model_validate(
        {
            "transport": "ssh",
            "ssh": {"host": "b.example.org", "identityFile": "/k", "options": ["Compression=yes"]},
            "zfsCommand": ["sudo", "zfs"],
        }
    )
    assert spec.ssh is not None
    assert (spec.ssh.host, spec.ssh.port, spec.ssh.user) == ("b.example.org", 22, None)
    assert spec.ssh.identity_file == "/k"
    assert spec.zfs_command == ["sudo", "zfs"]


def test_snake_case_names_work_in_python() -> None:
    spec = HostSpec(transport=Transport.LOCAL, zfs_command=["doas", "zfs"])
    assert spec.zfs_command == ["doas", "zfs"]
    assert spec.model_dump(by_alias=True)["zfsCommand"] == ["doas", "zfs"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"transport": "ssh"},
            [(("ssh",), "transport ssh needs an ssh block (at least ssh.host)")],
        ),
        ({"ssh": {"host": "x"}}, [(("ssh",), "an ssh block needs transport: ssh")]),
        ({"transport": "telnet"}, [(("transport",), "Input should be 'local' or 'ssh'")]),
        (
            {"zfsCommand": []},
            [(("zfsCommand",), "List should have at least 1 item after validation, not 0")],
        ),
        (
            {"transport": "ssh", "ssh": {"host": "x", "port": 70000, "options": ["-v"]}},
            [
                (("ssh", "port"), "Input should be less than or equal to 65535"),
                (("ssh", "options", 0), "'-v' is not an ssh option in the form Key=Value"),
            ],
        ),
        (
            {"transport": "local", "zfs_command": ["zfs"], "extra": 1},
            [(("extra",), "Extra inputs are not permitted")],
        ),
    ],
)
def test_host_spec_rules(data: dict[str, Any], expected: list[Any]) -> None:
    assert errors(HostSpec, data) == expected


def test_policy_defaults() -> None:
    data = policy_data(replication=[{"name": "t", "host": "b", "root": "vault"}])
    spec = Policy.model_validate(data).spec
    assert spec.retention is None
    assert (spec.snapshots.interval, spec.snapshots.cron, spec.snapshots.include) == (
        None,
        None,
        [],
    )
    (target,) = spec.replication
    assert target.retention is None
    assert target.protection is Protection.RESUMABLE
    assert target.initial_replication is InitialReplication.MOST_RECENT
    assert not any(target.send.model_dump().values())
    assert target.receive.properties.override == {} and target.receive.properties.inherit == []
    assert not target.receive.allow_rollback and not target.receive.allow_full_resync


def test_durations_grids_and_crons_are_parsed_and_written_back() -> None:
    snapshots = SnapshotsSpec.model_validate({"prefix": "zr_", "interval": "90m"})
    assert snapshots.interval == 5400
    assert snapshots.model_dump(by_alias=True)["interval"] == "90m"
    assert SnapshotsSpec.model_validate(snapshots.model_dump(by_alias=True)) == snapshots
    scheduled = SnapshotsSpec.model_validate({"prefix": "zr_", "cron": "@daily"})
    assert isinstance(scheduled.cron, CronSchedule) and scheduled.cron.text == "@daily"
    assert scheduled.model_dump(mode="json")["cron"] == "@daily"
    rule = GridRule.model_validate({"grid": "1x1h(keep=all)|24x1h"})
    assert isinstance(rule.grid, Grid)
    assert rule.model_dump(mode="json") == {"grid": "1x1h(keep=all) | 24x1h"}


def test_retention_rules_become_their_own_types() -> None:
    keep = RetentionSpec.model_validate(
        {"keep": [{"grid": "24x1h"}, {"lastN": 3}, {"regex": "T000000Z$"}]}
    ).keep
    assert [type(rule).__name__ for rule in keep] == ["GridRule", "LastNRule", "RegexRule"]
    assert isinstance(keep[1], LastNRule) and keep[1].last_n == 3
    assert isinstance(keep[2], RegexRule) and keep[2].regex == "T000000Z$"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"grid": "24x1h", "lastN": 3},
            [
                (
                    ("keep", 0),
                    "a retention rule takes exactly one of grid, lastN, regex; got grid and"
                    " lastN (write each as its own list item)",
                )
            ],
        ),
        ({}, [(("keep", 0), "a retention rule needs exactly one of grid, lastN, regex")]),
        (
            {"lastN": 0},
            [(("keep", 0, "LastNRule", "lastN"), "Input should be greater than or equal to 1")],
        ),
        ({"lastN": "3"}, [(("keep", 0, "LastNRule", "lastN"), "Input should be a valid integer")]),
        ({"lastN": True}, [(("keep", 0, "LastNRule", "lastN"), "Input should be a valid integer")]),
        (
            {"regex": "[a-"},
            [
                (
                    ("keep", 0, "RegexRule", "regex"),
                    "invalid regular expression '[a-': missing ]: [a-",
                )
            ],
        ),
        (
            {"grid": 24},
            [
                (
                    ("keep", 0, "GridRule", "grid"),
                    "expected a retention grid such as '1x1h(keep=all) | 24x1h | 14x1d',"
                    " got the number 24",
                )
            ],
        ),
    ],
)
def test_retention_rule_errors(rule: dict[str, Any], expected: list[Any]) -> None:
    assert errors(RetentionSpec, {"keep": [rule]}) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"regex": "x", "match": "y"},
            [
                (
                    ("keep", 0),
                    "match filters grid and lastN rules only; a regex rule is its own filter"
                    " (write one regex that selects what to keep)",
                )
            ],
        ),
        (
            {"grid": "24x1h", "negate": True},
            [
                (
                    ("keep", 0),
                    "negate applies to regex rules only, not to a grid rule"
                    " (use match to choose which snapshots it sees)",
                )
            ],
        ),
        (
            {"lastN": 3, "negate": False},
            [
                (
                    ("keep", 0),
                    "negate applies to regex rules only, not to a lastN rule"
                    " (use match to choose which snapshots it sees)",
                )
            ],
        ),
        (
            {"regex": "x", "negate": "yes"},
            [(("keep", 0, "RegexRule", "negate"), "Input should be a valid boolean")],
        ),
        (
            {"lastN": 3, "match": "[a-"},
            [
                (
                    ("keep", 0, "LastNRule", "match"),
                    "invalid regular expression '[a-': missing ]: [a-",
                )
            ],
        ),
        (
            {"grid": "24x1h", "match": 3},
            [(("keep", 0, "GridRule", "match"), "Input should be a valid string")],
        ),
    ],
)
def test_match_and_negate_errors(rule: dict[str, Any], expected: list[Any]) -> None:
    assert errors(RetentionSpec, {"keep": [rule]}) == expected


def test_match_and_negate_are_read_and_left_out_of_dumps_at_their_defaults() -> None:
    keep = RetentionSpec.model_validate(
        {
            "keep": [
                {"grid": "24x1h", "match": "^zrepl_"},
                {"lastN": 3, "match": "^zrepl_"},
                {"regex": "^manual_", "negate": True},
                {"lastN": 2},
                {"regex": "x", "negate": False},
            ]
        }
    ).keep
    assert isinstance(keep[0], GridRule) and keep[0].match == "^zrepl_"
    assert isinstance(keep[1], LastNRule) and keep[1].match == "^zrepl_"
    assert isinstance(keep[2], RegexRule) and keep[2].negate is True
    dumped = [rule.model_dump(mode="json", by_alias=True) for rule in keep]
    assert dumped == [
        {"grid": "24x1h", "match": "^zrepl_"},
        {"lastN": 3, "match": "^zrepl_"},
        {"regex": "^manual_", "negate": True},
        {"lastN": 2},
        {"regex": "x"},
    ]


def test_retention_takes_at_most_255_rules() -> None:
    assert len(RetentionSpec.model_validate({"keep": [{"lastN": 1}] * 255}).keep) == 255
    assert errors(RetentionSpec, {"keep": [{"lastN": 1}] * 256}) == [
        (("keep",), "List should have at most 255 items after validation, not 256")
    ]


def test_retention_needs_a_rule() -> None:
    assert errors(RetentionSpec, {"keep": []}) == [
        (("keep",), "List should have at least 1 item after validation, not 0")
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"prefix": "zr_", "interval": "1h", "cron": "@hourly"},
            [(("cron",), "interval and cron are mutually exclusive")],
        ),
        (
            {"prefix": "zr_", "interval": 900},
            [
                (
                    ("interval",),
                    "expected a duration such as '15m' (a count and one unit of s, m, h, d, w),"
                    " got the number 900",
                )
            ],
        ),
        (
            {"prefix": "zr_", "interval": "0m"},
            [(("interval",), "duration '0m' must be greater than zero")],
        ),
        (
            {"prefix": "zr snap"},
            [
                (
                    ("prefix",),
                    "'zr snap' is not a valid snapshot prefix (1 to 64 of"
                    " the characters A-Z a-z 0-9 _ . : -)",
                )
            ],
        ),
        (
            {"prefix": "zr_", "include": ["(("]},
            [
                (
                    ("include", 0),
                    "invalid regular expression '((': missing ): ((",
                )
            ],
        ),
    ],
)
def test_snapshot_rules(data: dict[str, Any], expected: list[Any]) -> None:
    assert errors(SnapshotsSpec, data) == expected


def test_a_bad_cron_expression_names_itself() -> None:
    ((loc, message),) = errors(SnapshotsSpec, {"prefix": "zr_", "cron": "* * *"})
    assert loc == ("cron",)
    assert message.startswith("invalid cron expression '* * *': ")


@pytest.mark.parametrize(
    ("root", "valid"),
    [
        ("vault", True),
        ("vault/nas 2/x:y", True),
        ("vault/.hidden", True),
        ("/vault", False),
        ("vault/", False),
        ("vault//nas", False),
        ("vault@snap", False),
        ("vault#mark", False),
        ("vault/../x", False),
        ("v" * 256, False),
    ],
)
def test_target_roots(root: str, valid: bool) -> None:
    data = {"name": "t", "host": "b", "root": root}
    if valid:
        assert TargetSpec.model_validate(data).root == root
    else:
        ((loc, _),) = errors(TargetSpec, data)
        assert loc == ("root",)


@pytest.mark.parametrize("name", ["Offsite", "off_site", "-a", "a-", "", "a" * 64])
def test_target_names_are_dns_labels(name: str) -> None:
    ((loc, message),) = errors(TargetSpec, {"name": name, "host": "b", "root": "v"})
    assert loc == ("name",)
    assert "is not a DNS-1123 label" in message


def test_booleans_are_strict() -> None:
    assert errors(TargetSpec, {"name": "t", "host": "b", "root": "v", "send": {"raw": "yes"}}) == [
        (("send", "raw"), "Input should be a valid boolean")
    ]
    data = policy_data(source={"host": "nas", "filesystems": {"tank<": 1}})
    assert errors(Policy, data) == [
        (("spec", "source", "filesystems", "tank<"), "Input should be a valid boolean")
    ]


def test_a_property_is_not_both_overridden_and_inherited() -> None:
    data = {"override": {"readonly": "on", "canmount": "off"}, "inherit": ["canmount", "readonly"]}
    assert errors(ReceivePropertiesSpec, data) == [
        (("inherit",), "canmount, readonly: a property cannot be both overridden and inherited")
    ]


@pytest.mark.parametrize("fixed", ["casesensitivity", "normalization", "utf8only"])
def test_a_property_fixed_at_creation_is_not_overridden_on_receive(fixed: str) -> None:
    data = {"override": {"readonly": "on", fixed: "on"}}
    ((loc, message),) = errors(ReceivePropertiesSpec, data)
    assert loc == ("override",)
    assert message.startswith(f"{fixed}: set only when a filesystem is created")
    ReceivePropertiesSpec.model_validate({"inherit": [fixed]})  # -x is not refused


def test_models_are_frozen() -> None:
    spec = HostSpec()
    with pytest.raises(ValidationError):
        spec.transport = Transport.SSH  # type: ignore[misc]


def test_enums_compare_with_their_manifest_spelling() -> None:
    assert Protection("none") is Protection.NONE
    assert InitialReplication("mostRecent") is InitialReplication.MOST_RECENT
    assert str(Transport.SSH) == "ssh"
