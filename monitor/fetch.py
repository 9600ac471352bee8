"""Fetch feeds over HTTP: one shared client, conditional GET, hard limits on time, size and redirects."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from monitor import USER_AGENT
from monitor.errors import FetchError
from monitor.httputil import parse_retry_after

ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"

# These describe the bytes on the wire; the body we hand on is already decoded.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class FetchResult:
    """What one successful fetch returned."""

    status: int  # a 2xx (normally 200), or 304: not modified, body is b""
    url: str  # final URL after redirects
    body: bytes  # decoded: any Content-Encoding is already undone
    headers: dict[str, str]  # lower-cased names; wire-only headers (content-encoding...) dropped
    etag: str | None  # validators to send next time; on a 304 that omits them, the ones sent
    last_modified: str | None
    elapsed_ms: int  # from getting a concurrency slot to the end of the body; queueing excluded
    moved_to: str | None = None  # where permanent redirects (301/308), from the first hop on, led


class Fetcher:
    """Fetches feeds through one shared httpx client, at most `concurrency` at a time.

    Callers may start thousands of fetch() calls at once: they queue on a semaphore, not
    in the connection pool, and the `timeout` (whole request, body included) only starts
    once a call holds a slot. Use one Fetcher within one event loop.

    Politeness: at most `per_host` fetches to one host at a time, each started at least
    `host_delay` seconds after the previous one to that host. A fetch waits for its host
    before it takes one of the `concurrency` slots, so a busy host never holds up others.

    Every FetchError that fetch() raises carries `status` (the HTTP status, or None) and
    `retry_after` (seconds the server asked us to wait via Retry-After, or None).
    """

    def __init__(
        self,
        *,
        concurrency: int = 32,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 5,
        per_host: int = 4,
        host_delay: float = 0.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._hosts: dict[str, _Host] = {}
        self._per_host = per_host
        self._host_delay = host_delay
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._slots = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            # The semaphore keeps requests <= connections, so a pool wait is never long;
            # the total timeout in fetch() bounds it anyway.
            timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=None),
            # Few idle connections: httpcore scans every pooled connection on each request,
            # and feeds on different hosts rarely reuse one. 8 instead of 32 halved the CPU
            # per fetch at concurrency 32 (benchmarks/poll_farm.py).
            limits=httpx.Limits(max_connections=concurrency,
                                max_keepalive_connections=min(concurrency, 8)),
            # Redirects are followed in _open so that redirect bodies are never read.
            follow_redirects=False,
            transport=transport or _aiohttp_transport(concurrency),
        )

    def set_politeness(self, per_host: int, host_delay: float) -> None:
        """New per-host limits (a reload): for the fetches that start from now on; those
        under way finish in the places they hold."""
        if (per_host, host_delay) != (self._per_host, self._host_delay):
            self._per_host, self._host_delay = per_host, host_delay
            # Fresh places per host, each counting host_delay from the last start there.
            self._hosts = {name: _Host(asyncio.Semaphore(per_host), last_start=host.last_start)
                           for name, host in self._hosts.items()}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the shared client and its connections."""
        await self._client.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET `url`, sending the validators from last time; raise FetchError on any failure."""
        scheme = url.partition(":")[0].lower()
        if scheme not in ("http", "https"):
            raise _error(f"Request URL has an unsupported protocol '{scheme}://'.")
        async with self._host_turn(url), self._slots:
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._timeout):
                    response, body, moved_to = await self._get(url, _conditional(etag, last_modified))
            except TimeoutError as e:
                raise _error(f"timed out after {self._timeout:g}s") from e
            except httpx.InvalidURL as e:
                raise _error(f"invalid URL: {e}") from e
            except httpx.HTTPError as e:
                raise _error(self._describe(e)) from e
        new_etag = response.headers.get("etag")
        new_last_modified = response.headers.get("last-modified")
        if response.status_code == 304:  # a 304 may omit validators that still hold
            new_etag = new_etag or etag
            new_last_modified = new_last_modified or last_modified
        return FetchResult(
            status=response.status_code,
            url=str(response.url),
            body=body,
            headers={k: v for k, v in response.headers.items() if k not in _WIRE_HEADERS},
            etag=new_etag,
            last_modified=new_last_modified,
            elapsed_ms=round((time.monotonic() - started) * 1000),
            moved_to=moved_to,
        )

    @asynccontextmanager
    async def _host_turn(self, url: str) -> AsyncIterator[None]:
        """Hold one of the host's `per_host` places, `host_delay` after its last start."""
        host = self._hosts.setdefault(_host_of(url), _Host(asyncio.Semaphore(self._per_host)))
        async with host.slots:
            async with host.starting:  # one start at a time, each host_delay after the last
                wait = host.last_start + self._host_delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                host.last_start = time.monotonic()
            yield

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes, str | None]:
        """The final response (closed), its body and where permanent redirects led; raise
        FetchError on a bad status or size."""
        response, moved_to = await self._open(url, headers)
        try:
            if response.status_code == 304:
                return response, b"", moved_to
            if not response.is_success:
                raise _status_error(response)
            return response, await self._read(response), moved_to
        finally:
            await response.aclose()

    async def _open(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, str | None]:
        """Send the GET, following redirects; the caller must close the response. Also the
        URL that unbroken permanent redirects (301, 308) from `url` lead to: the feed has
        moved there. A temporary redirect on the way ends the move."""
        request = self._client.build_request("GET", url, headers=headers)
        moved_to: str | None = None
        permanent = True
        for _ in range(self._max_redirects + 1):
            response = await self._client.send(request, stream=True)
            if response.next_request is None:
                return response, moved_to
            await response.aclose()
            # A fresh GET to where it points (the transport must not be handed a body stream).
            request = self._client.build_request("GET", response.next_request.url, headers=headers)
            permanent = permanent and response.status_code in (301, 308)
            if permanent:
                moved_to = str(request.url)
        raise _error(f"too many redirects (more than {self._max_redirects})")

    async def _read(self, response: httpx.Response) -> bytes:
        """The decoded body, abandoned as soon as it passes max_bytes.

        Counting decoded bytes caps a gzip bomb too; Content-Length only lets us refuse early.
        """
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> FetchError:
        return _error(f"body larger than {_format_size(self._max_bytes)}")

    def _describe(self, e: httpx.HTTPError) -> str:
        """A short message for an httpx failure, for logs and `monitor status`. The OS's
        own reason, found down the exception chain, comes first: the aiohttp transport
        files a refused connection under ConnectTimeout."""
        if (reason := _os_reason(e)) is not None:
            return reason
        if _caused_by(e, "ServerDisconnectedError"):
            return "protocol error: the server closed the connection without an answer"
        if isinstance(e, httpx.ConnectTimeout):
            return f"connect timed out after {self._connect_timeout:g}s"
        if isinstance(e, httpx.TimeoutException):
            return f"timed out after {self._timeout:g}s"
        if isinstance(e, httpx.DecodingError):
            return f"could not decode body: {e}"
        if isinstance(e, httpx.RemoteProtocolError):
            return f"protocol error: {e}"
        return _network_failure(e)


def _aiohttp_transport(concurrency: int) -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport
    return AiohttpTransport(limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=8))


@dataclass
class _Host:
    slots: asyncio.Semaphore
    starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_start: float = float("-inf")


def _host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _conditional(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """Request headers for a conditional GET.

    A validator that is not ASCII cannot be sent as a header; dropping it costs one full fetch.
    """
    headers = {}
    if etag and etag.isascii():
        headers["If-None-Match"] = etag
    if last_modified and last_modified.isascii():
        headers["If-Modified-Since"] = last_modified
    return headers


def _status_error(response: httpx.Response) -> FetchError:
    retry_after = response.headers.get("retry-after")
    seconds = parse_retry_after(retry_after, datetime.now(UTC)) if retry_after else None
    status = response.status_code
    return _error(f"HTTP {status}", status=status, retry_after=seconds)


def _error(message: str, *, status: int | None = None, retry_after: float | None = None) -> FetchError:
    """A FetchError that always has `retry_after`, so callers need no getattr."""
    error = FetchError(message, status=status)
    error.retry_after = retry_after  # type: ignore[attr-defined]
    return error


def _network_failure(e: BaseException) -> str:
    """Name the OS-level cause buried in httpx's exception chain, else httpx's own words."""
    return _os_reason(e) or str(e) or type(e).__name__


def _caused_by(e: BaseException, name: str) -> bool:
    cause: BaseException | None = e
    while cause is not None:
        if type(cause).__name__ == name:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _os_reason(e: BaseException) -> str | None:
    """The OS-level reason down the exception chain: refused, reset, DNS, TLS; or None."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed: {cause.strerror or cause}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not valid: {cause.verify_message or cause}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    return None


def _format_size(n: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"
