"""The pipeline against a real SQLite file and a real local feed server."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.pipeline import error_backoff
from monitor.tables import alerts
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import T0, Harness, write_config

OLD = [
    {"title": "Ceasefire talks stall", "guid": "a1", "link": "https://news.example/a1"},
    {"title": "Weather today", "guid": "a2", "link": "https://news.example/a2"},
]
NEW_MATCH = {"title": "Envoys open peace talks in Riyadh", "guid": "a3", "link": "https://news.example/a3"}
NEW_BOTH = {"title": "Ceasefire offer as sanctions on Russia bite", "guid": "a4",
            "link": "https://news.example/a4"}
NEW_OTHER = {"title": "Football results", "guid": "a5", "link": "https://news.example/a5"}


def test_baseline_then_only_new_matching_items_alert(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    [first] = h.poll_all()
    assert first.ok and first.new == 2 and first.alerts == 0
    assert h.alerts() == []  # baseline: pre-existing items never alert

    server.set("/a.xml", rss([NEW_OTHER, NEW_BOTH, NEW_MATCH, *OLD]))
    h.clock.advance(minutes=11)
    [second] = h.poll_all()
    assert second.new == 3 and second.alerts == 3
    assert sorted(h.alerts()) == sorted([
        ("Envoys open peace talks in Riyadh", "peace", "ops"),
        ("Ceasefire offer as sanctions on Russia bite", "peace", "ops"),
        ("Ceasefire offer as sanctions on Russia bite", "sanctions", "ops"),
    ])

    # Unchanged feed → 304; then the same items re-served in another order → nothing new.
    h.clock.advance(minutes=11)
    [third] = h.poll_all()
    assert third.status == 304 and third.alerts == 0
    server.set("/a.xml", rss(list(reversed([NEW_OTHER, NEW_BOTH, NEW_MATCH, *OLD]))))
    h.clock.advance(minutes=11)
    [fourth] = h.poll_all()
    assert fourth.status == 200 and fourth.new == 0 and len(h.alerts()) == 3


def test_edited_item_is_not_a_new_alert(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    server.set("/a.xml", rss([NEW_MATCH]))
    h.poll_all()
    edited = dict(NEW_MATCH, title="UPDATED: envoys open peace talks in Riyadh, ceasefire next")
    server.set("/a.xml", rss([edited]))
    [outcome] = h.poll_all()
    assert outcome.new == 0
    assert h.alerts() == [("Envoys open peace talks in Riyadh", "peace", "ops")]


def test_same_story_in_two_feeds_alerts_once(tmp_path: Path, server: FeedServer, database: str) -> None:
    extra = f'''
[[feeds]]
url = "{server.url('/b.xml')}"
name = "Feed B"
'''
    server.set("/a.xml", rss([]))
    server.set("/b.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database, extra_feeds=extra))
    h.poll_all()
    server.set("/a.xml", rss([dict(NEW_MATCH, link="https://News.Example/a3?utm_source=rss#top")]))
    server.set("/b.xml", rss([dict(NEW_MATCH, guid="b-77", link="https://news.example/a3?fbclid=x")]))
    outcomes = h.poll_all()
    assert [o.new for o in outcomes] == [1, 1]
    assert h.alerts() == [("Envoys open peace talks in Riyadh", "peace", "ops")]


@pytest.mark.parametrize("mode, expected", [
    ("baseline", []),
    ("recent", ["Fresh ceasefire"]),
    ("all", ["Fresh ceasefire", "Old ceasefire", "Undated ceasefire"]),
])
def test_first_poll_modes(tmp_path: Path, server: FeedServer, database: str, mode: str, expected: list[str]) -> None:
    server.set("/a.xml", rss([
        {"title": "Fresh ceasefire", "guid": "1", "pubDate": T0 - timedelta(hours=2)},
        {"title": "Old ceasefire", "guid": "2", "pubDate": T0 - timedelta(days=3)},
        {"title": "Undated ceasefire", "guid": "3"},
    ]))
    h = Harness(write_config(tmp_path, server, database, first_poll=mode))
    h.poll_all()
    assert sorted(title for title, _, _ in h.alerts()) == expected


def test_topic_routing_by_tag_name_and_webhook(tmp_path: Path, server: FeedServer, database: str) -> None:
    extra = f'''
[[feeds]]
url = "{server.url('/b.xml')}"
name = "Feed B"

[[webhooks]]
name = "chat"
url = "http://127.0.0.1:9/chat"
'''
    topics = '''
[[topics]]
name = "wire-only"
query = "ceasefire"
feeds = ["tag:wire"]
webhooks = ["ops"]

[[topics]]
name = "b-only"
query = "ceasefire"
feeds = ["Feed B"]

[[topics]]
name = "everywhere"
query = "ceasefire"
'''
    server.set("/a.xml", rss([]))
    server.set("/b.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database, extra_feeds=extra, topics=topics))
    h.poll_all()
    server.set("/a.xml", rss([{"title": "Ceasefire A", "guid": "x", "link": "https://n.example/a"}]))
    server.set("/b.xml", rss([{"title": "Ceasefire B", "guid": "y", "link": "https://n.example/b"}]))
    h.poll_all()
    assert sorted(h.alerts()) == sorted([
        ("Ceasefire A", "wire-only", "ops"),
        ("Ceasefire A", "everywhere", "ops"), ("Ceasefire A", "everywhere", "chat"),
        ("Ceasefire B", "b-only", "ops"), ("Ceasefire B", "b-only", "chat"),
        ("Ceasefire B", "everywhere", "ops"), ("Ceasefire B", "everywhere", "chat"),
    ])


def test_failures_are_recorded_and_backed_off(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", b"oops", status=500)
    h = Harness(write_config(tmp_path, server, database))
    [outcome] = h.poll_all()
    assert not outcome.ok and outcome.status == 500
    row = h.feed_row(server.url("/a.xml"))
    assert row["error_count"] == 1 and row["last_result"] == "error: HTTP 500"
    assert row["next_poll_at"] == T0 + timedelta(minutes=10)
    assert row["baselined_at"] is None and row["lease_until"] is None

    h.clock.advance(minutes=10)
    server.set("/a.xml", "<html><body>Not a feed</body></html>", content_type="text/html")
    h.poll_all()
    row = h.feed_row(server.url("/a.xml"))
    assert row["error_count"] == 2 and row["last_result"].startswith("error: ")
    assert row["next_poll_at"] == h.clock() + timedelta(minutes=20)

    h.clock.advance(minutes=20)
    server.set("/a.xml", rss(OLD))
    [outcome] = h.poll_all()
    row = h.feed_row(server.url("/a.xml"))
    assert outcome.ok and row["error_count"] == 0 and row["baselined_at"] == h.clock()
    assert h.alerts() == []  # the first *successful* poll is the baseline


def test_error_backoff_grows_and_caps() -> None:
    ten = timedelta(minutes=10)
    assert [error_backoff(ten, n, None) for n in (1, 2, 3)] == [ten, 2 * ten, 4 * ten]
    assert error_backoff(ten, 12, None) == timedelta(hours=6)
    assert error_backoff(timedelta(hours=12), 5, None) == timedelta(hours=12)
    assert error_backoff(ten, 1, 3600) == timedelta(hours=1)
    assert error_backoff(ten, 1, 1e12) == timedelta(days=1)


def test_claimed_feed_is_not_claimed_twice(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database))
    lease = timedelta(minutes=1)
    assert len(h.store.claim_due_feeds(h.clock(), 10, lease)) == 1
    assert h.store.claim_due_feeds(h.clock(), 10, lease) == []
    h.clock.advance(minutes=2)  # the lease lapsed: a crashed poller's feed comes back
    assert len(h.store.claim_due_feeds(h.clock(), 10, lease)) == 1


def test_alerts_are_stored_with_their_matched_terms(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    server.set("/a.xml", rss([NEW_BOTH]))
    h.poll_all()
    [pending] = h.store.due_alerts(h.clock(), 10, ["ops"])[:1]
    with h.store.engine.connect() as conn:
        stored = dict(conn.execute(select(alerts.c.topic, alerts.c.matched)).all())
    assert json.loads(stored["sanctions"]) == ["sanctions", "Russia"]
    assert pending.feed_name == "Feed A" and pending.link == "https://news.example/a4"


def test_outbox_attempts(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    server.set("/a.xml", rss([NEW_BOTH]))
    h.poll_all()
    peace, sanctions = sorted(h.store.due_alerts(h.clock(), 10, ["ops"]), key=lambda a: a.topic)
    assert h.store.due_alerts(h.clock(), 10, ["other"]) == []  # only configured webhooks

    h.store.record_attempt(peace.id, now=h.clock(), status_code=200, error=None, elapsed_ms=5,
                           outcome="delivered")
    retry_at = h.clock() + timedelta(seconds=30)
    h.store.record_attempt(sanctions.id, now=h.clock(), status_code=503, error="HTTP 503",
                           elapsed_ms=5, outcome="retry", next_attempt_at=retry_at)
    assert h.store.due_alerts(h.clock(), 10, ["ops"]) == []
    [again] = h.store.due_alerts(retry_at, 10, ["ops"])
    assert again.id == sanctions.id and again.attempts == 1
    assert h.store.failing_alerts() == 1
    assert h.store.counts() == {"items": 1, "alerts_delivered": 1, "alerts_pending": 1}
    [problem] = h.store.problem_alerts()
    assert problem["id"] == sanctions.id and problem["last_error"] == "HTTP 503"


def test_a_guid_shared_by_several_items_identifies_none_of_them(tmp_path: Path, server: FeedServer,
                                                                  database: str) -> None:
    server.set("/a.xml", rss([dict(OLD[0], guid="same")]))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    # A CMS that gives every item one guid: each item is told apart by its link instead.
    later = [dict(NEW_MATCH, guid="same"), dict(NEW_BOTH, guid="same"), dict(OLD[0], guid="same")]
    server.set("/a.xml", rss(later))
    h.clock.advance(minutes=11)
    [outcome] = h.poll_all()
    assert outcome.new == 2 and outcome.alerts == 3  # the item stored under the guid stays known
    assert sorted(title for title, _, _ in h.alerts()) == sorted(
        [NEW_MATCH["title"], NEW_BOTH["title"], NEW_BOTH["title"]])
    h.clock.advance(minutes=11)
    server.set("/a.xml", rss(list(reversed(later))))
    assert h.poll_all()[0].new == 0


def test_items_stored_under_earlier_identity_rules_stay_known(tmp_path: Path, server: FeedServer,
                                                              database: str) -> None:
    """0.2.0 kept mtm_ parameters in canonical URLs. What it stored (the item key and story
    key it computed) must not look new to this release, in its feed or in another."""
    from monitor.identity import canonical_url, item_key
    from monitor.parse import parse_feed
    from monitor.store import AlertIntent, NewItem

    extra = f'[[feeds]]\nurl = "{server.url("/b.xml")}"\nname = "Feed B"\n'
    tagged = {"title": "Envoys open peace talks in Riyadh", "link": "https://news.example/a3?mtm_campaign=rss"}
    server.set("/a.xml", rss([]))
    server.set("/b.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database, extra_feeds=extra))
    h.poll_all()
    [item] = parse_feed(rss([tagged]), url=server.url("/a.xml")).items
    legacy = ("utm_",)
    key = item_key(item, prefixes=legacy)
    assert key == "url:https://news.example/a3?mtm_campaign=rss" != item_key(item)
    story = hashlib.sha256(canonical_url(item.link, legacy).encode()).hexdigest()
    [feed_a] = [f for f in h.store.claim_due_feeds(h.clock(), 10, timedelta(minutes=1), all_feeds=True)
                if f.url.endswith("/a.xml")]
    h.store.record_poll(feed_a, now=h.clock(), next_poll_at=h.clock(), result="200 new=1", etag=None,
                        last_modified=None, title=None, new_items=[NewItem(
                            key=key, story_key=story, guid=None, link=item.link, title=item.title,
                            summary="", published=None,
                            alerts=(AlertIntent("01JDQ3ZK8X7M4N5P6Q7R8S9T0V", "peace", "ops", ("peace talks",)),))])
    h.store.release_feeds(h.store.claim_due_feeds(h.clock(), 10, timedelta(minutes=1), all_feeds=True))

    server.set("/a.xml", rss([tagged]))
    server.set("/b.xml", rss([dict(tagged, guid="b-1", link="https://NEWS.example/a3?mtm_campaign=rss#top")]))
    h.clock.advance(minutes=11)
    outcomes = {o.feed_url.rsplit("/", 1)[-1]: o for o in h.poll_all()}
    assert outcomes["a.xml"].new == 0  # known by its 0.2.0 key
    assert outcomes["b.xml"].new == 1 and outcomes["b.xml"].alerts == 0  # its story was alerted
    assert len(h.alerts()) == 1
