"""syncoid command lines as replication targets and Hosts, for `reconcile import sanoid`.

Owns `Replication`: it reads every `--syncoid` line (`syncoid.py`), attaches each to the
sanoid section whose filesystems it replicates (`assign`; the section's policy gets the target,
`targets_for`), or makes a policy of its own that takes no snapshots when no section selects the
same filesystems (`extra_policies`: a pull from another host, or a dataset sanoid does not
manage), and makes the Hosts the lines name (`hosts`). Called by `reconciler.migrate.sanoid`.
Pure. syncoid receives SOURCE as TARGET exactly (its children below it); a target receives
`S` as `<root>/S`, so TARGET must end with `/SOURCE`: otherwise the line is not converted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.manifest.fields import FILESYSTEM_PATTERN, PROPERTY_PATTERN
from reconciler.manifest.limits import MAX_TARGETS
from reconciler.manifest.models import CREATION_ONLY_PROPERTIES
from reconciler.migrate.names import Names
from reconciler.migrate.report import Finding, document
from reconciler.migrate.syncoid import SyncoidJob, read_syncoid

MAX_LINES = 64
_FILESYSTEM = re.compile(FILESYSTEM_PATTERN)
_PROPERTY = re.compile(PROPERTY_PATTERN)
_LITERAL = re.compile(r"(?:[A-Za-z0-9_/: -]|\\[./:-])+")


@dataclass(slots=True)
class _Extra:
    """A policy made for syncoid lines alone: a source host and filesystems, its targets."""

    host: str
    filesystems: dict[str, bool]
    jobs: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Replication:
    names: Names
    local: str
    lines: Sequence[str]
    jobs: list[SyncoidJob] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    _hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _host_keys: dict[str, str] = field(default_factory=dict)
    _job_hosts: dict[int, tuple[str, str]] = field(default_factory=dict)  # source, target
    _extras: list[_Extra] = field(default_factory=list)
    _destinations: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._hosts[self.local] = {"transport": "local"}
        for index, line in enumerate(self.lines[:MAX_LINES], start=1):
            job = read_syncoid(index, line)
            self.jobs.append(job)
            self.findings.extend(job.findings)
        if len(self.lines) > MAX_LINES:
            self._drop(self.jobs[-1], 1, f"more than {MAX_LINES} --syncoid lines: the rest")

    def assign(self, units_claims: list[tuple[dict[str, bool], list[int]]]) -> None:
        """Attach each readable line to the section whose claim has the same top pattern."""
        for job in self.jobs:
            if job.source is None or job.target is None or not self._readable(job):
                continue
            source = job.source.dataset
            top = f"{source}<" if job.recursive else source
            owner = next((jobs for claim, jobs in units_claims if claim.get(top)), None)
            if job.source.host is None and owner is not None:
                self._attached_differences(job)
                owner.append(job.index)
                continue
            if job.source.host is None and any(
                _related(pattern.rstrip("<"), source)
                for claim, _ in units_claims
                for pattern in claim
            ):
                self._drop(
                    job,
                    1,
                    "replicates a part of a sanoid section's filesystems that no "
                    "policy selects alone: split that policy by hand",
                    retention=True,
                )
                continue
            self._extra(job, top)

    def targets_for(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = []
        used = Names()
        for index in indices:
            target = self._target(self.jobs[index - 1], used)
            if target is not None and len(targets) < MAX_TARGETS:
                targets.append(target)
        return targets

    def extra_policies(self, prefix: str, adopt: list[dict[str, Any]]) -> list[dict[str, Any]]:
        documents = []
        for extra in self._extras:
            targets = self.targets_for(extra.jobs)
            if not targets:
                continue
            first = self.jobs[extra.jobs[0] - 1]
            assert first.source is not None
            name = self.names.unique("policy", f"replicate-{first.source.dataset}")
            self._note(
                first,
                1,
                f"policy {name!r}: takes no snapshots, replicates the adopted "
                "autosnap_ snapshots and keeps them all (their retention stays with the "
                "source host's sanoid until you import its sanoid.conf)",
            )
            spec = {
                "source": {"host": extra.host, "filesystems": extra.filesystems},
                "snapshots": {"prefix": prefix, "adopt": adopt},
                "replication": targets,
            }
            documents.append(document("Policy", name, spec))
        return documents

    def hosts(self) -> dict[str, dict[str, Any]]:
        return dict(self._hosts)

    # --- reading a line -----------------------------------------------------------------------

    def _readable(self, job: SyncoidJob) -> bool:
        assert job.source is not None and job.target is not None
        for end in (job.source, job.target):
            if len(end.dataset) > 255 or _FILESYSTEM.fullmatch(end.dataset) is None:
                self._drop(
                    job,
                    1,
                    f"{end.dataset[:60]!r} is not a filesystem name a manifest accepts",
                    retention=True,
                )
                return False
        source, target = job.source.dataset, job.target.dataset
        if not target.endswith(f"/{source}"):
            self._drop(
                job,
                1,
                f"syncoid receives {source!r} as {target!r}; a target receives "
                f"it as ROOT/{source}: this layout cannot be expressed",
                retention=True,
            )
            return False
        self._job_hosts[job.index] = (self._host(job, job.source), self._host(job, job.target))
        return True

    def _host(self, job: SyncoidJob, end: Any) -> str:
        if end.host is None:
            return self.local
        ssh: dict[str, Any] = {"host": end.host}
        if end.user is not None:
            ssh["user"] = end.user
        ssh.update(job.ssh)
        spec: dict[str, Any] = {"transport": "ssh", "ssh": ssh}
        if job.sudo and end.user not in (None, "root"):
            spec["zfsCommand"] = ["sudo", "zfs"]
            self._note(
                job,
                1,
                f"{end.user}@{end.host}: zfs runs through sudo there, as syncoid "
                "does for a user other than root",
            )
        key = repr(spec)
        if key not in self._host_keys:
            name = self.names.unique("host", end.host)
            self._host_keys[key] = name
            self._hosts[name] = spec
            if name != end.host:
                self._note(job, 1, f"host {end.host[:60]!r} named {name!r} (a DNS-1123 label)")
        return self._host_keys[key]

    def _attached_differences(self, job: SyncoidJob) -> None:
        if job.skip_parent:
            self._note(
                job,
                job.options["skip-parent"],
                "the parent is replicated too: it is one of the policy's filesystems",
            )
        for regex, column in job.excludes:
            self._note(
                job,
                column,
                f"--exclude={regex[:40]}: the policy replicates every "
                "filesystem it snapshots; add a policy of its own for them to tell apart",
            )

    def _extra(self, job: SyncoidJob, top: str) -> None:
        assert job.source is not None
        source = job.source.dataset
        filesystems = {top: True}
        if job.skip_parent and job.recursive:
            filesystems[source] = False
        for regex, column in job.excludes:
            pattern = _exclusion(regex, source)
            if pattern is None:
                self._drop(
                    job,
                    column,
                    f"--exclude={regex[:40]}: not a literal dataset name "
                    "below the source; not converted",
                )
            else:
                filesystems[pattern] = False
        host = self._job_hosts[job.index][0]
        for extra in self._extras:
            if extra.host == host and extra.filesystems == filesystems:
                extra.jobs.append(job.index)
                return
            if extra.host == host and any(
                _related(p.rstrip("<"), source) for p in extra.filesystems
            ):
                self._drop(
                    job, 1, "overlaps the filesystems of another --syncoid line", retention=True
                )
                return
        self._extras.append(_Extra(host, filesystems, [job.index]))

    # --- a target -----------------------------------------------------------------------------

    def _target(self, job: SyncoidJob, used: Names) -> dict[str, Any] | None:
        assert job.source is not None and job.target is not None
        host = self._job_hosts[job.index][1]
        if (host, job.target.dataset) in self._destinations:
            self._drop(
                job, 1, "another --syncoid line receives into the same dataset", retention=True
            )
            return None
        self._destinations.add((host, job.target.dataset))
        root = job.target.dataset[: -len(job.source.dataset) - 1]
        target: dict[str, Any] = {
            "name": used.unique("target", host),
            "host": host,
            "root": root,
            "initialReplication": "mostRecent" if "no-stream" in job.options else "all",
        }
        if job.send:
            target["send"] = dict(sorted(job.send.items()))
        properties = self._properties(job)
        if properties:
            target["receive"] = {"properties": properties}
        self._target_notes(job)
        return target

    def _properties(self, job: SyncoidJob) -> dict[str, Any]:
        override: dict[str, str] = {}
        for key, value in job.override.items():
            if _PROPERTY.fullmatch(key) is None or key in CREATION_ONLY_PROPERTIES or "\n" in value:
                self._drop(
                    job,
                    job.options["recvoptions"],
                    f"-o {key[:40]}: a receive property a manifest does not accept",
                )
            else:
                override[key] = value
        inherit = []
        for key in job.inherit:
            if _PROPERTY.fullmatch(key) is None or key in override or key in inherit:
                self._drop(
                    job,
                    job.options["recvoptions"],
                    f"-x {key[:40]}: not converted (not a property name, or also set with -o)",
                )
            else:
                inherit.append(key)
        properties: dict[str, Any] = {}
        if override:
            properties["override"] = override
        if inherit:
            properties["inherit"] = inherit
        return properties

    def _target_notes(self, job: SyncoidJob) -> None:
        self._note(
            job,
            1,
            "the target has no retention: it keeps everything received, as "
            "syncoid does (it prunes only its sync snapshots there); if sanoid prunes "
            "it on the target host, write that as the target's retention",
        )
        if "no-sync-snap" not in job.options:
            self._note(
                job,
                1,
                "without --no-sync-snap syncoid takes syncoid_* snapshots; the "
                "policy replicates its own and the adopted autosnap_ ones instead, and "
                "the syncoid_* left behind are shown by `reconcile status`, never "
                "adopted",
            )
        if "no-rollback" not in job.options:
            self._note(
                job,
                1,
                "syncoid rolls the target back (zfs receive -F); the target "
                "does not (receive.allowRollback: false): a diverged target is reported "
                "as a conflict",
            )
        if "force-delete" in job.options:
            self._note(
                job,
                job.options["force-delete"],
                "receive.allowFullResync stays false: "
                "set it to let a diverged target be replaced by a full send",
            )

    def _note(self, job: SyncoidJob, column: int, why: str) -> None:
        job.add(column, "syncoid", why, dropped=False)
        self.findings.append(job.findings.pop())

    def _drop(self, job: SyncoidJob, column: int, why: str, *, retention: bool = False) -> None:
        job.add(column, "syncoid", why, dropped=True, retention=retention)
        self.findings.append(job.findings.pop())


def _related(a: str, b: str) -> bool:
    """One dataset is the other or below it."""
    return a == b or a.startswith(f"{b}/") or b.startswith(f"{a}/")


def _exclusion(regex: str, source: str) -> str | None:
    """The filter pattern of a syncoid --exclude regex that names a dataset literally."""
    exact = regex.startswith("^") and regex.endswith("$")
    body = regex.removeprefix("^").removesuffix("$")
    if _LITERAL.fullmatch(body) is None:
        return None
    name = re.sub(r"\\(.)", r"\1", body)
    if not name.startswith(f"{source}/") or _FILESYSTEM.fullmatch(name) is None:
        return None
    return name if exact else f"{name}<"
