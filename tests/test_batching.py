"""Polls stored in batches, as the daemon stores them: one transaction for many feeds."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from monitor.batching import Batcher
from monitor.errors import StorageError
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.tables import feeds, items
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config

FEEDS = 4


def batched_harness(tmp_path: Path, server: FeedServer, database: str) -> Harness:
    extra = "".join(f'\n[[feeds]]\nurl = "{server.url(f"/{n}.xml")}"\n' for n in range(1, FEEDS))
    server.set("/a.xml", rss([{"title": "Ceasefire talks in feed a", "guid": "a", "link": "https://n.example/a"}]))
    for n in range(1, FEEDS):
        server.set(f"/{n}.xml", rss([{"title": f"Ceasefire talks in feed {n}", "guid": f"g{n}",
                                      "link": f"https://n.example/{n}"}]))
    return Harness(write_config(tmp_path, server, database, first_poll="all", extra_feeds=extra))


def poll_together(h: Harness, before_polls: object = None) -> list:
    """Claim every feed and poll them all at once through a batching pipeline."""
    async def go() -> list:
        async with Fetcher(timeout=10) as fetcher:
            pipeline = Pipeline(h.store, fetcher, h.runtime, h.clock, batched=True)
            assert pipeline.parsed is not None
            pipeline.parsed.max_batch, pipeline.parsed.max_wait = FEEDS, 30  # all polls in one batch
            due = h.store.claim_due_feeds(h.clock(), 100, timedelta(minutes=1), all_feeds=True)
            if callable(before_polls):
                before_polls(due)
            return await asyncio.gather(*(pipeline.poll(f) for f in due), return_exceptions=True)
    return asyncio.run(go())


def stored_items(h: Harness) -> list[str]:
    with h.store.engine.connect() as conn:
        return sorted(conn.execute(select(items.c.title)).scalars())


def test_a_batch_stores_every_poll_but_the_one_whose_lease_was_taken(tmp_path: Path, server: FeedServer,
                                                                     database: str) -> None:
    h = batched_harness(tmp_path, server, database)

    def steal_one(due: list) -> None:
        with h.store.engine.begin() as conn:  # another poller took feed a's lease meanwhile
            conn.execute(update(feeds).where(feeds.c.url == server.url("/a.xml")).values(lease_owner="other"))

    outcomes = poll_together(h, steal_one)
    by_url = {o.feed_url: o for o in outcomes}
    assert len(by_url) == FEEDS
    assert not by_url[server.url("/a.xml")].ok and "lapsed" in by_url[server.url("/a.xml")].error
    assert all(o.ok and o.new == 1 and o.alerts == 1 for url, o in by_url.items() if url != server.url("/a.xml"))
    assert stored_items(h) == sorted(f"Ceasefire talks in feed {n}" for n in range(1, FEEDS))
    assert len(h.alerts()) == FEEDS - 1
    assert h.feed_row(server.url("/a.xml"))["lease_owner"] == "other"  # left to its new poller


def test_a_database_error_fails_the_whole_batch_and_writes_nothing(tmp_path: Path, server: FeedServer,
                                                                  database: str) -> None:
    h = batched_harness(tmp_path, server, database)
    # A real refusal by the database, for one item of one feed.
    with h.store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON items WHEN NEW.title LIKE '%feed a' "
                              "BEGIN SELECT RAISE(ABORT, 'poisoned item'); END"))
        else:
            conn.execute(text("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.title LIKE '%feed a' "
                              "THEN RAISE EXCEPTION 'poisoned item'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION poison()"))

    outcomes = poll_together(h)
    assert len(outcomes) == FEEDS
    assert all(isinstance(o, StorageError) and "poisoned item" in str(o) for o in outcomes)
    assert stored_items(h) == [] and h.alerts() == []
    with h.store.engine.connect() as conn:  # no feed row moved either: all are polled again
        assert conn.execute(select(func.count()).select_from(feeds).where(feeds.c.last_poll_at.is_not(None))) \
            .scalar_one() == 0


def test_batcher_gives_each_record_its_result_and_survives_a_cancelled_waiter() -> None:
    batches: list[list[int]] = []

    def square_all(records: list[int]) -> list[int]:
        batches.append(records)
        return [r * r for r in records]

    async def go() -> list[int]:
        batcher = Batcher(square_all, max_batch=3)
        waiters = [asyncio.ensure_future(batcher.record(n)) for n in range(5)]
        await asyncio.sleep(0)
        waiters[1].cancel()  # its poll was cancelled: the others still get their results
        results = await asyncio.gather(*waiters, return_exceptions=True)
        return [r if isinstance(r, int) else -1 for r in results]

    assert asyncio.run(go()) == [0, -1, 4, 9, 16]
    assert batches == [[0, 1, 2], [3, 4]]  # a full batch at once, the rest after the wait


def test_batcher_fails_every_record_of_a_failed_write() -> None:
    def refuse(records: list[int]) -> list[int]:
        raise StorageError("database is locked")

    async def go() -> list:
        batcher = Batcher(refuse)
        return await asyncio.gather(*(batcher.record(n) for n in range(3)), return_exceptions=True)

    assert [str(e) for e in asyncio.run(go())] == ["database is locked"] * 3
    with pytest.raises(StorageError):
        asyncio.run(Batcher(refuse).record(1))


def test_batcher_writes_one_batch_at_a_time_and_groups_what_arrives_meanwhile() -> None:
    batches: list[list[int]] = []
    release = threading.Event()
    writing = threading.Lock()

    def slow_write(records: list[int]) -> list[int]:
        assert writing.acquire(blocking=False), "two writes at once"
        try:
            batches.append(records)
            release.wait(5)
            return records
        finally:
            writing.release()

    async def go() -> list[int]:
        batcher = Batcher(slow_write, max_batch=3, max_wait=0.01)
        first = asyncio.ensure_future(batcher.record(0))
        while not batches:  # the first batch is being written...
            await asyncio.sleep(0.01)
        later = [asyncio.ensure_future(batcher.record(n)) for n in range(1, 6)]
        await asyncio.sleep(0.1)  # ...and nothing else starts meanwhile, full batch or not
        assert batches == [[0]]
        release.set()
        return await asyncio.gather(first, *later)

    assert asyncio.run(go()) == [0, 1, 2, 3, 4, 5]
    assert batches == [[0], [1, 2, 3], [4, 5]]
