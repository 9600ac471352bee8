"""Delivery against a real receiver: signatures, headers, status handling, retry schedule."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from monitor import USER_AGENT
from monitor.config import DEFAULT_RETRY, WebhookConfig, parse_duration
from monitor.deliver import Outcome, Sender, next_attempt_delay, sign
from monitor.formats import AlertMessage, render, sample_message
from tests.support.receiver import Receiver

WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
PLAIN = "correct horse battery staple"


def webhook(url: str, **fields: Any) -> WebhookConfig:
    return WebhookConfig(name="ops", url=url, **fields)


def deliver(
    hook: WebhookConfig,
    message: AlertMessage | None = None,
    *,
    now: datetime | None = None,
    **sender: Any,
) -> Outcome:
    now = now or datetime.now(UTC)

    async def go() -> Outcome:
        async with Sender(**sender) as client:
            return await client.send(message or sample_message(now), hook, now=now)

    return asyncio.run(go())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


# --- signing ------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [WHSEC, PLAIN], ids=["whsec", "plain"])
def test_signed_delivery_verifies_with_standardwebhooks(secret: str) -> None:
    now = datetime.now(UTC)
    message = sample_message(now)
    with Receiver(secret=secret) as receiver:
        outcome = deliver(webhook(receiver.url(), secret=secret), message, now=now)
        [request] = receiver.wait_for(1)
    assert outcome == Outcome(True, 200, None, False, None, outcome.elapsed_ms)
    assert request.verified is True
    assert request.headers["webhook-id"] == message.alert_id
    assert request.headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.json["data"]["alert_id"] == message.alert_id


def test_sign_matches_the_library_and_a_hand_made_hmac() -> None:
    body = '{"a":"ü"}'.encode()
    moment = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
    timestamp = int(moment.timestamp())
    library = Webhook(WHSEC).sign("msg_1", moment, body.decode())
    assert sign(WHSEC, "msg_1", timestamp, body) == library
    by_hand = hmac.new(PLAIN.encode(), f"msg_1.{timestamp}.".encode() + body, hashlib.sha256)
    expected = "v1," + base64.b64encode(by_hand.digest()).decode()
    assert sign(PLAIN, "msg_1", timestamp, body) == expected


def test_wrong_secret_is_refused_and_not_retried() -> None:
    with Receiver(secret=WHSEC) as receiver:
        wrong = "whsec_" + base64.b64encode(b"x" * 32).decode()
        outcome = deliver(webhook(receiver.url(), secret=wrong))
        [request] = receiver.requests
    assert request.verified is False
    assert (outcome.ok, outcome.status, outcome.retryable) == (False, 401, False)


def test_unsigned_webhook_sends_no_signature(receiver: Receiver) -> None:
    deliver(webhook(receiver.url()))
    [request] = receiver.wait_for(1)
    assert "webhook-signature" not in request.headers
    assert request.verified is None
    assert request.headers["webhook-id"]


@pytest.mark.parametrize("format", ["json", "slack", "discord", "teams", "mattermost", "ntfy"])
def test_every_format_is_signed_over_the_bytes_sent(format: str) -> None:
    now = datetime.now(UTC)
    message = sample_message(now)
    with Receiver(secret=WHSEC) as receiver:
        hook = webhook(receiver.url(), secret=WHSEC, format=format)
        outcome = deliver(hook, message, now=now)
        [request] = receiver.wait_for(1)
    assert outcome.ok
    assert request.body == render(message, hook).body
    assert request.verified is True


def test_discord_posts_with_wait_true(receiver: Receiver) -> None:
    deliver(webhook(receiver.url("/api/webhooks/1/tok?thread_id=5"), format="discord"))
    [request] = receiver.wait_for(1)
    assert request.path == "/api/webhooks/1/tok?thread_id=5&wait=true"


def test_retry_keeps_the_webhook_id_with_a_new_timestamp() -> None:
    first = datetime.now(UTC)
    message = sample_message(first)
    with Receiver(secret=WHSEC) as receiver:
        receiver.respond([503])
        hook = webhook(receiver.url(), secret=WHSEC)
        failed = deliver(hook, message, now=first)
        succeeded = deliver(hook, message, now=first + timedelta(seconds=30))
        requests = receiver.requests
    assert (failed.ok, failed.status, failed.retryable) == (False, 503, True)
    assert failed.error == "HTTP 503"
    assert succeeded.ok
    assert [r.headers["webhook-id"] for r in requests] == [message.alert_id] * 2
    assert [int(r.headers["webhook-timestamp"]) for r in requests] == [
        int(first.timestamp()), int(first.timestamp()) + 30,
    ]
    assert all(r.verified for r in requests)
    assert requests[0].body == requests[1].body


# --- headers ------------------------------------------------------------------------------


def test_extra_headers_are_sent_but_cannot_replace_webhook_headers(receiver: Receiver) -> None:
    message = sample_message(datetime.now(UTC))
    hook = webhook(
        receiver.url(),
        headers=(("Authorization", "Bearer tok-123"), ("X-Team", "news"), ("webhook-id", "forged")),
    )
    deliver(hook, message)
    [request] = receiver.wait_for(1)
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.headers["x-team"] == "news"
    assert request.headers["webhook-id"] == message.alert_id


def test_secrets_never_appear_in_reprs_or_errors(receiver: Receiver) -> None:
    receiver.respond([(400, {}, f"bad token: Bearer tok-123 for {WHSEC}".encode())])
    hook = webhook(receiver.url(), secret=WHSEC, headers=(("Authorization", "Bearer tok-123"),))
    outcome = deliver(hook)
    assert outcome.status == 400
    message = sample_message(datetime.now(UTC))
    texts = [repr(hook), str(hook), repr(outcome), str(outcome.error), repr(render(message, hook))]
    for text in texts:
        assert WHSEC not in text and "tok-123" not in text


# --- status handling ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (504, True), (408, True), (429, True), (422, True),
     (409, True), (400, False), (401, False), (403, False), (404, False), (413, False), (410, False)],
)
def test_status_decides_whether_to_retry(receiver: Receiver, status: int, retryable: bool) -> None:
    receiver.respond([status])
    outcome = deliver(webhook(receiver.url()))
    assert (outcome.ok, outcome.status, outcome.retryable) == (False, status, retryable)
    assert outcome.error is not None and outcome.error.startswith(f"HTTP {status}")


def test_any_2xx_is_success(receiver: Receiver) -> None:
    receiver.respond([204])
    assert deliver(webhook(receiver.url())).ok


def test_error_carries_the_start_of_the_response_body(receiver: Receiver) -> None:
    receiver.respond([(400, {"Content-Type": "text/plain"}, b"invalid_payload\n" + b"x" * 5000)])
    outcome = deliver(webhook(receiver.url()))
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 400: invalid_payload x")
    assert len(outcome.error) < 300


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_a_failure_and_not_followed(receiver: Receiver, status: int) -> None:
    receiver.respond([(status, {"Location": receiver.url("/elsewhere")})])
    outcome = deliver(webhook(receiver.url()))
    assert (outcome.ok, outcome.status, outcome.retryable) == (False, status, True)
    assert outcome.error == f"HTTP {status}: redirect not followed"
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_429_retry_after_seconds(receiver: Receiver) -> None:
    receiver.respond([(429, {"Retry-After": "120"})])
    outcome = deliver(webhook(receiver.url()))
    assert (outcome.status, outcome.retryable, outcome.retry_after) == (429, True, 120.0)


def test_503_retry_after_http_date(receiver: Receiver) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    receiver.respond([(503, {"Retry-After": later})])
    outcome = deliver(webhook(receiver.url()), now=now)
    assert outcome.retry_after == 90.0


def test_retry_after_in_the_past_means_now(receiver: Receiver) -> None:
    now = datetime.now(UTC)
    earlier = format_datetime(now - timedelta(hours=1), usegmt=True)
    receiver.respond([(503, {"Retry-After": earlier})])
    assert deliver(webhook(receiver.url()), now=now).retry_after == 0.0


def test_discord_json_retry_after(receiver: Receiver) -> None:
    body = b'{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}'
    receiver.respond([(429, {"Content-Type": "application/json"}, body)])
    outcome = deliver(webhook(receiver.url(), format="discord"))
    assert (outcome.status, outcome.retry_after) == (429, 1.5)


def test_unreadable_retry_after_is_ignored(receiver: Receiver) -> None:
    receiver.respond([(503, {"Retry-After": "soon"})])
    outcome = deliver(webhook(receiver.url()))
    assert outcome.retryable and outcome.retry_after is None


# --- network trouble ----------------------------------------------------------------------


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_timeout_is_retryable(silent_url: str) -> None:
    outcome = deliver(webhook(silent_url), timeout=0.3)
    assert outcome == Outcome(False, None, "timed out", True, None, outcome.elapsed_ms)
    assert 250 <= outcome.elapsed_ms < 5000


def test_connection_refused_is_retryable(closed_url: str) -> None:
    outcome = deliver(webhook(closed_url))
    assert outcome == Outcome(False, None, "connection refused", True, None, outcome.elapsed_ms)


def test_unsupported_scheme_is_not_retryable() -> None:
    outcome = deliver(webhook("ftp://example.com/hook"))
    assert (outcome.ok, outcome.status, outcome.retryable) == (False, None, False)


# --- retry schedule -----------------------------------------------------------------------


class NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return 1.0


FAILED = Outcome(False, 503, "HTTP 503", True, None, 10)


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, "5s"), (2, "5m"), (3, "30m"), (4, "2h"), (5, "5h"), (6, "10h"), (7, "10h")],
)
def test_default_schedule_is_svix(attempts: int, delay: str) -> None:
    assert next_attempt_delay(attempts, FAILED, rng=NoJitter()) == parse_duration(delay)


def test_schedule_gives_up_after_eight_attempts() -> None:
    assert len(DEFAULT_RETRY) == 7
    assert next_attempt_delay(8, FAILED) is None


def test_a_webhook_schedule_of_its_own() -> None:
    schedule = (timedelta(seconds=1), timedelta(seconds=2))
    assert next_attempt_delay(2, FAILED, schedule=schedule, rng=NoJitter()) == timedelta(seconds=2)
    assert next_attempt_delay(3, FAILED, schedule=schedule) is None
    assert next_attempt_delay(1, FAILED, schedule=()) is None  # retry = [] never retries


def test_jitter_stays_within_twenty_percent() -> None:
    rng = random.Random(7)
    delays = {next_attempt_delay(2, FAILED, rng=rng) for _ in range(200)}
    assert all(timedelta(seconds=240) <= d <= timedelta(seconds=360) for d in delays if d)
    assert min(d for d in delays if d) < timedelta(seconds=260) and max(d for d in delays if d) > timedelta(seconds=340)


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(True, 200, None, False, None, 10),
        Outcome(False, 400, "HTTP 400", False, None, 10),
        Outcome(False, 410, "HTTP 410", False, None, 10),
        Outcome(False, 413, "HTTP 413", False, None, 10),
    ],
)
def test_no_retry_for_success_or_permanent_failure(outcome: Outcome) -> None:
    assert next_attempt_delay(1, outcome) is None


def test_retry_after_longer_than_the_schedule_wins() -> None:
    throttled = Outcome(False, 429, "HTTP 429", True, 100.0, 10)
    assert next_attempt_delay(1, throttled, rng=random.Random(1)) == timedelta(seconds=100)


def test_retry_after_shorter_than_the_schedule_does_not_hurry_it() -> None:
    throttled = Outcome(False, 429, "HTTP 429", True, 1.0, 10)
    assert next_attempt_delay(2, throttled, rng=NoJitter()) == timedelta(minutes=5)


def test_retry_after_is_clamped_to_ten_hours() -> None:
    throttled = Outcome(False, 503, "HTTP 503", True, 86400.0, 10)
    assert next_attempt_delay(1, throttled, rng=NoJitter()) == timedelta(hours=10)


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        next_attempt_delay(0, FAILED)
