"""The outbox: send the alerts that are due, record each attempt, schedule retries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.breaker import Breakers
from monitor.bundling import hour_start, next_hour, split_for
from monitor.config import FEED_HEALTH, WebhookConfig
from monitor.deliver import GONE, Outcome, Sender, next_attempt_delay
from monitor.digest_store import DigestStore, PendingDigest
from monitor.errors import LeaseLost
from monitor.formats import AlertMessage, DigestMessage, Message
from monitor.log import event
from monitor.metrics import Metrics
from monitor.pacing import Buckets
from monitor.runtime import Runtime
from monitor.store import PendingAlert, Store

BATCH = 100
# A chunk's sends take at most the sender's 15 s timeout, and a batch's leases are renewed
# before each chunk: a deliverer that dies loses its leases after this, and its alerts are
# due again for the others.
LEASE = timedelta(seconds=60)
CHUNK = 5  # one webhook's messages in flight at once within a batch (the breaker's threshold)

Delivery = PendingAlert | PendingDigest  # one message: a single alert, or a digest of several


@dataclass
class DeliveryStats:
    """Alerts per outcome in one pass (a digest counts each alert it carries)."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def to_message(alert: PendingAlert, runtime: Runtime) -> AlertMessage:
    """Outbox row → what the webhook says; the topic title comes from the current config."""
    topic = runtime.topics_by_name.get(alert.topic)
    title = "Feed health" if alert.topic == FEED_HEALTH else topic.title if topic else None
    return AlertMessage(
        alert_id=alert.id, created_at=alert.created_at, topic_name=alert.topic,
        topic_title=title, title=alert.title, url=alert.link,
        summary=alert.summary, published=alert.published, guid=alert.guid,
        feed_name=alert.feed_name, feed_url=alert.feed_url, matched=alert.matched,
        sources=alert.sources, source_names=alert.source_names, follow_up=alert.follow_up,
    )


def to_digest_message(digest: PendingDigest, runtime: Runtime) -> DigestMessage:
    topic = runtime.topics_by_name.get(digest.topic)
    return DigestMessage(
        digest_id=digest.id, created_at=digest.created_at, topic_name=digest.topic,
        topic_title=topic.title if topic else None,
        alerts=tuple(to_message(a, runtime) for a in digest.alerts),
    )


def message_for(delivery: Delivery, runtime: Runtime) -> Message:
    if isinstance(delivery, PendingDigest):
        return to_digest_message(delivery, runtime)
    return to_message(delivery, runtime)


class Outbox:
    """Delivers pending alerts; one pass at a time (the scheduler guarantees it)."""

    def __init__(self, store: Store, sender: Sender, runtime: Runtime,
                 clock: Callable[[], datetime], rng: random.Random | None = None,
                 metrics: Metrics | None = None):
        self.store = store
        self.sender = sender
        self.runtime = runtime
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = metrics or Metrics()
        self.digests = DigestStore(store)
        self.breakers = Breakers()
        self.buckets = Buckets()

    async def deliver_due(self) -> DeliveryStats:
        """Send every message that is due now, in batches, until none is left due.

        First alerts are held and bundled into digests (`digest`, `max_per_hour`). A
        webhook whose circuit is open is left alone (its alerts wait, pending, without
        spending retries); a half-open one gets one probe message; a rate-limited one gets
        as many as its bucket holds, and the rest wait for the next pass. Within a batch
        each webhook's messages go out a few at a time, so that a dead endpoint opens its
        circuit after a handful of attempts instead of taking the whole batch's time."""
        stats = DeliveryStats()
        runtime = self.runtime  # one snapshot per pass, as a poll keeps one
        disabled = await asyncio.to_thread(self.store.disabled_webhooks)
        hooks = {name: hook for name, hook in runtime.webhooks_by_name.items() if name not in disabled}
        await asyncio.to_thread(self._bundle, hooks, self.clock())
        gone: set[str] = set()  # answered 410 in this pass: off from now on
        while True:
            now = self.clock()
            due: list[Delivery] = []
            free: list[str] = []  # closed circuit, no pacing: claimed together
            for name, hook in hooks.items():
                state = self.breakers.state(name, now)
                if state == "open":
                    continue
                paced = hook.rate_limit is not None or hook.digest or hook.max_per_hour
                if state == "closed" and not paced:
                    free.append(name)
                    continue
                allowance = BATCH if hook.rate_limit is None else \
                    min(BATCH, self.buckets.available(name, hook.rate_limit, now))
                if state == "half_open":
                    allowance = min(allowance, 1)
                claimed = await asyncio.to_thread(self._claim_paced, hook, now, allowance)
                if claimed and state == "half_open":
                    self.breakers.probe(name)
                due += claimed
            if free:
                due += await asyncio.to_thread(self.digests.claim_due, now, BATCH, free, LEASE)
                due += await asyncio.to_thread(self.store.claim_due_alerts, now, BATCH, free, LEASE)
            if not due:
                return stats
            by_hook: dict[str, list[Delivery]] = {}
            for delivery in due:
                by_hook.setdefault(delivery.webhook, []).append(delivery)
            await asyncio.gather(*(self._send_queue(runtime, hooks[name], queue, stats, gone)
                                   for name, queue in by_hook.items()))
            for name in gone:
                hooks.pop(name, None)

    def _bundle(self, hooks: dict[str, WebhookConfig], now: datetime) -> None:
        """Hold a digest webhook's new alerts for its window; turn each topic's held alerts
        whose window has closed into digests (a disabled or removed webhook's wait)."""
        for name, hook in hooks.items():
            if hook.digest:
                until = now + hook.digest
                if held := self.digests.hold(name, now=now, until=until, due_only=False):
                    event("alerts_held", webhook=name, alerts=held, until=until.isoformat(timespec="seconds"),
                          reason="digest")
        for name, topic in self.digests.closed_windows(now):
            if name not in hooks:
                continue
            for ids in split_for(hooks[name].format, self.digests.held(name, topic)):
                if made := self.digests.bundle(name, topic, ids, now=now):
                    event("digest_created", digest=made[0], webhook=name, topic=topic, alerts=made[1])

    def _claim_paced(self, hook: WebhookConfig, now: datetime, allowance: int) -> list[Delivery]:
        """Up to `allowance` messages for a webhook with pacing: digests first; then, unless
        every alert goes in a digest, single alerts within the hour's `max_per_hour`
        (what finds it spent is held for the digest at the top of the next hour)."""
        if allowance <= 0:
            return []
        claimed: list[Delivery] = list(self.digests.claim_due(now, allowance, [hook.name], LEASE))
        room = allowance - len(claimed)
        if hook.digest or room <= 0:
            return claimed
        if hook.max_per_hour:
            left = hook.max_per_hour - self.digests.singles_sent(hook.name, since=hour_start(now))
            if left <= 0:
                until = next_hour(now)
                if held := self.digests.hold(hook.name, now=now, until=until, due_only=True):
                    event("alerts_held", webhook=hook.name, alerts=held,
                          until=until.isoformat(timespec="seconds"), reason="max_per_hour")
                return claimed
            room = min(room, left)
        return claimed + self.store.claim_due_alerts(now, room, [hook.name], LEASE)

    async def _send_queue(self, runtime: Runtime, hook: WebhookConfig, queue: list[Delivery],
                          stats: DeliveryStats, gone: set[str]) -> None:
        """One webhook's share of a batch, a few at a time while its circuit stays closed."""
        for start in range(0, len(queue), CHUNK):
            if hook.name in gone or start and self.breakers.state(hook.name, self.clock()) != "closed":
                # Opened (or gone) mid-batch: hand the rest back, untried and unspent.
                await asyncio.to_thread(self._release, queue[start:])
                return
            if start:
                await asyncio.to_thread(self._renew, queue[start:])
            chunk = queue[start:start + CHUNK]
            if hook.rate_limit is not None:  # the allowance was counted at the claim
                for _ in chunk:
                    self.buckets.take(hook.name, hook.rate_limit, self.clock())
            outcomes = await asyncio.gather(*(
                self.sender.send(message_for(d, runtime), hook, now=self.clock()) for d in chunk))
            for alert, outcome in zip(chunk, outcomes, strict=True):
                await asyncio.to_thread(self._record, alert, outcome, hook, stats)
                if outcome.status == GONE:
                    gone.add(hook.name)
                else:
                    self._watch(hook.name, outcome)

    def _release(self, deliveries: list[Delivery]) -> None:
        self.store.release_alerts([d for d in deliveries if isinstance(d, PendingAlert)])
        self.digests.release([d for d in deliveries if isinstance(d, PendingDigest)])

    def _renew(self, deliveries: list[Delivery]) -> None:
        self.store.renew_alerts([d for d in deliveries if isinstance(d, PendingAlert)], LEASE)
        self.digests.renew([d for d in deliveries if isinstance(d, PendingDigest)], LEASE)

    def _watch(self, name: str, outcome: Outcome) -> None:
        """Feed the circuit: a failure a retry could fix counts; a 4xx the endpoint answered
        deliberately (a dead letter) shows it is alive."""
        change = self.breakers.record(name, outcome.ok or not outcome.retryable, self.clock())
        if change == "opened":
            retry_at = self.breakers.retry_at(name)
            event("circuit_opened", logging.WARNING, webhook=name, failures=self.breakers.threshold,
                  probe_at=retry_at.isoformat(timespec="seconds") if retry_at else None,
                  note="its alerts wait, pending; one probe tests it again")
        elif change == "closed":
            event("circuit_closed", webhook=name)

    def _record(self, delivery: Delivery, outcome: Outcome, hook: WebhookConfig,
                stats: DeliveryStats) -> None:
        now = self.clock()
        attempts = delivery.attempts + 1
        if isinstance(delivery, PendingDigest):
            count = len(delivery.alerts)
            fields: dict[str, Any] = dict(digest=delivery.id, alerts=count)
        else:
            count, fields = 1, dict(alert=delivery.id)
        fields.update(topic=delivery.topic, webhook=delivery.webhook, status=outcome.status,
                      attempt=attempts, ms=outcome.elapsed_ms)
        gone = outcome.status == GONE
        delay = None if outcome.ok or gone else next_attempt_delay(
            attempts, outcome, schedule=hook.retry, rng=self.rng)
        if outcome.ok:
            result, retry_at = "delivered", None
        elif gone:
            # The endpoint is gone: the webhook is switched off and its alerts wait,
            # pending, for a reload to switch it on again (its URL fixed, say).
            result, retry_at = "retry", now
        elif delay is None:
            result, retry_at = "failed", None
        else:
            result, retry_at = "retry", now + delay
        attempt: dict[str, Any] = dict(now=now, status_code=outcome.status, error=outcome.error,
                       elapsed_ms=outcome.elapsed_ms, outcome=result, next_attempt_at=retry_at)
        try:
            if isinstance(delivery, PendingDigest):
                self.digests.record_attempt(delivery, **attempt)
            else:
                self.store.record_attempt(delivery.id, lease_token=delivery.lease_token, **attempt)
        except LeaseLost:
            # This send outlived its lease and another deliverer has the message now: its
            # record stands (a receiver may see this id twice: at-least-once).
            event("delivery_lease_lost", logging.WARNING, **fields)
            return
        self.metrics.delivered(result, outcome.elapsed_ms / 1000)
        if outcome.ok:
            stats.delivered += count
            event("delivered", **fields)
        elif gone:
            stats.retrying += count
            if hook.name not in self.store.disabled_webhooks():
                self.store.disable_webhook(hook.name, reason=outcome.error or "HTTP 410", now=now)
                event("webhook_disabled", logging.ERROR, webhook=hook.name, error=outcome.error,
                      note="its alerts wait; a reload or restart enables it again")
        elif result == "failed":
            stats.failed += count
            event("delivery_failed", logging.ERROR, error=outcome.error, **fields)
        else:
            stats.retrying += count
            assert retry_at is not None
            event("delivery_retry", logging.WARNING, error=outcome.error,
                  retry_at=retry_at.isoformat(timespec="seconds"), **fields)
