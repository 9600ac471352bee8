"""The circuit breaker: pure state machine, then with a dead endpoint beside a healthy one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from monitor.breaker import FIRST_COOLDOWN, MAX_COOLDOWN, Breakers
from monitor.deliver import Sender
from monitor.outbox import Outbox
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config
from tests.support.receiver import Receiver

T = datetime(2026, 12, 1, tzinfo=UTC)


def test_opens_after_the_threshold_and_probes_once() -> None:
    b = Breakers(threshold=3)
    assert [b.record("x", False, T) for _ in range(3)] == [None, None, "opened"]
    assert b.state("x", T) == "open" and b.state("other", T) == "closed"
    assert b.state("x", T + FIRST_COOLDOWN) == "half_open"
    b.probe("x")
    assert b.state("x", T + FIRST_COOLDOWN) == "open"  # one probe at a time
    assert b.record("x", False, T + FIRST_COOLDOWN) is None  # the probe failed
    assert b.state("x", T + 2 * FIRST_COOLDOWN) == "open"  # twice as long now
    assert b.state("x", T + 3 * FIRST_COOLDOWN) == "half_open"
    b.probe("x")
    assert b.record("x", True, T + 3 * FIRST_COOLDOWN) == "closed"
    assert b.state("x", T + 3 * FIRST_COOLDOWN) == "closed"


def test_a_success_resets_the_count_and_the_cooldown_is_capped() -> None:
    b = Breakers(threshold=2)
    b.record("x", False, T)
    b.record("x", True, T)
    assert b.record("x", False, T) is None  # the count started over
    now = T
    b.record("x", False, now)
    for _ in range(20):
        now = b.retry_at("x")  # type: ignore[assignment]
        b.probe("x")
        b.record("x", False, now)
    assert b.retry_at("x") - now == MAX_COOLDOWN  # type: ignore[operator]


OLD = [{"title": "Weather today", "guid": "a1", "link": "https://news.example/a1"}]
STORIES = [{"title": f"Ceasefire talks, day {n}", "guid": f"c{n}", "link": f"https://news.example/c{n}"}
           for n in range(30)]


def test_a_dead_endpoint_waits_while_the_healthy_one_delivers(tmp_path: Path, server: FeedServer,
                                                               database: str) -> None:
    with Receiver() as dead, Receiver() as healthy:
        extra = f'[[webhooks]]\nname = "chat"\nurl = "{healthy.url()}"\nformat = "slack"\nrate_limit = "none"\n'
        server.set("/a.xml", rss(OLD))
        h = Harness(write_config(tmp_path, server, database, hook_url=dead.url(), extra_feeds=extra))
        h.poll_all()
        server.set("/a.xml", rss([*STORIES, *OLD]))
        h.poll_all()
        dead.respond([503] * 6)  # the first five attempts, then the first probe; then 200s

        async def go() -> None:
            async with Sender() as sender:
                outbox = Outbox(h.store, sender, h.runtime, h.clock)
                await outbox.deliver_due()
                assert len(healthy.received) == 30
                assert len(dead.requests) == 5  # the circuit opened; 25 alerts never tried
                assert h.store.pending_by_webhook() == {"ops": 30}
                h.clock.advance(seconds=10)  # their retry is due, the circuit still open
                await outbox.deliver_due()
                assert len(dead.requests) == 5
                h.clock.advance(minutes=1)  # half-open: one probe, which fails
                await outbox.deliver_due()
                assert len(dead.requests) == 6
                h.clock.advance(hours=11)  # the endpoint has recovered
                await outbox.deliver_due()  # the probe succeeds; everything goes
                assert len(dead.received) == 30
                assert h.store.pending_by_webhook() == {}

        asyncio.run(go())
        ids = [r.headers["webhook-id"] for r in dead.received]
        assert len(set(ids)) == 30
