"""Retention rules with `match` and `negate`, end to end: manifest → `reconcile` → the
in-memory ZFS model (the CLI is driven through `reconciler.cli.main` as in test_cli.py).

The snapshots are made by hand (the policy takes none); `--now` lies after the youngest, so
the grid's "now" (the youngest snapshot it sees) is not the wall clock.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reconciler.cli import EXIT_ERROR, EXIT_OK, Console, Services, main
from reconciler.manifest.models import Host
from reconciler.zfs.model import ModelZFS
from reconciler.zfs.port import ZFS

NOW = "2026-11-26T12:05:00Z"
SNAPSHOTS = [
    "zr_20261126T100000Z",
    "zr_20261126T103000Z",
    "manual",
    "zr_20261126T110000Z",
    "zr_20261126T113000Z",
    "zr_20261126T120000Z",
]
MANIFEST = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: nas}
spec: {transport: local}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: home}
spec:
  source: {host: nas, filesystems: {"tank/home": true}}
  snapshots: {prefix: zr_}
  retention:
    keep:
RULES
"""


class Nas:
    """One model host with the snapshots above, and a way to run the CLI against it."""

    def __init__(self) -> None:
        self.zfs = ModelZFS("nas", seed=1)
        self.zfs.create_pool("tank")
        self.zfs.create("tank/home")
        for name in SNAPSHOTS:
            self.zfs.snapshot(["tank/home"], name)

    def connect(self, host: Host) -> ZFS:
        return self.zfs

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), Console(out, err), Services(connect=self.connect))
        return code, out.getvalue(), err.getvalue()

    def names(self) -> list[str]:
        return [v.name for v in self.zfs.observe().filesystems["tank/home"].snapshots]


def _manifest(tmp_path: Path, rules: str) -> str:
    path = tmp_path / "manifest.yaml"
    path.write_text(MANIFEST.replace("RULES", rules))
    return str(path)


def test_a_grid_with_match_and_a_lastn_with_match(tmp_path: Path) -> None:
    """The grid sees the on-the-hour snapshots only: its now is 12:00, so 11:00 and 10:00 are
    outside its one hour; lastN keeps the youngest :30 one; 10:30 no grid sees."""
    nas = Nas()
    rules = '      - {grid: "1x1h(keep=all)", match: "0000Z$"}\n'
    rules += '      - {lastN: 1, match: "3000Z$"}\n'
    manifest = _manifest(tmp_path, rules)
    code, out, _ = nas.run("-f", manifest, "--now", NOW, "--force")
    assert code == EXIT_OK, out
    assert (
        "destroy       @zr_20261126T100000Z, @zr_20261126T110000Z: 2 snapshots older than "
        "every bucket of the retention grid of policy home" in out
    )
    assert "@zr_20261126T103000Z: 1 snapshot that no retention rule of policy home keeps" in out
    assert nas.names() == ["manual", "zr_20261126T113000Z", "zr_20261126T120000Z"]


def test_a_negated_regex_keeps_what_does_not_match(tmp_path: Path) -> None:
    nas = Nas()
    manifest = _manifest(tmp_path, '      - {regex: "T1[01]", negate: true}\n')
    code, out, _ = nas.run("-f", manifest, "--now", NOW, "--force")
    assert code == EXIT_OK, out
    assert nas.names() == ["manual", "zr_20261126T120000Z"]  # `manual` is foreign


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            '{regex: "x", match: "y"}',
            "spec.retention.keep[0]: match filters grid and lastN rules only",
        ),
        (
            '{grid: "24x1h", negate: true}',
            "spec.retention.keep[0]: negate applies to regex rules only, not to a grid rule",
        ),
        ('{lastN: 3, match: "(("}', "spec.retention.keep[0].match: invalid regular expression"),
    ],
)
def test_misplaced_fields_are_one_error_line_and_nothing_is_applied(
    tmp_path: Path, rule: str, message: str
) -> None:
    nas = Nas()
    manifest = _manifest(tmp_path, f"      - {rule}\n")
    code, _, err = nas.run("-f", manifest, "--now", NOW, "--force")
    assert code == EXIT_ERROR
    lines = [line for line in err.splitlines() if "spec.retention" in line]
    assert len(lines) == 1 and message in lines[0], err
    assert nas.names() == SNAPSHOTS
