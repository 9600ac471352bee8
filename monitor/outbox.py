"""The outbox: send the alerts that are due, record each attempt, schedule retries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.config import WebhookConfig
from monitor.deliver import GONE, Outcome, Sender, next_attempt_delay
from monitor.formats import AlertMessage
from monitor.errors import LeaseLost
from monitor.log import event
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.store import PendingAlert, Store

BATCH = 100
# A batch's sends take at most the sender's 15 s timeout (they run at once, 16 at a time,
# so a full batch of slow receivers takes several rounds): a deliverer that dies loses its
# leases after this, and the alerts are due again.
LEASE = timedelta(minutes=5)


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

    async def deliver_due(self) -> DeliveryStats:
        """Send every alert that is due now, in batches, until none is left due."""
        stats = DeliveryStats()
        runtime = self.runtime  # one snapshot per pass, as a poll keeps one
        disabled = await asyncio.to_thread(self.store.disabled_webhooks)
        hooks = {name: hook for name, hook in runtime.webhooks_by_name.items() if name not in disabled}
        while hooks:
            due = await asyncio.to_thread(self.store.claim_due_alerts, self.clock(), BATCH,
                                          list(hooks), LEASE)
            if not due:
                break
            outcomes = await asyncio.gather(*(
                self.sender.send(to_message(a, runtime), hooks[a.webhook], now=self.clock())
                for a in due
            ))
            for alert, outcome in zip(due, outcomes, strict=True):
                await asyncio.to_thread(self._record, alert, outcome,
                                        runtime.webhooks_by_name[alert.webhook], stats)
                if outcome.status == GONE:
                    hooks.pop(alert.webhook, None)
        return stats

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
