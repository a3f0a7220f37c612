"""Tests for semantic validation (`reconciler.manifest.validate`), through the loader so that
each error also carries its file, line, column and field path. Each check fires, and stays
quiet on a near miss."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest.errors import ManifestErrors
from reconciler.manifest.filters import FilesystemFilter, filters_may_overlap, shifted
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.models import Policy
from reconciler.manifest.validate import Problem, validate_manifests

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


def test_an_unknown_host_error_lists_ten_hosts_at_most() -> None:
    from reconciler.manifest.validate import _listed

    names = [f"h{i:02d}" for i in range(12)]
    assert _listed(names) == "h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, and 2 more"
    assert _listed(names[:10]) == ", ".join(names[:10])
    assert _listed([]) == "none"


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


def test_a_policy_overlapping_several_is_reported_once_with_the_first() -> None:
    # c overlaps a and b: one problem for c, naming a (not every pair of the three)
    found = errors(policy("a"), policy("b"), policy("c", '{"tank<": true}'))
    assert len(found) == 2
    assert "spec.source.filesystems: policies 'a' and 'b' both select nas:tank/home" in found[0]
    assert "spec.source.filesystems: policies 'a' and 'c' both select nas:tank/home" in found[1]


# --- two targets receiving into the same filesystem --------------------------------------------


def test_two_policies_receiving_into_the_same_root() -> None:
    first = policy("home", targets=targets(target()))
    second = policy("hourly", prefix="zr_h_", targets=targets(target()))
    assert errors(first, second) == [
        "m.yaml:25:53: spec.replication[0].root: target 'offsite' of policy 'hourly' and target"
        " 'offsite' of policy 'home' would both receive into backup:vault/nas/tank/home;"
        " use another root or disjoint filesystems"
    ]


def test_a_target_colliding_with_several_is_reported_once_with_the_first() -> None:
    found = errors(policy("home", targets=targets(target("a"), target("b"), target("c"))))
    assert len(found) == 2
    assert "target 'b' of policy 'home' and target 'a' of policy 'home'" in found[0]
    assert "target 'c' of policy 'home' and target 'a' of policy 'home'" in found[1]


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


# --- the checks between documents against the original all-pairs loops ------------------------
#
# The reference below is the semantic validation as it was before the speed work, every pair
# compared (its filters_may_overlap is the product's, which tests/test_filters.py holds to the
# original witness for witness). The product reports each later policy or target once, with
# the first earlier one it meets: the reference's first problem at that place.


def reference_collision(
    a: tuple[str, str, FilesystemFilter], b: tuple[str, str, FilesystemFilter]
) -> str | None:
    (host_a, root_a, filter_a), (host_b, root_b, filter_b) = a, b
    if host_a != host_b:
        return None
    if root_a == root_b:
        witness = filters_may_overlap(filter_a, filter_b)
        return None if witness is None else f"{root_a}/{witness}"
    if root_b.startswith(root_a + "/"):
        witness = filters_may_overlap(filter_a, fresh_shifted(filter_b, root_b[len(root_a) + 1 :]))
        return None if witness is None else f"{root_a}/{witness}"
    if root_a.startswith(root_b + "/"):
        witness = filters_may_overlap(filter_b, fresh_shifted(filter_a, root_a[len(root_b) + 1 :]))
        return None if witness is None else f"{root_b}/{witness}"
    return None


def fresh_shifted(filter_: FilesystemFilter, root: str) -> FilesystemFilter:
    """`shifted`, but with the shape of the result computed from its own patterns."""
    return FilesystemFilter(patterns=shifted(filter_, root).patterns)


def reference_problems(policies: list[Policy]) -> Iterator[list[Problem]]:
    """Per check (prefix overlap, receive collision, self-replication): every problem."""
    filters = {
        p.metadata.name: FilesystemFilter.from_mapping(p.spec.source.filesystems) for p in policies
    }
    overlaps = []
    for later_index, later in enumerate(policies):
        for earlier in policies[:later_index]:
            prefix = later.spec.snapshots.prefix
            if earlier.spec.source.host != later.spec.source.host:
                continue
            if earlier.spec.snapshots.prefix != prefix:
                continue
            name, other = later.metadata.name, earlier.metadata.name
            witness = filters_may_overlap(filters[other], filters[name])
            if witness is not None:
                message = (
                    f"policies {other!r} and {name!r} both select {later.spec.source.host}:"
                    f"{witness} with snapshot prefix {prefix!r}, so both would own the same "
                    "snapshots; use different prefixes or disjoint filesystems"
                )
                overlaps.append(Problem("Policy", name, ("spec", "source", "filesystems"), message))
    yield overlaps
    targets = [
        (p, index, (spec.host, spec.root, filters[p.metadata.name]))
        for p in policies
        for index, spec in enumerate(p.spec.replication)
    ]

    def label(p: Policy, index: int) -> str:
        return f"target {p.spec.replication[index].name!r} of policy {p.metadata.name!r}"

    collisions = []
    for later_index, (later, index, received) in enumerate(targets):
        for earlier, earlier_at, earlier_received in targets[:later_index]:
            path = reference_collision(earlier_received, received)
            if path is not None:
                message = (
                    f"{label(later, index)} and {label(earlier, earlier_at)} would both receive "
                    f"into {received[0]}:{path}; use another root or disjoint filesystems"
                )
                where = ("spec", "replication", index, "root")
                collisions.append(Problem("Policy", later.metadata.name, where, message))
    yield collisions
    loops = []
    for p, index, (host, root, filter_) in targets:
        if host != p.spec.source.host:
            continue
        witness = filters_may_overlap(filter_, fresh_shifted(filter_, root))
        if witness is not None:
            message = (
                f"{label(p, index)} would receive {host}:{witness[len(root) + 1 :]} as {witness},"
                " which this policy's source filesystems select again (replication into itself);"
                " choose a root outside the source filesystems or exclude it"
            )
            where = ("spec", "replication", index, "root")
            loops.append(Problem("Policy", p.metadata.name, where, message))
    yield loops


def first_at_each_place(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, tuple[str | int, ...]]] = set()
    first = []
    for problem in problems:
        if (problem.name, problem.path) not in seen:
            seen.add((problem.name, problem.path))
            first.append(problem)
    return first


COMPONENTS = ["vault", "nas", "tank", "home", "a", "a-b", "child"]


@st.composite
def policy_sets(draw: st.DrawFn) -> list[Policy]:
    """Policies on two hosts and two prefixes whose filters, roots and received names meet:
    the paths come with their suffixes (`tank/home/a`, `home/a`, `a`) and the roots are
    `vault` plus a prefix of a path, or a path itself (replication into the source set)."""
    drawn = draw(
        st.lists(st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=3), max_size=3)
    )
    paths = sorted({"/".join(parts[cut:]) for parts in drawn for cut in range(len(parts))})
    paths = paths or ["tank"]
    prefixes = {"/".join(parts[:cut]) for parts in drawn for cut in range(1, len(parts))}
    nested = [f"vault/{prefix}" for prefix in sorted(prefixes)]
    roots = ["vault", "vault", *nested, *nested, *paths]
    patterns = st.sampled_from(["<", *paths, *(path + "<" for path in paths)])
    hosts = st.sampled_from(["nas", "backup"])
    policies = []
    for number in range(draw(st.integers(0, 6))):
        filesystems = draw(st.dictionaries(patterns, st.booleans(), min_size=1, max_size=4))
        spec_targets = [
            {"name": f"t{index}", "host": draw(hosts), "root": draw(st.sampled_from(roots))}
            for index in range(draw(st.integers(0, 3)))
        ]
        document = {
            "apiVersion": "zfs-reconciler.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": f"p{number}"},
            "spec": {
                "source": {"host": draw(hosts), "filesystems": filesystems},
                "snapshots": {"prefix": draw(st.sampled_from(["zr_", "zr_h_"])), "interval": "1h"},
                "replication": spec_targets,
            },
        }
        policies.append(Policy.model_validate(document))
    return policies


@settings(max_examples=300, deadline=None)
@given(policy_sets())
def test_checks_between_documents_find_what_every_pair_finds(policies: list[Policy]) -> None:
    problems = validate_manifests(["nas", "backup"], policies)
    overlaps, collisions, loops = reference_problems(policies)
    expected = first_at_each_place(overlaps) + first_at_each_place(collisions) + loops
    assert problems == expected
