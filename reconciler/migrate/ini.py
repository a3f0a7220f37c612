"""A line-numbered reader of sanoid.conf, the INI dialect sanoid reads with Config::IniFiles.

Owns `IniFile` (the sections in file order, each key with its value and its 1-based line and
column) and `read_ini`. Called by `reconciler.migrate.sanoid_settings`. Pure: it takes the text.

The dialect, as Config::IniFiles reads it by default: `[section]` headers; `key = value` lines
(spaces around both trimmed); comment lines starting with `#` or `;`; blank lines. A key
repeated in a section keeps its last value here (Config::IniFiles makes it multi-valued, which
sanoid then reads joined): the repeat is reported. A section repeated later in the file is
merged into the first. Anything else (a key before the first section, a line that is none of
these) makes Config::IniFiles refuse the file, and sanoid with it: `ImportInputError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.migrate.report import ImportInputError

MAX_SECTIONS = 2000
MAX_KEYS = 100_000
MAX_NAME = 1024  # of a section or a key (a dataset name has at most 255 characters)
MAX_VALUE = 65_536


@dataclass(frozen=True, slots=True)
class IniValue:
    """One `key = value` line: the value and where the key starts (1-based)."""

    value: str
    line: int
    column: int


@dataclass(slots=True)
class IniSection:
    """One `[name]` section: its header's line and its keys in file order."""

    name: str
    line: int
    keys: dict[str, IniValue] = field(default_factory=dict)
    repeated: list[tuple[str, IniValue]] = field(default_factory=list)  # keys given twice


@dataclass(frozen=True, slots=True)
class IniFile:
    """The sections of one file, in the order they first appear."""

    sections: tuple[IniSection, ...]

    def get(self, name: str) -> IniSection | None:
        return next((section for section in self.sections if section.name == name), None)


def read_ini(file: str, text: str) -> IniFile:
    """The sections of `text`; `ImportInputError` when Config::IniFiles would refuse it."""
    sections: dict[str, IniSection] = {}
    current: IniSection | None = None
    keys = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = _section(file, number, raw, line, sections)
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise ImportInputError(
                file,
                number,
                1,
                "not a [section], a key = value line or a comment: not a sanoid.conf",
            )
        if current is None:
            raise ImportInputError(
                file, number, 1, "a key before the first [section]: not a sanoid.conf"
            )
        keys += 1
        if keys > MAX_KEYS:
            raise ImportInputError(file, number, 1, f"more than {MAX_KEYS} keys")
        name = key.strip()
        if len(name) > MAX_NAME or len(value) > MAX_VALUE:
            raise ImportInputError(file, number, 1, "a key or value too long for a sanoid.conf")
        entry = IniValue(value.strip(), number, raw.index(name[0]) + 1)
        if name in current.keys:
            current.repeated.append((name, current.keys[name]))
        current.keys[name] = entry
    return IniFile(tuple(sections.values()))


def _section(
    file: str, number: int, raw: str, line: str, sections: dict[str, IniSection]
) -> IniSection:
    if not line.endswith("]") or len(line) < 3:
        raise ImportInputError(file, number, 1, "a section header is `[pool/dataset]`")
    name = line[1:-1].strip()
    if not name or len(name) > MAX_NAME:
        raise ImportInputError(file, number, 1, "a section header is `[pool/dataset]`")
    existing = sections.get(name)
    if existing is not None:
        return existing
    if len(sections) >= MAX_SECTIONS:
        raise ImportInputError(file, number, 1, f"more than {MAX_SECTIONS} sections")
    section = IniSection(name, number)
    sections[name] = section
    return section
