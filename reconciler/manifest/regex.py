"""Regular expressions in manifests: compiled by RE2, so that matching takes linear time.

Owns `compile_regex` (pattern text → a compiled `Regex`, or `RegexError` with a message that
reads well after `FILE:LINE:COLUMN: field.path:`). Called by the `Regex` field type
(`fields.py`: validation) and by the pure core (`core/desired.py`: retention `regex` rules and
`snapshots.include`), so that what validates is exactly what runs.

Why RE2 (google-re2) rather than Python's `re`: a manifest may come from someone else's pull
request, and `re` backtracks: `(a+)+$` against a 60-character snapshot name runs for hours, in
`reconcile --dry-run` on CI or in the control loop. RE2 matches in time linear in the name and
refuses, at compile time, what would make its program large (repeat counts over 1000, a
compiled size over `MAX_REGEX_PROGRAM_BYTES`). Its syntax is Python's without backreferences and
lookaround (`\\Z` is written `\\z` or `$`); docs/manifests.md says so. Matching is
`search` (anywhere in the name), as with `re.search`.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2

from reconciler.manifest.limits import MAX_REGEX_LENGTH, MAX_REGEX_PROGRAM_BYTES


class Regex(Protocol):
    """A compiled regular expression: what the core calls."""

    def search(self, text: str) -> Any: ...


class RegexError(ValueError):
    """A pattern RE2 refuses, or one over the length limit; the message says which and why."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refusal on stderr
    options.max_mem = MAX_REGEX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


def compile_regex(pattern: str) -> Regex:
    """The compiled `pattern`, or `RegexError`."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise RegexError(f"longer than {MAX_REGEX_LENGTH} characters ({len(pattern)})")
    try:
        compiled: Regex = re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        raise RegexError(_reason(error)) from None
    except (ValueError, TypeError, OverflowError, MemoryError, RecursionError) as error:
        raise RegexError(str(error) or type(error).__name__) from None
    return compiled


def _reason(error: Exception) -> str:
    reason = error.args[0] if error.args else str(error)
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason) or "refused by RE2"
