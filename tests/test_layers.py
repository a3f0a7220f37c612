"""The architecture's import rules, checked on the source: cli → loop → apply → zfs → core →
migrate → manifest → collector (a module imports only its own layer or lower ones; `migrate`,
the pure converters of `reconcile import`, needs only the manifest layer); the pure core does no
I/O, reads no clock and does no logging, and reads validated manifests, never the reader;
`reconciler.collector` imports only the standard library; and the in-memory ZFS model
(`reconciler.zfs.model`) is imported by tests only, never by another product module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
LAYERS = ["collector", "manifest", "migrate", "core", "zfs", "apply", "loop", "cli"]
MODEL = "reconciler.zfs.model"
MANIFEST_READER = ("reconciler.manifest.loader", "reconciler.manifest.yamldoc")
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


def _imported_modules(tree: ast.AST, package: str) -> set[str]:
    """Every module an import in `tree` may load, relative imports resolved against `package`
    (the importing module's package): `import a.b` → a.b; `from a import b` → a and a.b (b may
    be a submodule)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*parts, node.module] if node.module else parts)


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def _model_imports(module: str, tree: ast.AST, package: str) -> list[str]:
    """The imports of the in-memory ZFS model by `module`, unless it is part of the model."""
    if _is_within(module, MODEL):
        return []
    return sorted(n for n in _imported_modules(tree, package) if _is_within(n, MODEL))


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


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_only_tests_import_the_in_memory_zfs_model(module: str, path: Path) -> None:
    tree = ast.parse(path.read_text())
    imports = _model_imports(module, tree, _package(module, path))
    assert not imports, f"{module} imports the test-only model: {', '.join(imports)}"


def test_the_model_check_sees_a_violation() -> None:
    for source in (
        "from reconciler.zfs.model import ModelZFS\n",
        "from reconciler.zfs import model\n",
        "import reconciler.zfs.model.stream\n",
        "from .model.data import HostData\n",
    ):
        tree = ast.parse(source)
        assert _model_imports("reconciler.zfs.driver", tree, "reconciler.zfs"), source
        assert not _model_imports("reconciler.zfs.model.zfs", tree, "reconciler.zfs.model")
    tree = ast.parse("from reconciler.zfs import model_helpers, port\n")
    assert not _model_imports("reconciler.zfs.driver", tree, "reconciler.zfs")


CORE_ONLY = [(m, p) for m, p in MODULES if _is_within(m, "reconciler.core")]


@pytest.mark.parametrize(("module", "path"), CORE_ONLY, ids=[m for m, _ in CORE_ONLY])
def test_the_core_reads_validated_manifests_never_the_reader(module: str, path: Path) -> None:
    imported = _imported_modules(ast.parse(path.read_text()), _package(module, path))
    readers = sorted(n for n in imported if any(_is_within(n, r) for r in MANIFEST_READER))
    assert not readers, f"{module} imports the manifest reader: {', '.join(readers)}"


def test_the_collector_imports_only_the_standard_library() -> None:
    path = PACKAGE / "collector.py"
    assert _layer("reconciler.collector") == 0
    for imported in _imported_modules(ast.parse(path.read_text()), "reconciler"):
        top = imported.split(".")[0]
        assert top in sys.stdlib_module_names or top == "__future__", imported
