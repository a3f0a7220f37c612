"""The control loop's HTTP endpoint: `/metrics`, `/status` and `/healthz` (docs/monitoring.md).

Owned here: `ListenAddress` (what `--listen HOST:PORT` names, with `parse_listen`), `health`
(pure: the loop's state, now and the resync interval → healthy or not, with the reason),
`status_document` (pure: the JSON of `/status`) and `Endpoint` (a standard-library
`ThreadingHTTPServer` in a daemon thread, started and stopped by the CLI's `reconcile watch`
around the loop). Requests never block the loop: each reads one snapshot of its state
(`Controller.state()`, taken under the controller's lock and copied) and the metrics (copied
under the metrics' lock). Only GET and HEAD; other methods get 405, other paths 404. Each
request is logged at DEBUG, never at INFO.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from reconciler.core.status_render import status_to_json
from reconciler.loop.state import LoopState, state_to_json
from reconciler.manifest.durations import format_duration

STATUS_FORMAT_VERSION = 1
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str  # an IP address: 127.0.0.1, ::1, 0.0.0.0...
    port: int  # 0: any free port

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """`HOST:PORT` with HOST an IPv4 address, `[IPv6]` or `localhost`, PORT 0 to 65535.
    Raises ValueError with the reason."""
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"not HOST:PORT (e.g. 127.0.0.1:9563): {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets ([::1]:9563): {text!r}")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address (or localhost): {host!r}") from None
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"not a port from 0 to 65535: {port!r}")
    return ListenAddress(str(address), int(port))


def health(state: LoopState, now: float, resync: int) -> tuple[bool, str]:
    """Healthy while the manifests are valid and every policy in force had a pass without
    errors within 2 × resync; a policy that has had none yet counts from when it came into
    force (a grace period of 2 × resync). Returns (healthy, `ok` or the reason)."""
    if not state.manifests_valid:
        if not state.manifest_errors:
            return False, "starting: the manifests are not loaded yet"
        kept = f"generation {state.generation} stays in force" if state.generation else "none"
        first = state.manifest_errors[0]
        count = len(state.manifest_errors)
        errors = f"{count} error{'' if count == 1 else 's'}"
        return False, f"manifests invalid ({errors}; {kept}): {first}"
    limit = 2 * resync
    late = []
    for name, policy in sorted(state.policies.items()):
        since = policy.last_success
        if since is None:
            since = policy.added if policy.added is not None else state.started
        if now - since > limit:
            age = format_duration(int(now - since))
            what = (
                f"no pass without errors in the {age} since it came into force"
                if policy.last_success is None
                else f"last pass without errors {age} ago"
            )
            why = f": {policy.error}" if policy.error else ""
            late.append(f"policy {name}: {what} (limit 2 x resync = {format_duration(limit)}){why}")
    if late:
        more = f" (and {len(late) - 1} more)" if len(late) > 1 else ""
        return False, late[0] + more
    return True, "ok"


def status_document(state: LoopState, now: float, resync: int) -> dict[str, Any]:
    """`/status`: the loop's state, its health, and per policy the status report of its last
    pass (None until a pass has observed), each with the `now` it was made for."""
    healthy, reason = health(state, now, resync)
    return {
        "format_version": STATUS_FORMAT_VERSION,
        "health": {"ok": healthy, "reason": reason},
        "loop": state_to_json(state),
        "status": {
            name: None if policy.status is None else status_to_json(policy.status)
            for name, policy in sorted(state.policies.items())
        },
    }


@dataclass(frozen=True)
class Sources:
    """What the endpoint reads: the loop's state, its metrics, the clock, the resync."""

    state: Callable[[], LoopState]
    registry: CollectorRegistry
    now: Callable[[], float]
    resync: int


class Endpoint:
    """The HTTP server. `start()` binds (raises OSError when it cannot) and serves in a daemon
    thread; `stop()` ends it. `address` is the address bound (the port chosen for port 0)."""

    def __init__(self, listen: ListenAddress, sources: Sources) -> None:
        self.listen = listen
        self.sources = sources
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> ListenAddress:
        if self._server is None:
            return self.listen
        return ListenAddress(self.listen.host, int(self._server.server_address[1]))

    def start(self) -> None:
        server = _Server(self.listen, self.sources)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(2.0)
        self._server = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds the process

    def __init__(self, listen: ListenAddress, sources: Sources) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        self.sources = sources
        super().__init__((listen.host, listen.port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "zfs-reconciler"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"only GET and HEAD\n", True, "GET, HEAD")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _answer(self, body: bool) -> None:
        try:
            self._route(urlsplit(self.path).path, body)
        except Exception as error:  # a bug answers 500; it must not end the server
            logger.opt(exception=error).error("http: {} {} failed", self.command, self.path)
            self._send(500, "text/plain; charset=utf-8", b"internal error\n", body)

    def _route(self, path: str, body: bool) -> None:
        sources = self.server.sources
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, content_type, encoder(sources.registry), body)
        elif path == "/status":
            document = status_document(sources.state(), sources.now(), sources.resync)
            text = json.dumps(document, indent=2) + "\n"
            self._send(200, "application/json", text.encode(), body)
        elif path == "/healthz":
            healthy, reason = health(sources.state(), sources.now(), sources.resync)
            text = reason.replace("\n", " ") + "\n"
            self._send(200 if healthy else 503, "text/plain; charset=utf-8", text.encode(), body)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n", body)

    def _send(
        self, code: int, content_type: str, payload: bytes, body: bool, allow: str | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if allow is not None:
            self.send_header("Allow", allow)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http {}: {}", self.address_string(), format % args)
