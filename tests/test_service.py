"""Defects that only show after days of running, each pinned by a test: backoff overflow,
restarts undoing backoff, polls after a stop, reloads on the event loop or half applied,
in-memory SQLite, and two pollers racing for one feed."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from monitor import daemon as daemon_module
from monitor.config import load_config
from monitor.daemon import Daemon, run_once
from monitor.fetch import Fetcher
from monitor.pipeline import MAX_ERROR_BACKOFF, Pipeline, error_backoff
from monitor.runtime import Runtime
from monitor.store import NewItem
from monitor.tables import feeds, items
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config
from tests.support.receiver import Receiver

OLD = [{"title": "Weather today", "guid": "a1", "link": "https://news.example/a1"}]
PEACE = {"title": "Envoys open peace talks in Riyadh", "guid": "a3", "link": "https://news.example/a3"}


@pytest.mark.parametrize("errors", [38, 39, 40, 1_000, 10**9])
def test_error_backoff_never_overflows(errors: int) -> None:
    for interval in (timedelta(seconds=1), timedelta(minutes=10), timedelta(days=1)):
        assert error_backoff(interval, errors, None) == max(interval, MAX_ERROR_BACKOFF)


def test_a_feed_failing_for_weeks_is_still_recorded(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", b"down", status=503)
    h = Harness(write_config(tmp_path, server, database))
    with h.store.transaction() as conn:
        conn.execute(update(feeds).values(error_count=60))
    [outcome] = h.poll_all()
    assert not outcome.ok and outcome.status == 503
    row = h.feed_row(server.url("/a.xml"))
    assert row["error_count"] == 61 and row["next_poll_at"] == h.clock() + MAX_ERROR_BACKOFF


def test_restart_keeps_error_backoff_and_retry_after(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", b"slow down", status=429, headers={"Retry-After": "7200"})
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    held = h.feed_row(server.url("/a.xml"))["next_poll_at"]
    assert held == h.clock() + timedelta(hours=2)
    h.clock.advance(minutes=1)
    h.store.sync_feeds(h.runtime.feed_schedule(), h.clock())  # what a restart or SIGHUP does
    assert h.feed_row(server.url("/a.xml"))["next_poll_at"] == held


def test_a_shorter_interval_on_a_healthy_feed_applies_at_once(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    assert h.feed_row(server.url("/a.xml"))["next_poll_at"] > h.clock() + timedelta(minutes=8)
    h.store.sync_feeds([(server.url("/a.xml"), "Feed A", timedelta(minutes=1))], h.clock())
    assert h.feed_row(server.url("/a.xml"))["next_poll_at"] == h.clock() + timedelta(minutes=1)


def test_a_lapsed_lease_drops_the_late_poll_and_the_winner_is_kept(tmp_path: Path, server: FeedServer, database: str) -> None:
    """`once` beside `run`: poller A's lease lapses mid-pass, B takes the feed and records
    it; A's late result must write nothing and fail nothing."""
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    server.set("/a.xml", rss([PEACE, *OLD]))
    h.clock.advance(minutes=11)
    lease = timedelta(minutes=1)
    [late] = h.store.claim_due_feeds(h.clock(), 10, lease)
    h.clock.advance(minutes=2)
    [winner] = h.store.claim_due_feeds(h.clock(), 10, lease)
    assert winner.lease_token != late.lease_token

    async def poll(feed):  # noqa: ANN001, ANN202
        async with Fetcher(timeout=10) as fetcher:
            return await Pipeline(h.store, fetcher, h.runtime, h.clock).poll(feed)

    assert asyncio.run(poll(winner)).alerts == 1
    lost = asyncio.run(poll(late))
    assert not lost.ok and "lease" in (lost.error or "")
    assert h.alerts() == [(PEACE["title"], "peace", "ops")]
    row = h.feed_row(server.url("/a.xml"))
    assert row["lease_owner"] is None and row["error_count"] == 0


def test_an_item_another_poller_wrote_is_tolerated(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    item = NewItem(key="guid:x", story_key="s" * 64, guid="x", link=None, title="t", summary="",
                   published=None, alerts=())
    for _ in range(2):  # the second poller computed its new items before the first wrote them
        [feed] = h.store.claim_due_feeds(h.clock(), 10, timedelta(minutes=1), all_feeds=True)
        h.store.record_poll(feed, now=h.clock(), next_poll_at=h.clock(), result="200", etag=None,
                            last_modified=None, title=None, new_items=[item])
    with h.store.engine.connect() as conn:
        assert conn.execute(select(items.c.key).where(items.c.key == "guid:x")).all() == [("guid:x",)]


def test_a_poll_keeps_the_config_it_started_with(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    server.set("/a.xml", rss([PEACE, *OLD]), delay=0.5)
    h.clock.advance(minutes=11)
    other = Runtime.of(write_config(tmp_path, server, database, topics='''
[[topics]]
name = "weather"
query = "weather"
'''))

    async def go() -> None:
        async with Fetcher(timeout=10) as fetcher:
            pipeline = Pipeline(h.store, fetcher, h.runtime, h.clock)
            [feed] = h.store.claim_due_feeds(h.clock(), 10, timedelta(minutes=1))
            poll = asyncio.create_task(pipeline.poll(feed))
            await asyncio.sleep(0.2)  # the fetch is in flight
            pipeline.runtime = other  # a reload lands
            await poll

    asyncio.run(go())
    assert h.alerts() == [(PEACE["title"], "peace", "ops")]


def test_in_memory_sqlite_works_across_threads(tmp_path: Path, server: FeedServer) -> None:
    with Receiver() as receiver:
        server.set("/a.xml", rss([PEACE]))
        (tmp_path / "monitor.toml").write_text(f'''
[monitor]
database = "sqlite://"
first_poll = "all"

[[webhooks]]
name = "ops"
url = "{receiver.url()}"

[[feeds]]
url = "{server.url('/a.xml')}"

[[topics]]
name = "peace"
query = '"peace talks"'
''')
        config = load_config(tmp_path / "monitor.toml")
        assert asyncio.run(run_once(config, all_feeds=True)) == 0
        [alert] = receiver.wait_for(1)
        assert alert.json["data"]["item"]["title"] == PEACE["title"]


def daemon_config(tmp_path: Path, server: FeedServer) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'''
[monitor]
database = "sqlite:///state.db"

[[feeds]]
url = "{server.url('/a.xml')}"
''')
    return path


def test_a_claim_in_flight_at_stop_is_handed_back_not_polled(tmp_path: Path, server: FeedServer) -> None:
    server.set("/a.xml", rss(OLD))
    config = load_config(daemon_config(tmp_path, server))

    async def go() -> tuple[bool, list]:
        daemon = Daemon(config)
        service = daemon.service
        await asyncio.to_thread(service.apply, service.runtime)
        loop = asyncio.get_running_loop()
        claim = service.store.claim_due_feeds
        stopped = threading.Event()

        def claim_then_stop(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            claimed = claim(*args, **kwargs)
            loop.call_soon_threadsafe(daemon.stopping.set)  # SIGTERM arrives mid-claim
            loop.call_soon_threadsafe(stopped.set)
            return claimed

        service.store.claim_due_feeds = claim_then_stop  # type: ignore[method-assign]
        tick = asyncio.create_task(daemon.poll_tick())
        await asyncio.sleep(0)
        tracked = tick in daemon.inflight  # a stop's drain waits for the tick itself
        await tick
        polls = [t for t in daemon.inflight if t.get_name().startswith("poll:")]
        with service.store.engine.connect() as conn:
            lease = conn.execute(select(feeds.c.lease_owner, feeds.c.lease_until)).one()
        await service.aclose()
        return tracked and stopped.is_set(), [polls, tuple(lease)]

    tracked, (polls, lease) = asyncio.run(go())
    assert tracked
    assert polls == [] and lease == (None, None)  # handed back: due again at once
    assert server.count("/a.xml") == 0


def test_reload_loads_and_syncs_off_the_event_loop(tmp_path: Path, server: FeedServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server.set("/a.xml", rss(OLD))
    path = daemon_config(tmp_path, server)
    threads: dict[str, bool] = {}
    real_load = daemon_module.load_config

    def load(p):  # noqa: ANN001, ANN202
        threads["load"] = threading.current_thread() is threading.main_thread()
        return real_load(p)

    async def go() -> list[str]:
        daemon = Daemon(load_config(path))
        service = daemon.service
        sync = service.store.sync_feeds

        def sync_spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            threads["sync"] = threading.current_thread() is threading.main_thread()
            return sync(*args, **kwargs)

        service.store.sync_feeds = sync_spy  # type: ignore[method-assign]
        path.write_text(path.read_text() + f'\n[[feeds]]\nurl = "{server.url("/b.xml")}"\n')
        monkeypatch.setattr(daemon_module, "load_config", load)
        await daemon.reload()
        urls = [f.url for f in daemon.service.pipeline.runtime.config.feeds]
        await service.aclose()
        return urls

    urls = asyncio.run(go())
    assert threads == {"load": False, "sync": False}
    assert urls == [server.url("/a.xml"), server.url("/b.xml")]


def test_a_failing_maintenance_job_is_logged_and_the_daemon_goes_on(
        tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture) -> None:
    server.set("/a.xml", rss(OLD))
    config = load_config(daemon_config(tmp_path, server))

    async def go() -> None:
        daemon = Daemon(config)
        with daemon.service.store.transaction() as conn:  # a real fault: the table is gone
            conn.exec_driver_sql("DROP TABLE tombstones")
        await daemon.maintain()  # must not raise
        await daemon.service.aclose()

    with caplog.at_level("ERROR", logger="monitor"):
        asyncio.run(go())
    [record] = [r for r in caplog.records if r.getMessage() == "maintenance_failed"]
    assert "tombstones" in record.fields["error"]  # type: ignore[attr-defined]
