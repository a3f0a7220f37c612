"""Fixtures shared by the unit tests: `manifest`, the two-host, one-policy manifest file of
tests/test_cli.py (`MANIFESTS`: nas replicating tank/home to backup) in the test's own
directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import MANIFESTS


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifests.yaml"
    path.write_text(MANIFESTS)
    return path
