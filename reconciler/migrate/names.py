"""Manifest names made from names found in another tool's configuration (`reconcile import`).

Owns `Names`, which turns a dataset or host name into a DNS-1123 label (lowercase letters,
digits and '-', at most 63) and keeps the names of each kind unique by adding `-2`, `-3`...
Called by the converters in `reconciler.migrate`; they report a note when a name changed. Pure.
"""

from __future__ import annotations

import re
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
        base = label(text, kind)
        name, number = base, 1
        while name in used:
            number += 1
            suffix = f"-{number}"
            name = base[: LABEL_MAX - len(suffix)].rstrip("-") + suffix
        used.add(name)
        return name
