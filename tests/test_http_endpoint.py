"""`reconcile watch --listen`: `/metrics`, `/status` and `/healthz` scraped over real HTTP
(urllib) from the loop run by the CLI; `health()` and `parse_listen()` on their own. Hosts are
the in-memory ZFS model; the loop stops on a real SIGTERM, as in tests/test_cli_watch.py."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Console, Services, main
from reconciler.loop.http import Endpoint, ListenAddress, Sources, health, parse_listen
from reconciler.loop.state import LoopState, PolicyState
from tests.loop_harness import HOSTS, START, LoopHarness, policy
from tests.test_cli import MANIFESTS, Fleet
from tests.test_metrics import samples, value

SERVING = re.compile(r"serving /metrics, /status and /healthz on (http://\S+)")


def fetch(url: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, Content-Type, body) of one request."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def wait(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Watch:
    """`reconcile watch --listen 127.0.0.1:0` on the main thread; `script` runs beside it
    with the endpoint's URL and ends it with SIGTERM."""

    def __init__(self, manifest: Path, fleet: Fleet) -> None:
        self.manifest, self.fleet = manifest, fleet
        self.err = io.StringIO()
        self.failure: BaseException | None = None

    def log(self) -> str:
        return self.err.getvalue()

    def run(self, script: Callable[[str], None], *extra: str) -> int:
        def beside() -> None:
            try:
                wait(lambda: SERVING.search(self.log()) is not None)
                found = SERVING.search(self.log())
                assert found is not None
                script(found.group(1))
            except BaseException as error:
                self.failure = error
            finally:
                os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=beside, daemon=True).start()
        locks = str(self.manifest.parent / "locks")
        argv = ["watch", "-f", str(self.manifest), "--lock-dir", locks, "--resync", "1h"]
        argv += ["--listen", "127.0.0.1:0", *extra]
        code = main(argv, Console(io.StringIO(), self.err), Services(connect=self.fleet.connect))
        if self.failure is not None:
            raise self.failure
        return code


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifests" / "m.yaml"
    path.parent.mkdir()
    path.write_text(MANIFESTS)
    return path


def test_metrics_status_and_healthz_over_http(manifest: Path) -> None:
    fleet = Fleet()
    watch = Watch(manifest, fleet)
    seen: dict[str, tuple[int, str, str]] = {}

    def script(url: str) -> None:
        wait(lambda: "policy home: pass 1 ok" in watch.log())
        for path in ("/metrics", "/status", "/healthz", "/nothing", "/healthz?x=1"):
            seen[path] = fetch(url + path)
        seen["HEAD /metrics"] = fetch(url + "/metrics", "HEAD")
        seen["POST /metrics"] = fetch(url + "/metrics", "POST")

    assert watch.run(script) == EXIT_OK
    code, content_type, text = seen["/metrics"]
    assert code == 200 and content_type.startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert value(found, "manifests_valid") == 1
    for fs in ("tank/home", "tank/home/alice"):
        labels = {"policy": "home", "target": "offsite", "filesystem": fs}
        assert value(found, "replication_lag_seconds", **labels) < 60
        assert value(found, "replica_condition", condition="in_sync", **labels) == 1
    assert value(found, "actions_total", policy="home", kind="send", result="ok") == 2
    assert value(found, "actions_total", policy="home", kind="snapshot", result="ok") == 1
    assert value(found, "sent_bytes_total", policy="home", target="offsite") >= 0
    assert value(found, "managed_snapshots", policy="home", host="nas") == 0  # at its start
    assert value(found, "pass_duration_seconds_count", policy="home") == 1
    assert value(found, "last_success_timestamp_seconds", policy="home") > 0
    code, content_type, text = seen["/status"]
    document = json.loads(text)
    assert code == 200 and content_type == "application/json"
    assert document["health"] == {"ok": True, "reason": "ok"}
    assert document["loop"]["manifests_valid"] is True
    assert document["loop"]["policies"]["home"]["last_pass"]["outcome"] == "ok"
    assert document["loop"]["policies"]["home"]["next_wakeup"] is not None
    replicas = document["status"]["home"]["policies"][0]["targets"][0]["filesystems"]
    assert {r["condition"] for r in replicas} == {"in_sync"}
    assert seen["/healthz"][:1] == (200,) and seen["/healthz"][2] == "ok\n"
    assert seen["/healthz?x=1"][0] == 200
    assert seen["/nothing"][0] == 404
    assert seen["HEAD /metrics"][0] == 200 and seen["HEAD /metrics"][2] == ""
    assert seen["POST /metrics"][0] == 405
    assert "GET /metrics" not in watch.log()  # requests are logged at DEBUG only


def test_healthz_turns_503_on_an_invalid_edit_and_200_when_it_is_fixed(manifest: Path) -> None:
    fleet = Fleet()
    watch = Watch(manifest, fleet)
    answers: list[tuple[int, str]] = []

    def healthz(url: str) -> tuple[int, str]:
        code, _, text = fetch(url + "/healthz")
        return code, text

    def script(url: str) -> None:
        wait(lambda: healthz(url)[0] == 200)
        manifest.write_text(MANIFESTS.replace("interval: 15m", "interval: 15x"))
        wait(lambda: healthz(url)[0] == 503)
        answers.append(healthz(url))
        metrics = samples(fetch(url + "/metrics")[2])
        answers.append((int(value(metrics, "manifests_valid")), ""))
        manifest.write_text(MANIFESTS)
        wait(lambda: healthz(url)[0] == 200)
        answers.append(healthz(url))

    assert watch.run(script) == EXIT_OK
    (code, reason), (valid, _), fixed = answers
    assert code == 503 and reason.count("\n") == 1
    assert reason.startswith("manifests invalid (1 error; generation ")
    assert "spec.snapshots.interval: unknown unit" in reason
    assert valid == 0
    assert fixed == (200, "ok\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["--listen", "0.0.0.0:9563"],
        ["--listen", "[::]:9563"],
        ["--listen", "192.168.1.10:9563"],
        ["--listen-public"],
        ["--listen", "127.0.0.1"],
        ["--listen", "localhost:65536"],
        ["--listen", "127.0.0.1:-1"],
        ["--listen", "::1:9563"],
        ["--listen", "example.org:9563"],
        ["--listen", ":9563"],
    ],
)
def test_watch_refuses_a_public_or_malformed_listen_address(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["watch", *argv], Console(io.StringIO(), io.StringIO()))
    assert exited.value.code == EXIT_USAGE
    err = capsys.readouterr().err  # argparse writes its usage errors to sys.stderr
    assert err.count("\n") == 1 and "reconcile watch: error: " in err


def test_a_port_in_use_exits_1_with_one_line(manifest: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = io.StringIO()
        argv = ["watch", "-f", str(manifest), "--listen", f"127.0.0.1:{port}"]
        code = main(argv, Console(io.StringIO(), err), Services(connect=Fleet().connect))
    assert code == EXIT_ERROR
    assert f"cannot listen on http://127.0.0.1:{port}: " in err.getvalue()
    assert "Traceback" not in err.getvalue()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:0", ListenAddress("127.0.0.1", 0)),
        ("localhost:9563", ListenAddress("127.0.0.1", 9563)),
        ("[::1]:9563", ListenAddress("::1", 9563)),
        ("0.0.0.0:80", ListenAddress("0.0.0.0", 80)),
    ],
)
def test_parse_listen(text: str, address: ListenAddress) -> None:
    assert parse_listen(text) == address
    assert address.loopback is (address.host in ("127.0.0.1", "::1"))


# --- health --------------------------------------------------------------------------------

RESYNC = 600
T0 = 1_000_000.0


def loop_state(**policy: float | str | None) -> LoopState:
    return LoopState(
        started=T0,
        generation="abc",
        manifests_valid=True,
        policies={"home": PolicyState("home", added=T0, **policy)},  # type: ignore[arg-type]
    )


def test_health_before_the_first_load_and_with_invalid_manifests() -> None:
    assert health(LoopState(started=T0), T0, RESYNC) == (
        False,
        "starting: the manifests are not loaded yet",
    )
    invalid = LoopState(started=T0, manifest_errors=("m.yaml:1:1: kind: unknown",))
    healthy, reason = health(invalid, T0, RESYNC)
    assert not healthy and reason == "manifests invalid (1 error; none): m.yaml:1:1: kind: unknown"


def test_health_allows_2_x_resync_since_the_last_success_or_the_start() -> None:
    assert health(loop_state(), T0 + 2 * RESYNC, RESYNC) == (True, "ok")
    healthy, reason = health(loop_state(error="host backup not observed"), T0 + 1260, RESYNC)
    assert not healthy
    assert reason == (
        "policy home: no pass without errors in the 21m since it came into force "
        "(limit 2 x resync = 20m): host backup not observed"
    )
    assert health(loop_state(last_success=T0 + 1000), T0 + 2200, RESYNC) == (True, "ok")
    healthy, reason = health(loop_state(last_success=T0 + 1000), T0 + 2201, RESYNC)
    assert not healthy and "last pass without errors 1201s ago" in reason


# --- the loop's metrics and health on a fake clock ----------------------------------------------


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[LoopHarness]:
    manifests = HOSTS + policy("home", "{'tank/home<': true}")
    harness = LoopHarness(tmp_path / "manifests", manifests, resync=600)
    yield harness
    harness.close()


def test_an_unreachable_target_shows_in_the_metrics_and_fails_healthz_after_2_x_resync(
    loop: LoopHarness,
) -> None:
    controller = loop.controller
    sources = Sources(controller.state, controller.metrics.registry, loop.clock.time, 600)
    endpoint = Endpoint(ListenAddress("127.0.0.1", 0), sources)
    endpoint.start()
    try:
        url = endpoint.address.url()
        loop.start()
        loop.wait_passes("home", 1)
        first = samples(fetch(url + "/metrics")[2])
        succeeded = value(first, "last_success_timestamp_seconds", policy="home")
        assert succeeded == pytest.approx(START, abs=5)
        loop.models["backup"].set_unreachable("ssh: connect to host backup: Connection refused")
        loop.advance(600)
        loop.wait_passes("home", 2)
        assert fetch(url + "/healthz")[0] == 200  # within 2 x resync of the last success
        loop.advance(700)
        loop.wait_passes("home", 3)
        code, _, reason = fetch(url + "/healthz")
        assert code == 503
        late = r"policy home: last pass without errors 12\d\ds ago \(limit 2 x resync = 20m\)"
        assert re.match(late, reason), reason
        assert "host backup not observed" in reason
        found = samples(fetch(url + "/metrics")[2])
        assert value(found, "hosts_unobserved", policy="home") == 1
        assert value(found, "last_success_timestamp_seconds", policy="home") == succeeded
        labels = {"policy": "home", "target": "offsite", "filesystem": "tank/home"}
        assert value(found, "replica_condition", condition="target_unreachable", **labels) == 1
        assert value(found, "replication_lag_seconds", **labels) == 1300  # from the cursor
        assert (
            "zfs_reconciler_managed_snapshots",
            (("host", "backup"), ("policy", "home")),
        ) not in found
        loop.models["backup"].set_unreachable(None)
        loop.advance(600)
        loop.wait_passes("home", 4)
        assert fetch(url + "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    finally:
        endpoint.stop()
