"""Retention on real databases: old rows go in small batches, tombstones keep old items from
alerting again, and a tombstone lives as long as its feed still serves the item."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from monitor.retention import count_rows, prune
from monitor.tables import tombstones
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config

RETENTION = timedelta(days=90)
OLD = [{"title": "Weather today", "guid": "a1", "link": "https://news.example/a1"}]
STORY = {"title": "Envoys open peace talks in Riyadh", "guid": "a3", "link": "https://news.example/a3"}
FILLER = [{"title": f"Local news {n}", "guid": f"f{n}", "link": f"https://news.example/f{n}"}
          for n in range(10)]


def two_feeds(tmp_path: Path, server: FeedServer, database: str) -> Harness:
    extra = f'''
[[feeds]]
url = "{server.url('/b.xml')}"
name = "Feed B"
'''
    server.set("/a.xml", rss(OLD))
    server.set("/b.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database, extra_feeds=extra))
    h.poll_all()  # the baseline of both feeds
    return h


def deliver_all(h: Harness) -> None:
    for alert in h.store.due_alerts(h.clock(), 100, ["ops"]):
        h.store.record_attempt(alert.id, now=h.clock(), status_code=200, error=None, elapsed_ms=3,
                               outcome="delivered")


def tombstone_rows(h: Harness) -> int:
    with h.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tombstones)).scalar_one()


def test_pruned_items_leave_tombstones_and_never_alert_again(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = two_feeds(tmp_path, server, database)
    server.set("/a.xml", rss([STORY, *FILLER, *OLD]))
    h.clock.advance(minutes=11)
    h.poll_all()
    assert len(h.alerts()) == 1
    deliver_all(h)
    before = count_rows(h.store)
    assert before == {"items": 12, "alerts": 1, "digests": 0, "deliveries": 1, "tombstones": 0}

    # Nothing is old enough yet.
    assert prune(h.store, now=h.clock(), retention=RETENTION).items == 0

    h.clock.advance(days=91)
    stats = prune(h.store, now=h.clock(), retention=RETENTION, batch=5)
    assert (stats.items, stats.alerts, stats.attempts, stats.tombstones) == (12, 1, 1, 0)
    assert stats.batches >= 12 // 5 + 1  # bounded transactions, not one big one
    assert count_rows(h.store) == {"items": 0, "alerts": 0, "digests": 0, "deliveries": 0, "tombstones": 12}

    # The feed still serves the old story (and a new item): only the new one is new.
    fresh = {"title": "Markets close higher", "guid": "a9", "link": "https://news.example/a9"}
    server.set("/a.xml", rss([fresh, STORY, *FILLER, *OLD]))
    # The same old story appears in the other feed under another guid: no alert either,
    # while a genuinely new matching story there does alert.
    new_story = {"title": "Ceasefire agreed in Geneva", "guid": "b2", "link": "https://news.example/b2"}
    server.set("/b.xml", rss([dict(STORY, guid="b-1"), new_story]))
    new = {o.feed_url.rsplit("/", 1)[1]: o.new for o in h.poll_all()}
    assert new == {"a.xml": 1, "b.xml": 2}
    assert h.alerts() == [("Ceasefire agreed in Geneva", "peace", "ops")]


def test_a_pending_alert_keeps_its_item(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = two_feeds(tmp_path, server, database)
    server.set("/a.xml", rss([STORY, *OLD]))
    h.poll_all()
    h.clock.advance(days=91)
    stats = prune(h.store, now=h.clock(), retention=RETENTION)
    assert stats.items == 1 and stats.alerts == 0  # the baseline item went; the alerting one stayed
    [pending] = h.store.due_alerts(h.clock(), 10, ["ops"])
    assert pending.title == STORY["title"]


def test_a_tombstone_lives_while_its_feed_serves_the_item(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = two_feeds(tmp_path, server, database)
    h.clock.advance(days=91)
    assert prune(h.store, now=h.clock(), retention=RETENTION).items == 1
    assert tombstone_rows(h) == 1

    # A feed answering 304 for a year proves nothing: the tombstone stays.
    h.clock.advance(days=300)
    [outcome] = [o for o in h.poll_all() if o.feed_url.endswith("/a.xml")]
    assert outcome.status == 304
    assert prune(h.store, now=h.clock(), retention=RETENTION).tombstones == 0

    # Still served after a change: each read re-sights it, so it outlives the next cutoff
    # (without the refresh, its sighting of 100 days ago would now be past the cutoff).
    server.set("/a.xml", rss([*FILLER[:1], *OLD]))
    h.poll_all()
    h.clock.advance(days=100)
    server.set("/a.xml", rss([*FILLER[:2], *OLD]))
    h.poll_all()
    stats = prune(h.store, now=h.clock(), retention=RETENTION)
    assert (stats.items, stats.tombstones) == (1, 0)  # FILLER[0] is buried now; OLD stays
    assert tombstone_rows(h) == 2

    # Dropped by the feed: once the feed has been read without it past the cutoff, it goes.
    server.set("/a.xml", rss(FILLER[:3]))
    h.clock.advance(days=95)
    h.poll_all()
    stats = prune(h.store, now=h.clock(), retention=RETENTION)
    assert (stats.items, stats.tombstones) == (1, 1)  # FILLER[1] buried; OLD's tombstone gone
    assert tombstone_rows(h) == 2
    assert h.alerts() == []


def test_db_prune_command(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text('[monitor]\ndatabase = "sqlite:///state.db"\nretention = "30d"\n')
    missing = subprocess.run([sys.executable, "-m", "monitor", "db", "prune", "-c", str(config)],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 0, missing.stderr  # a new database: created, nothing to prune
    assert "pruned 0 items, 0 alerts, 0 attempts, 0 tombstones and 0 stories (retention 30d)" in missing.stdout
