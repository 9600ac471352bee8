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
from monitor.config import WebhookConfig
from monitor.deliver import GONE, Outcome, Sender, next_attempt_delay
from monitor.errors import LeaseLost
from monitor.formats import AlertMessage
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
CHUNK = 5  # one webhook's alerts in flight at once within a batch (the breaker's threshold)


@dataclass
class DeliveryStats:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def to_message(alert: PendingAlert, runtime: Runtime) -> AlertMessage:
    """Outbox row → what the webhook says; the topic title comes from the current config."""
    topic = runtime.topics_by_name.get(alert.topic)
    return AlertMessage(
        alert_id=alert.id, created_at=alert.created_at, topic_name=alert.topic,
        topic_title=topic.title if topic else None, title=alert.title, url=alert.link,
        summary=alert.summary, published=alert.published, guid=alert.guid,
        feed_name=alert.feed_name, feed_url=alert.feed_url, matched=alert.matched,
    )


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
        self.breakers = Breakers()
        self.buckets = Buckets()

    async def deliver_due(self) -> DeliveryStats:
        """Send every alert that is due now, in batches, until none is left due.

        A webhook whose circuit is open is left alone (its alerts wait, pending, without
        spending retries); a half-open one gets one probe alert; a rate-limited one gets as
        many as its bucket holds, and the rest wait for the next pass. Within a batch each
        webhook's alerts go out a few at a time, so that a dead endpoint opens its circuit
        after a handful of attempts instead of taking the whole batch's time."""
        stats = DeliveryStats()
        runtime = self.runtime  # one snapshot per pass, as a poll keeps one
        disabled = await asyncio.to_thread(self.store.disabled_webhooks)
        hooks = {name: hook for name, hook in runtime.webhooks_by_name.items() if name not in disabled}
        gone: set[str] = set()  # answered 410 in this pass: off from now on
        while True:
            now = self.clock()
            due: list[PendingAlert] = []
            free: list[str] = []  # closed circuit, no rate limit: claimed together
            for name, hook in hooks.items():
                state = self.breakers.state(name, now)
                if state == "open":
                    continue
                allowance = BATCH if hook.rate_limit is None else \
                    min(BATCH, self.buckets.available(name, hook.rate_limit, now))
                if state == "half_open":
                    allowance = min(allowance, 1)
                if state == "closed" and hook.rate_limit is None:
                    free.append(name)
                elif allowance:
                    claimed = await asyncio.to_thread(self.store.claim_due_alerts, now, allowance,
                                                      [name], LEASE)
                    if claimed and state == "half_open":
                        self.breakers.probe(name)
                    due += claimed
            if free:
                due += await asyncio.to_thread(self.store.claim_due_alerts, now, BATCH, free, LEASE)
            if not due:
                return stats
            by_hook: dict[str, list[PendingAlert]] = {}
            for alert in due:
                by_hook.setdefault(alert.webhook, []).append(alert)
            await asyncio.gather(*(self._send_queue(runtime, hooks[name], queue, stats, gone)
                                   for name, queue in by_hook.items()))
            for name in gone:
                hooks.pop(name, None)

    async def _send_queue(self, runtime: Runtime, hook: WebhookConfig, queue: list[PendingAlert],
                          stats: DeliveryStats, gone: set[str]) -> None:
        """One webhook's share of a batch, a few at a time while its circuit stays closed."""
        for start in range(0, len(queue), CHUNK):
            if hook.name in gone or start and self.breakers.state(hook.name, self.clock()) != "closed":
                # Opened (or gone) mid-batch: hand the rest back, untried and unspent.
                await asyncio.to_thread(self.store.release_alerts, queue[start:])
                return
            if start:
                await asyncio.to_thread(self.store.renew_alerts, queue[start:], LEASE)
            chunk = queue[start:start + CHUNK]
            if hook.rate_limit is not None:  # the allowance was counted at the claim
                for _ in chunk:
                    self.buckets.take(hook.name, hook.rate_limit, self.clock())
            outcomes = await asyncio.gather(*(
                self.sender.send(to_message(a, runtime), hook, now=self.clock()) for a in chunk))
            for alert, outcome in zip(chunk, outcomes, strict=True):
                await asyncio.to_thread(self._record, alert, outcome, hook, stats)
                if outcome.status == GONE:
                    gone.add(hook.name)
                else:
                    self._watch(hook.name, outcome)

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

    def _record(self, alert: PendingAlert, outcome: Outcome, hook: WebhookConfig,
                stats: DeliveryStats) -> None:
        now = self.clock()
        attempts = alert.attempts + 1
        fields: dict[str, Any] = dict(alert=alert.id, topic=alert.topic, webhook=alert.webhook,
                                      status=outcome.status, attempt=attempts, ms=outcome.elapsed_ms)
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
        try:
            self.store.record_attempt(alert.id, now=now, status_code=outcome.status,
                                      error=outcome.error, elapsed_ms=outcome.elapsed_ms,
                                      outcome=result, next_attempt_at=retry_at,
                                      lease_token=alert.lease_token)
        except LeaseLost:
            # This send outlived its lease and another deliverer has the alert now: its
            # record stands (a receiver may see this id twice: at-least-once).
            event("delivery_lease_lost", logging.WARNING, **fields)
            return
        self.metrics.delivered(result, outcome.elapsed_ms / 1000)
        if outcome.ok:
            stats.delivered += 1
            event("delivered", **fields)
        elif gone:
            stats.retrying += 1
            if hook.name not in self.store.disabled_webhooks():
                self.store.disable_webhook(hook.name, reason=outcome.error or "HTTP 410", now=now)
                event("webhook_disabled", logging.ERROR, webhook=hook.name, error=outcome.error,
                      note="its alerts wait; a reload or restart enables it again")
        elif result == "failed":
            stats.failed += 1
            event("delivery_failed", logging.ERROR, error=outcome.error, **fields)
        else:
            stats.retrying += 1
            assert retry_at is not None
            event("delivery_retry", logging.WARNING, error=outcome.error,
                  retry_at=retry_at.isoformat(timespec="seconds"), **fields)
