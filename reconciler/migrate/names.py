"""Manifest names made from names found in another tool's configuration (`reconcile import`).

Owns `Names`, which turns a dataset or host name into a DNS-1123 label (lowercase letters,
digits and '-', at most 63) and keeps the names of each kind unique by adding `-2`, `-3`...
Called by the converters in `reconciler.migrate`; they report a note when a name changed. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

LABEL_MAX = 63


def label(text: str, fallback: str) -> str:
    """`text` as a DNS-1123 label: runs of other characters become one '-'."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:LABEL_MAX].strip("-")
    return cleaned or fallback


@dataclass(slots=True)
class Names:
    """The names handed out so far, per kind (`host`, `policy`, or a policy's targets)."""

    taken: dict[str, set[str]] = field(default_factory=dict)

    def unique(self, kind: str, text: str) -> str:
        used = self.taken.setdefault(kind, set())
        name = unique(label(text, kind), used)
        used.add(name)
        return name


def unique(name: str, taken: Collection[str]) -> str:
    """`name`, or `name-2`, `name-3`... (cut to stay a label) when `taken` has it."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        suffix = f"-{number}"
        candidate = name[: LABEL_MAX - len(suffix)].rstrip("-") + suffix
    return candidate
