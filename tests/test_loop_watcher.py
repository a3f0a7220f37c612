"""Tests for `reconciler.loop.watcher`: the real file system in tmp_path, watchfiles seeing the
real events, the watcher in a daemon thread and its `on_change` calls collected in a queue."""

from __future__ import annotations

import os
import queue
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from reconciler.loop.watcher import ManifestWatcher, make_plan, watch_paths
from reconciler.manifest.loader import load_manifests

WAIT = 5.0
"""How long a test waits for a call that must come."""
QUIET = 0.6
"""How long a test waits to show that no call came (more than step + debounce)."""

HOST = "apiVersion: zfs-reconciler.dev/v1alpha1\nkind: Host\nmetadata: {{name: {name}}}\n"
SSH_HOST = HOST + "spec: {{transport: ssh, ssh: {{host: h.example.org, port: {port}}}}}\n"


def host(name: str, port: int = 22) -> str:
    return SSH_HOST.format(name=name, port=port)


@dataclass
class Running:
    """A watcher running in a thread, and the calls it made: (monotonic time, paths)."""

    watcher: ManifestWatcher
    thread: threading.Thread
    stop: threading.Event
    calls: queue.Queue[tuple[float, frozenset[str]]] = field(default_factory=queue.Queue)

    def next_call(self, timeout: float = WAIT) -> frozenset[str]:
        try:
            return self.calls.get(timeout=timeout)[1]
        except queue.Empty:
            raise AssertionError(f"no on_change call within {timeout} s") from None

    def timed_call(self, timeout: float = WAIT) -> tuple[float, frozenset[str]]:
        try:
            return self.calls.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no on_change call within {timeout} s") from None

    def calls_within(self, seconds: float) -> list[frozenset[str]]:
        time.sleep(seconds)
        found: list[frozenset[str]] = []
        while not self.calls.empty():
            found.append(self.calls.get_nowait()[1])
        return found

    def assert_quiet(self, seconds: float = QUIET) -> None:
        assert self.calls_within(seconds) == []


Start = Callable[..., Running]


@pytest.fixture
def start() -> Iterator[Start]:
    """Starts watchers; each is stopped and joined at the end of the test, whatever happens."""
    running: list[Running] = []

    def starter(paths: list[Path], **options: Any) -> Running:
        stop = threading.Event()
        calls: queue.Queue[tuple[float, frozenset[str]]] = queue.Queue()
        on_change = options.pop("on_change", None) or (
            lambda changed: calls.put((time.monotonic(), changed))
        )
        watcher = ManifestWatcher([str(p) for p in paths], on_change, stop, **options)
        thread = threading.Thread(target=watcher.run, name="watcher", daemon=True)
        run = Running(watcher, thread, stop, calls)
        running.append(run)
        thread.start()
        assert watcher.watching.wait(WAIT), "the watcher never started watching"
        return run

    yield starter
    for run in running:
        run.stop.set()
    for run in running:
        run.thread.join(WAIT)
        assert not run.thread.is_alive()


def write(path: Path, text: str = "x: 1\n") -> None:
    path.write_text(text)


def editor_save(path: Path, text: str) -> None:
    """Save as vim and most editors do: a temporary file renamed over the original."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# --- what is watched --------------------------------------------------------------------------


def test_watch_paths_of_files_directories_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    write(tmp_path / "a.yaml")
    paths = [tmp_path / "dir", tmp_path / "a.yaml", tmp_path / "no" / "such" / "x.yaml"]
    trees, directories = watch_paths([str(p) for p in paths])
    assert trees == [tmp_path / "dir"]
    assert directories == [tmp_path]  # the file's parent, also the missing path's nearest one
    plan = make_plan([str(p) for p in paths])
    assert plan.paths == [tmp_path / "dir", tmp_path / "dir" / "sub", tmp_path]
    assert plan.missing == (tmp_path / "no" / "such" / "x.yaml",)


def test_a_file_link_has_its_target_directory_watched_too(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    write(tmp_path / "real" / "a.yaml")
    (tmp_path / "etc").mkdir()
    os.symlink(tmp_path / "real" / "a.yaml", tmp_path / "etc" / "a.yaml")
    assert watch_paths([str(tmp_path / "etc" / "a.yaml")]) == (
        [],
        [tmp_path / "etc", tmp_path / "real"],
    )


def test_dot_directories_are_not_walked_like_the_loader(tmp_path: Path) -> None:
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    (tmp_path / "b" / "c").mkdir(parents=True)
    assert make_plan([str(tmp_path)]).paths == [tmp_path, tmp_path / "b", tmp_path / "b" / "c"]


def test_an_empty_path_is_skipped_with_a_warning() -> None:
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING", format="{message}")
    try:
        assert watch_paths([""]) == ([], [])
    finally:
        logger.remove(sink)
    assert messages == ["an empty -f path names no manifest: not watched\n"]


def test_a_directory_under_two_names_is_watched_once(tmp_path: Path, start: Start) -> None:
    (tmp_path / "dir").mkdir()
    os.symlink(tmp_path / "dir", tmp_path / "one")
    os.symlink(tmp_path / "dir", tmp_path / "two")
    write(tmp_path / "dir" / "a.yaml")
    write(tmp_path / "dir" / "b.yaml")
    a, b = tmp_path / "one" / "a.yaml", tmp_path / "two" / "b.yaml"
    assert make_plan([str(a), str(b)]).paths == [tmp_path / "one"]  # one inode
    run = start([a, b])
    editor_save(b, "b: 2\n")
    assert run.next_call() == {str(tmp_path / "one" / "b.yaml")}  # events come by the first name


# --- 1. a directory ----------------------------------------------------------------------------


def test_directory_add_modify_delete(tmp_path: Path, start: Start) -> None:
    run = start([tmp_path])
    a = tmp_path / "a.yaml"
    write(a, "one\n")
    assert str(a) in run.next_call()
    run.assert_quiet(0.3)  # one call for one write
    write(a, "two\n")
    assert str(a) in run.next_call()
    a.unlink()
    assert str(a) in run.next_call()


def test_directory_subdirectory_created_then_written(tmp_path: Path, start: Start) -> None:
    run = start([tmp_path])
    sub = tmp_path / "team" / "db"
    sub.mkdir(parents=True)
    assert str(tmp_path / "team") in run.next_call()
    write(sub / "db.yaml")
    assert str(sub / "db.yaml") in run.next_call()


def test_directory_deleted_and_recreated(tmp_path: Path, start: Start) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write(manifests / "a.yaml")
    run = start([manifests])
    shutil.rmtree(manifests)
    assert str(manifests) in run.next_call()
    manifests.mkdir()
    assert str(manifests) in run.next_call()
    write(manifests / "b.yaml")  # the new directory is watched, not the deleted one
    assert str(manifests / "b.yaml") in run.next_call()


# --- 2. and 3. a file --------------------------------------------------------------------------


def test_file_editor_save_is_seen_every_time(tmp_path: Path, start: Start) -> None:
    a = tmp_path / "a.yaml"
    write(a, "one\n")
    run = start([a])
    for text in ("two\n", "three\n", "four\n"):
        inode = a.stat().st_ino
        editor_save(a, text)
        assert a.stat().st_ino != inode  # the original inode is gone
        assert run.next_call() == {str(a)}  # the temporary name is not reported


def test_file_other_names_in_its_directory_do_not_count(tmp_path: Path, start: Start) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write(a)
    run = start([a])
    write(b)
    editor_save(b, "b: 2\n")
    (tmp_path / "sub").mkdir()
    run.assert_quiet()
    write(a, "a: 2\n")  # and the watcher is alive
    assert run.next_call() == {str(a)}


# --- 4. a Kubernetes ConfigMap volume ----------------------------------------------------------


def configmap(directory: Path, stamp: str, files: dict[str, str]) -> None:
    """What the kubelet does: a new timestamped directory, `..data` swapped to it by renaming
    a `..data_tmp` link over it, the old directory deleted, `NAME -> ..data/NAME` links."""
    new = directory / f"..2026_12_04_10_00_{stamp}"
    new.mkdir()
    for name, text in files.items():
        (new / name).write_text(text)
    data = directory / "..data"
    old = data.resolve() if data.is_symlink() else None
    os.symlink(new.name, directory / "..data_tmp")
    os.replace(directory / "..data_tmp", data)
    for name in files:
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    if old is not None:
        shutil.rmtree(old)


@pytest.mark.parametrize("argument", ["directory", "file"])
def test_configmap_symlink_swap(tmp_path: Path, start: Start, argument: str) -> None:
    volume = tmp_path / "config"
    volume.mkdir()
    configmap(volume, "00.000", {"a.yaml": host("backup", 22)})
    path = volume if argument == "directory" else volume / "a.yaml"
    assert load_manifests([path]).hosts["backup"].spec.ssh.port == 22  # type: ignore[union-attr]
    run = start([path])
    for stamp, port in (("01.000", 2222), ("02.000", 2200)):
        configmap(volume, stamp, {"a.yaml": host("backup", port)})
        assert str(volume / "..data") in run.next_call()
        assert (volume / "a.yaml").read_text() == host("backup", port)
        loaded = load_manifests([path]).hosts["backup"].spec.ssh
        assert loaded is not None and loaded.port == port
    run.assert_quiet(0.3)  # no call left over: one per swap


# --- 5. debounce -------------------------------------------------------------------------------


def test_a_burst_of_writes_is_one_call(tmp_path: Path, start: Start) -> None:
    a = tmp_path / "a.yaml"
    write(a)
    run = start([tmp_path])
    began = time.monotonic()
    for index in range(20):
        write(a, f"x: {index}\n")
    took = time.monotonic() - began
    calls = [run.next_call(), *run.calls_within(1.0)]
    assert took < 0.1, f"the burst itself took {took:.3f} s"
    assert 1 <= len(calls) <= 2, calls  # one, or two if the machine stalled mid-burst
    assert all(str(a) in call for call in calls)


def test_an_editor_save_is_one_call(tmp_path: Path, start: Start) -> None:
    a = tmp_path / "a.yaml"
    write(a)
    run = start([tmp_path])
    editor_save(a, "b: 1\n")
    call = run.next_call()
    assert str(a) in call and str(tmp_path / "a.yaml.tmp") in call  # a directory sees all
    run.assert_quiet(0.3)


# --- 6. stop -----------------------------------------------------------------------------------


def test_stop_returns_promptly(tmp_path: Path, start: Start) -> None:
    run = start([tmp_path])
    began = time.monotonic()
    run.stop.set()
    run.thread.join(1.0)
    assert not run.thread.is_alive()
    assert time.monotonic() - began < 1.0


def test_stop_while_waiting_for_a_missing_path(tmp_path: Path, start: Start) -> None:
    run = start([tmp_path / "later"])
    run.stop.set()
    run.thread.join(1.0)
    assert not run.thread.is_alive()


# --- 7. paths that do not exist yet -------------------------------------------------------------


def test_a_missing_file_created_later(tmp_path: Path, start: Start) -> None:
    a = tmp_path / "a.yaml"
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING", format="{message}")
    try:
        run = start([a])
    finally:
        logger.remove(sink)
    assert messages == [f"manifest path {a} does not exist: watching {tmp_path} for it\n"]
    write(tmp_path / "other.yaml")
    run.assert_quiet()
    write(a)
    assert run.next_call() == {str(a)}
    editor_save(a, "y: 2\n")  # and it is now an ordinary watched file
    assert run.next_call() == {str(a)}


def test_a_missing_directory_created_later(tmp_path: Path, start: Start) -> None:
    manifests = tmp_path / "srv" / "zfs" / "manifests"
    run = start([manifests])
    manifests.mkdir(parents=True)
    assert str(tmp_path / "srv") in run.next_call()
    write(manifests / "a.yaml")
    assert str(manifests / "a.yaml") in run.next_call()


# --- errors ------------------------------------------------------------------------------------


def test_an_on_change_error_is_logged_and_watching_goes_on(tmp_path: Path, start: Start) -> None:
    seen: queue.Queue[frozenset[str]] = queue.Queue()
    count = iter(range(1000))

    def on_change(changed: frozenset[str]) -> None:
        seen.put(changed)
        if next(count) == 0:
            raise RuntimeError("the loop is broken")

    messages: list[str] = []
    sink = logger.add(messages.append, level="ERROR", format="{message}")
    try:
        start([tmp_path], on_change=on_change)
        write(tmp_path / "a.yaml")
        assert str(tmp_path / "a.yaml") in seen.get(timeout=WAIT)
        write(tmp_path / "b.yaml")
        assert str(tmp_path / "b.yaml") in seen.get(timeout=WAIT)
    finally:
        logger.remove(sink)
    assert [message.splitlines()[0] for message in messages] == [
        "handling a manifest change failed: the loop is broken"
    ]
    assert "RuntimeError: the loop is broken" in messages[0]  # with its traceback


def test_the_polling_fallback_sees_an_editor_save_and_a_configmap_swap(
    tmp_path: Path, start: Start
) -> None:
    a = tmp_path / "a.yaml"
    write(a)
    volume = tmp_path / "config"
    volume.mkdir()
    configmap(volume, "00.000", {"c.yaml": host("backup", 22)})
    run = start([a, volume], force_polling=True)
    time.sleep(1.1)  # polling compares modification times in whole seconds
    editor_save(a, "y: 2\n")
    assert str(a) in run.next_call()
    time.sleep(1.1)
    configmap(volume, "01.000", {"c.yaml": host("backup", 2222)})
    assert str(volume / "..data") in run.next_call()
    write(tmp_path / "b.yaml")  # a directory modified is no event for a file in it
    run.assert_quiet()


# --- 8. latency --------------------------------------------------------------------------------


def test_latency_from_a_write_to_on_change(tmp_path: Path, start: Start) -> None:
    a = tmp_path / "a.yaml"
    write(a)
    run = start([a])
    latencies: list[float] = []
    for index in range(10):
        time.sleep(0.3)
        written = time.monotonic()
        editor_save(a, f"x: {index}\n")
        called, changed = run.timed_call()
        assert changed == {str(a)}
        latencies.append(called - written)
    ordered = sorted(latencies)
    p50, p95 = statistics.median(ordered), ordered[-1]  # of 10, the 95th percentile is the max
    print(f"\nwatcher latency p50={p50 * 1000:.0f} ms p95={p95 * 1000:.0f} ms")
    assert all(latency < 1.0 for latency in latencies), latencies
