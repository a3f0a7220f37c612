"""`reconcile import zrepl|sanoid`: convert another tool's configuration to manifests.

    reconcile import zrepl PATH... [--timezone ZONE] [--out DIR]
    reconcile import sanoid PATH [--syncoid 'COMMAND LINE']... [--timezone ZONE] [--prefix P]
                                 [--out DIR]

Reads each PATH as manifests are read (a regular UTF-8 file of at most 4 MiB; zrepl takes
several, one per machine, e.g. the production machine's and the backup machine's), converts with
`reconciler.migrate` (pure), checks the result with the manifest loader, prints each finding on
stderr (`FILE:LINE:COLUMN: path: not converted: why`, `...: note: ...`) and writes the
manifests: to stdout, or with `--out DIR` one file per document (`host-NAME.yaml`,
`policy-NAME.yaml`) in DIR, never over an existing file. Exit 0: everything that decides what
is kept or destroyed was converted; 1: something of it was not (the manifests are still
written), or the input could not be read; 2: usage (docs/migrating.md, docs/migrating-zrepl.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from reconciler.cli.common import EXIT_ERROR, EXIT_OK, Console
from reconciler.manifest.errors import ManifestErrors, one_line
from reconciler.manifest.loader import parse_manifests, read_text
from reconciler.migrate.report import Conversion, ImportInputError, render_documents

TOOLS = ("zrepl", "sanoid")


def import_parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = parser_class(
        prog="reconcile import",
        description="Convert a zrepl or sanoid/syncoid configuration to manifests.",
    )
    tools = parser.add_subparsers(dest="tool", required=True, metavar="{zrepl,sanoid}")
    zrepl = tools.add_parser("zrepl", help="convert zrepl.yml files (one per machine)")
    zrepl.add_argument(
        "path",
        metavar="PATH",
        nargs="+",
        help="a zrepl configuration (zrepl.yml); give each machine's to pair push with sink "
        "and pull with source",
    )
    zrepl.add_argument(
        "--timezone",
        default=None,
        metavar="ZONE",
        help="the zone of `timestamp_location: Local` (the zrepl machine's; default: unknown)",
    )
    sanoid = tools.add_parser("sanoid", help="convert a sanoid.conf")
    sanoid.add_argument("path", metavar="PATH", help="the sanoid configuration (sanoid.conf)")
    sanoid.add_argument(
        "--syncoid",
        action="append",
        default=[],
        metavar="'COMMAND LINE'",
        help="a syncoid command line you run (repeatable), quoted as one argument",
    )
    sanoid.add_argument(
        "--timezone",
        default=None,
        metavar="ZONE",
        help="the time zone sanoid wrote its snapshot names in (the host's; default UTC)",
    )
    sanoid.add_argument(
        "--prefix",
        default="zr_",
        metavar="PREFIX",
        help="the prefix of the policies' own new snapshots (default zr_)",
    )
    for sub in (zrepl, sanoid):
        sub.add_argument(
            "--out",
            default=None,
            metavar="DIR",
            help="write one file per manifest into DIR (default: print them)",
        )
    return parser


def run_import(options: argparse.Namespace, console: Console) -> int:
    paths = [str(path) for path in options.path] if options.tool == "zrepl" else [options.path]
    sources: list[tuple[str, str]] = []
    for path in paths:
        text, error = read_text(Path(path))
        if error is not None or text is None:
            console.stderr.write(f"{error}\n")
            return EXIT_ERROR
        sources.append((path, text))
    path = ", ".join(paths)
    try:
        conversion = _convert(options, sources)
    except ImportInputError as problem:
        console.stderr.write(f"{problem}\n")
        return EXIT_ERROR
    rendered = render_documents(conversion.documents, path)
    try:
        parse_manifests([("<converted>", rendered)])
    except ManifestErrors as invalid:  # a converter bug: never write what validate refuses
        for line in invalid.errors:
            console.stderr.write(f"reconcile import: internal error: converted manifest: {line}\n")
        return EXIT_ERROR
    for finding in sorted(conversion.findings):
        console.stderr.write(finding.text() + "\n")
    if options.out is not None and not _write(Path(options.out), conversion, path, console):
        return EXIT_ERROR
    if options.out is None:
        console.stdout.write(rendered)
    console.stderr.write(_summary(conversion) + "\n")
    return EXIT_ERROR if conversion.incomplete else EXIT_OK


def _convert(options: argparse.Namespace, sources: list[tuple[str, str]]) -> Conversion:
    if options.tool == "zrepl":
        from reconciler.migrate import zrepl

        return zrepl.convert(sources, timezone=options.timezone)
    from reconciler.migrate import sanoid

    path, text = sources[0]
    return sanoid.convert(
        path, text, tuple(options.syncoid), timezone=options.timezone, prefix=options.prefix
    )


def _write(directory: Path, conversion: Conversion, origin: str, console: Console) -> bool:
    """One file per document in `directory` (made if missing), or nothing at all."""
    files = {
        directory / f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml": doc
        for doc in conversion.documents
    }
    try:
        directory.mkdir(exist_ok=True)
        existing = [file for file in files if os.path.lexists(file)]
        if existing:
            console.stderr.write(
                one_line(f"reconcile import: {existing[0]}: exists; nothing was written") + "\n"
            )
            return False
        for file, doc in files.items():
            with open(file, "x", encoding="utf-8") as stream:
                stream.write(render_documents([doc], origin))
    except OSError as error:
        name = error.filename if error.filename is not None else directory
        console.stderr.write(one_line(f"reconcile import: {name}: {error.strerror}") + "\n")
        return False
    for file in files:
        console.stderr.write(one_line(f"wrote {file}") + "\n")
    return True


def _summary(conversion: Conversion) -> str:
    hosts = sum(1 for d in conversion.documents if d["kind"] == "Host")
    policies = len(conversion.documents) - hosts
    dropped = [f for f in conversion.findings if f.outcome == "not converted"]
    blocking = sum(1 for f in dropped if f.affects_retention)
    notes = len(conversion.findings) - len(dropped)
    verdict = (
        f"; {blocking} of them decide what is kept or destroyed: finish the manifests by hand"
        if blocking
        else ""
    )
    return (
        f"converted {hosts} host(s) and {policies} policy(ies); {len(dropped)} key(s) not "
        f"converted{verdict}; {notes} note(s)"
    )
