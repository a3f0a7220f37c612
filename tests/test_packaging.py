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


# --- running as a service (docs/operations.md) -------------------------------------------------

EXAMPLES = REPO / "docs" / "examples"
UNIT = EXAMPLES / "systemd" / "zfs-reconciler.service"


def _unit_settings() -> dict[str, list[str]]:
    """The unit's `Key=value` lines, every value of each key (a systemd unit is no INI file
    Python's configparser reads: keys repeat)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_service_runs_a_watch_command_line_the_cli_accepts() -> None:
    from reconciler.cli.options import _parser

    (exec_start,) = _unit_settings()["ExecStart"]
    env = (EXAMPLES / "etc" / "zfs-reconciler" / "watch.env").read_text()
    (options,) = re.findall(r"^RECONCILE_OPTIONS=(.*)$", env, flags=re.M)
    argv = exec_start.replace("$RECONCILE_OPTIONS", options).split()
    assert argv[:2] == ["/usr/local/bin/reconcile", "watch"]
    parsed = _parser("watch").parse_args(argv[2:])
    assert parsed.file == ["/etc/zfs-reconciler/manifests"]
    assert parsed.listen is not None and parsed.listen.loopback  # never public by default
    assert parsed.audit_log == "/var/log/zfs-reconciler/audit.jsonl"
    assert parsed.lock_dir == "/run/zfs-reconciler"


def test_the_service_reloads_with_sighup_and_makes_no_private_mount_namespace() -> None:
    settings = _unit_settings()
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["KillSignal"] == ["SIGTERM"]
    # a private mount namespace would hide from the host what `zfs create` mounts
    namespaced = {
        "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadWritePaths",
        "ReadOnlyPaths", "InaccessiblePaths", "ProtectKernelTunables", "ProtectKernelModules",
        "ProtectControlGroups", "TemporaryFileSystem", "BindPaths", "MountFlags",
    }  # fmt: skip
    assert namespaced.isdisjoint(settings)
    assert settings["NoNewPrivileges"] == ["yes"]


def test_the_sample_etc_manifests_are_valid() -> None:
    manifests = EXAMPLES / "etc" / "zfs-reconciler" / "manifests"
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "-f", str(manifests)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3 documents valid: 2 hosts, 1 policy\n"
