"""`reconcile import zrepl`: one or more zrepl.yml files → Host and Policy manifests.

Owns `convert(files, timezone=...)`, called by `reconciler/cli/importer.py`. Each file is one
machine's configuration (e.g. the production machine's and the backup machine's). Jobs are paired
across the files as zrepl pairs them: a push job's `connect` with a sink's `serve` (received as
`root_fs/<client identity>/<path>`), a pull job's `connect` with a source's `serve` (received as
`root_fs/<path>`), and local replication (push + sink over the `local` transport) within one
file. The active side's machine becomes a `transport: local` Host (the reconciler runs there),
the other side an ssh Host from `connect`. The jobs are converted by `zrepl_jobs.py` from the
parts in `zrepl_snapshots.py`, `zrepl_hooks.py`, `zrepl_transfer.py` and `zrepl_connect.py`;
`zrepl_settle.py` leaves out whatever would not validate. Every key that is not converted exactly
is a `Finding`, and `zrepl_read.unread_findings` reports the keys that nothing read. Pure:
raises nothing but `ImportInputError`. The mapping: docs/migrating-zrepl.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.manifest.name_schemes import load_zone
from reconciler.migrate.report import Conversion, Finding, ImportInputError
from reconciler.migrate.zrepl_build import Build, Job
from reconciler.migrate.zrepl_jobs import pull_job, push_job, snap_job, unpaired_job
from reconciler.migrate.zrepl_read import Node, ZreplFile, read_zrepl, unread_findings
from reconciler.migrate.zrepl_settle import settle

JOB_TYPES = ("push", "pull", "sink", "source", "snap")
MAX_JOBS = 200  # a real zrepl.yml has a handful; bounds the pairing of jobs (each with each)
MAX_FILES = 16
_GLOBAL = {
    "logging": "the reconciler logs to stderr (--log-level, --log-format: docs/logging.md)",
    "monitoring": "`reconcile watch` has its own metrics (docs/monitoring.md)",
    "control": "zrepl's control socket has no counterpart",
    "serve": "zrepl's stdinserver socket directory has no counterpart (plain ssh is used)",
}


def convert(files: Sequence[tuple[str, str]], *, timezone: str | None = None) -> Conversion:
    """The manifests and findings for the zrepl configurations `files` ((name, text) pairs);
    `timezone` is the zone of zrepl's `timestamp_location: Local` (`--timezone`)."""
    if not files:
        raise ImportInputError("-", 1, 1, "no zrepl configuration given")
    if len(files) > MAX_FILES:
        raise ImportInputError(files[MAX_FILES][0], 1, 1, f"at most {MAX_FILES} files at once")
    if timezone is not None and load_zone(timezone) is None:
        raise ImportInputError(files[0][0], 1, 1, f"--timezone: unknown time zone {timezone!r}")
    build = Build([read_zrepl(file, text) for file, text in files], timezone)
    jobs = [job for index, config in enumerate(build.configs) for job in _jobs(index, config)]
    for extra in jobs[MAX_JOBS:]:  # pairing compares jobs with each other: keep that bounded
        extra.node.drop(f"more than {MAX_JOBS} jobs in the given files: not read", True)
    jobs = jobs[:MAX_JOBS]
    for job in jobs:
        if job.kind == "push":
            push_job(build, job, jobs)
        elif job.kind == "pull":
            pull_job(build, job, jobs)
        elif job.kind == "snap":
            snap_job(build, job)
    for job in jobs:
        if job.kind in ("sink", "source") and id(job) not in build.used:
            unpaired_job(build, job)
    documents = settle(build.hosts, build.policies)
    findings: set[Finding] = set()
    for config in build.configs:
        findings.update(config.findings)
        findings.update(unread_findings(config))
    return Conversion(tuple(documents), tuple(sorted(findings)))


def _jobs(index: int, config: ZreplFile) -> list[Job]:
    root = config.root
    _global(root)
    include = root.child("include")
    if include is not None:
        include.drop(
            "the jobs of included files are not read: put each machine's jobs in one file", True
        )
    jobs_node = root.sequence("jobs", affects=True)
    jobs: list[Job] = []
    if jobs_node is None:
        return jobs
    for node in jobs_node.entries():
        if len(jobs) >= MAX_JOBS:
            node.drop(f"more than {MAX_JOBS} jobs in one file: the rest are not read", True)
            continue
        job = _job(index, node)
        if job is not None:
            jobs.append(job)
    return jobs


def _global(root: Node) -> None:
    section = root.mapping("global")
    if section is None:
        return
    for key in list(section.value):
        node = section.child(key)
        if node is not None:
            node.drop(_GLOBAL.get(key, "not a global setting the reconciler has"))


def _job(index: int, node: Node) -> Job | None:
    if not isinstance(node.value, dict):
        node.drop("a job is a mapping with name and type", True)
        return None
    name = node.text("name", affects=True)
    kind = node.text("type", affects=True)
    if kind not in JOB_TYPES:
        shown = repr(kind) if kind is not None else "missing"
        node.drop(f"job type {shown} is not one of {', '.join(JOB_TYPES)}", True)
        return None
    if not name:
        node.drop("a job needs a name", True)
        return None
    return Job(index, node, name, kind)
