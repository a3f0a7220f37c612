"""`core/scope.py`: what a pass lists on each host. Table tests for the scopes of filters and
targets, and a property: every filesystem a policy can touch lies in its host's scope."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.scope import ObservationScope, observation_scopes
from reconciler.manifest.filters import FilesystemFilter


def _policy(source: str, patterns: dict[str, bool], *targets: tuple[str, str]) -> Any:
    """The fields of a PolicyIntent that the scope reads."""
    return SimpleNamespace(
        source_host=source,
        filter=FilesystemFilter.from_mapping(patterns),
        targets=tuple(
            SimpleNamespace(
                host=host, root=root, target_filesystem=lambda fs, root=root: f"{root}/{fs}"
            )
            for host, root in targets
        ),
    )


@pytest.mark.parametrize(
    ("patterns", "subtrees", "singles", "everything"),
    [
        ({"tank/home<": True}, ["tank/home"], [], False),
        ({"tank/home<": True, "tank/home/tmp<": False}, ["tank/home"], [], False),
        ({"tank/db": True, "tank/home<": True}, ["tank/home"], ["tank/db"], False),
        ({"tank/home/x": True, "tank/home<": True}, ["tank/home"], [], False),
        ({"tank<": False, "tank/a<": True, "tank/a/b<": True}, ["tank/a"], [], False),
        (
            {"tank/a<": True, "tank/a b<": True, "tank/a/b<": True},
            ["tank/a", "tank/a b"],
            [],
            False,
        ),
        ({"<": True, "tank/tmp<": False}, [], [], True),
        ({"tank/home<": False}, [], [], False),
    ],
)
def test_the_source_scope_is_what_the_filter_can_include(
    patterns: dict[str, bool], subtrees: list[str], singles: list[str], everything: bool
) -> None:
    scope = observation_scopes([_policy("nas", patterns)])["nas"]
    assert scope == ObservationScope(tuple(subtrees), tuple(singles), everything)


def test_targets_add_their_roots_and_hosts_merge_across_policies() -> None:
    scopes = observation_scopes(
        [
            _policy("nas", {"tank/home<": True}, ("backup", "vault/nas"), ("nas", "tank/copy")),
            _policy("nas", {"tank/home/docs": True, "tank/db": True}, ("backup", "vault/nas/db")),
            _policy("backup", {"vault/own<": True}),
        ]
    )
    assert scopes == {
        "backup": ObservationScope(("vault/nas", "vault/own")),
        "nas": ObservationScope(("tank/copy", "tank/home"), ("tank/db",)),
    }


def test_contains_and_union() -> None:
    scope = ObservationScope.of(["tank/a", "tank/a/b", "tank/c"], ["tank/x", "tank/a/y"])
    assert scope == ObservationScope(("tank/a", "tank/c"), ("tank/x",))
    names = ("tank/a", "tank/a/q/r", "tank/ab", "tank/x", "tank/x/y")
    assert [scope.contains(n) for n in names] == [True, True, False, True, False]
    whole = scope.union(ObservationScope.of([""]))
    assert whole.everything and whole.contains("anything/at/all")
    assert scope.union(ObservationScope.of(["tank"])) == ObservationScope(("tank",))


_component = st.sampled_from(["a", "b", "a b", "a.b", "c"])
_path = st.lists(_component, min_size=1, max_size=4).map(lambda parts: "/".join(["tank", *parts]))
_pattern = st.one_of(_path, _path.map(lambda p: p + "<"), st.just("<"), st.just("tank<"))


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.dictionaries(_pattern, st.booleans(), min_size=1, max_size=6),
    names=st.lists(_path, max_size=20),
    root=st.sampled_from(["vault", "vault/x", "tank/a"]),
)
def test_everything_a_policy_can_touch_lies_in_its_scope(
    patterns: dict[str, bool], names: list[str], root: str
) -> None:
    policy = _policy("nas", patterns, ("backup", root), ("nas", root))
    scopes = observation_scopes([policy])
    for name in names:
        if policy.filter.matches(name):
            assert scopes["nas"].contains(name), (name, scopes["nas"])
            target = policy.targets[0].target_filesystem(name)
            for host in ("backup", "nas"):
                assert scopes[host].contains(target)
                assert scopes[host].contains(target.rpartition("/")[0])  # the parent it needs
