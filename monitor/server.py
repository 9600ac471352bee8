"""The ops listener: GET /healthz and GET /metrics on a stdlib HTTP server in its own thread.

Why the stdlib `http.server` and not aiohttp or the daemon's event loop: it adds no
dependency beyond prometheus-client, and because it runs in its own thread it still
answers when the daemon's event loop is stuck (a blocking call, a runaway task), so
/healthz can say "poll loop last ticked 95 s ago" instead of hanging with the loop.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitor.errors import MonitorError
from monitor.log import event
from monitor.metrics import Metrics

Health = Callable[[], tuple[bool, str]]


class Liveness:
    """When the poll loop last ticked, and whether that and the database look healthy.

    `ticked()` is called from the event loop and `check()` from a server thread; both only
    read or replace one float, which is atomic under the GIL, so no lock is needed.
    """

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit  # seconds without a tick before the loop counts as stuck
        self._clock = clock
        self._started = clock()
        self._last_tick: float | None = None

    def ticked(self) -> None:
        self._last_tick = self._clock()

    def check(self, db_ping: Callable[[], None]) -> tuple[bool, str]:
        """(True, "ok"), or (False, the reason) for a failing database or a stale poll loop."""
        try:
            db_ping()
        except Exception as e:
            # The first line only: driver errors run on for lines, and the reason is one line.
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return False, f"database: {reason}"
        now = self._clock()
        if self._last_tick is None:
            # A start-up grace of one limit: the first tick may wait on migrations or a slow pass.
            if now - self._started > self.limit:
                return False, "poll loop has not ticked yet"
            return True, "ok"
        age = now - self._last_tick
        if age > self.limit:
            return False, f"poll loop last ticked {age:.0f} s ago (limit {self.limit:.0f} s)"
        return True, "ok"


class OpsServer:
    """Serves /healthz and /metrics from a daemon thread; `start()` binds, `stop()` joins."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Health):
        self.host = host
        self.port = port  # the bound port once started (so port 0 can be used)
        self.metrics = metrics
        self.health = health
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; MonitorError if the address cannot be used."""
        if self._httpd is not None:
            raise RuntimeError("OpsServer already started")
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                        flags=socket.AI_PASSIVE)[0][0]
            httpd = _HTTPServer((self.host, self.port), family, self)
        except OSError as e:  # socket.gaierror (bad host) is an OSError too
            raise MonitorError(f"cannot listen on {self.host}:{self.port}: {e.strerror or e}") from e
        self.port = httpd.server_address[1]
        self._httpd = httpd
        # stop() waits up to one poll interval for the loop to notice; 0.1 s keeps the
        # daemon's shutdown quick, and ten idle wake-ups a second cost nothing measurable.
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="monitor-ops-server", daemon=True)
        self._thread.start()
        event("listening", host=self.host, port=self.port, paths="/healthz /metrics")

    def stop(self) -> None:
        """Stop serving, join the thread and free the port; a no-op if not started."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        thread.join()
        httpd.server_close()
        self._httpd = self._thread = None


class _HTTPServer(ThreadingHTTPServer):
    # Request threads are daemons and not joined on close: a scrape stuck on a hung
    # database must not stop the process from exiting.
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, ops: OpsServer):
        self.address_family = family  # the class default is IPv4 only; "[::1]:9308" is allowed
        self.ops = ops
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(host), a reverse DNS lookup that can
        # take seconds on a machine with broken DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr, past the logging setup.
        event("ops_request_failed", logging.ERROR, client=client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "monitor"
    sys_version = ""
    timeout = 30  # a client that opens a connection and sends nothing must not hold a thread forever

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def do_POST(self) -> None:
        self._not_allowed()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _respond(self, *, head: bool) -> None:
        path = self.path.partition("?")[0]
        ops = self.server.ops
        if path == "/healthz":
            try:
                ok, reason = ops.health()
            except Exception as e:  # a broken check means an unhealthy process, not a dropped connection
                ok, reason = False, f"health check failed: {type(e).__name__}: {e}"
            body = b"ok\n" if ok else reason.encode() + b"\n"
            self._send(200 if ok else 503, body, "text/plain; charset=utf-8", head)
        elif path == "/metrics":
            body, content_type = ops.metrics.render()
            self._send(200, body, content_type, head)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", head)

    def _not_allowed(self) -> None:
        path = self.path.partition("?")[0]
        if path in ("/healthz", "/metrics"):
            self._send(405, b"method not allowed\n", "text/plain; charset=utf-8", False,
                       allow="GET, HEAD")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", False)

    def _send(self, status: int, body: bytes, content_type: str, head: bool, allow: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if allow is not None:
            self.send_header("Allow", allow)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr, past the logging setup and its format.
        event("ops_request", logging.DEBUG, client=self.address_string(), message=format % args)
