"""Filesystem filters in zrepl's syntax: `{"tank/home<": true, "tank/home/tmp<": false}`.

Owns pattern validation (`filter_problems`), matching (`FilesystemFilter.matches`, called for
every filesystem of a host), the overlap check between two filters (`filters_may_overlap`, used
by manifest validation to find two policies that would claim the same filesystem) and its
bulk form (`first_overlaps`: for each filter of a list, the first earlier one it overlaps, in
near-linear time instead of comparing every pair). Pure: no I/O.

Semantics (zrepl's DatasetMapFilter): `tank/home<` is tank/home and everything below it;
`tank/home` is exactly that filesystem; `<` alone is every filesystem. The most specific
(longest) pattern that applies wins, and for the same path an exact pattern beats a subtree
pattern. A filesystem that no pattern applies to is not included.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

SUBTREE = "<"
MAX_NAME_LENGTH = 255
_COMPONENT = re.compile(r"[A-Za-z0-9_.: -]+", re.ASCII)


@dataclass(frozen=True)
class FilesystemFilter:
    """A validated filter; build it with `FilesystemFilter.from_mapping`."""

    patterns: tuple[tuple[str, bool], ...]  # sorted (pattern, include) pairs, as written
    _exact: dict[str, bool] = field(init=False, repr=False, compare=False)
    _subtree: dict[str, bool] = field(init=False, repr=False, compare=False)
    _moved: tuple[FilesystemFilter, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )  # (filter, root) when this is `shifted(filter, root)`: its shape follows from theirs

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
        return self.subtree_decision(name)

    def subtree_decision(self, path: str) -> bool:
        """Whether a fresh child of `path` (a name below it that no pattern names) is included.

        That is the deepest subtree pattern at `path` or above it ('' = the pool level).
        """
        subtree = self._subtree
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

    @cached_property
    def _shape(self) -> _Shape:
        if self._moved is not None:
            original, root = self._moved
            return original._shape.shifted(root)
        return _Shape.of(self)

    @cached_property
    def _occupied(self) -> frozenset[str]:
        """Every pattern path and every parent of one: the names a fresh child must avoid."""
        occupied: set[str] = set()
        for path, _ in self.pattern_paths():
            while path and path not in occupied:
                occupied.add(path)
                cut = path.rfind("/")
                path = path[:cut] if cut >= 0 else ""
        return frozenset(occupied)


def shifted(filter_: FilesystemFilter, root: str) -> FilesystemFilter:
    """The filter of the names `<root>/<name>` for every `name` that `filter_` includes."""
    patterns = {_shift(pattern, root): include for pattern, include in filter_.patterns}
    patterns[root] = False  # `<` would otherwise include the root itself, which is no `root/x`
    moved = FilesystemFilter(patterns=tuple(sorted(patterns.items())))
    object.__setattr__(moved, "_moved", (filter_, root))
    return moved


def _shift(pattern: str, root: str) -> str:
    return root + pattern if pattern == SUBTREE else f"{root}/{pattern}"


def below(filter_: FilesystemFilter, root: str) -> FilesystemFilter:
    """The filter of the names `x` for which `filter_` includes `<root>/<x>`.

    Its patterns are those of `filter_` below `root`, relative to it, and `<` for what `root`
    hands down (`subtree_decision(root)`): O(log n + k) for k patterns below `root`.
    """
    head = root + "/"
    patterns = filter_.patterns
    start = bisect_left(patterns, (head, False))
    end = bisect_left(patterns, (root + "0", False), start)
    relative = {pattern[len(head) :]: include for pattern, include in patterns[start:end]}
    relative[SUBTREE] = filter_.subtree_decision(root)
    return FilesystemFilter(patterns=tuple(sorted(relative.items())))


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
    subtree pattern covers every case. The witness is the first pattern path (in string order)
    that both include, else a fresh child of the first subtree pattern path below which both
    include fresh children.

    Speed: O(s · (depth + log l)) for filters of s ≤ l patterns, once each filter's `_Shape`
    is built (O(l log l), kept with the filter): the smaller filter's own paths are matched
    against the larger, and the larger's paths are found inside the smaller's included ranges
    by bisection, so a small filter against a huge one costs what the small one holds.
    """
    small, large = (a, b) if len(a.patterns) <= len(b.patterns) else (b, a)
    s, g = small._shape, large._shape
    witness = _first_common(s.included_points, large.matches, g.included_points, s.included)
    if witness is not None:
        return witness
    if s.root and g.root:
        parent: str | None = ""
    else:
        parent = _first_common(
            s.subtree_points, large.subtree_decision, g.subtree_points, s.subtree_included
        )
    return None if parent is None else _fresh_child(parent, small._occupied, large._occupied)


def _first_common(
    own_points: Sequence[str],
    other_decides: Callable[[str], bool],
    other_points: Sequence[str],
    own_ranges: Sequence[_Range],
) -> str | None:
    """The least point that both sides decide to include: one of `own_points` (sorted) that
    `other_decides`, or one of `other_points` (sorted) inside `own_ranges` (sorted, disjoint)."""
    best = next((point for point in own_points if other_decides(point)), None)
    for low, high in own_ranges:
        if best is not None and low >= best:
            break
        index = bisect_left(other_points, low)
        if index < len(other_points) and (high is None or other_points[index] < high):
            found = other_points[index]
            return found if best is None or found < best else best
    return best


def _fresh_child(parent: str, *occupied: frozenset[str]) -> str:
    """A child name of `parent` ('' = the pool level) that no pattern path is at or below."""
    prefix = parent + "/" if parent else ""
    number = 0
    while True:
        candidate = f"{prefix}child{number or ''}"
        if not any(candidate in names for names in occupied):
            return candidate
        number += 1


# --- the shape of a filter on the line of names in string order ------------------------------
#
# Names sort as strings. The names strictly below a path `q` are exactly the strings that start
# with `q/`, i.e. the range [q/, q0) ('0' follows '/'), and two such ranges are nested or
# disjoint. So a filter's decision over all names is piecewise constant on that line: the value
# of the innermost subtree range around a name, except at the filter's own pattern paths, which
# decide for themselves (the range [q, q + "\0") holds the single name q). `_Shape` keeps the
# included stretches of that line as sorted (low, high) ranges, `high` None meaning no end.

_Range = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the overlap checks need of one filter, computed once.

    `included_points`: its pattern paths that it includes (sorted, no ''); `included`: the
    ranges of names it includes. `subtree_points`: its subtree pattern paths whose value is
    include (sorted, no ''); `subtree_included`: the ranges of paths `t` whose fresh children
    it includes (`subtree_decision(t)`). `root`: `<` is included.
    """

    included_points: list[str]
    included: list[_Range]
    subtree_points: list[str]
    subtree_included: list[_Range]
    root: bool

    @classmethod
    def of(cls, filter_: FilesystemFilter) -> _Shape:
        paths = sorted({path for path, _ in filter_.pattern_paths() if path})
        subtrees = {path: include for path, include in filter_._subtree.items() if path}
        root = filter_._subtree.get("", False)
        nested = [(path + "/", path + "0", include) for path, include in subtrees.items()]
        decided = {path: filter_.matches(path) for path in paths}
        return cls(
            included_points=[path for path in paths if decided[path]],
            included=_included_ranges(nested, decided, root),
            subtree_points=sorted(path for path, include in subtrees.items() if include),
            subtree_included=_included_ranges(nested, subtrees, root),
            root=root,
        )

    def shifted(self, root: str) -> _Shape:
        """The shape of `shifted(filter, root)` from the shape of `filter`: `x -> root/x` keeps
        the order of names, maps every name into [root/, root0), and nothing else is included
        (`root` itself is excluded; fresh children of `root` are when `<` is)."""
        head, end = root + "/", root + "0"

        def moved(ranges: list[_Range]) -> list[_Range]:
            return [
                (head + low if low else head, end if high is None else head + high)
                for low, high in ranges
            ]

        at_root = [root] if self.root else []
        return _Shape(
            included_points=[head + point for point in self.included_points],
            included=moved(self.included),
            subtree_points=at_root + [head + point for point in self.subtree_points],
            subtree_included=([(root, root + "\0")] if self.root else [])
            + moved(self.subtree_included),
            root=False,
        )


def _included_ranges(
    nested: list[tuple[str, str, bool]], points: Mapping[str, bool], base: bool
) -> list[_Range]:
    """Sorted, disjoint ranges covering where the value is True: `base` outside every range of
    `nested` (laminar (low, high, value) ranges, the innermost one decides), `points[q]` at q.
    """
    events: list[tuple[str, int, bool]] = []  # (where, kind, value); ends sort before starts
    for low, high, value in nested:
        events += [(high, 0, False), (low, 2, value)]
    for point, value in points.items():
        events += [(point + "\0", 1, False), (point, 3, value)]
    events.sort()
    stack, point_value = [base], None
    ranges: list[_Range] = []
    inside, start = base, ""
    for where, kind, value in events:
        if kind == 0:
            stack.pop()
        elif kind == 1:
            point_value = None
        elif kind == 2:
            stack.append(value)
        else:
            point_value = value
        now = stack[-1] if point_value is None else point_value
        if now != inside:
            if now:
                start = where
            elif start != where:
                ranges.append((start, where))
            inside = now
    if inside:
        ranges.append((start, None))
    return ranges


# --- every filter against every earlier one, without comparing every pair -------------------


def first_overlaps(filters: Sequence[FilesystemFilter]) -> list[int | None]:
    """For each filter, the index of the first earlier filter that it overlaps, or None.

    The same answer as `min(j for j < i if filters_may_overlap(filters[j], filters[i]))`, in
    O(N log N) for N patterns in all instead of one check per pair. Two filters overlap
    exactly when (a) a pattern path of one is included by both, or (b) a subtree pattern path
    of one has fresh children that both include (`filters_may_overlap`), so: for every
    included point of a filter, the first filter whose included ranges hold it; for every
    included range of a filter, the first filter with an included point inside it (and the
    same for subtree points and ranges); and for `<`, the first filter that includes it.
    """
    count = len(filters)
    first = [count] * count
    shapes = [f._shape for f in filters]
    roots = [index for index, shape in enumerate(shapes) if shape.root]
    for index in roots[1:]:
        first[index] = roots[0]
    _first_containing([s.included_points for s in shapes], [s.included for s in shapes], first)
    _first_containing(
        [s.subtree_points for s in shapes], [s.subtree_included for s in shapes], first
    )
    return [earlier if earlier < index else None for index, earlier in enumerate(first)]


def _first_containing(
    points: Sequence[Sequence[str]], ranges: Sequence[Sequence[_Range]], first: list[int]
) -> None:
    """Lower `first[i]` to the least j < i where a point of i lies in a range of j or the other
    way round (`points[i]`, `ranges[i]`: owner i's; every owner's ranges hold its own points)."""
    count = len(first)
    line = sorted({point for owned in points for point in owned})
    size = len(line)
    if not size:
        return
    spans: list[list[tuple[int, int]]] = []  # each owner's ranges as places on the line
    for owned in ranges:
        places = []
        for low, high in owned:
            start = bisect_left(line, low)
            end = size if high is None else bisect_left(line, high, start)
            if start < end:
                places.append((start, end))
        spans.append(places)
    # the first owner of a range holding each point: paint the line owner by owner
    painter = [count] * size
    following = list(range(size + 1))  # union-find: the next unpainted place
    for owner, places in enumerate(spans):
        for start, end in places:
            place = _unpainted(following, start)
            while place < end:
                painter[place] = owner
                following[place] = place + 1
                place = _unpainted(following, place + 1)
    # the first owner of a point at each place, in a minimum tree over the line
    tree = [count] * (2 * size)
    position = {point: place for place, point in enumerate(line)}
    for owner in range(count - 1, -1, -1):
        for point in points[owner]:
            tree[size + position[point]] = owner
    for node in range(size - 1, 0, -1):
        tree[node] = min(tree[2 * node], tree[2 * node + 1])
    for owner, places in enumerate(spans):
        best = first[owner]
        for point in points[owner]:
            best = min(best, painter[position[point]])
        for start, end in places:
            if end - start == 1:
                best = min(best, tree[size + start])
            else:
                best = _minimum(tree, size, start, end, best)
        first[owner] = best


def _unpainted(following: list[int], place: int) -> int:
    root = place
    while following[root] != root:
        root = following[root]
    while following[place] != root:
        following[place], place = root, following[place]
    return root


def _minimum(tree: list[int], size: int, low: int, high: int, best: int) -> int:
    """The least of `best` and the values at places low..high-1 of a minimum tree (leaves at
    size..2*size-1)."""
    low += size
    high += size
    while low < high:
        if low & 1:
            best = min(best, tree[low])
            low += 1
        if high & 1:
            high -= 1
            best = min(best, tree[high])
        low >>= 1
        high >>= 1
    return best
