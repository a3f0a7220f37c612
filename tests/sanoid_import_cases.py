"""The fixtures and goldens of `reconcile import sanoid`, shared by its test files.

Each fixture is tests/fixtures/import/sanoid/NAME.conf (a comment at its top says which shape
it shows) with an optional NAME.args (the other arguments of the command, one per line: e.g.
`--syncoid` then the quoted command line). Its goldens are in tests/golden/import/sanoid/NAME/:
`manifests.yaml` (the documents printed on stdout), `findings.txt` (the finding lines of
stderr) and `exit` (the exit code). `UPDATE_GOLDEN=1` rewrites them
(tests/test_import_sanoid.py), from the converter, then read the diff.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from reconciler.cli import Console, main
from reconciler.migrate import sanoid
from reconciler.migrate.report import Conversion, ImportInputError, render_documents

ROOT = Path(__file__).parent
FIXTURES = ROOT / "fixtures" / "import" / "sanoid"
GOLDEN = ROOT / "golden" / "import" / "sanoid"
CASES = sorted(path.stem for path in FIXTURES.glob("*.conf"))


@dataclass(frozen=True)
class Outcome:
    manifests: str
    findings: str
    exit: int


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.conf"


def arguments(name: str) -> list[str]:
    extra = FIXTURES / f"{name}.args"
    return extra.read_text().splitlines() if extra.exists() else []


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT.parent))


def golden(name: str) -> Outcome:
    folder = GOLDEN / name
    return Outcome(
        (folder / "manifests.yaml").read_text(),
        (folder / "findings.txt").read_text(),
        int((folder / "exit").read_text()),
    )


def convert_case(name: str) -> Conversion:
    """The converter's result for a fixture, with the options its .args file gives."""
    args = arguments(name)
    lines = [args[i + 1] for i, word in enumerate(args) if word == "--syncoid"]
    zones = [args[i + 1] for i, word in enumerate(args) if word == "--timezone"]
    path = relative(fixture(name))
    text = fixture(name).read_text()
    return sanoid.convert(path, text, lines, timezone=zones[0] if zones else None)


def expected_from_converter(name: str) -> Outcome:
    """What the command prints for a fixture, from the converter (without the loader's check)."""
    try:
        conversion = convert_case(name)
    except ImportInputError as error:
        return Outcome("", f"{error}\n", 1)
    path = relative(fixture(name))
    findings = "".join(f"{finding.text()}\n" for finding in sorted(conversion.findings))
    return Outcome(
        render_documents(conversion.documents, path), findings, 1 if conversion.incomplete else 0
    )


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, console=Console(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def from_cli(name: str) -> Outcome:
    """What `reconcile import sanoid FIXTURE ARGS...` prints, the summary line left out."""
    code, out, err = run_cli(["import", "sanoid", relative(fixture(name)), *arguments(name)])
    lines = err.splitlines(keepends=True)
    findings = "".join(line for line in lines if not line.startswith("converted "))
    return Outcome(out, findings, code)
