"""End-to-end `reconcile` runs on real OpenZFS: each test's name states the property it shows.

Every scenario uses hosts `src` and `dst` (both the guest) with their own roots, drives time
with `--now`, and checks the pools themselves (through the real driver), not only the plan.
Snapshots written by hand with managed names (`zr_<time>`) stand for snapshots that earlier
passes took; `zfs hold`, `zfs snapshot` and writes on the target stand for what an
administrator does between passes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from platform_tests.scenario import PASSPHRASE, Scenario
from reconciler.core.state import ResumeToken

TAG = "zr_:data:backup"  # the hold tag of policy `data`, target `backup`
Rules = int | Sequence[Mapping[str, Any]] | None


def keep(rules: Rules) -> dict[str, Any] | None:
    """A retention block: an int is `lastN`, None keeps everything managed."""
    if rules is None:
        return None
    return {"keep": [{"lastN": rules}] if isinstance(rules, int) else list(rules)}


def policy(
    *,
    filesystems: Mapping[str, bool] | None = None,
    interval: str | None = "15m",
    include: Sequence[str] = (),
    source_keep: Rules = None,
    replicate: bool = True,
    initial: str = "mostRecent",
    protection: str = "incremental",
    target_keep: Rules = None,
    send: Mapping[str, bool] | None = None,
    receive: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Policy `data` on host `src` (default: `{src}/data` and below), prefix `zr_`, with one
    target `backup` on host `dst` under `{dst}`. Protection is `incremental` (a cursor
    bookmark, no holds) unless a scenario is about holds: each hold and release costs a zfs
    command per pass, and the guest is slow."""
    snapshots: dict[str, Any] = {"prefix": "zr_"}
    if interval is not None:
        snapshots["interval"] = interval
    if include:
        snapshots["include"] = list(include)
    spec: dict[str, Any] = {
        "source": {"host": "src", "filesystems": dict(filesystems or {"{src}/data<": True})},
        "snapshots": snapshots,
    }
    if source_keep is not None:
        spec["retention"] = keep(source_keep)
    if replicate:
        target: dict[str, Any] = {
            "name": "backup",
            "host": "dst",
            "root": "{dst}",
            "protection": protection,
            "initialReplication": initial,
        }
        if target_keep is not None:
            target["retention"] = keep(target_keep)
        if send is not None:
            target["send"] = dict(send)
        if receive is not None:
            target["receive"] = dict(receive)
        spec["replication"] = [target]
    return {
        "apiVersion": "zfs-reconciler.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "data"},
        "spec": spec,
    }


def stamp(minutes: int, day: int = 26) -> str:
    """The managed snapshot name of START + minutes (day 25: the day before)."""
    return f"zr_202611{day:02d}T{minutes // 60:02d}{minutes % 60:02d}00Z"


def with_history(s: Scenario, filesystem: str, minutes: Sequence[int], day: int = 26) -> None:
    """The filesystem with 1 MiB of data and a managed snapshot at each time, data written
    after each (as earlier passes would have left it)."""
    s.create(filesystem)
    s.history(filesystem, [stamp(minute, day) for minute in minutes])


def sends_run(s: Scenario) -> list[tuple[str, ...]]:
    """Every `zfs send` argv the source's runner started so far."""
    return [argv for argv in s.runner("src").commands if argv[1:2] == ("send",)]


def assert_same_guids(source: dict[str, int], target: dict[str, int]) -> None:
    """Every snapshot on the target is the source's snapshot of that name (same GUID)."""
    assert target == {name: source.get(name) for name in target}


def assert_converged(s: Scenario) -> None:
    """The steady state: a dry run at the same time plans nothing."""
    steady = s.dry_run()
    assert (steady.code, steady.kinds(), steady.conflicts()) == (0, [], []), steady.stdout


# --- initial replication ---------------------------------------------------------------------


def test_initial_replication_most_recent_sends_only_the_newest_snapshot(s: Scenario) -> None:
    data = f"{s.src}/data"
    with_history(s, data, [0, 60], day=25)
    s.policy(policy(initial="mostRecent"))
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    (send,) = first.of_kind("send")
    assert (send["mode"], send["delivers"]) == ("full", [stamp(0)])
    source, target = s.replicated(data)
    assert list(target) == [stamp(0)]
    assert_same_guids(source, target)
    assert list(source) == [stamp(0, 25), stamp(60, 25), stamp(0)]


def test_initial_replication_all_sends_every_managed_snapshot(s: Scenario) -> None:
    data = f"{s.src}/data"
    with_history(s, data, [0, 60, 120], day=25)
    s.snapshot(data, "manual")  # foreign: not replicated, not destroyed
    s.policy(policy(initial="all"))
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    steps = [(a["mode"], a["from_version"], a["delivers"]) for a in first.of_kind("send")]
    assert steps == [
        ("full", None, [stamp(0, 25)]),
        ("intermediates", f"@{stamp(0, 25)}", [stamp(60, 25), stamp(120, 25)]),
        ("incremental", f"@{stamp(120, 25)}", [stamp(0)]),  # -i: across the foreign one
    ]
    assert [("-I" in argv, "-i" in argv) for argv in sends_run(s)] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    source, target = s.replicated(data)
    assert list(target) == [stamp(0, 25), stamp(60, 25), stamp(120, 25), stamp(0)]
    assert_same_guids(source, target)
    assert "manual" in source


def test_initial_replication_fail_refuses_and_sends_nothing(s: Scenario) -> None:
    data = f"{s.src}/data"
    with_history(s, data, [0, 60], day=25)
    s.policy(policy(initial="fail"))
    s.at(0)
    refused = s.reconcile()
    assert refused.code == 1, refused.stdout
    assert [c["kind"] for c in refused.conflicts()] == ["initial_replication_forbidden"]
    assert refused.of_kind("send") == []
    assert sends_run(s) == []
    assert not s.exists(s.target(data))
    # `fail` concerns the first send only: once an administrator has seeded the target by
    # hand, passes replicate incrementally.
    seed = stamp(60, 25)
    s.sh(
        f"zfs create -p {s.dst}/{s.src} && zfs send {data}@{seed} | zfs receive -u {s.target(data)}"
    )
    s.at(15)
    seeded = s.reconcile()
    assert seeded.code == 0, seeded.stderr
    (send,) = seeded.of_kind("send")
    assert (send["mode"], send["from_version"]) == ("intermediates", f"@{seed}")
    source, target = s.replicated(data)
    assert list(target) == [seed, stamp(0), stamp(15)]
    assert_same_guids(source, target)


def test_steady_state_after_a_converged_pass_is_an_empty_plan(s: Scenario) -> None:
    data = f"{s.src}/data"
    s.create(data)
    s.policy(policy(source_keep=3, target_keep=3, protection="resumable"))
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    assert set(first.kinds()) >= {"snapshot", "send", "bookmark", "hold"}
    before = s.inventory(s.src, s.dst)
    assert_converged(s)
    s.at(14)  # the interval is not due yet
    again = s.reconcile()  # an applying pass changes nothing either
    assert (again.code, again.kinds(), again.results()) == (0, [], {}), again.stdout
    assert s.inventory(s.src, s.dst) == before


# --- incremental replication -----------------------------------------------------------------


def test_incremental_pass_sends_all_wanted_intermediates_in_one_send(s: Scenario) -> None:
    data = f"{s.src}/data"
    s.create(data)
    s.policy(policy())
    s.at(0)
    assert s.reconcile().code == 0
    s.write(data, 256 << 10)
    s.history(data, [stamp(15), stamp(30), stamp(45)])  # taken while replication was not running
    s.at(60)
    sent_before = len(sends_run(s))
    second = s.reconcile()
    assert second.code == 0, second.stderr
    (send,) = second.of_kind("send")
    assert send["mode"] == "intermediates"
    assert send["from_version"] == f"@{stamp(0)}"
    assert send["delivers"] == [stamp(15), stamp(30), stamp(45), stamp(60)]
    (argv,) = sends_run(s)[sent_before:]
    assert "-I" in argv and "-i" not in argv
    source, target = s.replicated(data)
    assert list(target) == [stamp(m) for m in (0, 15, 30, 45, 60)]
    assert_same_guids(source, target)


def test_intermediates_the_target_does_not_want_never_reach_it(s: Scenario) -> None:
    data = f"{s.src}/data"
    s.create(data)
    s.policy(policy(target_keep=[{"regex": "(00|30)00Z$"}]))  # on the hour and half hour
    s.at(0)
    assert s.reconcile().code == 0
    s.write(data, 256 << 10)
    s.history(data, [stamp(15), stamp(30), stamp(45)])
    s.at(60)
    sent_before = len(sends_run(s))
    second = s.reconcile()
    assert second.code == 0, second.stderr
    steps = [(a["mode"], a["from_version"], a["delivers"]) for a in second.of_kind("send")]
    assert steps == [
        ("incremental", f"@{stamp(0)}", [stamp(30)]),
        ("incremental", f"@{stamp(30)}", [stamp(60)]),
    ]
    assert all("-I" not in argv for argv in sends_run(s)[sent_before:])
    assert [a for a in second.of_kind("destroy") if a["host"] == "dst"] == []  # not sent, then
    source, target = s.replicated(data)  # destroyed: never there at all
    assert list(target) == [stamp(0), stamp(30), stamp(60)]
    assert_same_guids(source, target)
    assert {stamp(15), stamp(45)} <= set(source)  # the source keeps them (no source retention)


def test_incremental_after_the_common_snapshot_was_destroyed_starts_from_the_cursor_bookmark(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    s.create(data)
    s.policy(policy(protection="incremental"))
    s.at(0)
    assert s.reconcile().code == 0
    cursor = f"{stamp(0)}_backup"
    assert f"{data}#{cursor}" in [row[0] for row in s.inventory(data)]
    s.sh(f"zfs destroy {data}@{stamp(0)}")  # an administrator removes the common snapshot
    s.write(data, 512 << 10)
    s.at(15)
    second = s.reconcile()
    assert second.code == 0, second.stderr
    (send,) = second.of_kind("send")
    assert (send["mode"], send["from_version"]) == ("incremental", f"#{cursor}")
    assert f"{data}#{cursor}" in sends_run(s)[-1]
    source, target = s.replicated(data)
    assert list(source) == [stamp(15)]
    assert list(target) == [stamp(0), stamp(15)]
    assert target[stamp(15)] == source[stamp(15)]


# --- interrupted receives ----------------------------------------------------------------------


def _cut_pass(s: Scenario, minute: int) -> ResumeToken:
    """A pass at START + minute whose receive is cut after 512 KiB: it fails and leaves a
    resume token on the target of `{src}/data` (returned), and no new snapshot there."""
    data = f"{s.src}/data"
    before = s.snapshots("dst", s.target(data))
    s.runner("dst").cut_next_receive = 512 << 10
    s.at(minute)
    cut = s.reconcile()
    assert cut.code == 1, cut.stdout
    (send,) = cut.of_kind("send")
    assert cut.results()[send["id"]]["status"] == "failed"
    state = s.observe("dst", s.target(data))
    assert state is not None and state.resume_token is not None
    assert state.resume_token.to_name == f"{data}@{stamp(minute)}"
    assert [v.name for v in state.snapshots] == before
    return state.resume_token


def _resumed(s: Scenario, token: ResumeToken) -> None:
    """The next pass resumes the cut receive from its token and completes it."""
    data = f"{s.src}/data"
    resumed = s.reconcile()
    assert resumed.code == 0, resumed.stderr
    (send,) = resumed.of_kind("send")
    assert (send["mode"], send["resume_token"]) == ("resume", token.token)
    assert sends_run(s)[-1][-2:] == ("-t", token.token)
    assert s.get(s.target(data), "receive_resume_token") == "-"
    source, received = s.replicated(data)
    assert received[token.to_name.partition("@")[2]] == token.to_guid
    assert_same_guids(source, received)


def test_interrupted_receive_resumes_from_its_token_and_converges(s: Scenario) -> None:
    data = f"{s.src}/data"
    s.create(data, nbytes=2 << 20)
    s.policy(policy())
    initial = _cut_pass(s, 0)  # the first, full stream
    assert initial.from_guid is None
    _resumed(s, initial)
    s.write(data, 2 << 20)
    incremental = _cut_pass(s, 15)  # an incremental one
    assert incremental.from_guid == s.guids("src", data)[stamp(0)]
    _resumed(s, incremental)
    assert list(s.guids("dst", s.target(data))) == [stamp(0), stamp(15)]
    assert s.same_data(f"{data}@{stamp(15)}")
    assert_converged(s)


def test_stale_resume_token_is_aborted_and_replanned(s: Scenario) -> None:
    data = f"{s.src}/data"
    target = s.target(data)
    s.create(data)
    s.policy(policy())
    s.at(0)
    assert s.reconcile().code == 0
    s.write(data, 2 << 20)
    stale = _cut_pass(s, 15)
    s.sh(f"zfs destroy {data}@{stamp(15)}")  # the token's snapshot is gone from the source
    s.write(data, 256 << 10)
    # The same time again: the pass takes a new @zr_...001500Z, the name the token carries, but
    # with another GUID; the token must be judged by GUID.
    replanned = s.reconcile()
    assert replanned.code == 0, replanned.stderr
    (abort,) = replanned.of_kind("abort_resume")
    assert (abort["host"], abort["filesystem"], abort["reason"]) == (
        "dst",
        target,
        "resume_token_stale",
    )
    (send,) = replanned.of_kind("send")
    assert send["mode"] == "incremental" and send["resume_token"] is None
    assert s.get(target, "receive_resume_token") == "-"
    source, received = s.replicated(data)
    assert list(received) == [stamp(0), stamp(15)]
    assert_same_guids(source, received)
    assert received[stamp(15)] != stale.to_guid
    assert_converged(s)


# --- targets changed behind our back ---------------------------------------------------------


def test_diverged_target_is_a_conflict_left_untouched_until_rollback_is_allowed(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    target = s.target(data)
    s.create(data)
    s.policy(policy(protection="resumable"))
    s.at(0)
    assert s.reconcile().code == 0
    s.write(target, 512 << 10)  # someone uses the backup and snapshots it
    s.snapshot(target, "local-work")
    before = s.inventory(target)
    s.write(data, 256 << 10)
    s.at(15)
    refused = s.reconcile()
    assert refused.code == 1, refused.stdout
    (conflict,) = refused.conflicts()
    assert conflict["kind"] == "diverged"
    assert conflict["target_only"] == ["@local-work"]
    assert conflict["source_only"] == [f"@{stamp(15)}"]
    assert [a for a in refused.actions() if a["host"] == "dst"] == []
    assert s.inventory(target) == before
    assert stamp(15) in s.snapshots("src", data)  # the source side still proceeds
    # With allowRollback the next pass rolls the target back to the common snapshot.
    s.policy(policy(protection="resumable", receive={"allowRollback": True}))
    repaired = s.reconcile()
    assert repaired.code == 0, repaired.stderr
    (rollback,) = repaired.of_kind("rollback")
    assert (rollback["snapshot"], rollback["destroys"]) == (f"@{stamp(0)}", ["@local-work"])
    source, received = s.replicated(data)
    assert list(received) == [stamp(0), stamp(15)]
    assert_same_guids(source, received)
    assert_converged(s)


def test_target_written_since_its_last_snapshot_is_reported_not_overwritten(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    target = s.target(data)
    s.create(data)
    s.policy(policy())
    s.at(0)
    assert s.reconcile().code == 0
    s.write(target, 512 << 10)  # written to, not snapshotted
    listing = f"ls /{shlex.quote(target)}"
    files = s.sh(listing)
    written = s.observe("dst", target)
    assert written is not None and written.written > 0
    s.write(data, 256 << 10)
    s.at(15)
    refused = s.reconcile()
    assert refused.code == 1, refused.stdout
    (conflict,) = refused.conflicts()
    assert (conflict["kind"], conflict["target_filesystem"]) == ("target_modified", target)
    assert [a for a in refused.actions() if a["host"] == "dst"] == []
    after = s.observe("dst", target)
    assert after is not None
    assert [v.name for v in after.snapshots] == [stamp(0)]
    assert after.written >= written.written
    assert s.sh(listing) == files


# --- retention and what it must never touch --------------------------------------------------


def test_held_snapshots_in_a_destroy_batch_do_not_stop_the_rest(s: Scenario) -> None:
    data = f"{s.src}/data"
    history = [stamp(m, 25) for m in (0, 60, 120, 180, 240)]
    with_history(s, data, [0, 60, 120, 180, 240], day=25)
    s.sh(f"zfs hold keep-me {data}@{history[1]}")  # held before the pass looks
    # ... and one held by someone else after the pass has planned, just before it destroys.
    s.before("src", "destroy", f"zfs hold late-hold {data}@{history[3]}")
    s.policy(policy(replicate=False, source_keep=1))
    s.at(0)
    pruned = s.reconcile()
    (destroy,) = pruned.of_kind("destroy")
    assert destroy["versions"] == [f"@{history[i]}" for i in (0, 2, 3, 4)]
    assert [(n["kind"], n["filesystem"]) for n in pruned.notices()] == [("destroys_withheld", data)]
    assert history[1] in pruned.notices()[0]["message"]
    result = pruned.results()[destroy["id"]]
    assert history[3] in result["message"], result
    assert pruned.code == 0, pruned.stderr
    assert s.snapshots("src", data) == [history[1], history[3], stamp(0)]
    assert s.holds(f"{data}@{history[1]}", f"{data}@{history[3]}") == {
        f"{data}@{history[1]}": {"keep-me"},
        f"{data}@{history[3]}": {"late-hold"},
    }


def test_retention_never_destroys_the_newest_common_snapshot_while_the_target_is_unreachable(
    s: Scenario,
) -> None:
    # protection none: no hold and no cursor bookmark stand in for the common snapshot, so
    # only the planner's own rule keeps it while the target cannot be asked what it has.
    data = f"{s.src}/data"
    s.create(data)
    s.policy(policy(protection="none", source_keep=1))
    s.at(0)
    assert s.reconcile().code == 0
    common = s.guids("dst", s.target(data))[stamp(0)]
    s.dst_offline()
    s.write(data, 256 << 10)
    s.at(15)
    offline = s.reconcile()
    assert offline.code == 1, offline.stdout + offline.stderr  # the unobserved host is an error
    assert [n["kind"] for n in offline.notices()][:1] == ["host_unreachable"]
    assert [u["host"] for u in offline.plan()["unobserved_hosts"]] == ["dst"]
    assert offline.of_kind("destroy") == []
    kept = s.guids("src", data)
    assert (list(kept), kept[stamp(0)]) == ([stamp(0), stamp(15)], common)
    s.dst_online()
    s.write(data, 256 << 10)
    s.at(30)
    back = s.reconcile()
    assert back.code == 0, back.stderr
    (send,) = back.of_kind("send")  # incremental from the kept common snapshot: no full resend
    assert (send["mode"], send["from_version"]) == ("intermediates", f"@{stamp(0)}")
    assert send["delivers"] == [stamp(15), stamp(30)]
    source, target = s.replicated(data)
    assert target[stamp(0)] == common
    assert list(source) == [stamp(30)]  # now retention prunes: the common one is @30
    assert_same_guids(source, {stamp(30): target[stamp(30)]})


BROKEN_HOST = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {name: broken}
spec: {transport: local, zfsCommand: [/nonexistent/zfs]}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {name: media}
spec:
  source: {host: broken, filesystems: {"{src}/media<": true}}
  snapshots: {prefix: zr_, interval: 15m}
"""


def test_a_host_whose_zfs_cannot_run_exits_one_in_every_mode_while_the_others_proceed(
    s: Scenario,
) -> None:
    # host `broken` (policy media) cannot run its zfsCommand; src and dst (policy data) are real
    data = f"{s.src}/data"
    s.create(data)
    s.policy(policy())
    s.policy(BROKEN_HOST, name="broken.yaml")
    s.at(0)
    for flags in ((), ("--detailed-exitcode",)):  # 1 even where changes are pending (2)
        dry = s.reconcile("--dry-run", *flags)
        assert dry.code == 1, dry.stdout + dry.stderr
        (unobserved,) = dry.plan()["unobserved_hosts"]
        assert unobserved["host"] == "broken" and "/nonexistent/zfs" in unobserved["error"]
        assert [(n["kind"], n["host"], n["policy"]) for n in dry.notices()] == [
            ("host_unreachable", "broken", "media")
        ]
        assert set(dry.kinds()) >= {"snapshot", "send"}  # policy data is planned
        assert {a["policy"] for a in dry.actions()} == {"data"}
    applied = s.reconcile()
    assert applied.code == 1, applied.stdout + applied.stderr
    assert set(applied.statuses()) == {"ok"}
    source, target = s.replicated(data)
    assert list(source) == [stamp(0)] and list(target) == [stamp(0)]  # data went on
    assert_same_guids(source, target)
    text = s.reconcile("--dry-run", "--detailed-exitcode", output="text")
    assert text.code == 1, text.stdout
    assert "host_unreachable: broken (policy media): source host broken" in text.stdout
    assert text.stdout.splitlines()[-1] == "No changes, 1 host not observed."


def test_foreign_snapshots_bookmarks_and_holds_survive_passes_with_retention(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    target = s.target(data)
    s.create(data)
    s.snapshot(data, "manual", "other_20261125T000000Z", "zr_not-a-time")
    s.sh(f"zfs bookmark {data}@manual {data}#mine && zfs hold audit {data}@manual")
    s.write(data, 256 << 10)
    s.policy(policy(source_keep=1, target_keep=1, protection="resumable"))
    s.at(0)
    assert s.reconcile().code == 0
    s.sh(f"zfs hold audit {target}@{stamp(0)} && zfs hold audit2 {data}@{stamp(0)}")
    foreign = [row for row in s.inventory(data) if "@" in row[0] or row[0].endswith("#mine")]
    foreign = [row for row in foreign if stamp(0) not in row[0]]  # all there before the policy
    s.write(data, 256 << 10)
    s.at(15)
    second = s.reconcile()
    assert second.code == 0, second.stderr
    withheld = [(n["kind"], n["host"]) for n in second.notices()]
    assert sorted(withheld) == [("destroys_withheld", "dst"), ("destroys_withheld", "src")]
    third = s.reconcile()  # and a pass more: nothing left to do, nothing foreign touched
    assert (third.code, third.kinds(), third.conflicts()) == (0, [], [])
    assert set(foreign) <= set(s.inventory(data))
    assert s.snapshots("src", data) == [
        "manual",
        "other_20261125T000000Z",
        "zr_not-a-time",
        stamp(0),
        stamp(15),
    ]
    assert s.snapshots("dst", target) == [stamp(0), stamp(15)]  # foreign ones never sent
    assert s.holds(
        f"{data}@manual", f"{data}@{stamp(0)}", f"{target}@{stamp(0)}", f"{target}@{stamp(15)}"
    ) == {
        f"{data}@manual": {"audit"},
        f"{data}@{stamp(0)}": {"audit2"},  # ours released, theirs kept
        f"{target}@{stamp(0)}": {"audit"},
        f"{target}@{stamp(15)}": {TAG},
    }


# --- names, properties, encryption -----------------------------------------------------------


def test_names_with_spaces_and_punctuation_replicate(s: Scenario) -> None:
    # ZFS takes letters, digits, space, `_ . : -` in names (the manifest filter the same), so
    # these are the characters a shell or a careless split can trip over.
    top = f"{s.src}/my data: v1.0"
    child = f"{top}/ -leading double  and trailing "
    s.sh(f"zfs create {shlex.quote(top)} && zfs create {shlex.quote(child)}")
    s.write(child, 256 << 10)
    s.snapshot(top, "manual snap")  # a foreign name with a space, replicated by include
    s.policy(
        policy(
            filesystems={f"{top}<": True},
            include=["^manual "],
            initial="all",
            protection="resumable",
        )
    )
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    s.write(child, 256 << 10)
    s.at(15)
    second = s.reconcile()
    assert second.code == 0, second.stderr
    assert [a["target_filesystem"] for a in second.of_kind("send")] == [
        s.target(top),
        s.target(child),
    ]
    found = s.all_guids(top, child, s.target(top), s.target(child))
    assert list(found[s.target(top)]) == ["manual snap", stamp(0), stamp(15)]
    assert list(found[s.target(child)]) == [stamp(0), stamp(15)]
    for filesystem in (top, child):
        assert_same_guids(found[filesystem], found[s.target(filesystem)])
    held = [f"{fs}@{stamp(15)}" for fs in (top, child, s.target(top), s.target(child))]
    assert s.holds(*held) == {snapshot: {TAG} for snapshot in held}


def test_receive_property_override_and_inherit_land_on_the_target(s: Scenario) -> None:
    data = f"{s.src}/data"
    target = s.target(data)
    s.create(data)
    s.sh(
        f"zfs set compression=lz4 atime=off com.example:origin=nas com.example:site=nas {data}"
        f" && zfs set com.example:site=dst {s.dst}"
    )
    s.policy(
        policy(
            send={"properties": True},
            receive={
                "properties": {
                    "override": {"readonly": "on", "com.example:role": "backup"},
                    "inherit": ["compression", "com.example:site"],
                }
            },
        )
    )
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    s.write(data, 256 << 10)
    s.at(15)
    assert s.reconcile().code == 0  # an incremental with -p keeps them
    expected = {
        "readonly": ("on", "local"),
        "com.example:role": ("backup", "local"),
        "compression": ("off", "inherited from dst"),  # the pool's
        "com.example:site": ("dst", f"inherited from {s.dst}"),
        "atime": ("off", "received"),
        "com.example:origin": ("nas", "received"),
    }
    assert s.properties(target, *expected) == expected
    assert s.properties(data, "compression", "readonly") == {
        "compression": ("lz4", "local"),
        "readonly": ("off", "default"),
    }
    assert list(s.guids("dst", target)) == [stamp(0), stamp(15)]


def test_a_volume_receives_only_the_properties_a_volume_has(s: Scenario) -> None:
    data, vm = f"{s.src}/data", f"{s.src}/vm"
    s.create(data)
    s.sh(f"zfs create -V 16M {vm}")  # a zvol: zfs refuses -o canmount=... on its stream
    override = {"readonly": "on", "canmount": "noauto"}
    s.policy(
        policy(
            filesystems={data: True, vm: True},
            receive={"properties": {"override": override, "inherit": ["mountpoint"]}},
        )
    )
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    sends = {action["filesystem"]: action for action in first.of_kind("send")}
    assert sends[vm]["receive_options"]["override"] == [["readonly", "on"]]
    assert sends[vm]["receive_options"]["inherit"] == []
    assert "(canmount, mountpoint left out: they do not apply to a volume)" in sends[vm]["message"]
    assert sends[data]["receive_options"]["inherit"] == ["mountpoint"]
    assert s.properties(s.target(vm), "readonly") == {"readonly": ("on", "local")}
    assert s.properties(s.target(data), "readonly", "canmount") == {
        "readonly": ("on", "local"),
        "canmount": ("noauto", "local"),
    }
    s.at(15)
    assert s.reconcile().code == 0
    assert list(s.guids("dst", s.target(vm))) == [stamp(0), stamp(15)]


def test_raw_send_keeps_an_encrypted_filesystem_encrypted_on_the_target(s: Scenario) -> None:
    secret = f"{s.src}/secret"
    target = s.target(secret)
    s.create(secret, encrypted=True)
    s.policy(policy(filesystems={f"{secret}<": True}, send={"raw": True}, protection="resumable"))
    s.at(0)
    first = s.reconcile()
    assert first.code == 0, first.stderr
    s.write(secret, 256 << 10)
    s.at(15)
    second = s.reconcile()  # a raw incremental
    assert second.code == 0, second.stderr
    assert all(a["send_options"]["raw"] for a in [*first.of_kind("send"), *second.of_kind("send")])
    assert all("-w" in argv for argv in sends_run(s))
    source, received = s.replicated(secret)
    assert list(received) == [stamp(0), stamp(15)]
    assert_same_guids(source, received)
    shown = s.properties(target, "encryption", "keystatus", "encryptionroot", "mounted")
    assert {name: value for name, (value, _) in shown.items()} == {
        "encryption": "aes-256-gcm",
        "keystatus": "unavailable",  # the data was never decrypted on the target
        "encryptionroot": target,
        "mounted": "no",
    }
    # The ciphertext is the source's data: the source's passphrase opens it.
    s.sh(f"printf '%s\\n' {shlex.quote(PASSPHRASE)} | zfs load-key {shlex.quote(target)}")
    assert s.same_data(f"{secret}@{stamp(15)}")


def test_a_pass_lists_only_its_scope_and_batches_holds_releases_and_bookmarks(
    s: Scenario,
) -> None:
    for name in ("a", "b", "c"):
        s.create(f"{s.src}/data/{name}", nbytes=64 << 10)
    s.create(f"{s.src}/elsewhere", nbytes=64 << 10)  # on the source host, not the policy's
    s.snapshot(f"{s.src}/elsewhere", "theirs")
    s.policy(policy(protection="resumable"))
    assert s.reconcile().code == 0  # snapshot, full sends, holds, cursor bookmarks
    for name in ("a", "b", "c"):
        s.write(f"{s.src}/data/{name}", 64 << 10)
    start = {host: len(s.runner(host).commands) for host in ("src", "dst")}
    s.at(20)  # the next snapshot is due: incremental sends, then the cursors and holds move
    second = s.reconcile()
    assert second.code == 0, second.stdout
    verbs = {host: [a[1] for a in s.runner(host).commands[start[host] :]] for host in start}
    listings = [a for a in s.runner("src").commands[start["src"] :] if a[1] == "list"]
    assert len(listings) == 2 and f"{s.src}/data" in listings[0]  # names, then details
    assert not any(f"{s.src}/elsewhere" in arg or arg == s.src for a in listings for arg in a)
    for host in ("src", "dst"):  # four filesystems (data and a, b, c): one call each
        assert verbs[host].count("hold") == 1 and verbs[host].count("release") == 1, verbs
        assert verbs[host].count("list") == 2 and verbs[host].count("holds") <= 1, verbs
    assert verbs["src"].count("program") == 1 and "bookmark" not in verbs["src"], verbs
    assert sorted(second.kinds()).count("hold") == 8  # each action still has its own result
    assert all(status in ("ok", "already_done") for status in second.statuses())
    assert_converged(s)
    marks = s.versions("src", f"{s.src}/data/a")
    assert [v.name for v in marks if not v.is_snapshot] == [f"{stamp(20)}_backup"]


def test_a_pass_details_only_the_snapshots_its_plan_reads(s: Scenario) -> None:
    """Four snapshots replicated and nothing due: the cheap listing names every version, and
    the details listing each filesystem and, on each side, only the newest common snapshot."""
    data = f"{s.src}/data"
    with_history(s, data, [0, 15, 30, 45])
    s.policy(policy(initial="all"))
    s.at(45)
    assert s.reconcile().code == 0
    start = {host: len(s.runner(host).commands) for host in ("src", "dst")}
    s.at(50)
    steady = s.dry_run()
    assert (steady.code, steady.kinds()) == (0, []), steady.stdout
    for host, filesystem in (("src", data), ("dst", s.target(data))):
        lists = [a for a in s.runner(host).commands[start[host] :] if a[1] == "list"]
        assert len(lists) == 2, lists
        names, details = lists
        assert names[names.index("-o") + 1] == "name,guid,createtxg"
        named = details[details.index("-t") + 2 :]
        assert [n for n in named if "@" in n] == [f"{filesystem}@{stamp(45)}"], named
        assert filesystem in named


def test_the_destroy_guard_withholds_a_large_prune_until_the_policy_confirms_it(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    history = [stamp(m, 25) for m in range(0, 480, 60)]
    with_history(s, data, range(0, 480, 60), day=25)
    document = policy(replicate=False, source_keep=1)
    s.policy(document)
    s.at(0)
    guarded = s.reconcile("--max-destroy", "25%")  # the default limit, as a user gets it
    assert guarded.code == 1, guarded.stdout
    assert guarded.kinds() == ["snapshot"]
    (notice,) = guarded.notices()
    assert (notice["kind"], notice["filesystem"]) == ("destroy_guard", data)
    assert "would destroy 7 of the 9 snapshots it manages" in notice["message"], notice
    assert s.snapshots("src", data) == [*history, stamp(0)]  # nothing destroyed
    digest = re.search(r'confirm-destroy: "([0-9a-f]{12})"', notice["message"])
    assert digest is not None, notice
    document["metadata"]["annotations"] = {"zfs-reconciler.dev/confirm-destroy": digest[1]}
    s.policy(document)
    confirmed = s.reconcile("--max-destroy", "25%")
    assert confirmed.code == 0, confirmed.stdout
    (destroy,) = confirmed.of_kind("destroy")
    assert destroy["versions"] == [f"@{name}" for name in history]
    assert s.snapshots("src", data) == [stamp(0)]
    assert_converged(s)


def test_a_pre_hook_writes_a_file_that_is_inside_the_snapshot_taken_right_after_it(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    s.create(data)
    mountpoint = s.sh(f"zfs get -H -o value mountpoint {shlex.quote(data)}").strip()
    record = 'mp=$(zfs get -H -o value mountpoint "$ZR_FILESYSTEMS") && echo "$ZR_SNAPSHOT" > '
    document = policy(replicate=False)
    document["spec"]["snapshots"]["hooks"] = [
        {"when": "pre", "command": ["sh", "-c", record + '"$mp/pre-hook"']},
        {"when": "post", "command": ["sh", "-c", record + '"$mp/post-hook-$ZR_SNAPSHOT_TAKEN"']},
    ]
    s.policy(document)
    s.at(0)
    taken = s.reconcile()
    assert taken.code == 0, taken.stdout
    (snapshot,) = taken.of_kind("snapshot")
    assert [h["when"] for h in snapshot["hooks"]] == ["pre", "post"]
    inside = f"{mountpoint}/.zfs/snapshot/{stamp(0)}"
    # the pre hook's file is in the snapshot; the post hook's is only in the live filesystem
    assert s.sh(f"cat {shlex.quote(inside)}/pre-hook").strip() == stamp(0)
    listed = s.sh(f"ls {shlex.quote(inside)}").split()
    assert "pre-hook" in listed and not [n for n in listed if n.startswith("post-hook")]
    assert s.sh(f"cat {shlex.quote(mountpoint)}/post-hook-yes").strip() == stamp(0)
    # a pre hook that fails skips the next snapshot; the post hook says none was taken
    document["spec"]["snapshots"]["hooks"][0]["command"] = ["sh", "-c", "echo busy >&2; exit 4"]
    s.policy(document)
    s.at(15)
    skipped = s.reconcile()
    assert skipped.code == 1
    result = skipped.results()[skipped.of_kind("snapshot")[0]["id"]]
    assert "pre hook `sh -c echo busy >&2; exit 4` failed (exit 4): busy" in result["message"]
    assert s.snapshots("src", data) == [stamp(0)]
    assert s.sh(f"cat {shlex.quote(mountpoint)}/post-hook-no").strip() == stamp(15)


# --- retiring a target (docs/retiring-targets.md) --------------------------------------------


def _cursors(s: Scenario, filesystem: str) -> list[str]:
    """The names of the source's cursor bookmarks of target `backup`."""
    return [
        v.name
        for v in s.versions("src", filesystem)
        if not v.is_snapshot and v.name.endswith("_backup")
    ]


def test_a_retiring_target_loses_its_holds_and_cursor_and_keeps_its_snapshots(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    s.create(data, nbytes=256 << 10)
    s.policy(policy(protection="resumable"))
    s.at(0)
    assert (first := s.reconcile()).code == 0, first.stderr
    held = (f"{data}@{stamp(0)}", f"{s.target(data)}@{stamp(0)}")
    assert s.holds(*held) == {snapshot: {TAG} for snapshot in held}
    assert _cursors(s, data) == [f"{stamp(0)}_backup"]
    received = s.guids("dst", s.target(data))
    retiring = policy(protection="resumable")
    retiring["spec"]["replication"][0]["retiring"] = True
    s.policy(retiring)
    s.at(15)
    second = s.reconcile()
    assert second.code == 0, second.stdout
    assert sorted(second.kinds()) == ["destroy", "release", "release", "snapshot"]
    assert {a["reason"] for a in second.actions() if a["kind"] != "snapshot"} == {"target_retiring"}
    assert s.holds(*held) == {snapshot: set() for snapshot in held}
    assert _cursors(s, data) == []
    assert s.guids("dst", s.target(data)) == received  # its snapshots stay, nothing sent
    status = s.reconcile("status")
    assert status.code == 0, status.stdout
    (target,) = status.json()["policies"][0]["targets"]
    assert [r["condition"] for r in target["filesystems"]] == ["retired"]
    assert target["filesystems"][0]["message"].endswith("can be removed from the manifest")
    assert_converged(s)


def test_a_target_removed_without_retiring_is_listed_and_its_commands_clean_up(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    s.create(data, nbytes=256 << 10)
    s.policy(policy(protection="resumable"))
    s.at(0)
    assert (first := s.reconcile()).code == 0, first.stderr
    s.policy(policy(protection="resumable", replicate=False))  # removed, not retired
    status = s.reconcile("status")
    assert status.code == 0, status.stdout  # orphans warn, they do not fail
    orphans = status.json()["orphans"]
    assert [(o["kind"], o["host"], o["filesystem"], o["version"]) for o in orphans] == [
        ("hold", "src", data, f"@{stamp(0)}"),
        ("bookmark", "src", data, f"#{stamp(0)}_backup"),
    ]
    for orphan in orphans:  # what the user runs on host src, as printed
        s.sh(orphan["command"])
    assert s.holds(f"{data}@{stamp(0)}") == {f"{data}@{stamp(0)}": set()}
    assert _cursors(s, data) == []
    assert s.reconcile("status").json()["orphans"] == []
