"""Alert → one signed webhook request → an Outcome; and when to try again."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

import httpx

from monitor import USER_AGENT
from monitor.config import DEFAULT_RETRY, WebhookConfig
from monitor.formats import Message, render
from monitor.httputil import parse_retry_after

MAX_RETRY_AFTER = 36000.0  # a receiver may slow us down up to the longest default delay, no more
JITTER = 0.2               # ±20%, so that alerts failed together do not retry together
# Answers that another attempt cannot fix: the alert is a dead letter at once.
PERMANENT = frozenset({400, 401, 403, 404, 413})
GONE = 410                 # the endpoint is gone for good: the webhook is disabled
_BODY_LIMIT = 64 * 1024   # read no more of a response than an error message needs
_SNIPPET = 200


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to."""

    ok: bool
    status: int | None         # HTTP status; None when no response came back
    error: str | None          # short human reason: "HTTP 503: ...", "timed out", ...
    retryable: bool            # worth another attempt later (5xx, 408, 429, network trouble)
    retry_after: float | None  # seconds the receiver asked us to wait (header or Discord JSON)
    elapsed_ms: int


def signing_key(secret: str) -> bytes:
    """HMAC key for `secret`: "whsec_<base64>" is decoded, any other string is its UTF-8.

    Raises ValueError for a malformed whsec_ secret (config validation can call this)."""
    if secret.startswith("whsec_"):
        # Pad like the standardwebhooks library does, so unpadded secrets work the same.
        return base64.b64decode(secret.removeprefix("whsec_") + "==")
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature: "v1," + base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Sender:
    """Sends alerts over one shared HTTP client; never follows redirects, never raises for
    HTTP or network trouble (every attempt ends as an Outcome)."""

    def __init__(
        self,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 16,
    ):
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self, message: Message, webhook: WebhookConfig, *, now: datetime
    ) -> Outcome:
        """One attempt to deliver `message` (an alert or a digest); `now` is this attempt's
        webhook-timestamp."""
        rendered = render(message, webhook)
        headers = httpx.Headers(rendered.headers)
        for name, value in webhook.headers:
            headers[name] = value
        # Set last, so that no extra header can replace them.
        timestamp = int(now.timestamp())
        headers["webhook-id"] = message.message_id
        headers["webhook-timestamp"] = str(timestamp)
        if webhook.secret:
            headers["webhook-signature"] = sign(
                webhook.secret, message.message_id, timestamp, rendered.body
            )
        async with self._slots:
            started = time.monotonic()
            try:
                # The total deadline also stops a server that trickles its answer.
                async with asyncio.timeout(self._timeout):
                    status, response_headers, body = await self._post(
                        rendered.url, headers, rendered.body
                    )
            except (TimeoutError, httpx.TimeoutException):
                return _failure("timed out", _ms_since(started), retryable=True)
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as e:
                # Our request is malformed: another attempt would fail the same way.
                return _failure(f"bad request: {e}", _ms_since(started), retryable=False)
            except httpx.ConnectError as e:
                return _failure(_connect_reason(e), _ms_since(started), retryable=True)
            except httpx.HTTPError as e:
                return _failure(f"{type(e).__name__}: {e}", _ms_since(started), retryable=True)
        return _judge(
            status, response_headers, body,
            now=now, elapsed_ms=_ms_since(started), secrets=_secrets_of(webhook),
        )

    async def _post(
        self, url: str, headers: httpx.Headers, body: bytes
    ) -> tuple[int, httpx.Headers, bytes]:
        async with self._client.stream("POST", url, headers=headers, content=body) as response:
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) >= _BODY_LIMIT:
                    break
            return response.status_code, response.headers, bytes(received[:_BODY_LIMIT])


def _judge(
    status: int,
    headers: httpx.Headers,
    body: bytes,
    *,
    now: datetime,
    elapsed_ms: int,
    secrets: tuple[str, ...] = (),
) -> Outcome:
    """Classify a response: 2xx ok; 400, 401, 403, 404, 413 and 410 not worth repeating;
    anything else (3xx, which is never followed, 5xx, 408, 429, other 4xx) a failure
    retried on the schedule."""
    if 200 <= status < 300:
        return Outcome(True, status, None, False, None, elapsed_ms)
    if 300 <= status < 400:
        error = f"HTTP {status}: redirect not followed"
    else:
        snippet = _snippet(body, secrets)
        error = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
    retryable = status not in PERMANENT and status != GONE
    return Outcome(False, status, error, retryable, _retry_after(headers, body, now), elapsed_ms)


def next_attempt_delay(
    attempts: int, outcome: Outcome, *, schedule: Sequence[timedelta] = DEFAULT_RETRY,
    rng: random.Random | None = None,
) -> timedelta | None:
    """How long to wait after `attempts` attempts (≥1) ending in `outcome`, by the
    webhook's `schedule` (the delay after each failed attempt); None to stop: success, a
    failure not worth repeating, or the schedule is used up."""
    if attempts < 1:
        raise ValueError("attempts counts the attempts made, so it is at least 1")
    if outcome.ok or not outcome.retryable or attempts > len(schedule):
        return None
    delay = schedule[attempts - 1].total_seconds() * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if outcome.retry_after is not None:
        # Jitter never brings a retry forward of what the receiver asked for.
        delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
    return timedelta(seconds=delay)


def _retry_after(headers: httpx.Headers, body: bytes, now: datetime) -> float | None:
    """Seconds from Retry-After (delta-seconds or an HTTP date), else Discord's JSON
    `retry_after`; None when neither is there or readable."""
    value = headers.get("retry-after")
    if value:
        return parse_retry_after(value, now)
    if "json" in headers.get("content-type", ""):
        try:
            seconds = json.loads(body).get("retry_after")
        except (ValueError, AttributeError):
            return None
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            return max(0.0, float(seconds))
    return None


def _snippet(body: bytes, secrets: tuple[str, ...]) -> str:
    """The start of a response body on one line (Slack says "invalid_payload" there), with
    anything we sent as a secret blanked in case the receiver echoes our request."""
    text = " ".join(body[: _SNIPPET * 4].decode("utf-8", "replace").split())
    for secret in secrets:
        text = text.replace(secret, "***")
    return text[:_SNIPPET]


def _secrets_of(webhook: WebhookConfig) -> tuple[str, ...]:
    # Extra headers may hold tokens; short values ("news") are too common to blank.
    values = [webhook.secret or ""] + [value for _, value in webhook.headers]
    return tuple(v for v in values if len(v) >= 8)


def _connect_reason(error: httpx.ConnectError) -> str:
    # anyio wraps the OS error ("All connection attempts failed"): look down the chain.
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host not found"
        cause = cause.__cause__ or cause.__context__
    return f"cannot connect: {error}" if str(error) else "cannot connect"


def _failure(reason: str, elapsed_ms: int, *, retryable: bool) -> Outcome:
    return Outcome(False, None, reason, retryable, None, elapsed_ms)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
