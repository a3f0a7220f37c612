"""Switching from sanoid + syncoid on real OpenZFS: the real tools (Debian's sanoid package,
which `make vm-setup` installs on the host, whose userland the guest runs) build the history,
`reconcile import sanoid` converts their configuration and command line, and the imported
policies continue the replication incrementally: nothing is resent, nothing sanoid keeps is
destroyed, and what syncoid left (its sync snapshots) is listed by `reconcile status` and kept.

sanoid takes its snapshots at the guest's real time, so these scenarios set their clock just
after it rather than to the fixed START of the others.
"""

from __future__ import annotations

import io
import shlex
from datetime import UTC, datetime, timedelta

from platform_tests.scenario import Scenario
from reconciler.cli import Console, main

SANOID_CONF = """\
# what sanoid's README starts with: one template, a recursive dataset
[{data}]
\tuse_template = production
\trecursive = yes

[template_production]
\tfrequently = 0
\thourly = 36
\tdaily = 30
\tmonthly = 3
\tyearly = 0
\tautosnap = yes
\tautoprune = yes
"""


def tool(s: Scenario, name: str) -> str:
    found = s.guest.sh(f"command -v {name}")
    assert found.returncode == 0, (
        f"{name} is missing: `make vm-setup` installs Debian's sanoid package (with syncoid) "
        "on the host, whose userland the guest runs"
    )
    return found.stdout.decode().strip()


def test_a_sanoid_and_syncoid_history_is_imported_and_continued_without_a_resend(
    s: Scenario,
) -> None:
    q = shlex.quote
    sanoid, syncoid = tool(s, "sanoid"), tool(s, "syncoid")
    data, child = f"{s.src}/data", f"{s.src}/data/child"
    target = s.target(data)
    s.create(data, nbytes=1 << 20)
    s.create(child, nbytes=1 << 20)
    config = s.directory / "sanoid"  # on the host; the guest reads it at the same path
    config.mkdir()
    (config / "sanoid.conf").write_text(SANOID_CONF.format(data=data))
    state = "/tmp/zr-sanoid"  # sanoid's cache and run directories, in the guest
    s.sh(
        f"mkdir -p {state}/cache {state}/run && {q(sanoid)} --configdir={q(str(config))} "
        f"--cache-dir={state}/cache --run-dir={state}/run --take-snapshots"
    )
    autosnaps = [n for n in s.snapshots("src", data) if n.startswith("autosnap_")]
    assert sorted(n.rsplit("_", 1)[1] for n in autosnaps) == ["daily", "hourly", "monthly"]
    s.sh(f"zfs create -p {q(target.rsplit('/', 1)[0])}")
    syncoid_line = f"syncoid -r {data} {target}"
    s.sh(f"{q(syncoid)} --quiet -r {q(data)} {q(target)}")
    sync = [n for n in s.snapshots("src", data) if n.startswith("syncoid_")]
    assert len(sync) == 1 and s.snapshots("dst", target) == [*autosnaps, *sync]
    received = {
        fs: {v.name: (v.guid, v.createtxg) for v in s.versions("dst", fs)}
        for fs in (target, s.target(child))
    }

    out, err = io.StringIO(), io.StringIO()
    imported = main(
        [
            "import",
            "sanoid",
            str(config / "sanoid.conf"),
            "--syncoid",
            syncoid_line,
            "--out",
            str(s.directory / "manifests"),
        ],
        Console(out, err),
    )
    assert imported == 0, err.getvalue()
    policies = [p.name for p in (s.directory / "manifests").glob("policy-*.yaml")]
    assert len(policies) == 1, policies
    s.write(data, 64 << 10)
    s.now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1, minutes=1)

    first = s.dry_run()
    # syncoid mounted what it received, and mounting the child made its mountpoint directory
    # in the parent: the parent was written to since its snapshot, and the import keeps
    # allowRollback false (syncoid would roll it back), so the pair is a reported conflict
    assert first.code == 1, first.stdout + first.stderr
    assert [(c["kind"], c["target_filesystem"]) for c in first.conflicts()] == [
        ("target_modified", target)
    ]
    assert s.get(target, "written") != "0" and s.get(s.target(child), "mounted") == "yes"
    assert first.of_kind("destroy") == [] and first.of_kind("rollback") == []
    [policy_file] = (s.directory / "manifests").glob("policy-*.yaml")
    text = policy_file.read_text()
    assert "allowRollback" not in text
    policy_file.write_text(  # what the conflict message says to do: allow the rollback
        text.replace(
            "      initialReplication:",
            "      receive: {allowRollback: true}\n      initialReplication:",
            1,
        )
    )

    preview = s.dry_run()
    assert preview.code == 2, preview.stdout + preview.stderr
    assert preview.of_kind("destroy") == []  # every sanoid snapshot is within its counts
    rollbacks = [(a["filesystem"], a["snapshot"]) for a in preview.of_kind("rollback")]
    assert rollbacks == [(target, f"@{sync[0]}")]
    sends = preview.of_kind("send")
    assert sorted(a["target_filesystem"] for a in sends) == sorted([target, s.target(child)])
    assert all(a["from_version"] is not None for a in sends), sends  # incremental only
    # from the newest common snapshot: syncoid's own, taken per filesystem (-r does not make
    # one recursive snapshot)
    sync_child = [n for n in s.snapshots("src", child) if n.startswith("syncoid_")]
    assert {(a["filesystem"], a["from_version"]) for a in sends} == {
        (data, f"@{sync[0]}"),
        (child, f"@{sync_child[0]}"),
    }

    applied = s.reconcile()
    assert applied.code == 0, applied.stdout + applied.stderr
    sent = [r["bytes"] for r in applied.results().values() if r.get("bytes") is not None]
    assert len(sent) == 2 and max(sent) < 512 << 10, sent  # not the 1 MiB of each history
    for fs, before in received.items():
        now = {v.name: (v.guid, v.createtxg) for v in s.versions("dst", fs)}
        assert {name: now.get(name) for name in before} == before, fs  # nothing received again
    assert [n for n in s.snapshots("src", data) if not n.startswith("zr_")] == [*autosnaps, *sync]
    [new] = [n for n in s.snapshots("dst", target) if n.startswith("zr_")]
    assert s.same_data(f"{data}@{new}")

    status = s.reconcile("status")
    leftovers = {(f["filesystem"], f["name"]) for f in status.json()["foreign_leftovers"]}
    assert {(data, sync[0]), (target, sync[0])} <= leftovers, leftovers  # listed, and kept
    steady = s.dry_run()
    assert (steady.code, steady.kinds(), steady.conflicts()) == (0, [], []), steady.stdout
