"""`reconcile watch` as a real process on this machine against real ZFS in the guest.

The control loop runs as users run it: a `reconcile watch` process of its own on this machine,
with the default connect, and both Host manifests `transport: ssh` to the guest's sshd
(`Scenario.ssh_hosts`-style, as in `test_ssh.py`). The manifests are files in the test's own
directory on this machine, so the loop's inotify watch sees the edits the test makes; the
test reads the loop's stderr from a thread into a queue (`WatchLog`) and waits for given log
lines with timeouts, then checks the pools through the driver (`Scenario`). The loop uses the
real clock: the schedules here are seconds (`interval: 10s`, `15s`), not minutes.

Scenarios: an edit that adds a filesystem (and a new policy file) is applied without a
restart; an invalid edit is reported as `FILE:LINE:COLUMN: ...` and the last valid generation
keeps running until a fix applies; SIGTERM in the middle of a send exits 0 within 10 s,
leaves a resume token, and the next `watch` resumes from it; a target whose zfs stops
answering does not stop the source's schedule, and replication catches up when it answers; a
settled loop lists the snapshots only of a filesystem whose `snapshots_changed` moved.

A host's `zfsCommand` may be a small script in the guest (`_guest_script`): one that logs
every zfs call (to see a resumed send's `-t TOKEN`), or one that fails while a flag file
exists (a target that stops answering, without editing any manifest).

The process and its log (`Watch`, `WatchLog`) and the hosts' manifest (`watch_hosts`) are in
`platform_tests/watch_process.py`, shared with the demo and `platform_tests/bench_watch.py`.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest

from platform_tests.conftest import Roots
from platform_tests.harness.vm import Guest
from platform_tests.scenario import Scenario
from platform_tests.watch_process import Watch, watch_hosts

EXIT_WITHIN = 10.0  # seconds: the contract's bound for a SIGTERM'd loop to exit


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def s(guest: Guest, roots: Roots, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(guest, roots.src, roots.dst, tmp_path)
    yield scenario
    scenario.close_ssh()
    guest.sh(f"rm -rf {shlex.quote(_script_dir(scenario))}")
    scenario.cleanup()


@pytest.fixture
def watches(s: Scenario) -> Iterator[Callable[..., Watch]]:
    """Starts `reconcile watch` processes; any still running at the end is killed (before
    the scenario's roots are destroyed)."""
    started: list[Watch] = []

    def start(resync: str = "1h") -> Watch:
        watch = Watch(s, resync=resync)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.kill()


def _script_dir(s: Scenario) -> str:
    return f"/run/zr-watch-tests/{s.src.replace('/', '-')}"


def _guest_script(s: Scenario, name: str, body: str) -> list[str]:
    """Write a shell script into the guest (its /run); the zfsCommand that runs it."""
    path = f"{_script_dir(s)}/{name}"
    s.sh(
        f"mkdir -p {shlex.quote(_script_dir(s))} && "
        f"cat > {shlex.quote(path)} <<'ZR_EOF'\n{body}ZR_EOF\n"
    )
    return ["sh", path]


def policy_text(filesystems: Sequence[str], *, interval: str, name: str = "data") -> str:
    """Policy `name` (YAML, one field a line): the filesystems, each alone, every `interval`,
    replicated to `dst` under `{dst}`."""
    listed = ", ".join(f'"{fs}": true' for fs in filesystems)
    return f"""\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: {name}}}
spec:
  source:
    host: src
    filesystems: {{{listed}}}
  snapshots:
    prefix: zr_
    interval: {interval}
  replication:
    - name: backup
      host: dst
      root: "{{dst}}"
"""


def _edit(s: Scenario, name: str, text: str) -> None:
    """Replace a manifest at once, as an editor saves (a new file renamed over the old one;
    the temporary file is outside the watched directory)."""
    staged = s.directory / f".{name}.new"
    staged.write_text(text.replace("{src}", s.src).replace("{dst}", s.dst))
    os.replace(staged, s.directory / "manifests" / name)


def _managed(s: Scenario, *filesystems: str) -> dict[str, dict[str, int]]:
    """Per filesystem: its `zr_` snapshots (name → GUID), one listing for all."""
    found = s.all_guids(*filesystems)
    return {fs: {n: g for n, g in found[fs].items() if n.startswith("zr_")} for fs in found}


def _in_sync(s: Scenario, source: str) -> dict[str, int]:
    """The source's managed snapshots, which the target must hold with the same GUIDs."""
    found = _managed(s, source, s.target(source))
    assert found[source], f"{source} has no zr_ snapshot"
    assert found[s.target(source)] == found[source], found
    return found[source]


def _snapshot_time(name: str) -> float:
    """`zr_20261204T233018Z` → UNIX seconds."""
    return datetime.strptime(name, "zr_%Y%m%dT%H%M%S%z").timestamp()


def _passed(watch: Watch, policy: str = "data", why: str = "", timeout: float = 90) -> str:
    """Wait for the next pass of the policy (whose reasons match `why`) to start and succeed;
    its number."""
    number = watch.expect(rf"^policy {policy}: pass (\d+) starts: .*{why}", timeout)[1]
    watch.expect(rf"^policy {policy}: pass {number} ok: ", timeout)
    return number


# --- the scenarios -----------------------------------------------------------------------------


def test_an_edit_adding_a_filesystem_or_a_policy_is_applied_without_a_restart(
    s: Scenario, watches: Callable[..., Watch]
) -> None:
    a, b, c = f"{s.src}/a", f"{s.src}/b", f"{s.src}/c"
    s.sh(" && ".join(f"zfs create {fs}" for fs in (a, b, c)))
    watch_hosts(s)
    s.policy(policy_text([a], interval="1h"))
    watch = watches()
    first = watch.expect(r"^start: generation (\w+) in force: 1 policy, 1 to reconcile now$")[1]
    _passed(watch, why=re.escape(f"manifests changed (generation {first})"))
    assert list(_in_sync(s, a)) and _managed(s, b, c) == {b: {}, c: {}}

    _edit(s, "policy.yaml", policy_text([a, b], interval="1h"))
    added = re.escape(f'spec.source.filesystems["{b}"]: added')
    watch.expect(rf"^manifest change: policy data: {added}$")
    second = watch.expect(r"policy\.yaml: generation (\w+) in force: 1 policy, 1 to reconcile now$")
    assert second[1] != first
    _passed(watch, why=re.escape(f"manifests changed (generation {second[1]})"))
    assert list(_in_sync(s, b)) and _managed(s, c) == {c: {}}

    _edit(s, "more.yaml", policy_text([c], interval="1h", name="more"))
    watch.expect(r"^manifest change: policy more: added$")
    watch.expect(r"more\.yaml: generation \w+ in force: 2 policies, 1 to reconcile now$")
    _passed(watch, policy="more", why="manifests changed")
    assert list(_in_sync(s, c))
    assert watch.running()  # one process throughout: no restart
    code, seconds = watch.terminate()
    assert (code, seconds < EXIT_WITHIN) == (0, True), (code, seconds, watch.log.tail())


def test_an_invalid_edit_is_reported_and_the_last_valid_generation_keeps_running(
    s: Scenario, watches: Callable[..., Watch]
) -> None:
    a, b = f"{s.src}/a", f"{s.src}/b"
    s.sh(f"zfs create {a} && zfs create {b}")
    watch_hosts(s)
    s.policy(policy_text([a], interval="10s"))
    watch = watches()
    valid = watch.expect(r"^start: generation (\w+) in force: ")[1]
    _passed(watch)
    first = list(_in_sync(s, a))

    invalid = policy_text([a, b], interval="5 minutes")
    _edit(s, "policy.yaml", invalid)
    mark = watch.log.mark()
    path = s.directory / "manifests" / "policy.yaml"
    line = next(n for n, text in enumerate(invalid.splitlines(), 1) if "interval:" in text)
    column = invalid.splitlines()[line - 1].index("5 minutes") + 1
    where = re.escape(f"{path}:{line}:{column}: spec.snapshots.interval: ")
    watch.expect(rf"^manifest error: {where}invalid duration '5 minutes'")
    watch.expect(
        r"the manifests are invalid \(1 errors\): nothing was applied; "
        rf"generation {valid} stays in force$"
    )
    # the last valid generation keeps running: its 10s schedule snapshots `a` (and only `a`)
    _passed(watch, why="snapshot due", timeout=60)
    during = _managed(s, a, s.target(a), b)
    assert len(during[a]) > len(first), during
    assert during[s.target(a)] == during[a] and during[b] == {}, during
    applied = re.compile(r"manifest change:|manifests changed|generation \w+ in force:")
    assert not [m for m in watch.log.since(mark) if applied.search(m)], watch.log.tail()

    _edit(s, "policy.yaml", policy_text([a, b], interval="1h"))
    watch.expect(r"^manifest change: policy data: spec\.snapshots\.interval: ")
    fixed = watch.expect(r"policy\.yaml: generation (\w+) in force: 1 policy, 1 to reconcile now$")
    assert fixed[1] != valid
    _passed(watch, why=re.escape(f"manifests changed (generation {fixed[1]})"))
    assert list(_in_sync(s, b))
    code, seconds = watch.terminate()
    assert (code, seconds < EXIT_WITHIN) == (0, True), (code, seconds, watch.log.tail())


LOGGING_ZFS = """\
host=$1; shift
printf '%s %s\\n' "$host" "$*" >> "$(dirname "$0")/calls"
exec zfs "$@"
"""


def test_sigterm_during_a_send_exits_0_and_the_next_watch_resumes_from_the_token(
    s: Scenario, watches: Callable[..., Watch]
) -> None:
    big = f"{s.src}/big"
    target = s.target(big)
    # 96 MiB: over ssh through this machine the send runs at ~5-10 MiB/s under TCG, so the
    # stream lasts 10-20 s: the cut lands well inside it
    s.create(big, nbytes=96 << 20)
    zfs = _guest_script(s, "zfs", LOGGING_ZFS)
    watch_hosts(s, src=[*zfs, "src"], dst=[*zfs, "dst"])
    s.policy(policy_text([big], interval="1h"))
    first = watches()
    first.expect(r"^policy data: pass 1 starts: ")
    first.expect(rf"^transfer: src:{re.escape(big)} → dst:{re.escape(target)}: ", timeout=90)
    time.sleep(1.0)  # some MiB into the stream
    code, seconds = first.terminate()
    assert code == 0 and seconds < EXIT_WITHIN, (code, seconds, first.log.tail())
    first.expect(r"^SIGTERM: stopping: no new pass starts; running transfers are cut$", 5)
    first.expect(rf"^action \d+ send src:{re.escape(big)} → .*: failed in .*interrupted", 5)
    first.expect(r"^policy data: pass 1 cancelled: ", 5)
    first.expect(r"^stopped$", 5)

    token = _resume_token(s, target)
    assert s.snapshots("dst", target) == []  # nothing received in full
    second = watches()
    _passed(second, timeout=180)
    calls = s.sh(f"cat {shlex.quote(_script_dir(s))}/calls").splitlines()
    assert f"src send -v -P -t {token}" in calls, calls  # resumed from the token...
    assert not [c for c in calls if c.startswith("dst receive -A")], calls  # ...not restarted
    assert s.get(target, "receive_resume_token") == "-"
    assert len(_in_sync(s, big)) == 1
    code, seconds = second.terminate()
    assert (code, seconds < EXIT_WITHIN) == (0, True), (code, seconds, second.log.tail())


def _resume_token(s: Scenario, filesystem: str, within: float = 15.0) -> str:
    """The filesystem's receive_resume_token, once the interrupted receive has saved it."""
    deadline = time.monotonic() + within
    while (token := s.get(filesystem, "receive_resume_token")) == "-":
        assert time.monotonic() < deadline, f"{filesystem} has no receive_resume_token"
        time.sleep(0.5)
    return token


FAILING_ZFS = """\
if [ -e "$(dirname "$0")/down" ]; then
  echo "zr-test: the target host does not answer" >&2
  exit 1
fi
exec zfs "$@"
"""


def test_a_target_that_stops_answering_leaves_the_schedule_running_then_catches_up(
    s: Scenario, watches: Callable[..., Watch]
) -> None:
    data = f"{s.src}/data"
    target = s.target(data)
    s.create(data, nbytes=256 << 10)
    down = shlex.quote(f"{_script_dir(s)}/down")
    watch_hosts(s, dst=_guest_script(s, "zfs-dst", FAILING_ZFS))
    s.policy(policy_text([data], interval="15s"))
    watch = watches()
    _passed(watch)
    synced = _in_sync(s, data)
    replica = s.get(target, "guid")
    s.sh(f"touch {down}")  # from now on every zfs command on the target fails

    watch.expect(r"^policy data: pass \d+ starts: snapshot due", timeout=30)
    failed = watch.expect(r"^policy data: pass (\d+) transient: .*hosts not observed: dst in ")
    watch.expect(r"^policy data: condition NotReady \(HostUnreachable\): host dst not observed: ")
    during = _managed(s, data, target)
    assert during[target] == synced, during  # the target got nothing
    assert len(during[data]) == len(synced) + 1, during  # the source's schedule went on
    late = _snapshot_time(list(during[data])[-1]) - _snapshot_time(list(synced)[-1])
    assert 15 <= late <= 25, during

    s.sh(f"rm {down}")
    caught_up = watch.expect(r"^policy data: pass (\d+) ok: ", timeout=60)[1]
    assert int(caught_up) > int(failed[1])
    watch.expect(r"^policy data: condition Ready \(Reconciled\)", 5)
    after = _managed(s, data, target)
    assert after[target] == after[data] and len(after[data]) > len(synced), after
    assert s.get(target, "guid") == replica  # the same replica, brought up to date
    code, seconds = watch.terminate()
    assert (code, seconds < EXIT_WITHIN) == (0, True), (code, seconds, watch.log.tail())


def test_a_settled_loop_lists_no_snapshot_of_a_filesystem_whose_stamp_stayed(
    s: Scenario, watches: Callable[..., Watch]
) -> None:
    """`snapshots_changed` on real ZFS (`zfs/stamps.py`): once the loop's passes have seen the
    filesystems' stamps for a few seconds, a pass lists no snapshot at all (the stamp listing,
    the details and the holds only); a snapshot made by hand moves its filesystem's stamp, and
    the next pass lists the snapshots of that filesystem alone, and sees the new one."""
    data, other = f"{s.src}/data", f"{s.src}/other"
    s.create(data, nbytes=64 << 10)
    s.create(other, nbytes=64 << 10)
    zfs = _guest_script(s, "zfs", LOGGING_ZFS)
    calls = shlex.quote(f"{_script_dir(s)}/calls")
    watch_hosts(s, src=[*zfs, "src"], dst=[*zfs, "dst"])
    s.policy(policy_text([data, other], interval="1h"))
    watch = watches(resync="3s")
    for _ in range(4):  # replicated, then the stamps settle (zfs/stamps.py: 2 s)
        _passed(watch)
    s.sh(f": > {calls}")
    _passed(watch)
    steady = s.sh(f"cat {calls}").splitlines()
    assert not [c for c in steady if " -t snapshot " in c], steady
    assert len([c for c in steady if "snapshots_changed" in c]) == 2, steady  # src and dst
    assert len([c for c in steady if c.split()[1:2] == ["list"]]) == 4, steady

    s.sh(f"zfs snapshot {shlex.quote(other)}@by-hand && : > {calls}")
    _passed(watch)  # this pass may have listed the stamps before the snapshot was made
    _passed(watch)
    seen = s.sh(f"cat {calls}").splitlines()
    listed = {c for c in seen if " -t snapshot " in c}
    assert listed == {f"src list -H -p -o name,guid,createtxg -t snapshot -d 1 {other}"}, seen
    assert [c for c in seen if f"{other}@by-hand" in c], seen  # the source's newest: detailed
    code, seconds = watch.terminate()
    assert (code, seconds < EXIT_WITHIN) == (0, True), (code, seconds, watch.log.tail())
