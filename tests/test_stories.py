"""One alert per story: near-identical reports across feeds, re-issued items, per-topic
dedupe, follow-ups and the story window — on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.neardup import fingerprint
from monitor.store import open_store
from monitor.stories import Report, StoryRules, place, record
from monitor.tables import alerts, stories, story_bands, story_entries, story_reports
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import T0, Harness, write_config
from tests.test_cli import monitor

WIRE = {"title": "Envoys open peace talks in Riyadh as ceasefire hopes rise",
        "description": "Negotiators from both sides met on Tuesday for the first direct round in months.",
        "guid": "a1", "link": "https://wire.example/2026/peace-talks-riyadh"}
# The same wire copy elsewhere: a new URL and guid, the outlet's name after the headline.
COPY_B = dict(WIRE, title=WIRE["title"] + " - Daily Courier", guid="b1", link="https://courier.example/world/881")
COPY_C = dict(WIRE, title="UPDATE: " + WIRE["title"], guid="c1", link="https://herald.example/a/12")
COPY_D = dict(WIRE, guid="d1", link="https://post.example/n/5")
# Overlapping words, another story.
OTHER = {"title": "Envoys leave Riyadh as peace talks collapse without a ceasefire deal",
         "description": "The delegations flew home on Friday after three days of fruitless meetings.",
         "guid": "a2", "link": "https://wire.example/2026/talks-collapse"}

PEACE = '''
[[topics]]
name = "peace"
query = '"peace talks" OR ceasefire'
{extra}
'''


def feeds(server: FeedServer, *names: str) -> str:
    return "".join(f'''
[[feeds]]
url = "{server.url(f'/{name}.xml')}"
name = "Feed {name.upper()}"
''' for name in names)


def harness(tmp_path: Path, server: FeedServer, database: str, *, topic_extra: str = "",
            monitor_extra: str = "") -> Harness:
    for name in "abcd":
        server.set(f"/{name}.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database, extra_feeds=feeds(server, "b", "c", "d"),
                             topics=PEACE.format(extra=topic_extra), monitor_extra=monitor_extra))
    h.poll_all()  # baselines: nothing of them alerts
    return h


def story_rows(h: Harness) -> list[tuple[str, int]]:
    with h.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(stories.c.key, stories.c.sources).order_by(stories.c.id))]


def alert_kinds(h: Harness) -> list[tuple[str, str | None]]:
    with h.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(alerts.c.topic, alerts.c.kind).order_by(alerts.c.created_at))]


def publish(h: Harness, server: FeedServer, name: str, *entries: dict) -> None:
    server.set(f"/{name}.xml", rss(list(entries)))
    h.clock.advance(minutes=11)
    h.poll_all()


def test_near_identical_reports_in_other_feeds_join_the_story_and_alert_once(
        tmp_path: Path, server: FeedServer, database: str) -> None:
    h = harness(tmp_path, server, database)
    publish(h, server, "a", WIRE)
    publish(h, server, "b", COPY_B)
    publish(h, server, "c", COPY_C)
    assert h.alerts() == [(WIRE["title"], "peace", "ops")]
    [(_, sources)] = [row for row in story_rows(h) if row[1] > 0]
    assert sources == 3

    publish(h, server, "d", COPY_D, OTHER)  # a distinct story with the same words alerts
    assert [title for title, _, _ in h.alerts()] == [WIRE["title"], OTHER["title"]]


def test_dedupe_item_alerts_every_report(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = harness(tmp_path, server, database, topic_extra='dedupe = "item"')
    publish(h, server, "a", WIRE)
    publish(h, server, "b", COPY_B)
    assert [title for title, _, _ in h.alerts()] == [WIRE["title"], COPY_B["title"]]
    assert max(sources for _, sources in story_rows(h)) == 2  # still one story, two sources


@pytest.mark.parametrize("mode", ["story", "item"])
def test_a_feed_reissuing_its_items_under_new_guids_and_urls_does_not_alert_again(
        tmp_path: Path, server: FeedServer, database: str, mode: str) -> None:
    h = harness(tmp_path, server, database, topic_extra=f'dedupe = "{mode}"')
    publish(h, server, "a", WIRE)
    # Overnight the feed moves to a new CMS: every guid and URL changes, the text does not.
    publish(h, server, "a", dict(WIRE, guid="cms2-991", link="https://wire.example/n/991"))
    assert h.alerts() == [(WIRE["title"], "peace", "ops")]
    assert max(sources for _, sources in story_rows(h)) == 1  # one source, reported twice


def test_a_follow_up_when_the_story_reaches_n_sources(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = harness(tmp_path, server, database, topic_extra="follow_ups = true\nfollow_up_sources = 3")
    publish(h, server, "a", WIRE)
    publish(h, server, "b", COPY_B)
    assert alert_kinds(h) == [("peace", None)]
    publish(h, server, "c", COPY_C)
    assert alert_kinds(h) == [("peace", None), ("peace", "follow_up")]
    publish(h, server, "d", COPY_D)  # one follow-up, not one per later source
    assert alert_kinds(h) == [("peace", None), ("peace", "follow_up")]


def test_reports_after_the_window_open_a_new_story(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = harness(tmp_path, server, database, monitor_extra='story_window = "24h"')
    publish(h, server, "a", WIRE)
    h.clock.advance(hours=25)
    publish(h, server, "b", COPY_B)
    assert [title for title, _, _ in h.alerts()] == [WIRE["title"], COPY_B["title"]]


def test_the_index_survives_a_restart(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = harness(tmp_path, server, database)
    publish(h, server, "a", WIRE)
    h.store.close()
    again = Harness(h.config)
    again.clock.now = h.clock.now
    publish(again, server, "b", COPY_B)
    assert again.alerts() == [(WIRE["title"], "peace", "ops")]


def test_two_instances_placing_the_same_story_at_once_open_one(postgres_url: str) -> None:
    """On PostgreSQL, two transactions placing copies of one report concurrently: the
    story lock makes the second see the first's story."""
    store = open_store(postgres_url, auto_migrate=True)
    try:
        with store.transaction() as conn:
            conn.execute(select(1))
        from monitor.tables import feeds
        with store.transaction() as conn:
            for n in (1, 2):
                conn.execute(feeds.insert().values(id=n, url=f"https://f{n}.example/", active=True, interval_s=600,
                                                   error_count=0, next_poll_at=T0, created_at=T0))
        barrier = threading.Barrier(2)
        placed: dict[int, int] = {}

        def report(feed_id: int, item: dict) -> None:
            fp = fingerprint(item["title"], item["description"])
            with store.transaction() as conn:
                barrier.wait()
                [placement] = place(conn, feed_id, [Report((f"url-{feed_id}",), fp)], now=T0,
                                    window=StoryRules().window)
                record(conn, feed_id, [(feed_id * 100, placement, fp)], now=T0)
                placed[feed_id] = placement.story_id

        threads = [threading.Thread(target=report, args=(n, item)) for n, item in ((1, WIRE), (2, COPY_B))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert placed[1] == placed[2]
        with store.transaction(write=False) as conn:
            assert conn.execute(select(stories.c.sources)).scalars().all() == [2]
            assert len(conn.execute(select(story_reports)).all()) == 2
    finally:
        store.close()


def test_the_window_is_pruned_with_its_bands(tmp_path: Path, server: FeedServer, database: str) -> None:
    from monitor.retention import prune

    h = harness(tmp_path, server, database, monitor_extra='story_window = "24h"')
    publish(h, server, "a", WIRE, OTHER)
    with h.store.engine.connect() as conn:
        assert len(conn.execute(select(story_entries)).all()) == 2
        assert conn.execute(select(story_bands)).all()
    h.clock.advance(hours=25)
    prune(h.store, now=h.clock(), retention=timedelta(days=90), story_window=timedelta(hours=24))
    with h.store.engine.connect() as conn:
        assert conn.execute(select(story_entries)).all() == []
        assert conn.execute(select(story_bands)).all() == []
        assert len(conn.execute(select(stories)).all()) >= 2  # the stories stay (retention's to prune)


def test_status_and_alerts_show_how_widely_a_story_is_reported(tmp_path: Path, server: FeedServer,
                                                              database: str) -> None:
    h = harness(tmp_path, server, database, topic_extra="follow_ups = true\nfollow_up_sources = 3")
    h.clock.now = datetime.now(UTC)  # `status` counts the stories of the last 72 hours
    for name, item in (("a", WIRE), ("b", COPY_B), ("c", COPY_C)):
        publish(h, server, name, item)
    config = str(tmp_path / "monitor.toml")
    status = monitor("status", "-c", config)
    assert status.returncode == 0, status.stderr
    assert "stories (last 3d): 1, the most widely reported:" in status.stdout
    assert "3 sources, last " in status.stdout and WIRE["title"] in status.stdout
    assert "3 sources: Feed A, Feed B, Feed C" in status.stdout

    listed = monitor("alerts", "-c", config)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("reported by 3 sources: Feed A, Feed B, Feed C") == 2
    assert "follow-up: the story has reached 3 sources" in listed.stdout
    as_json = json.loads(monitor("alerts", "-c", config, "--json").stdout)
    assert sorted(a["kind"] or "alert" for a in as_json) == ["alert", "follow_up"]
    assert all(a["sources"] == 3 and a["source_names"] == ["Feed A", "Feed B", "Feed C"] for a in as_json)


def test_a_crowded_band_stops_taking_items_and_copies_are_still_found(tmp_path: Path) -> None:
    """Items sharing one band (a common phrase): once HOT_BAND items hold it, later ones
    are indexed under their other bands only, so a lookup reads a bounded number of rows."""
    from monitor.neardup import Fingerprint
    from monitor.stories import HOT_BAND
    from monitor.tables import feeds

    store = open_store(f"sqlite:///{tmp_path / 's.db'}", auto_migrate=True)
    try:
        with store.transaction() as conn:
            conn.execute(feeds.insert().values(id=1, url="https://f.example/", active=True, interval_s=600,
                                               error_count=0, next_poll_at=T0, created_at=T0))
        common = 12345
        prints = [Fingerprint(tuple(range(n * 100, n * 100 + 20)), (common, 10_000 + n)) for n in range(HOT_BAND + 8)]
        for n, fp in enumerate(prints):
            with store.transaction() as conn:
                [placed] = place(conn, 1, [Report((f"url-{n}",), fp)], now=T0, window=StoryRules().window)
                assert placed.opened  # distinct shingles: every one a story of its own
                record(conn, 1, [(n + 1, placed, fp)], now=T0)
        with store.transaction(write=False) as conn:
            holders = conn.execute(select(story_bands.c.item_id).where(story_bands.c.band == common)).all()
            assert len(holders) == HOT_BAND
            [copy] = place(conn, 2, [Report(("elsewhere",), prints[-1])], now=T0, window=StoryRules().window)
        assert not copy.opened and copy.key == "url-" + str(len(prints) - 1)
    finally:
        store.close()
