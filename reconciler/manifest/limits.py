"""The limits of the manifest reader: what one load may read, enforced before the work grows.

Owns the numbers only; the loader (files and bytes), the YAML reader (documents, nesting,
aliases) and the regex field type (pattern length, compiled size) enforce them, each reporting a
breach as an ordinary `FILE:LINE:COLUMN: field.path: message` error. Manifests come from other
people's pull requests and are re-read on every edit by `reconcile watch`: whatever a file
holds, a load ends in bounded time and memory. docs/manifests.md ("Limits") lists them for users.

Each limit is far above what a real manifest set needs (the example is 1 KiB, 2 documents,
nesting depth 7) and far below what would slow a load down (a set at the limits still loads in
seconds: docs/benchmarks.md).
"""

from __future__ import annotations

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Bytes of one manifest file."""

MAX_TOTAL_BYTES = 16 * 1024 * 1024
"""Bytes of all the files of one load together."""

MAX_FILES = 10_000
"""Manifest files one load reads (what `-f` paths and their directories stand for)."""

MAX_DOCUMENTS = 10_000
"""YAML documents of one load, empty ones included."""

MAX_NODES = 500_000
"""YAML nodes (scalars, mappings, sequences, aliases) as written in all files of one load: what
bounds the reading time (a 1 MB manifest set has about 140,000; the limit reads in ~2 s)."""

MAX_DEPTH = 32
"""Nesting of mappings and sequences inside one document (a manifest needs 7)."""

MAX_ALIAS_NODES = 100_000
"""Nodes that aliases (`*name`) add to one load when each alias counts as a copy of its anchor:
a small file cannot stand for a huge one ("billion laughs")."""

MAX_TARGETS = 16
"""Replication targets of one policy (a schema `maxItems`). Targets whose roots nest on one host
are checked against each other through their policy's filter, once per target: this bounds
that work to 16 times the filters' size (docs/benchmarks.md, manifest validation)."""

MAX_REGEX_LENGTH = 1_000
"""Characters of one regular expression."""

MAX_REGEX_PROGRAM_BYTES = 1024 * 1024
"""Memory the compiled form of one regular expression may use (RE2's `max_mem`)."""
