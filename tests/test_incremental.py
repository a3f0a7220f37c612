"""Table tests for the common base and the send steps (core/incremental.py)."""

from __future__ import annotations

import pytest

from reconciler.core.incremental import find_common_base, send_steps, versions_after
from reconciler.core.plan import SendMode
from tests.notation import versions

BASE_CASES = [
    # (source, target, expected (source ref, target name) or None)
    ("a b c", "", None),
    ("a b c", "a b", ("@b", "b")),
    ("a b c", "a b c", ("@c", "c")),
    ("a #b c", "a b", ("#b", "b")),  # the source snapshot is gone, its bookmark remains
    ("a b #b c", "a b", ("@b", "b")),  # a snapshot is preferred over its bookmark
    ("a b c", "a b' c'", ("@a", "a")),  # same names, other GUIDs: not common
    ("a b c", "x y", None),
    ("a b", "a b z", ("@b", "b")),  # target-only snapshot after the base
]


@pytest.mark.parametrize(("source", "target", "expected"), BASE_CASES)
def test_common_base(source: str, target: str, expected: tuple[str, str] | None) -> None:
    base = find_common_base(versions(source), versions(target, txg_start=500))
    if expected is None:
        assert base is None
        return
    assert base is not None
    assert (base.source.sigil + base.source.name, base.target.name) == expected


def test_common_base_orders_by_createtxg_not_name() -> None:
    # names sort the other way round from their createtxg
    source = versions("z y x")
    target = versions("z y", txg_start=90)
    base = find_common_base(source, target)
    assert base is not None and base.target.name == "y"


STEP_CASES = [
    # (source, base name or None, wanted, expected steps as "mode from to delivers")
    ("a b c d", "a", "b c d", ["I @a d b,c,d"]),
    ("a b c d", "a", "d", ["i @a d d"]),
    ("a b c d", "a", "b", ["i @a b b"]),
    ("a b x c d", "a", "b c d", ["i @a b b", "i @b c c", "i @c d d"]),
    ("a b c x d e", "a", "b c d e", ["I @a c b,c", "i @c d d", "i @d e e"]),
    ("a b c x d e f", "a", "b c d e f", ["I @a c b,c", "i @c d d", "I @d f e,f"]),
    ("a b c", None, "a b c", ["full - a a", "I @a c b,c"]),
    ("a b c", None, "c", ["full - c c"]),
    ("a #b c d", "#b", "c d", ["i #b c c", "i @c d d"]),
    ("a #b c d e", "#b", "c d e", ["i #b c c", "I @c e d,e"]),
    ("a b c", "c", "", []),
]


def _render(steps: tuple) -> list[str]:  # type: ignore[type-arg]
    marks = {SendMode.FULL: "full", SendMode.INCREMENTAL: "i", SendMode.INTERMEDIATES: "I"}
    return [
        f"{marks[s.mode]} {s.from_version or '-'} {s.to_snapshot} {','.join(s.delivers)}"
        for s in steps
    ]


@pytest.mark.parametrize(("source", "base", "wanted", "expected"), STEP_CASES)
def test_send_steps(source: str, base: str | None, wanted: str, expected: list[str]) -> None:
    history = versions(source)
    base_version = None
    if base is not None:
        kind_bookmark = base.startswith("#")
        name = base.lstrip("#")
        base_version = next(
            v for v in history if v.name == name and (v.is_snapshot != kind_bookmark)
        )
    after = versions_after(history, base_version)
    steps = send_steps(after, set(wanted.split()), base_version)
    assert _render(steps) == expected


def test_unwanted_snapshots_never_delivered() -> None:
    history = versions("a b c d e f g")
    base = history[0]
    wanted = {"c", "e", "f"}
    steps = send_steps(versions_after(history, base), wanted, base)
    delivered = [name for step in steps for name in step.delivers]
    assert delivered == ["c", "e", "f"]
    # an -I step never spans an unwanted snapshot
    names = [v.name for v in history]
    for step in steps:
        if step.mode is SendMode.INTERMEDIATES:
            assert step.from_version is not None
            start = names.index(step.from_version[1:])
            end = names.index(step.to_snapshot)
            assert all(n in wanted for n in names[start + 1 : end + 1])
