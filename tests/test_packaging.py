"""What the repository offers editors and pre-commit: the schema modeline of the example
manifests, and the `reconcile-validate` hook of `.pre-commit-hooks.yaml`, run as pre-commit
would run it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(?P<path>\S+)$")


def test_every_example_manifest_names_the_schema_for_the_yaml_language_server() -> None:
    manifests = sorted((REPO / "manifests").glob("*.yaml"))
    assert manifests
    for path in manifests:
        first = path.read_text().splitlines()[0]
        match = MODELINE.match(first)
        assert match, f"{path.name}: first line is not the modeline: {first!r}"
        schema = (path.parent / match["path"]).resolve()
        assert schema == REPO / "schemas" / "manifests.schema.json", schema


def test_the_pre_commit_hook_validates_the_manifests_as_pre_commit_runs_it() -> None:
    hooks = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text())
    [hook] = hooks
    assert hook["id"] == "reconcile-validate" and hook["language"] == "python"
    program, *words = hook["entry"].split()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[program] == "reconciler.cli:main"  # what `language: python` installs
    assert hook["pass_filenames"] is False  # manifests refer to one another: the whole set
    files = re.compile(hook["files"])
    assert files.search("manifests/example.yaml") and files.search("a/b.yml")
    assert not files.search("README.md")
    argv = [sys.executable, "-m", "reconciler", *words, *hook["args"]]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_hook_fails_on_an_invalid_manifest(tmp_path: Path) -> None:
    hooks = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text())
    words = hooks[0]["entry"].split()[1:]
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "host.yaml").write_text(
        "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Host\nmetadata: {name: a}\n"
        "spec: {transport: carrier-pigeon}\n"
    )
    argv = [sys.executable, "-m", "reconciler", *words, *hooks[0]["args"]]
    done = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert re.search(r"host\.yaml:4:\d+: spec\.transport", done.stdout + done.stderr)
