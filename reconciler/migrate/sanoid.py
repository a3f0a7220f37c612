"""Placeholder replaced by the sanoid converter before this lands."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.migrate.report import Conversion, ImportInputError


def convert(
    file: str, text: str, syncoid: Sequence[str] = (), *, timezone: str = "UTC"
) -> Conversion:
    raise ImportInputError(file, 1, 1, "the sanoid converter is not built yet")
