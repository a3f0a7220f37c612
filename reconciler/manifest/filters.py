"""Filesystem filters in zrepl's syntax: `{"tank/home<": true, "tank/home/tmp<": false}`.

Owns pattern validation (`filter_problems`), matching (`FilesystemFilter.matches`, called for
every filesystem of a host) and the overlap check between two filters
(`filters_may_overlap`, used by manifest validation to find two policies that would claim the
same filesystem). Pure: no I/O.

Semantics (zrepl's DatasetMapFilter): `tank/home<` is tank/home and everything below it;
`tank/home` is exactly that filesystem; `<` alone is every filesystem. The most specific
(longest) pattern that applies wins, and for the same path an exact pattern beats a subtree
pattern. A filesystem that no pattern applies to is not included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

SUBTREE = "<"
MAX_NAME_LENGTH = 255
_COMPONENT = re.compile(r"[A-Za-z0-9_.: -]+", re.ASCII)


@dataclass(frozen=True)
class FilesystemFilter:
    """A validated filter; build it with `FilesystemFilter.from_mapping`."""

    patterns: tuple[tuple[str, bool], ...]  # sorted (pattern, include) pairs, as written
    _exact: dict[str, bool] = field(init=False, repr=False, compare=False)
    _subtree: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, bool] = {}
        subtree: dict[str, bool] = {}
        for pattern, include in self.patterns:
            if pattern.endswith(SUBTREE):
                subtree[pattern[: -len(SUBTREE)]] = include
            else:
                exact[pattern] = include
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_subtree", subtree)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, bool]) -> FilesystemFilter:
        """A filter from a manifest mapping; raises ValueError naming the first bad pattern."""
        problems = filter_problems(mapping)
        if problems:
            pattern, message = problems[0]
            raise ValueError(f"invalid filesystem pattern {pattern!r}: {message}")
        return cls(patterns=tuple(sorted(mapping.items())))

    def matches(self, name: str) -> bool:
        """Whether the filesystem `name` is included."""
        decision = self._exact.get(name)
        if decision is not None:
            return decision
        subtree = self._subtree
        path = name
        while True:
            decision = subtree.get(path)
            if decision is not None:
                return decision
            if not path:
                return False
            cut = path.rfind("/")
            path = path[:cut] if cut >= 0 else ""

    def pattern_paths(self) -> Iterator[tuple[str, bool]]:
        """(path, is_subtree) for every pattern; the root wildcard `<` has the path ''."""
        for path in self._exact:
            yield path, False
        for path in self._subtree:
            yield path, True


def filter_problems(mapping: Mapping[str, object]) -> list[tuple[str, str]]:
    """(pattern, message) for every invalid pattern or value, in the mapping's order."""
    problems: list[tuple[str, str]] = []
    for pattern, include in mapping.items():
        message = _pattern_problem(pattern)
        if message is None and not isinstance(include, bool):
            message = f"the value must be true or false, not {include!r}"
        if message is not None:
            problems.append((pattern, message))
    return problems


def _pattern_problem(pattern: str) -> str | None:
    if not pattern:
        return "a pattern must not be empty"
    if pattern == SUBTREE:
        return None
    if SUBTREE in pattern[:-1]:
        return "'<' may only appear once, at the end (e.g. 'tank/home<')"
    path = pattern.removesuffix(SUBTREE)
    if "@" in path or "#" in path:
        return "a pattern selects filesystems; it must not name a snapshot (@) or bookmark (#)"
    if path.startswith("/") or path.endswith("/"):
        return "a pattern must not start or end with '/'"
    if "//" in path:
        return "a pattern must not contain '//'"
    if len(path) > MAX_NAME_LENGTH:
        return f"a filesystem name is at most {MAX_NAME_LENGTH} characters"
    for component in path.split("/"):
        if component in (".", ".."):
            return f"'{component}' is not a valid name component"
        if not _COMPONENT.fullmatch(component):
            return (
                f"{component!r} has characters ZFS does not allow in names "
                "(letters, digits and any of '_-.: ' only)"
            )
    return None


def filters_may_overlap(a: FilesystemFilter, b: FilesystemFilter) -> str | None:
    """A filesystem name that both filters include, or None when no name can be in both.

    Exact: a name that is no pattern path decides like a fresh child of its deepest subtree
    pattern (in either filter), so checking every pattern path and one fresh child below each
    subtree pattern covers every case.
    """
    paths = {path for f in (a, b) for path, _ in f.pattern_paths() if path}
    subtrees = {path for f in (a, b) for path, is_subtree in f.pattern_paths() if is_subtree}
    for candidate in sorted(paths):
        if a.matches(candidate) and b.matches(candidate):
            return candidate
    for parent in sorted(subtrees):
        candidate = _fresh_child(parent, paths)
        if a.matches(candidate) and b.matches(candidate):
            return candidate
    return None


def _fresh_child(parent: str, paths: set[str]) -> str:
    """A child name of `parent` ('' = the pool level) that no pattern path is at or below."""
    prefix = parent + "/" if parent else ""
    number = 0
    while True:
        candidate = f"{prefix}child{number or ''}"
        if not any(p == candidate or p.startswith(candidate + "/") for p in paths):
            return candidate
        number += 1
