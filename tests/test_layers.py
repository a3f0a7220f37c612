"""The architecture's import rules, checked on the source: cli → loop → apply → zfs → core →
manifest (a module imports only its own layer or lower ones), and the pure core does no I/O,
reads no clock and does no logging."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
LAYERS = ["manifest", "core", "zfs", "apply", "loop", "cli"]
IMPURE_MODULES = {
    "os",
    "subprocess",
    "socket",
    "loguru",
    "logging",
    "pathlib",
    "random",
    "shutil",
    "threading",
    "asyncio",
    "io",
    "sys",
}
CLOCK_CALLS = {"time", "now", "utcnow", "today", "perf_counter", "monotonic", "time_ns"}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "reconciler":
        return None
    if len(parts) == 1 or parts[1] in {"cli", "__main__"}:
        return LAYERS.index("cli")
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _modules() -> list[tuple[str, Path]]:
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        result.append((".".join(relative.parts).removesuffix(".__init__"), path))
    return result


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = _modules()


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down_the_layers(module: str, path: Path) -> None:
    own = _layer(module)
    assert own is not None
    for imported in _imports(ast.parse(path.read_text())):
        layer = _layer(imported)
        if layer is not None:
            assert layer <= own, f"{module} (layer {LAYERS[own]}) imports {imported}"


CORE = [
    (m, p)
    for m, p in MODULES
    if m.startswith(("reconciler.core", "reconciler.manifest"))
    and not m.startswith(("reconciler.manifest.loader", "reconciler.manifest.yamldoc"))
]


@pytest.mark.parametrize(("module", "path"), CORE, ids=[m for m, _ in CORE])
def test_the_pure_core_does_no_io_and_reads_no_clock(module: str, path: Path) -> None:
    tree = ast.parse(path.read_text())
    for imported in _imports(tree):
        assert imported.split(".")[0] not in IMPURE_MODULES, f"{module} imports {imported}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert name not in CLOCK_CALLS, f"{module} calls {name}() (line {node.lineno})"
            assert name not in {"open", "print"}, f"{module} calls {name}() (line {node.lineno})"


def test_the_check_sees_a_violation() -> None:
    tree = ast.parse("from reconciler.cli import main\nimport time\ntime.time()\n")
    assert _layer(_imports(tree)[0]) == LAYERS.index("cli")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert calls and isinstance(calls[0].func, ast.Attribute) and calls[0].func.attr == "time"
