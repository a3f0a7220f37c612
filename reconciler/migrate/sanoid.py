"""`reconcile import sanoid`: a sanoid.conf (and syncoid command lines) as manifests.

Owns `convert`, called by `reconciler/cli/importer.py`: reads the file (`ini.py`), works out
each dataset section's effective settings (`sanoid_settings.py`) and policy parts
(`sanoid_policy.py`), selects its filesystems with filter patterns, groups the sections whose
parts (and syncoid lines) are equal into one Policy, and hands the syncoid lines to
`sanoid_replication.py` for the targets and Hosts. Pure; docs/migrating-sanoid.md has the
mapping. Every policy adopts sanoid's `autosnap_` snapshots and takes its own under a new
prefix (`zr_` by default), so both tools can run side by side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.manifest.fields import FILESYSTEM_PATTERN, PREFIX_PATTERN
from reconciler.manifest.name_schemes import load_zone
from reconciler.migrate.ini import read_ini
from reconciler.migrate.names import Names
from reconciler.migrate.report import Conversion, Finding, ImportInputError, Outcome, document
from reconciler.migrate.sanoid_policy import ADOPTED_PREFIX, PolicyParts, policy_parts
from reconciler.migrate.sanoid_replication import Replication
from reconciler.migrate.sanoid_settings import DatasetSection, effective_sections

DEFAULT_PREFIX = "zr_"
LOCAL_HOST = "local"
_FILESYSTEM = re.compile(FILESYSTEM_PATTERN)


@dataclass(slots=True)
class _Unit:
    """One dataset section: the patterns it claims, the one it hides from enclosing policies."""

    section: DatasetSection
    claim: dict[str, bool]
    shadow: str
    parts: PolicyParts | None  # None: it selects no filesystem
    active: bool  # False: sanoid neither snapshots nor prunes it
    jobs: list[int] = field(default_factory=list)


def convert(
    file: str,
    text: str,
    syncoid: Sequence[str] = (),
    *,
    timezone: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> Conversion:
    """The manifests for sanoid.conf `text` (read from `file`) and the syncoid lines."""
    zone_name, zone = _zone(timezone)
    _check_prefix(prefix)
    sections, findings = effective_sections(file, read_ini(file, text))
    if not sections:
        raise ImportInputError(file, 1, 1, "no [pool/dataset] section: nothing to convert")
    if timezone is None:
        findings.append(
            Finding(
                "--timezone",
                1,
                1,
                "--timezone",
                Outcome.NOTE,
                "sanoid names snapshots in its host's local time; they are read as UTC: "
                "pass --timezone ZONE when that host is not on UTC",
            )
        )
    units = [unit for s in sections if (unit := _unit(file, s, prefix, zone, findings))]
    names = Names()
    local = names.unique("host", LOCAL_HOST)
    replication = Replication(names, local, syncoid)
    replication.assign(units_claims=[(u.claim, u.jobs) for u in units if u.active])
    adopt = [{"prefix": ADOPTED_PREFIX, "format": "sanoid", "timezone": zone_name}]
    build = _Build(file, units, local, prefix, adopt, names, replication, findings)
    documents = [build.policy(group) for group in _groups(units)]
    documents.extend(replication.extra_policies(prefix, adopt))
    findings.extend(replication.findings)
    hosts = replication.hosts()
    documents[:0] = [document("Host", name, spec) for name, spec in hosts.items()]
    for unit in units:
        findings.extend(unit.parts.findings if unit.parts is not None else ())
    return Conversion(tuple(documents), tuple(sorted(set(findings))))


def _zone(timezone: str | None) -> tuple[str, Any]:
    name = timezone if timezone is not None else "UTC"
    valid = re.fullmatch(r"[A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2}", name)
    zone = load_zone(name) if valid and name != "Local" else None
    if zone is None:
        raise ImportInputError(
            "--timezone",
            1,
            1,
            f"unknown time zone {name[:64]!r} (an IANA name such as Europe/Berlin)",
        )
    return name, zone


def _check_prefix(prefix: str) -> None:
    if re.fullmatch(PREFIX_PATTERN, prefix) is None:
        raise ImportInputError("--prefix", 1, 1, "a prefix is 1 to 64 of A-Z a-z 0-9 _ . : -")
    if prefix.startswith(("autosnap", "syncoid")):
        raise ImportInputError(
            "--prefix",
            1,
            1,
            f"{prefix!r} would mix with sanoid's or "
            "syncoid's snapshots (sanoid prunes every autosnap*)",
        )


def _unit(
    file: str, section: DatasetSection, prefix: str, zone: Any, findings: list[Finding]
) -> _Unit | None:
    dataset = section.dataset
    if len(dataset) > 255 or _FILESYSTEM.fullmatch(dataset) is None:
        findings.append(
            Finding(
                file,
                section.line,
                1,
                f"[{section.name}]",
                Outcome.NOT_CONVERTED,
                f"{dataset[:60]!r} is not a filesystem name a manifest accepts",
                True,
            )
        )
        return None
    recursive = section.recursion != "no" and not section.skip_children
    children_only = section.flag("process_children_only")
    claim = {f"{dataset}<": True} if recursive else ({} if children_only else {dataset: True})
    if recursive and children_only:
        claim[dataset] = False
    shadow = f"{dataset}<" if recursive or section.skip_children else dataset
    here = (file, section.line, 1, f"[{section.name}]", Outcome.NOTE)
    if section.recursion == "zfs":
        findings.append(
            Finding(
                *here,
                "recursive = zfs: sanoid takes one `zfs snapshot -r`; "
                "the policy takes one atomic snapshot of its filesystems",
            )
        )
    if children_only and not recursive:
        findings.append(
            Finding(
                *here,
                "process_children_only without recursion: sanoid does "
                "nothing for this section; nor does the import",
            )
        )
    if section.parent is not None:
        findings.append(
            Finding(
                *here,
                f"below the recursive [{section.parent}]: converted as "
                "sanoid applies it when the parent comes first (sanoid 2.1's "
                "order is that of a Perl hash)",
            )
        )
    active = section.flag("autosnap") or section.flag("autoprune")
    if not active:
        findings.append(
            Finding(
                *here,
                "autosnap and autoprune are off: sanoid neither "
                "snapshots nor prunes it; no policy selects it",
            )
        )
    parts = policy_parts(file, section, prefix, zone) if claim else None
    return _Unit(section, claim, shadow, parts, active and bool(claim))


def _groups(units: list[_Unit]) -> list[list[_Unit]]:
    groups: dict[tuple[str, tuple[int, ...]], list[_Unit]] = {}
    for unit in units:
        if unit.parts is not None and unit.active:
            groups.setdefault((unit.parts.key(), tuple(unit.jobs)), []).append(unit)
    return list(groups.values())


def _filesystems(group: list[_Unit], units: list[_Unit]) -> dict[str, bool]:
    """The group's claims, and the patterns of nested sections of other policies, excluded."""
    selected: dict[str, bool] = {}
    for unit in group:
        selected.update(unit.claim)
    subtrees = [p[:-1] for p, value in selected.items() if value and p.endswith("<")]
    for other in units:
        if other in group:
            continue
        dataset = other.section.dataset
        if other.shadow not in selected and any(dataset.startswith(f"{s}/") for s in subtrees):
            selected[other.shadow] = False
    return selected


@dataclass(frozen=True, slots=True)
class _Build:
    """What every policy of one conversion is made with."""

    file: str
    units: list[_Unit]
    host: str
    prefix: str
    adopt: list[dict[str, Any]]
    names: Names
    replication: Replication
    findings: list[Finding]

    def policy(self, group: list[_Unit]) -> dict[str, Any]:
        """The Policy of a group of sections with equal parts (and syncoid lines)."""
        first, parts = group[0].section, group[0].parts
        assert parts is not None  # _groups takes only sections with parts
        name = self.names.unique("policy", first.dataset)
        here = (self.file, first.line, 1, f"[{first.name}]", Outcome.NOTE)
        if name != first.dataset:
            self.findings.append(Finding(*here, f"policy named {name!r} (a DNS-1123 label)"))
        if len(group) > 1:
            others = ", ".join(f"[{u.section.name}]" for u in group[1:])
            why = f"one policy with {others}: the same effective settings"
            self.findings.append(Finding(*here, why))
        snapshots: dict[str, Any] = {"prefix": self.prefix, **parts.schedule}
        if parts.hooks:
            snapshots["hooks"] = parts.hooks
        snapshots["adopt"] = self.adopt
        spec: dict[str, Any] = {
            "source": {"host": self.host, "filesystems": _filesystems(group, self.units)},
            "snapshots": snapshots,
        }
        if parts.retention is not None:
            spec["retention"] = parts.retention
        targets = self.replication.targets_for(group[0].jobs)
        if targets:
            spec["replication"] = targets
        return document("Policy", name, spec)
