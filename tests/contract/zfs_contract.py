"""The contract of the `ZFS` port: checks every implementation must pass, written once.

Each check is `check_<behaviour>(make: HostFactory) -> None` and raises AssertionError (or an
unexpected ZFSError) when the implementation disagrees; `ALL_CHECKS` lists them. The model runs
them in `tests/contract/test_model_contract.py`; the platform suite runs the very same functions
against real OpenZFS 2.3 in a qemu guest by passing its own factory. When the two disagree,
real ZFS is right: fix the model (and docs/model.md), never the check to suit the model.

The factory interface — all another implementation has to provide:

- `make(name) -> ContractHost`: a host named `name`, fresh for this check. Two hosts made in
  one check are independent (a snapshot taken on one is not on the other).
- `ContractHost` is the `ZFS` port plus:
  - `root`: an existing, empty filesystem that the check owns; it creates everything below it.
  - `write(filesystem, nbytes)`: change the filesystem's data by about nbytes (real ZFS: write
    a file of nbytes random bytes into the mounted filesystem, then `zpool sync`: `written`
    reads 0 until the txg holding the write has synced).
  - `fingerprint(dataset)`: a digest of the data of `fs` or `fs@snap` (real ZFS: checksum the
    files under the mountpoint, or under `.zfs/snapshot/<snap>`; received filesystems are not
    mounted (`receive -u`), so mount them read-only for the reading).
  - `set_property(fs, name, value)` / `get_property(fs, name) -> (value, source) | None`
    (`zfs set`; `zfs get -H -p -o value,source`, None when the value is `-`).
  - `create_encrypted(fs)`: a new filesystem that is its own encryption root, key loaded;
    `unload_key(fs)`: unmount it and unload its key.
  - `create_volume(vol)`: a new, small zvol (real ZFS: `zfs create -V 16M vol`).
  - `interrupt_next_receive(nbytes)`: the next `receive` on this host gets only the first
    nbytes of its stream (real ZFS: `zfs send ... | head -c nbytes | zfs receive -s ...`).

A send the implementation must refuse may fail in `send` or, at the latest, in the `receive`
that reads the stream: checks put both inside `pytest.raises`, and an error's text carries what
the sending `zfs` said. `SnapshotHeld.held` names the refused snapshots as `@snap`. Checks never
assert exact byte counts (real streams carry headers, real `written` carries metadata): they
write MiBs and cut streams well inside them. Where a check matches an error's text, the words
are OpenZFS 2.3.2's own (docs/zfs-verified.md; tests/fixtures/zfs/stderr/ has the captures).
A resume token is read again after every failed resume: real zfs rewrites it on each attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import pytest

from reconciler.core.plan import ReceiveOptions, SendOptions
from reconciler.core.scope import ObservationScope
from reconciler.core.state import FilesystemKind, FilesystemState, HostState, Version
from reconciler.zfs.errors import (
    DatasetExists,
    DatasetNotFound,
    HoldNotFound,
    ModifiedSinceSnapshot,
    ReceiveRefused,
    ResumeTokenStale,
    SnapshotHeld,
    StreamInterrupted,
    ZFSError,
)
from reconciler.zfs.port import ZFS, SendRequest, SendStream

MIB = 1 << 20


class ContractHost(ZFS, Protocol):
    @property
    def root(self) -> str: ...

    def write(self, filesystem: str, nbytes: int) -> None: ...

    def fingerprint(self, dataset: str) -> str: ...

    def set_property(self, filesystem: str, name: str, value: str) -> None: ...

    def get_property(self, filesystem: str, name: str) -> tuple[str, str] | None: ...

    def create_encrypted(self, filesystem: str) -> None: ...

    def unload_key(self, filesystem: str) -> None: ...

    def create_volume(self, filesystem: str) -> None: ...

    def interrupt_next_receive(self, after_bytes: int) -> None: ...


HostFactory = Callable[[str], ContractHost]
Check = Callable[[HostFactory], None]


# -- helpers --------------------------------------------------------------------------------


def state(host: ContractHost, filesystem: str) -> FilesystemState:
    found = host.observe().filesystem(filesystem)
    assert found is not None, f"{filesystem} not listed on {host.host}"
    return found


def snapshots(host: ContractHost, filesystem: str) -> list[str]:
    return [v.name for v in state(host, filesystem).snapshots]


def version(host: ContractHost, filesystem: str, name: str, *, bookmark: bool = False) -> Version:
    pool = state(host, filesystem).bookmarks if bookmark else state(host, filesystem).snapshots
    found = [v for v in pool if v.name == name]
    assert found, f"{filesystem} on {host.host} has no {name}"
    return found[0]


def filesystem(host: ContractHost, name: str, *snaps: str, nbytes: int = MIB) -> str:
    """`root/name` with one snapshot per name, each after writing nbytes."""
    fs = f"{host.root}/{name}"
    host.create(fs)
    for snap in snaps:
        host.write(fs, nbytes)
        host.snapshot([fs], snap)
    return fs


def send(
    host: ContractHost,
    fs: str,
    to: str | None,
    base: str | None = None,
    *,
    intermediates: bool = False,
    raw: bool = False,
    properties: bool = False,
    token: str | None = None,
) -> SendStream:
    options = SendOptions(raw=raw, properties=properties)
    return host.send(SendRequest(fs, to, base, intermediates, token, options))


def replicate(
    src: ContractHost,
    dst: ContractHost,
    fs: str,
    target: str,
    to: str,
    base: str | None = None,
    *,
    intermediates: bool = False,
    raw: bool = False,
    force: bool = False,
) -> None:
    stream = send(src, fs, to, base, intermediates=intermediates, raw=raw)
    dst.receive(target, stream, ReceiveOptions(force=force))


def pair(make: HostFactory) -> tuple[ContractHost, ContractHost]:
    return make("src"), make("dst")


def resume(src: ContractHost, dst: ContractHost, target: str, *, force: bool = False) -> None:
    """`zfs send -t <the target's current token> | zfs receive -s -u [-F] target`."""
    token = state(dst, target).resume_token
    assert token is not None, f"{target} on {dst.host} has no resume token"
    fs = token.to_name.partition("@")[0]
    dst.receive(target, send(src, fs, None, token=token.token), ReceiveOptions(force=force))


# -- observe and snapshot -------------------------------------------------------------------


def check_the_stamp_listing_and_the_snapshots_of_some_filesystems(make: HostFactory) -> None:
    """`list_stamps` shows the scope's filesystems with their bookmarks and no snapshot, and
    each one's `snapshots_changed`: `-` before any snapshot, the second of the last snapshot
    made, destroyed or received, unmoved by a bookmark or a hold. `list_snapshots` lists the
    snapshots of the filesystems it names, not of their children, as `list_versions` does."""
    src, dst = pair(make)
    fs = filesystem(src, "data")
    child = filesystem(src, "data/child", "c1")
    scope = ObservationScope.of([fs])
    fresh = src.list_stamps(scope)
    assert sorted(fresh.state.filesystems) == sorted(fresh.stamps) == [fs, child]
    assert fresh.stamps[fs].changed is None and fresh.stamps[fs].origin is None
    time.sleep(1.1)  # real zfs stamps whole seconds: each change below comes in a new one
    src.snapshot([fs], "s1")
    made = src.list_stamps(scope).stamps[fs]
    assert made.changed is not None and made.guid == fresh.stamps[fs].guid
    src.bookmark(fs, "s1", "s1-mark")
    src.hold(fs, "s1", "keep")
    listed = src.list_stamps(scope)
    assert listed.stamps[fs] == made
    assert [v.name for v in listed.state.filesystems[fs].versions] == ["s1-mark"]
    whole = src.list_versions(scope)
    assert src.list_snapshots([fs, f"{src.root}/missing"]) == {fs: whole.filesystems[fs].snapshots}
    assert src.list_snapshots([child]) == {child: whole.filesystems[child].snapshots}
    assert src.list_snapshots([]) == {}
    time.sleep(1.1)
    src.snapshot([fs], "s2")
    src.destroy(fs, ["@s2"])
    destroyed = src.list_stamps(scope).stamps[fs].changed
    assert destroyed is not None and destroyed > made.changed
    target = f"{dst.root}/copy"
    replicate(src, dst, fs, target, "s1")
    received = dst.list_stamps(ObservationScope.of([target])).stamps[target]
    assert received.changed is not None
    time.sleep(1.1)
    src.release(fs, "s1", "keep")
    src.snapshot([fs], "s3")
    replicate(src, dst, fs, target, "s3", "@s1")
    again = dst.list_stamps(ObservationScope.of([target])).stamps[target]
    assert again.changed is not None and again.changed > received.changed


def check_observe_reports_versions_holds_and_written(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "s1")
    assert state(host, fs).written == 0  # a snapshot starts a new `written`
    host.hold(fs, "s1", "keep")
    host.bookmark(fs, "s1", "s1-mark")
    host.write(fs, MIB)
    seen = state(host, fs)
    snap, mark = version(host, fs, "s1"), version(host, fs, "s1-mark", bookmark=True)
    assert [(v.name, v.is_snapshot) for v in seen.versions] == [("s1", True), ("s1-mark", False)]
    assert (mark.guid, mark.createtxg) == (snap.guid, snap.createtxg)
    assert mark.referenced == snap.referenced and not mark.holds and mark.written == 0
    assert snap.holds == {"keep"} and snap.written > 0
    assert seen.written > 0 and seen.resume_token is None and not seen.encrypted


def check_observing_some_filesystems_shows_only_those_that_exist(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "s1", "s2")
    child = filesystem(host, "data/child", "c1")
    filesystem(host, "other", "o1")
    host.hold(fs, "s1", "keep")
    host.bookmark(fs, "s1", "s1-mark")
    missing = f"{host.root}/missing"
    whole = host.observe()
    seen = host.observe_filesystems([missing, fs, child, fs])
    assert seen == {fs: whole.filesystem(fs), child: whole.filesystem(child)}
    assert [v.name for v in seen[fs].versions] == ["s1", "s1-mark", "s2"]
    assert seen[fs].versions[0].holds == {"keep"}
    assert host.observe_filesystems([missing]) == {}
    assert host.observe_filesystems([]) == {}


def check_observing_a_scope_lists_only_what_it_names(make: HostFactory) -> None:
    """A subtree brings every descendant; a single filesystem comes without its children; a
    subtree that does not exist is empty, not an error; nothing else of the host is listed."""
    host = make("src")
    fs = filesystem(host, "data", "s1")
    child = filesystem(host, "data/child", "c1")
    filesystem(host, "other", "o1")
    alone = filesystem(host, "alone", "a1")
    filesystem(host, "alone/below", "b1")
    host.hold(fs, "s1", "keep")
    host.bookmark(alone, "a1", "a1-mark")
    missing = f"{host.root}/missing"
    whole = host.observe()
    seen = host.observe(ObservationScope.of([fs, missing], [alone, f"{missing}/x"]))
    assert dict(seen.filesystems) == {name: whole.filesystem(name) for name in (alone, fs, child)}
    assert [v.name for v in seen.filesystems[alone].versions] == ["a1", "a1-mark"]
    assert seen.filesystems[fs].versions[0].holds == {"keep"}
    assert host.observe(ObservationScope.of([missing])).filesystems == {}
    assert host.observe(ObservationScope.of([], [missing])).filesystems == {}


def check_the_cheap_listing_and_the_details_make_the_observation(make: HostFactory) -> None:
    """`list_versions` lists every version by name, GUID and createtxg and nothing else;
    `add_details` fills in every filesystem's own properties and the asked snapshots' fields
    as `observe` shows them, and leaves out an asked snapshot destroyed in between."""
    host = make("src")
    fs = filesystem(host, "data", "s1", "s2", "s3")
    child = filesystem(host, "data/child", "c1")
    volume = f"{host.root}/vol"
    host.create_volume(volume)
    host.snapshot([volume], "v1")
    host.hold(fs, "s2", "keep")
    host.bookmark(fs, "s1", "s1-mark")
    host.write(fs, MIB)  # written since s3
    scope = ObservationScope.of([fs, volume])
    whole = host.observe(scope)
    listed = host.list_versions(scope)
    assert sorted(listed.filesystems) == sorted(whole.filesystems) == [fs, child, volume]
    for name, state in listed.filesystems.items():
        assert state == FilesystemState(
            name=name,
            versions=tuple(
                v._replace(creation=0, written=0, referenced=0, holds=frozenset())
                for v in whole.filesystems[name].versions
            ),
        )
    host.destroy(fs, ["@s3"])
    detailed = host.add_details(listed, [f"{fs}@s2", f"{fs}@s3", f"{volume}@v1"])
    now = host.observe(scope)  # destroying s3 made what was written since it count
    assert sorted(detailed.filesystems) == [fs, child, volume]
    for name, state in detailed.filesystems.items():
        there = now.filesystems[name]
        assert state.kind == there.kind and state.written == there.written
        assert state.encrypted == there.encrypted and state.resume_token == there.resume_token
    assert detailed.filesystems[volume].kind is FilesystemKind.VOLUME
    assert detailed.filesystems[fs].written > 0
    shown = {v.name: v for v in detailed.filesystems[fs].versions}
    assert list(shown) == ["s1", "s1-mark", "s2"]  # s3 was asked for, and is gone
    assert shown["s2"] == version_of(whole, fs, "s2") and shown["s2"].holds == {"keep"}
    assert shown["s1"] == listed.filesystems[fs].versions[0]  # not asked: as listed
    assert detailed.filesystems[volume].versions == whole.filesystems[volume].versions


def version_of(state: HostState, filesystem: str, name: str) -> Version:
    return next(v for v in state.filesystems[filesystem].snapshots if v.name == name)


def check_snapshot_of_many_filesystems_is_atomic(make: HostFactory) -> None:
    host = make("src")
    a, b = filesystem(host, "a"), filesystem(host, "b")
    host.snapshot([a, b], "s")
    assert version(host, a, "s").createtxg == version(host, b, "s").createtxg
    assert version(host, a, "s").guid != version(host, b, "s").guid
    with pytest.raises(DatasetNotFound):
        host.snapshot([a, f"{host.root}/missing"], "t")
    host.snapshot([b], "u")
    with pytest.raises(DatasetExists, match=r"(?s)'.*/b@u': dataset already exists.*no snapshots"):
        host.snapshot([a, b], "u")
    assert snapshots(host, a) == ["s"]
    with pytest.raises(ZFSError, match=r"invalid character '\*' in name"):
        host.snapshot([a], "bad*name")


def check_versions_are_ordered_by_createtxg_not_name(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "zz", "aa")
    assert snapshots(host, fs) == ["zz", "aa"]
    assert version(host, fs, "zz").createtxg < version(host, fs, "aa").createtxg


# -- send and receive -----------------------------------------------------------------------


def check_full_send_copies_data_and_keeps_identity(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    got, sent = version(dst, target, "s1"), version(src, fs, "s1")
    assert (got.guid, got.creation) == (sent.guid, sent.creation)
    assert dst.fingerprint(f"{target}@s1") == src.fingerprint(f"{fs}@s1")
    assert dst.fingerprint(target) == src.fingerprint(f"{fs}@s1")
    assert state(dst, target).written == 0


def check_received_snapshots_get_the_receivers_createtxg(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2"), f"{dst.root}/data"
    filesystem(dst, "busy", *(f"b{i}" for i in range(20)), nbytes=4096)  # receiver txg ahead
    replicate(src, dst, fs, target, "s1")
    dst.snapshot([target], "mark")  # empty: a target-only snapshot a plain stream tolerates
    replicate(src, dst, fs, target, "s2", "@s1")
    assert snapshots(dst, target) == ["s1", "mark", "s2"]
    assert version(dst, target, "s2").createtxg > version(dst, target, "mark").createtxg
    assert version(dst, target, "s2").guid == version(src, fs, "s2").guid


def check_incremental_delivers_only_the_to_snapshot(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2", "s3"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    replicate(src, dst, fs, target, "s3", "@s1")
    assert snapshots(dst, target) == ["s1", "s3"]
    assert dst.fingerprint(f"{target}@s3") == src.fingerprint(f"{fs}@s3")


def check_intermediates_deliver_every_snapshot_foreign_included(make: HostFactory) -> None:
    src, dst = pair(make)
    fs = filesystem(src, "data", "zr_1", "someone-else", "zr_2")
    target = f"{dst.root}/data"
    replicate(src, dst, fs, target, "zr_1")
    replicate(src, dst, fs, target, "zr_2", "@zr_1", intermediates=True)
    assert snapshots(dst, target) == ["zr_1", "someone-else", "zr_2"]
    sent = [v.guid for v in state(src, fs).snapshots]
    assert [v.guid for v in state(dst, target).snapshots] == sent


def check_bookmark_is_an_incremental_base(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1"), f"{dst.root}/data"
    src.bookmark(fs, "s1", "s1-cursor")
    replicate(src, dst, fs, target, "s1")
    src.destroy(fs, ["@s1"])
    src.write(fs, MIB)
    src.snapshot([fs], "s2")
    replicate(src, dst, fs, target, "s2", "#s1-cursor")
    assert snapshots(dst, target) == ["s1", "s2"]


def check_intermediates_from_a_bookmark_are_refused(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2"), f"{dst.root}/data"
    src.bookmark(fs, "s1", "mark")
    replicate(src, dst, fs, target, "s1")
    with pytest.raises(ZFSError):
        replicate(src, dst, fs, target, "s2", "#mark", intermediates=True)
    assert snapshots(dst, target) == ["s1"]


def check_incremental_base_must_exist_and_be_older(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s2")
    with pytest.raises(ZFSError, match="not an earlier snapshot from the same fs"):
        replicate(src, dst, fs, target, "s1", "@s2")
    with pytest.raises(ZFSError, match=r"incremental source .*@s1. is not earlier than it"):
        replicate(src, dst, fs, target, "s1", "@s1", intermediates=True)
    with pytest.raises(ZFSError, match=r"incremental source .*@s2. does not exist"):
        replicate(src, dst, fs, target, "s1", "@s2", intermediates=True)  # zfs's words
    with pytest.raises(DatasetNotFound, match=r"cannot open '.*@missing': dataset does not exist"):
        replicate(src, dst, fs, target, "s2", "@missing")
    # zfs words a missing bookmark base by the flags: plain `send -i` names it; under `-v -P`
    # (the driver's sends) it prints only ESRCH's text (docs/zfs-verified.md)
    missing_mark = r"incremental source .*#missing. does not exist|cannot send .*: No such process"
    with pytest.raises(DatasetNotFound, match=missing_mark):
        replicate(src, dst, fs, target, "s2", "#missing")
    src.bookmark(fs, "s2", "s2-mark")
    # under `-v -P` zfs prints EXDEV's text for a bookmark base that is not earlier
    not_earlier = "not an earlier snapshot from the same fs|Invalid cross-device link"
    with pytest.raises(ZFSError, match=not_earlier):
        replicate(src, dst, fs, target, "s2", "#s2-mark")


def check_receive_into_a_modified_target_is_refused(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    dst.write(target, MIB)
    with pytest.raises(ModifiedSinceSnapshot):
        replicate(src, dst, fs, target, "s2", "@s1")
    assert snapshots(dst, target) == ["s1"]
    replicate(src, dst, fs, target, "s2", "@s1", force=True)  # -F rolls the change back
    assert dst.fingerprint(target) == src.fingerprint(f"{fs}@s2")


def check_target_snapshot_with_data_after_the_base_is_refused(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    dst.write(target, MIB)
    dst.snapshot([target], "local")
    with pytest.raises(ModifiedSinceSnapshot):
        replicate(src, dst, fs, target, "s2", "@s1")
    assert snapshots(dst, target) == ["s1", "local"]
    replicate(src, dst, fs, target, "s2", "@s1", force=True)  # -F destroys what came after s1
    assert snapshots(dst, target) == ["s1", "s2"]


def check_raw_incremental_needs_its_base_to_be_the_newest(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = f"{src.root}/secret", f"{dst.root}/secret"
    src.create_encrypted(fs)
    for snap in ("s1", "s2"):
        src.write(fs, MIB)
        src.snapshot([fs], snap)
    replicate(src, dst, fs, target, "s1", raw=True)
    dst.snapshot([target], "empty")
    with pytest.raises(ModifiedSinceSnapshot):
        replicate(src, dst, fs, target, "s2", "@s1", raw=True)
    dst.destroy(target, ["@empty"])
    replicate(src, dst, fs, target, "s2", "@s1", raw=True)
    assert snapshots(dst, target) == ["s1", "s2"]


def check_incremental_without_its_base_on_the_target_is_refused(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2", "s3"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s2", None)
    with pytest.raises(ReceiveRefused):
        replicate(src, dst, fs, target, "s3", "@s1")


def check_full_receive_into_an_existing_filesystem(make: HostFactory) -> None:
    src, dst = pair(make)
    fs = filesystem(src, "data", "s1")
    full, empty = filesystem(dst, "full", "old"), filesystem(dst, "empty")
    with pytest.raises(ReceiveRefused):
        replicate(src, dst, fs, full, "s1")  # exists: needs -F
    with pytest.raises(ReceiveRefused, match="destination has snapshots"):
        replicate(src, dst, fs, full, "s1", force=True)
    with pytest.raises(ReceiveRefused, match=r"destination '.*/empty' exists\nmust specify -F"):
        replicate(src, dst, fs, empty, "s1")
    replicate(src, dst, fs, empty, "s1", force=True)
    assert snapshots(dst, empty) == ["s1"]
    marked = filesystem(dst, "marked", "old")  # only a bookmark left: -F overwrites, keeps it
    dst.bookmark(marked, "old", "old")
    dst.destroy(marked, ["@old"])
    replicate(src, dst, fs, marked, "s1", force=True)
    assert [v.name for v in state(dst, marked).versions] == ["old", "s1"]


def check_full_receive_needs_the_parent(make: HostFactory) -> None:
    src, dst = pair(make)
    fs = filesystem(src, "data", "s1")
    with pytest.raises(DatasetNotFound):
        replicate(src, dst, fs, f"{dst.root}/missing/data", "s1")


def check_receiving_a_snapshot_already_there_is_a_no_op(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    replicate(src, dst, fs, target, "s2", "@s1")
    before = state(dst, target)
    replicate(src, dst, fs, target, "s2", "@s1")
    assert state(dst, target).versions == before.versions


# -- interrupted receives -------------------------------------------------------------------


def check_interrupted_full_receive_leaves_a_token_and_resumes(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", nbytes=4 * MIB), f"{dst.root}/data"
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, fs, target, "s1")
    partial = state(dst, target)
    token = partial.resume_token
    assert token is not None and not partial.snapshots
    assert partial.written > 0  # what has arrived so far is listed as written
    assert (token.to_guid, token.to_name, token.from_guid) == (
        version(src, fs, "s1").guid,
        f"{fs}@s1",
        None,
    )
    dst.receive(target, send(src, fs, None, token=token.token), ReceiveOptions())
    assert snapshots(dst, target) == ["s1"] and state(dst, target).resume_token is None
    assert dst.fingerprint(f"{target}@s1") == src.fingerprint(f"{fs}@s1")


def check_a_full_receive_into_a_new_filesystem_also_resumes_with_force(
    make: HostFactory,
) -> None:
    # the planner resumes every full stream with -F when allowFullResync is on (a full resync
    # into an existing filesystem needs it again, and the token does not tell which it was)
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", nbytes=4 * MIB), f"{dst.root}/data"
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, fs, target, "s1")
    resume(src, dst, target, force=True)
    assert snapshots(dst, target) == ["s1"] and state(dst, target).resume_token is None
    assert dst.fingerprint(f"{target}@s1") == src.fingerprint(f"{fs}@s1")


def check_interrupted_incremental_keeps_its_state_on_the_filesystem(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    src.write(fs, 4 * MIB)
    src.snapshot([fs], "s2")
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, fs, target, "s2", "@s1")
    token = state(dst, target).resume_token
    assert token is not None and token.from_guid == version(src, fs, "s1").guid
    assert snapshots(dst, target) == ["s1"]
    with pytest.raises(ReceiveRefused, match="contains partially-complete state"):
        replicate(src, dst, fs, target, "s2", "@s1", force=True)  # resume or abort first
    dst.write(target, MIB)
    with pytest.raises(ModifiedSinceSnapshot, match="cannot receive resume stream"):
        resume(src, dst, target)
    dst.rollback(target, "s1", destroy_newer=False)  # allowed while the partial state stays
    resume(src, dst, target)
    assert snapshots(dst, target) == ["s1", "s2"] and state(dst, target).resume_token is None


def check_partial_incremental_pins_its_base(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s0", "s1"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s0")
    replicate(src, dst, fs, target, "s1", "@s0")
    src.write(fs, 4 * MIB)
    src.snapshot([fs], "s2")
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, fs, target, "s2", "@s1")
    clones = r"cannot destroy '.*@s1': snapshot has dependent clones\nuse '-R'"
    with pytest.raises(SnapshotHeld, match=clones) as refused:
        dst.destroy(target, ["@s0", "@s1"])  # checked first: nothing in the batch goes
    assert refused.value.held == ("@s1",) and snapshots(dst, target) == ["s0", "s1"]
    dst.destroy(target, ["@s0"])
    dst.abort_resume(target)
    assert state(dst, target).resume_token is None and snapshots(dst, target) == ["s1"]
    dst.destroy(target, ["@s1"])


def check_partial_incremental_pins_the_newest_target_snapshot(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    dst.snapshot([target], "empty")  # after the base: the partial state is cloned from it
    src.write(fs, 4 * MIB)
    src.snapshot([fs], "s2")
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, fs, target, "s2", "@s1")
    with pytest.raises(SnapshotHeld) as refused:
        dst.destroy(target, ["@empty"])
    assert refused.value.held == ("@empty",)
    dst.destroy(target, ["@s1"])  # the base itself is free
    resume(src, dst, target)
    assert snapshots(dst, target) == ["empty", "s2"] and state(dst, target).resume_token is None


def check_forced_incremental_over_a_held_snapshot_fails_at_the_end(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", "s2"), f"{dst.root}/data"
    replicate(src, dst, fs, target, "s1")
    dst.snapshot([target], "later")
    dst.hold(target, "later", "keep")
    with pytest.raises(ReceiveRefused, match="dataset is busy"):
        replicate(src, dst, fs, target, "s2", "@s1", force=True)
    token = state(dst, target).resume_token  # the stream arrived; the rollback did not happen
    assert token is not None and token.to_guid == version(src, fs, "s2").guid
    assert snapshots(dst, target) == ["s1", "later"]
    with pytest.raises(ReceiveRefused, match="kernel modules must be upgraded"):
        resume(src, dst, target)  # begun with -F over a later snapshot: needs -F again
    with pytest.raises(ReceiveRefused, match="partially-complete state"):
        resume(src, dst, target, force=True)  # still held: EBUSY, worded so under a token
    dst.release(target, "later", "keep")
    resume(src, dst, target, force=True)
    assert snapshots(dst, target) == ["s1", "s2"] and state(dst, target).resume_token is None


def check_resuming_a_forced_receive_rechecks_the_target(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1"), f"{dst.root}/data"
    src.write(fs, 4 * MIB)
    src.snapshot([fs], "s2")
    replicate(src, dst, fs, target, "s1")
    dst.write(target, MIB)
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, fs, target, "s2", "@s1", force=True)
    with pytest.raises(ModifiedSinceSnapshot, match="cannot receive resume stream"):
        resume(src, dst, target)
    resume(src, dst, target, force=True)
    assert snapshots(dst, target) == ["s1", "s2"]
    assert dst.fingerprint(target) == src.fingerprint(f"{fs}@s2")
    full, empty = filesystem(src, "full", "s1", nbytes=4 * MIB), filesystem(dst, "empty")
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, full, empty, "s1", force=True)
    with pytest.raises(ReceiveRefused, match="Resuming recv on existing destination"):
        resume(src, dst, empty)
    resume(src, dst, empty, force=True)
    assert snapshots(dst, empty) == ["s1"]


def check_stale_token_is_refused_and_abort_clears_it(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s1", nbytes=4 * MIB), f"{dst.root}/data"
    dst.interrupt_next_receive(MIB)
    with pytest.raises(StreamInterrupted):
        replicate(src, dst, fs, target, "s1")
    token = state(dst, target).resume_token
    assert token is not None
    src.destroy(fs, ["@s1"])
    with pytest.raises(ResumeTokenStale):
        dst.receive(target, send(src, fs, None, token=token.token), ReceiveOptions())
    src.snapshot([fs], "s1")  # the same name again is not the same snapshot
    with pytest.raises(ResumeTokenStale):
        dst.receive(target, send(src, fs, None, token=token.token), ReceiveOptions())
    dst.abort_resume(target)
    assert dst.observe().filesystem(target) is None  # it existed only for the partial receive
    with pytest.raises(DatasetNotFound):
        dst.abort_resume(target)


def check_abort_without_partial_state_is_not_found(make: HostFactory) -> None:
    host = make("dst")
    fs = filesystem(host, "data", "s1")
    with pytest.raises(DatasetNotFound, match="does not have any resumable receive state"):
        host.abort_resume(fs)


# -- holds, destroy, rollback ---------------------------------------------------------------


def check_a_hold_blocks_the_whole_destroy_batch(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "s1", "s2", "s3")
    host.hold(fs, "s2", "keep")
    with pytest.raises(SnapshotHeld, match=r"@s2: it's being held\. Run 'zfs holds -r") as refused:
        host.destroy(fs, ["@s1", "@s2"])
    assert refused.value.held == ("@s2",)
    assert snapshots(host, fs) == ["s1", "s2", "s3"]
    host.release(fs, "s2", "keep")
    host.destroy(fs, ["@s1", "@s2"])
    assert snapshots(host, fs) == ["s3"]


def check_holding_a_tag_twice_is_dataset_exists(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "s1")
    host.hold(fs, "s1", "keep")
    with pytest.raises(DatasetExists, match="tag already exists on this dataset"):
        host.hold(fs, "s1", "keep")
    host.hold(fs, "s1", "other")
    assert version(host, fs, "s1").holds == {"keep", "other"}
    with pytest.raises(DatasetNotFound, match=r"cannot open '.*/missing': dataset does not exist"):
        host.hold(f"{host.root}/missing", "s1", "keep")
    with pytest.raises(DatasetNotFound, match=r"cannot open '.*@missing': dataset does not exist"):
        host.bookmark(fs, "missing", "mark")


def check_holds_and_releases_of_many_snapshots_report_each_refusal(make: HostFactory) -> None:
    """One call for many snapshots: a refused one gets its own error, and the others are
    done all the same (zfs goes on after a refusal)."""
    host = make("src")
    a = filesystem(host, "a", "s1", "s2")
    b = filesystem(host, "b", "s1")
    host.hold(a, "s1", "keep")
    failed = host.hold_many("keep", [(a, "s1"), (a, "s2"), (b, "s1"), (b, "missing")])
    assert sorted(failed) == [(a, "s1"), (b, "missing")]
    assert isinstance(failed[(a, "s1")], DatasetExists)
    assert isinstance(failed[(b, "missing")], DatasetNotFound)
    assert [version(host, fs, "s2" if fs == a else "s1").holds for fs in (a, b)] == [{"keep"}] * 2
    assert host.hold_many("other", [(a, "s2"), (b, "s1")]) == {}
    assert version(host, b, "s1").holds == {"keep", "other"}
    gone = f"{host.root}/gone"
    failed = host.release_many("keep", [(a, "s1"), (b, "s1"), (gone, "s1"), (a, "missing")])
    assert sorted(failed) == [(a, "missing"), (gone, "s1")]
    assert all(isinstance(error, DatasetNotFound) for error in failed.values())
    assert [version(host, a, "s1").holds, version(host, b, "s1").holds] == [set(), {"other"}]
    failed = host.release_many("keep", [(a, "s1"), (a, "s2")])
    assert list(failed) == [(a, "s1")] and isinstance(failed[(a, "s1")], HoldNotFound)
    assert version(host, a, "s2").holds == {"other"}


def check_bookmarks_of_many_filesystems_report_each_refusal(make: HostFactory) -> None:
    host = make("src")
    a = filesystem(host, "a", "s1")
    b = filesystem(host, "b", "s1", "s2")
    host.bookmark(b, "s1", "m")
    wanted = [(a, "s1", "m"), (b, "s1", "m"), (b, "s2", "n"), (b, "missing", "x")]
    failed = host.bookmark_many(wanted)
    assert sorted(failed) == [(b, "m"), (b, "x")]
    assert isinstance(failed[(b, "m")], DatasetExists)
    assert isinstance(failed[(b, "x")], DatasetNotFound)
    assert version(host, a, "m", bookmark=True).guid == version(host, a, "s1").guid
    assert version(host, b, "n", bookmark=True).guid == version(host, b, "s2").guid
    assert [v.name for v in state(host, b).bookmarks] == ["m", "n"]
    assert host.bookmark_many([]) == {}


def check_releasing_a_missing_tag_is_hold_not_found(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "s1")
    with pytest.raises(HoldNotFound, match="no such tag on this dataset"):
        host.release(fs, "s1", "never-held")
    with pytest.raises(DatasetNotFound, match="dataset does not exist"):
        host.release(fs, "missing", "never-held")


def check_destroy_skips_missing_snapshots_unless_none_exists(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "s1", "s2")
    with pytest.raises(DatasetNotFound, match="could not find any snapshots to destroy"):
        host.destroy(fs, ["@gone"])
    host.destroy(fs, ["@s1", "@gone"])
    assert snapshots(host, fs) == ["s2"]
    with pytest.raises(DatasetNotFound):
        host.destroy(fs, ["#no-such-mark"])


def check_destroying_a_snapshot_moves_its_written_on(make: HostFactory) -> None:
    host = make("src")
    fs = filesystem(host, "data", "s1", "s2", "s3")
    before = version(host, fs, "s3").written
    host.destroy(fs, ["@s2"])
    assert version(host, fs, "s3").written >= before + MIB // 2  # s2's data is now s3's


def check_rollback_needs_r_to_destroy_newer_snapshots(make: HostFactory) -> None:
    host = make("dst")
    fs = filesystem(host, "data", "s1", "s2")
    host.write(fs, MIB)
    with pytest.raises(ZFSError, match="more recent snapshots or bookmarks exist"):
        host.rollback(fs, "s1", destroy_newer=False)
    host.rollback(fs, "s2", destroy_newer=False)
    assert state(host, fs).written == 0 and host.fingerprint(fs) == host.fingerprint(f"{fs}@s2")
    host.rollback(fs, "s1", destroy_newer=True)
    assert snapshots(host, fs) == ["s1"] and host.fingerprint(fs) == host.fingerprint(f"{fs}@s1")


def check_rollback_r_stops_at_a_held_snapshot(make: HostFactory) -> None:
    host = make("dst")
    fs = filesystem(host, "data", "s1", "s2")
    host.hold(fs, "s2", "keep")
    with pytest.raises(SnapshotHeld, match=r"cannot destroy '.*@s2': dataset is busy"):
        host.rollback(fs, "s1", destroy_newer=True)
    assert "s2" in snapshots(host, fs)


# -- properties, encryption, names, create --------------------------------------------------


def check_receive_sets_and_excludes_properties(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "data", "s0"), f"{dst.root}/data"
    for name in ("com.example:plain", "com.example:excluded", "com.example:overridden"):
        src.set_property(fs, name, "from-source")
    src.snapshot([fs], "s1")
    options = ReceiveOptions(
        override=(("com.example:overridden", "on-target"), ("readonly", "on")),
        inherit=("com.example:excluded",),
    )
    dst.receive(target, send(src, fs, "s1", properties=True), options)
    assert dst.get_property(target, "com.example:plain") == ("from-source", "received")
    assert dst.get_property(target, "com.example:excluded") is None
    assert dst.get_property(target, "com.example:overridden") == ("on-target", "local")
    assert dst.get_property(target, "readonly") == ("on", "local")


def check_raw_send_of_an_encrypted_filesystem_stays_encrypted(make: HostFactory) -> None:
    src, dst = pair(make)
    fs = f"{src.root}/secret"
    src.create_encrypted(fs)
    src.write(fs, MIB)
    src.snapshot([fs], "s1")
    replicate(src, dst, fs, f"{dst.root}/raw", "s1", raw=True)
    replicate(src, dst, fs, f"{dst.root}/plain", "s1")
    assert state(dst, f"{dst.root}/raw").encrypted
    assert not state(dst, f"{dst.root}/plain").encrypted
    with pytest.raises(ZFSError, match="may not be sent with properties without the raw flag"):
        dst.receive(f"{dst.root}/props", send(src, fs, "s1", properties=True), ReceiveOptions())
    src.unload_key(fs)
    with pytest.raises(ZFSError, match="dataset key must be loaded"):  # in send, or at the latest
        replicate(src, dst, fs, f"{dst.root}/plain again", "s1")  # when the stream is read
    replicate(src, dst, fs, f"{dst.root}/raw again", "s1", raw=True)


def check_filesystem_properties_are_refused_for_a_volume(make: HostFactory) -> None:
    src, dst = pair(make)
    vol, target = f"{src.root}/vol", f"{dst.root}/vol"
    src.create_volume(vol)
    src.snapshot([vol], "s1")
    with pytest.raises(ReceiveRefused, match="'canmount' does not apply to datasets of this type"):
        dst.receive(target, send(src, vol, "s1"), ReceiveOptions(override=(("canmount", "off"),)))
    assert dst.observe().filesystem(target) is None
    dst.receive(target, send(src, vol, "s1"), ReceiveOptions(inherit=("mountpoint",)))  # a warning
    assert state(dst, target).kind is FilesystemKind.VOLUME


def check_names_with_spaces_work_everywhere(make: HostFactory) -> None:
    src, dst = pair(make)
    fs, target = filesystem(src, "with space", "snap one"), f"{dst.root}/copy of it"
    src.hold(fs, "snap one", "tag with space")
    src.bookmark(fs, "snap one", "mark with space")
    replicate(src, dst, fs, target, "snap one")
    src.write(fs, MIB)
    src.snapshot([fs], "snap two")
    replicate(src, dst, fs, target, "snap two", "#mark with space")
    assert snapshots(dst, target) == ["snap one", "snap two"]
    src.release(fs, "snap one", "tag with space")
    src.destroy(fs, ["@snap one", "#mark with space"])
    assert snapshots(src, fs) == ["snap two"]


def check_create_with_and_without_parents(make: HostFactory) -> None:
    host = make("dst")
    deep = f"{host.root}/a/b/c"
    host.create(deep, parents=True)
    host.create(deep, parents=True)  # -p: an existing filesystem is fine
    assert state(host, f"{host.root}/a/b").name == f"{host.root}/a/b"
    with pytest.raises(DatasetExists):
        host.create(deep, parents=False)
    with pytest.raises(DatasetNotFound, match="parent does not exist"):
        host.create(f"{host.root}/x/y", parents=False)
    with pytest.raises(ZFSError, match=r"cannot create '.*': invalid character '\*' in name"):
        host.create(f"{host.root}/bad*name")


ALL_CHECKS: tuple[Check, ...] = (
    check_observe_reports_versions_holds_and_written,
    check_observing_some_filesystems_shows_only_those_that_exist,
    check_the_cheap_listing_and_the_details_make_the_observation,
    check_the_stamp_listing_and_the_snapshots_of_some_filesystems,
    check_observing_a_scope_lists_only_what_it_names,
    check_snapshot_of_many_filesystems_is_atomic,
    check_versions_are_ordered_by_createtxg_not_name,
    check_full_send_copies_data_and_keeps_identity,
    check_received_snapshots_get_the_receivers_createtxg,
    check_incremental_delivers_only_the_to_snapshot,
    check_intermediates_deliver_every_snapshot_foreign_included,
    check_bookmark_is_an_incremental_base,
    check_intermediates_from_a_bookmark_are_refused,
    check_incremental_base_must_exist_and_be_older,
    check_receive_into_a_modified_target_is_refused,
    check_target_snapshot_with_data_after_the_base_is_refused,
    check_raw_incremental_needs_its_base_to_be_the_newest,
    check_incremental_without_its_base_on_the_target_is_refused,
    check_full_receive_into_an_existing_filesystem,
    check_full_receive_needs_the_parent,
    check_receiving_a_snapshot_already_there_is_a_no_op,
    check_interrupted_full_receive_leaves_a_token_and_resumes,
    check_a_full_receive_into_a_new_filesystem_also_resumes_with_force,
    check_interrupted_incremental_keeps_its_state_on_the_filesystem,
    check_partial_incremental_pins_its_base,
    check_partial_incremental_pins_the_newest_target_snapshot,
    check_forced_incremental_over_a_held_snapshot_fails_at_the_end,
    check_resuming_a_forced_receive_rechecks_the_target,
    check_stale_token_is_refused_and_abort_clears_it,
    check_abort_without_partial_state_is_not_found,
    check_a_hold_blocks_the_whole_destroy_batch,
    check_holding_a_tag_twice_is_dataset_exists,
    check_releasing_a_missing_tag_is_hold_not_found,
    check_holds_and_releases_of_many_snapshots_report_each_refusal,
    check_bookmarks_of_many_filesystems_report_each_refusal,
    check_destroy_skips_missing_snapshots_unless_none_exists,
    check_destroying_a_snapshot_moves_its_written_on,
    check_rollback_needs_r_to_destroy_newer_snapshots,
    check_rollback_r_stops_at_a_held_snapshot,
    check_receive_sets_and_excludes_properties,
    check_raw_send_of_an_encrypted_filesystem_stays_encrypted,
    check_filesystem_properties_are_refused_for_a_volume,
    check_names_with_spaces_work_everywhere,
    check_create_with_and_without_parents,
)
