"""A real HTTP feed server on 127.0.0.1 for tests and benchmarks, plus a tiny RSS builder.

    with FeedServer() as server:
        server.set("/world.xml", rss([{"title": "Hello", "guid": "1"}]))
        fetch(server.url("/world.xml"))   # 200 with ETag and Last-Modified
        fetch(..., etag=...)              # 304 until the next set()
        server.count("/world.xml")        # 2

Paths are matched exactly, query string included; anything not set answers 404.
"""

from __future__ import annotations

import email.utils
import hashlib
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str  # the request target as sent, query string included
    headers: dict[str, str]  # lower-cased names
    time: float  # time.monotonic() on arrival, for measuring intervals


@dataclass(frozen=True)
class _Resource:
    """What one path serves."""

    status: int
    body: bytes
    headers: dict[str, str]  # Content-Type and the caller's extras; validators are added per response
    etag: str | None
    last_modified: float | None  # unix seconds, whole
    delay: float
    trickle: float
    chunked: bool


@dataclass
class _State:
    """Shared between the test thread and the handler threads; guarded by `lock`."""

    resources: dict[str, _Resource] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    versions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FeedServer:
    """A ThreadingHTTPServer on 127.0.0.1:<free port>, serving in a daemon thread.

    Starts on construction; stop it with close() or by using it as a context manager.
    Answers conditional GETs: 304 when If-None-Match names the current ETag, or (without
    If-None-Match) when If-Modified-Since is not older than Last-Modified.
    """

    def __init__(self) -> None:
        self._state = _State()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.state = self._state
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        # A short poll interval so close() returns in 50 ms, not the default 500 ms.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="feedserver", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str) -> str:
        """The absolute URL of `path` ("/feed.xml") on this server."""
        return self.base_url + path

    def set(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = "application/rss+xml; charset=utf-8",
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: bool = True,
        last_modified: bool = True,
        delay: float = 0.0,
        trickle: float = 0.0,
        chunked: bool = False,
    ) -> None:
        """Replace what `path` serves. Each call makes a new ETag and a later Last-Modified.

        `headers` are sent as given (e.g. Content-Encoding for a pre-compressed body,
        Retry-After); `delay` sleeps before answering; `trickle` sends the body one byte
        at a time, sleeping that many seconds before each; `chunked` omits Content-Length
        and uses chunked transfer encoding. Validators are only sent, and conditional GET
        only honoured, when status is 200.
        """
        data = body.encode() if isinstance(body, str) else body
        with self._state.lock:
            self._state.versions += 1
            previous = self._state.resources.get(path)
            validated = status == 200
            self._state.resources[path] = _Resource(
                status=status,
                body=data,
                headers={"Content-Type": content_type, **(headers or {})},
                etag=_etag(data, self._state.versions) if etag and validated else None,
                last_modified=_next_modified(previous) if last_modified and validated else None,
                delay=delay,
                trickle=trickle,
                chunked=chunked,
            )

    def set_file(self, path: str, file: Path, **kw: Any) -> None:
        """Serve the bytes of `file` at `path`; keywords as for set()."""
        self.set(path, file.read_bytes(), **kw)

    def redirect(self, path: str, to: str, status: int = 302) -> None:
        """Make `path` redirect to `to` (a path on this server or an absolute URL)."""
        with self._state.lock:
            self._state.resources[path] = _Resource(
                status=status, body=b"", headers={"Location": to},
                etag=None, last_modified=None, delay=0.0, trickle=0.0, chunked=False,
            )

    def remove(self, path: str) -> None:
        """Stop serving `path`: it answers 404 from now on."""
        with self._state.lock:
            self._state.resources.pop(path, None)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def count(self, path: str) -> int:
        """How many requests `path` has received."""
        with self._state.lock:
            return sum(1 for r in self._state.requests if r.path == path)


def rss(items: list[dict[str, Any]], title: str = "Test feed") -> bytes:
    """An RSS 2.0 document. Each item dict may have title, link, guid, description and
    pubDate (a datetime, naive meaning UTC, or a ready-made string); absent keys are omitted."""
    entries = "".join(_rss_item(item) for item in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.org/</link>"
        f"<description>{escape(title)}</description>{entries}"
        "</channel></rss>\n"
    ).encode()


def _rss_item(item: dict[str, Any]) -> str:
    parts = []
    for key in ("title", "link", "description"):
        if key in item:
            parts.append(f"<{key}>{escape(str(item[key]))}</{key}>")
    if "guid" in item:
        # isPermaLink="false" so a reader never mistakes a test guid for the item's link
        parts.append(f'<guid isPermaLink="false">{escape(str(item["guid"]))}</guid>')
    if "pubDate" in item:
        parts.append(f"<pubDate>{escape(_rfc822(item['pubDate']))}</pubDate>")
    return f"<item>{''.join(parts)}</item>"


def _rfc822(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return email.utils.format_datetime(value)


def _etag(body: bytes, version: int) -> str:
    return f'"{hashlib.sha1(body).hexdigest()[:12]}-{version}"'


def _next_modified(previous: _Resource | None) -> float:
    """Now, but always after the previous Last-Modified, so If-Modified-Since (whole
    seconds) cannot hide a change made within the same second."""
    now = float(int(time.time()))
    if previous is not None and previous.last_modified is not None:
        return max(now, previous.last_modified + 1)
    return now


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096  # a benchmark opens hundreds of connections at once
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients hanging up (timeouts, size caps); report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real feed servers do
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client
    # waits ~40 ms for the delayed ACK on every request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(
                RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    time=time.monotonic(),
                )
            )
            resource = state.resources.get(self.path)
        if resource is None:
            self._send(404, {"Content-Type": "text/plain"}, b"not found\n")
            return
        if resource.delay:
            time.sleep(resource.delay)
        headers = dict(resource.headers)
        if resource.etag:
            headers["ETag"] = resource.etag
        if resource.last_modified is not None:
            headers["Last-Modified"] = email.utils.formatdate(resource.last_modified, usegmt=True)
        if self._not_modified(resource):
            self._send(304, {k: v for k, v in headers.items() if k in ("ETag", "Last-Modified")}, b"")
            return
        self._send(
            resource.status, headers, resource.body, trickle=resource.trickle, chunked=resource.chunked
        )

    def _not_modified(self, resource: _Resource) -> bool:
        if resource.status != 200:
            return False
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
            return resource.etag is not None and ("*" in tags or resource.etag in tags)
        since = self.headers.get("If-Modified-Since")
        if since is None or resource.last_modified is None:
            return False
        try:
            return email.utils.parsedate_to_datetime(since).timestamp() >= resource.last_modified
        except (TypeError, ValueError):
            return False

    def _send(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        *,
        trickle: float = 0.0,
        chunked: bool = False,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status not in (204, 304):
            self._write_body(body, trickle, chunked)

    def _write_body(self, body: bytes, trickle: float, chunked: bool) -> None:
        step = 1 if trickle else max(len(body), 1)
        for i in range(0, len(body), step):
            if trickle:
                time.sleep(trickle)
            piece = body[i : i + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
