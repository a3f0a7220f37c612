"""Tests for semantic validation (`reconciler.manifest.validate`), through the loader so that
each error also carries its file, line, column and field path. Each check fires, and stays
quiet on a near miss."""

from __future__ import annotations

import pytest

from reconciler.manifest.errors import ManifestErrors
from reconciler.manifest.filters import FilesystemFilter
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.validate import shifted

HOSTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: backup}
spec: {}
"""  # 9 lines: a policy's `kind` is on line 12, its `source` on line 15


def policy(
    name: str,
    filesystems: str = '{"tank/home<": true}',
    host: str = "nas",
    prefix: str = "zr_",
    targets: str = "[]",
) -> str:
    return f"""\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: {name}}}
spec:
  source: {{host: {host}, filesystems: {filesystems}}}
  snapshots: {{prefix: {prefix}, interval: 1h}}
  replication: {targets}
"""


def target(name: str = "offsite", host: str = "backup", root: str = "vault/nas") -> str:
    return f"{{name: {name}, host: {host}, root: {root}}}"


def targets(*items: str) -> str:
    return "[" + ", ".join(items) + "]"


def errors(*documents: str) -> list[str]:
    try:
        parse_manifests([("m.yaml", HOSTS + "".join(documents))])
    except ManifestErrors as caught:
        return [str(error) for error in caught.errors]
    return []


def test_valid_policies_pass() -> None:
    assert errors(policy("home", targets=targets(target()))) == []


# --- host references ---------------------------------------------------------------------------


def test_unknown_source_host() -> None:
    assert errors(policy("home", host="nass")) == [
        "m.yaml:15:18: spec.source.host: unknown host 'nass': no Host document has that name"
        " (hosts: backup, nas)"
    ]


def test_unknown_target_host() -> None:
    (error,) = errors(policy("home", targets=targets(target(host="offsite-box"))))
    assert error.startswith("m.yaml:17:39: spec.replication[0].host: unknown host 'offsite-box'")


def test_a_reference_to_an_invalid_host_is_not_reported_twice() -> None:
    broken = "---\napiVersion: zfs-reconciler.dev/v1alpha1\nkind: Host\n"
    broken += "metadata: {name: other}\nspec: {transport: ssh}\n"
    assert errors(broken, policy("home", host="other")) == [
        "m.yaml:14:7: spec.ssh: transport ssh needs an ssh block (at least ssh.host)"
    ]


# --- target names ------------------------------------------------------------------------------


def test_target_names_are_unique_within_a_policy() -> None:
    two = targets(target(root="vault/a"), target(root="vault/b"))
    assert errors(policy("home", targets=two)) == [
        "m.yaml:17:70: spec.replication[1].name: duplicate target name 'offsite'"
        " (also spec.replication[0].name)"
    ]


def test_the_same_target_name_in_two_policies_is_fine() -> None:
    assert (
        errors(
            policy("home", targets=targets(target(root="vault/a"))),
            policy("media", '{"tank/media<": true}', targets=targets(target(root="vault/b"))),
        )
        == []
    )


# --- two policies owning the same snapshots ----------------------------------------------------


def test_same_prefix_on_overlapping_filesystems() -> None:
    assert errors(policy("home"), policy("all", '{"tank<": true}')) == [
        "m.yaml:23:36: spec.source.filesystems: policies 'home' and 'all' both select"
        " nas:tank/home with snapshot prefix 'zr_', so both would own the same snapshots;"
        " use different prefixes or disjoint filesystems"
    ]


@pytest.mark.parametrize(
    "other",
    [
        policy("monthly", prefix="zr_monthly_"),  # another prefix on the same filesystems
        policy("media", '{"tank/media<": true}'),  # disjoint filesystems
        policy("rest", '{"tank<": true, "tank/home<": false}'),  # tank/home excluded
        policy("remote", host="backup"),  # the same names on another host
    ],
)
def test_no_prefix_overlap_near_misses(other: str) -> None:
    assert errors(policy("home"), other) == []


# --- two targets receiving into the same filesystem --------------------------------------------


def test_two_policies_receiving_into_the_same_root() -> None:
    first = policy("home", targets=targets(target()))
    second = policy("hourly", prefix="zr_h_", targets=targets(target()))
    assert errors(first, second) == [
        "m.yaml:25:53: spec.replication[0].root: target 'offsite' of policy 'hourly' and target"
        " 'offsite' of policy 'home' would both receive into backup:vault/nas/tank/home;"
        " use another root or disjoint filesystems"
    ]


def test_two_targets_of_one_policy_receiving_into_the_same_root() -> None:
    two = targets(target("a"), target("b"))
    (error,) = errors(policy("home", targets=two))
    assert "target 'b' of policy 'home' and target 'a' of policy 'home'" in error
    assert error.startswith("m.yaml:17:89: spec.replication[1].root:")


def test_nested_roots_that_coincide() -> None:
    # vault/nas/tank/home/... from `home`, and vault/nas/tank + home/... from `pool`
    first = policy("home", targets=targets(target()))
    second = policy("pool", '{"home<": true}', targets=targets(target(root="vault/nas/tank")))
    (error,) = errors(first, second)
    assert "would both receive into backup:vault/nas/tank/home" in error
    assert "spec.replication[0].root" in error


def test_a_nested_root_collides_on_a_filesystem_that_may_appear_later() -> None:
    # home would receive a future tank/home/home into vault/nas/tank/home/home
    pool = policy("pool", '{"home": true}', targets=targets(target(root="vault/nas/tank/home")))
    (error,) = errors(policy("home", targets=targets(target())), pool)
    assert "would both receive into backup:vault/nas/tank/home/home" in error


def test_a_nested_root_is_fine_when_the_overlap_is_excluded() -> None:
    home = policy(
        "home", '{"tank/home<": true, "tank/home/home<": false}', targets=targets(target())
    )
    pool = policy("pool", '{"home": true}', targets=targets(target(root="vault/nas/tank/home")))
    assert errors(home, pool) == []


def test_sources_on_different_hosts_still_collide_on_the_target() -> None:
    first = policy("home", targets=targets(target()))
    second = policy("remote", host="backup", targets=targets(target(host="backup")))
    (error,) = errors(first, second)
    assert "would both receive into backup:vault/nas/tank/home" in error


@pytest.mark.parametrize(
    "second",
    [
        policy("hourly", prefix="zr_h_", targets=targets(target(root="vault/hourly"))),
        policy("hourly", prefix="zr_h_", targets=targets(target(host="nas"))),
        policy("media", '{"tank/media<": true}', targets=targets(target())),
        policy("pool", '{"media<": true}', targets=targets(target(root="vault/nas/tank"))),
        policy("pool", '{"home": true}', targets=targets(target(root="vault/nas/tank/media"))),
    ],
)
def test_no_collision_near_misses(second: str) -> None:
    assert errors(policy("home", targets=targets(target())), second) == []


# --- replication into itself -------------------------------------------------------------------


def test_replication_into_the_source_set() -> None:
    looping = targets(target("loop", host="nas", root="tank/home/backup"))
    assert errors(policy("home", targets=looping)) == [
        "m.yaml:17:47: spec.replication[0].root: target 'loop' of policy 'home' would receive"
        " nas:tank/home as tank/home/backup/tank/home, which this policy's source filesystems"
        " select again (replication into itself); choose a root outside the source filesystems"
        " or exclude it"
    ]


@pytest.mark.parametrize(
    ("filesystems", "root"),
    [
        ('{"tank/home<": true}', "tank/backup"),  # beside the source set
        ('{"tank<": true, "tank/backup<": false}', "tank/backup"),  # inside, but excluded
        ('{"tank/home": true}', "tank/home"),  # only tank/home itself: tank/home/tank/home is not
    ],
)
def test_no_self_replication_near_misses(filesystems: str, root: str) -> None:
    local = targets(target("local", host="nas", root=root))
    assert errors(policy("home", filesystems, targets=local)) == []


def test_the_same_root_on_another_host_is_not_self_replication() -> None:
    assert errors(policy("home", targets=targets(target(root="tank/home/backup")))) == []


# --- filter patterns ---------------------------------------------------------------------------


def test_invalid_filter_patterns_point_at_the_pattern() -> None:
    assert errors(policy("home", '{"tank/home<": true, "tank@snap": true}')) == [
        'm.yaml:15:57: spec.source.filesystems["tank@snap"]: invalid filesystem pattern'
        " 'tank@snap': a pattern selects filesystems; it must not name a snapshot (@) or"
        " bookmark (#)"
    ]


def test_shifted_filter_includes_exactly_the_names_below_the_root() -> None:
    base = FilesystemFilter.from_mapping({"<": True, "tank/tmp<": False})
    moved = shifted(base, "vault/nas")
    assert moved.matches("vault/nas/tank")
    assert moved.matches("vault/nas/other/x")
    assert not moved.matches("vault/nas/tank/tmp/a")
    assert not moved.matches("vault/nas")  # the root itself is no received filesystem
    assert not moved.matches("vault")
    assert not moved.matches("tank")
