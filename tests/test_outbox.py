"""The outbox against real receivers: retries with one id, dead letters, a 410 that
disables one webhook (and a reload that enables it) while the others keep delivering."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from monitor.deliver import Sender
from monitor.outbox import DeliveryStats, Outbox
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD = [{"title": "Weather today", "guid": "a1", "link": "https://news.example/a1"}]
PEACE = {"title": "Envoys open peace talks in Riyadh", "guid": "a3", "link": "https://news.example/a3"}
TRUCE = {"title": "Ceasefire holds in the east", "guid": "a4", "link": "https://news.example/a4"}


def harness(tmp_path: Path, server: FeedServer, database: str, ops: Receiver, extra: str = "") -> Harness:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database, hook_url=ops.url(), extra_feeds=extra))
    h.poll_all()
    server.set("/a.xml", rss([PEACE, TRUCE, *OLD]))
    h.poll_all()
    return h


def deliver(h: Harness) -> DeliveryStats:
    async def go() -> DeliveryStats:
        async with Sender() as sender:
            return await Outbox(h.store, sender, h.runtime, h.clock).deliver_due()
    return asyncio.run(go())


def test_a_410_disables_only_that_webhook_until_a_reload(tmp_path: Path, server: FeedServer, database: str) -> None:
    with Receiver() as ops, Receiver() as chat:
        extra = f'[[webhooks]]\nname = "chat"\nurl = "{chat.url()}"\nformat = "slack"\nrate_limit = "none"\n'
        h = harness(tmp_path, server, database, ops, extra)
        ops.respond([410, 410])
        stats = deliver(h)
        assert len(ops.requests) == 2
        assert len(chat.received) == 2 and stats.delivered == 2  # chat is unaffected
        assert set(h.store.disabled_webhooks()) == {"ops"}
        assert h.store.pending_by_webhook() == {"ops": 2}  # nothing lost
        h.clock.advance(hours=1)
        assert deliver(h).delivered == 0 and len(ops.requests) == 2  # still off

        assert h.store.enable_webhooks(["ops", "chat"]) == ["ops"]  # what a reload does
        assert deliver(h).delivered == 2
        gone_id = ops.requests[0].headers["webhook-id"]
        assert gone_id in {r.headers["webhook-id"] for r in ops.received}


def test_retries_keep_the_id_and_a_permanent_status_is_a_dead_letter(
        tmp_path: Path, server: FeedServer, database: str) -> None:
    with Receiver(secret=SECRET) as ops:
        server.set("/a.xml", rss(OLD))
        h = Harness(write_config(tmp_path, server, database, hook_url=ops.url(),
                                 hook_extra=f'secret = "{SECRET}"\nretry = ["0s", "0s", "0s"]'))
        h.poll_all()
        server.set("/a.xml", rss([PEACE, TRUCE, *OLD]))
        h.poll_all()
        # The first alert: 500 three times, then 200; the second: 404, a dead letter at once.
        h.clock.now = datetime.now(UTC)  # signatures are checked against the real time
        ops.respond([500, 404, 500, 500, 200])
        stats = deliver(h)
        assert (stats.delivered, stats.failed) == (1, 1)
        ids = [r.headers["webhook-id"] for r in ops.requests]
        retried = [i for i in ids if ids.count(i) > 1]
        assert len(retried) == 4 and len(set(retried)) == 1  # one alert, four attempts, one id
        assert all(r.verified for r in ops.requests)
        [dead] = h.store.list_alerts(status="failed")
        assert dead["attempts"] == 1 and dead["last_error"].startswith("HTTP 404")


def test_a_rate_limit_paces_one_webhook_and_not_the_others(tmp_path: Path, server: FeedServer,
                                                            database: str) -> None:
    with Receiver() as slow, Receiver() as fast:
        extra = f'[[webhooks]]\nname = "fast"\nurl = "{fast.url()}"\n'
        server.set("/a.xml", rss(OLD))
        h = Harness(write_config(tmp_path, server, database, hook_url=slow.url(), extra_feeds=extra,
                                 hook_extra='rate_limit = "2/m"'))
        h.poll_all()
        stories = [{"title": f"Ceasefire, day {n}", "guid": f"d{n}", "link": f"https://n.example/d{n}"}
                   for n in range(5)]
        server.set("/a.xml", rss([*stories, *OLD]))
        h.poll_all()

        async def go() -> list[int]:
            sent = []
            async with Sender() as sender:
                outbox = Outbox(h.store, sender, h.runtime, h.clock)
                for _ in range(4):  # a pass every 30 s: the bucket of 2 refills one a pass
                    await outbox.deliver_due()
                    sent.append(len(slow.received))
                    h.clock.advance(seconds=30)
            return sent

        assert asyncio.run(go()) == [2, 3, 4, 5]  # a burst of 2, then 2 a minute
        assert len(fast.received) == 5  # an unlimited json webhook: all in the first pass
        assert h.store.pending_by_webhook() == {}
        assert len({r.headers["webhook-id"] for r in slow.received}) == 5
