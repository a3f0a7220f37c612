"""The effective settings of each dataset section of a sanoid.conf, worked out as sanoid 2.1 does.

Owns `Setting` (a value and the key it came from), `DatasetSection` (one `[pool/dataset]`
section: its dataset, recursion and effective settings) and `effective_sections`, which applies,
in sanoid's order, the defaults of sanoid.defaults.conf, the user's `[template_default]`, the
settings of a recursive ancestor section (sanoid copies them to every child dataset), the
section's `use_template` templates in the order listed, and the section's own keys. Called by
`reconciler.migrate.sanoid`; findings about keys sanoid ignores are reported here. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.migrate.ini import IniFile, IniSection, IniValue
from reconciler.migrate.report import Finding, Outcome

# sanoid.defaults.conf of sanoid 2.1.0 ([template_default]); a key not listed is unknown to it.
DEFAULTS: dict[str, str] = {
    "path": "",
    "recursive": "",
    "use_template": "",
    "process_children_only": "",
    "skip_children": "",
    "pre_snapshot_script": "",
    "post_snapshot_script": "",
    "pruning_script": "",
    "script_timeout": "5",
    "no_inconsistent_snapshot": "",
    "force_post_snapshot_script": "",
    "frequent_period": "15",
    "autoprune": "yes",
    "frequently": "0",
    "hourly": "48",
    "daily": "90",
    "weekly": "0",
    "monthly": "6",
    "yearly": "0",
    "prune_defer": "0",
    "autosnap": "1",
    "hourly_min": "0",
    "daily_hour": "23",
    "daily_min": "59",
    "weekly_wday": "1",
    "weekly_hour": "23",
    "weekly_min": "30",
    "monthly_mday": "1",
    "monthly_hour": "0",
    "monthly_min": "0",
    "yearly_mon": "1",
    "yearly_mday": "1",
    "yearly_hour": "0",
    "yearly_min": "0",
    "monitor": "yes",
    "monitor_dont_warn": "no",
    "monitor_dont_crit": "no",
    "frequently_warn": "0",
    "frequently_crit": "0",
    "hourly_warn": "90m",
    "hourly_crit": "360m",
    "daily_warn": "28h",
    "daily_crit": "32h",
    "weekly_warn": "0",
    "weekly_crit": "0",
    "monthly_warn": "32d",
    "monthly_crit": "40d",
    "yearly_warn": "0",
    "yearly_crit": "0",
    "capacity_warn": "80",
    "capacity_crit": "95",
}
TOGGLES = frozenset({
    "autosnap", "autoprune", "monitor_dont_warn", "monitor_dont_crit", "monitor", "recursive",
    "process_children_only", "skip_children", "no_inconsistent_snapshot",
    "force_post_snapshot_script",
})  # fmt: skip
TRUE = frozenset({"1", "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
FALSE = frozenset({"0", "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
_NOT_FROM_TEMPLATES = re.compile(r"template|recursive")  # sanoid ignores these in templates
_NOT_LOCAL = re.compile(r"template|recursive|skip_children")  # ... and these in its overrides
_NOT_INHERITED = re.compile(r"template|recursive|children_only")  # not copied to children


@dataclass(frozen=True, slots=True)
class Setting:
    """An effective value and where it was written (None: sanoid's default)."""

    value: str
    origin: str | None = None  # `[section].key` of the line that set it
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class DatasetSection:
    """One `[pool/dataset]` section, with everything sanoid applies to it."""

    name: str
    line: int
    dataset: str
    recursion: str  # "no", "yes" or "zfs"
    skip_children: bool
    settings: dict[str, Setting]
    parent: str | None  # the recursive ancestor section whose settings it starts from

    def text(self, key: str) -> str:
        return self.settings[key].value

    def flag(self, key: str) -> bool:
        """A toggle as sanoid reads it: its true/false words, else Perl's truth of the text."""
        value = self.text(key)
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        return value not in ("", "0")

    def where(self, key: str) -> tuple[str, int, int]:
        """The path and position of a finding about `key` (the section header if defaulted)."""
        setting = self.settings.get(key)
        if setting is None or setting.origin is None:
            return f"[{self.name}]", self.line, 1
        return setting.origin, setting.line, setting.column


def effective_sections(file: str, ini: IniFile) -> tuple[list[DatasetSection], list[Finding]]:
    """Every dataset section with its effective settings, and findings about ignored keys."""
    findings = _unknown_and_ignored(file, ini)
    user_default = ini.get("template_default")
    base = {key: Setting(value) for key, value in DEFAULTS.items()}
    if user_default is not None:
        base.update(_applied(user_default, _NOT_FROM_TEMPLATES))
    by_dataset: dict[str, DatasetSection] = {}
    result: list[DatasetSection] = []
    datasets = [s for s in ini.sections if not s.name.startswith("template_")]
    for section in sorted(datasets, key=lambda s: _dataset_of(s).count("/")):
        dataset = _dataset_of(section)
        if dataset in by_dataset:
            why = "names the dataset of another section: not converted"
            findings.append(_finding(file, section, "path", why, retention=True))
            continue
        parent = _recursive_ancestor(dataset, by_dataset)
        settings = dict(base)
        if parent is not None:
            settings.update(
                (k, v) for k, v in parent.settings.items() if not _NOT_INHERITED.search(k)
            )
        settings.update(_templates(file, ini, section, findings))
        settings.update(_applied(section, _NOT_LOCAL))
        entry = DatasetSection(
            name=section.name,
            line=section.line,
            dataset=dataset,
            recursion=_recursion(section),
            skip_children=_local_flag(section, "skip_children"),
            settings=settings,
            parent=parent.name if parent is not None else None,
        )
        by_dataset[dataset] = entry
        result.append(entry)
    result.sort(key=lambda s: s.line)
    findings.extend(_unused_templates(file, ini))
    return result, findings


def _unused_templates(file: str, ini: IniFile) -> list[Finding]:
    used = {
        f"template_{name.strip()}"
        for section in ini.sections
        if not section.name.startswith("template_") and "use_template" in section.keys
        for name in re.split(r" *, *", section.keys["use_template"].value)
    }
    return [
        Finding(
            file,
            section.line,
            1,
            f"[{section.name}]",
            Outcome.NOTE,
            "no dataset section uses this template: nothing of it is converted",
        )
        for section in ini.sections
        if section.name.startswith("template_")
        and section.name != "template_default"
        and section.name not in used
    ]


def _dataset_of(section: IniSection) -> str:
    path = section.keys.get("path")
    return path.value if path is not None and path.value else section.name


def _recursive_ancestor(
    dataset: str, by_dataset: dict[str, DatasetSection]
) -> DatasetSection | None:
    parts = dataset.split("/")
    for cut in range(len(parts) - 1, 0, -1):
        ancestor = by_dataset.get("/".join(parts[:cut]))
        if ancestor is not None and ancestor.recursion != "no" and not ancestor.skip_children:
            return ancestor
    return None


def _recursion(section: IniSection) -> str:
    entry = section.keys.get("recursive")
    if entry is None:
        return "no"
    if "zfs" in entry.value.lower():
        return "zfs"
    return "yes" if entry.value in TRUE else "no"


def _local_flag(section: IniSection, key: str) -> bool:
    entry = section.keys.get(key)
    return entry is not None and entry.value in TRUE


def _applied(section: IniSection, excluded: re.Pattern[str]) -> dict[str, Setting]:
    return {
        key: _setting(section, key, entry)
        for key, entry in section.keys.items()
        if not excluded.search(key) and key in DEFAULTS
    }


def _setting(section: IniSection, key: str, entry: IniValue) -> Setting:
    return Setting(entry.value, f"[{section.name}].{key}", entry.line, entry.column)


def _templates(
    file: str, ini: IniFile, section: IniSection, findings: list[Finding]
) -> dict[str, Setting]:
    entry = section.keys.get("use_template")
    applied: dict[str, Setting] = {}
    if entry is None:
        return applied
    for raw in re.split(r" *, *", entry.value):
        name = raw.rstrip()
        template = ini.get(f"template_{name}")
        if template is None:
            if name:
                findings.append(
                    _finding(
                        file,
                        section,
                        "use_template",
                        f"there is no [template_{name}] section: sanoid applies nothing for it",
                        note=True,
                    )
                )
            continue
        applied.update(_applied(template, _NOT_FROM_TEMPLATES))
    return applied


def _unknown_and_ignored(file: str, ini: IniFile) -> list[Finding]:
    findings: list[Finding] = []
    for section in ini.sections:
        for key, entry in section.repeated:
            findings.append(
                _at(
                    file,
                    section,
                    key,
                    entry,
                    "given again later in the section: the last "
                    "one is used (sanoid reads every value, joined)",
                    note=False,
                )
            )
        for key, entry in section.keys.items():
            if key not in DEFAULTS:
                why = "sanoid 2.1 does not know this key (it refuses to start with it)"
                findings.append(_at(file, section, key, entry, why, note=False))
            elif key in TOGGLES and entry.value not in TRUE | FALSE | {"", "zfs"}:
                why = "not one of sanoid's words for yes or no: read as sanoid does " + (
                    "(no recursion)" if key == "recursive" else "(yes unless empty or 0)"
                )
                findings.append(_at(file, section, key, entry, why, note=True))
            elif section.name.startswith("template_") and _NOT_FROM_TEMPLATES.search(key):
                why = "sanoid ignores this key in a template (it warns); ignored here too"
                findings.append(_at(file, section, key, entry, why, note=True))
    return findings


def _at(
    file: str,
    section: IniSection,
    key: str,
    entry: IniValue,
    why: str,
    *,
    note: bool,
    retention: bool = False,
) -> Finding:
    outcome = Outcome.NOTE if note else Outcome.NOT_CONVERTED
    path = f"[{section.name}].{key}"
    return Finding(file, entry.line, entry.column, path, outcome, why, retention)


def _finding(
    file: str,
    section: IniSection,
    key: str,
    why: str,
    *,
    note: bool = False,
    retention: bool = False,
) -> Finding:
    entry = section.keys.get(key)
    if entry is None:
        entry = IniValue("", section.line, 1)
    return _at(file, section, key, entry, why, note=note, retention=retention)
