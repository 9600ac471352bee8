"""Polling against a real local server: adaptive intervals and their floors, permanent
redirects, 410 Gone, and a body that has not changed."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from monitor.daemon import Service
from monitor.deliver import Sender
from monitor.outbox import Outbox
from monitor.runtime import Runtime
from monitor.tables import items
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config
from tests.support.receiver import Receiver


def dated(n: int, gap: timedelta, h: Harness) -> list[dict]:
    return [{"title": f"Story {i}", "guid": f"g{i}", "link": f"https://n.example/{i}",
             "pubDate": h.clock.now - gap * i} for i in range(n)]


def auto_harness(tmp_path: Path, server: FeedServer, database: str, extra_feeds: str = "") -> Harness:
    server.set("/a.xml", rss([]))
    return Harness(write_config(tmp_path, server, database, interval="auto", extra_feeds=extra_feeds))


def test_auto_follows_how_often_the_feed_publishes(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = auto_harness(tmp_path, server, database)
    server.set("/a.xml", rss(dated(8, timedelta(minutes=30), h)))
    h.poll_all()
    row = h.feed_row(server.url("/a.xml"))
    assert row["interval_s"] == 1800 and row["interval_reason"] == "auto: an item about every 30m"
    wait = row["next_poll_at"] - h.clock.now
    assert timedelta(minutes=27) <= wait <= timedelta(minutes=30)  # up to 10 % early, never late

    # Then it goes quiet: four hours on, with nothing new, it is polled about hourly.
    h.clock.advance(hours=4)
    h.poll_all()  # a 304
    row = h.feed_row(server.url("/a.xml"))
    assert row["interval_s"] == 3600 and row["interval_reason"] == "auto: quiet for 4h"


def test_cache_headers_and_ttl_are_floors_and_a_fixed_interval_wins(tmp_path: Path, server: FeedServer,
                                                                    database: str) -> None:
    extra = f'[[feeds]]\nurl = "{server.url("/b.xml")}"\ninterval = "5m"\n'
    server.set("/b.xml", rss([]), headers={"Cache-Control": "max-age=7200"})
    h = auto_harness(tmp_path, server, database, extra)
    server.set("/a.xml", rss(dated(8, timedelta(minutes=10), h)), headers={"Cache-Control": "max-age=3600"})
    h.poll_all()
    a, b = h.feed_row(server.url("/a.xml")), h.feed_row(server.url("/b.xml"))
    assert (a["interval_s"], a["interval_reason"]) == (3600, "Cache-Control max-age 1h")
    assert (b["interval_s"], b["interval_reason"]) == (300, "fixed by the config")

    ttl = rss(dated(8, timedelta(minutes=10), h)).replace(b"<channel>", b"<channel><ttl>45</ttl>")
    server.set("/a.xml", ttl)
    h.clock.advance(hours=1)
    h.poll_all()
    assert h.feed_row(server.url("/a.xml"))["interval_reason"] == "<ttl> 45m"


def test_a_permanent_redirect_moves_the_feed_and_a_temporary_one_does_not(
        tmp_path: Path, server: FeedServer, database: str) -> None:
    extra = f'[[feeds]]\nurl = "{server.url("/b.xml")}"\n'
    h = auto_harness(tmp_path, server, database, extra)
    server.redirect("/a.xml", "/moved.xml", 301)
    server.set("/moved.xml", rss([]))
    server.redirect("/b.xml", "/elsewhere.xml", 302)
    server.set("/elsewhere.xml", rss([]))
    assert all(o.ok for o in h.poll_all())
    assert h.feed_row(server.url("/a.xml"))["moved_to"] == server.url("/moved.xml")
    assert h.feed_row(server.url("/b.xml"))["moved_to"] is None
    h.poll_all()
    assert server.count("/a.xml") == 1 and server.count("/moved.xml") == 2  # straight there now
    assert server.count("/b.xml") == 2
    assert server.url("/a.xml") in (tmp_path / "monitor.toml").read_text()  # the config is untouched
    status = cli("status", tmp_path)
    assert f"moved to {server.url('/moved.xml')} (a permanent redirect; polled there)" in status


def test_a_410_stops_the_feed_until_a_daemon_revives_it(tmp_path: Path, server: FeedServer,
                                                        database: str) -> None:
    h = auto_harness(tmp_path, server, database)
    h.poll_all()
    server.set("/a.xml", "gone", status=410)
    [outcome] = h.poll_all()
    assert not outcome.ok and outcome.status == 410
    assert h.store.claim_due_feeds(h.clock.now + timedelta(days=30), 10, timedelta(minutes=1), all_feeds=True) == []
    assert "gone since" in cli("status", tmp_path)
    assert h.store.revive_feeds() == [server.url("/a.xml")]
    revived = h.store.claim_due_feeds(h.clock.now, 10, timedelta(minutes=1), all_feeds=True)
    assert [f.url for f in revived] == [server.url("/a.xml")]


def test_the_same_bytes_are_not_parsed_again(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = auto_harness(tmp_path, server, database)
    # No ETag or Last-Modified: every poll gets the whole body back.
    server.set("/a.xml", rss(dated(3, timedelta(minutes=30), h)), etag=False, last_modified=False)
    h.poll_all()
    first = h.feed_row(server.url("/a.xml"))
    assert first["last_result"] == "200 new=3"
    h.clock.advance(minutes=40)
    [outcome] = h.poll_all()
    again = h.feed_row(server.url("/a.xml"))
    assert outcome.ok and again["last_result"] == "200 unchanged"
    assert again["parsed_at"] == first["parsed_at"]  # read as a 304: tombstones keep their clock
    server.set("/a.xml", rss(dated(4, timedelta(minutes=30), h)), etag=False, last_modified=False)
    h.clock.advance(minutes=40)
    h.poll_all()
    assert h.feed_row(server.url("/a.xml"))["last_result"] == "200 new=1"


def cli(command: str, tmp_path: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "monitor", command, "-c", str(tmp_path / "monitor.toml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout



def test_a_daemon_start_revives_gone_feeds_and_once_does_not(tmp_path: Path, server: FeedServer,
                                                             database: str) -> None:
    h = auto_harness(tmp_path, server, database)
    server.set("/a.xml", "gone", status=410)
    h.poll_all()
    service = Service(h.config)
    try:
        service.apply(Runtime.of(h.config))  # what `monitor once` does
        assert h.feed_row(server.url("/a.xml"))["gone_at"] is not None
        service.apply(Runtime.of(h.config), instance="daemon-1")  # a daemon's start or reload
        assert h.feed_row(server.url("/a.xml"))["gone_at"] is None
    finally:
        service.store.close()


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "lollollollol">'
          + "".join(f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">' for i in range(9))
          + ']><rss version="2.0"><channel><title>t</title><item><title>&j;</title>'
          '<link>https://n.example/lol</link></item></channel></rss>')


def test_hostile_feeds_fail_alone_while_healthy_ones_alert(tmp_path: Path, server: FeedServer,
                                                           database: str) -> None:
    hostile = {
        "/big.xml": dict(body=b"<rss>" + b"x" * (10 * 1024 * 1024 + 1), chunked=True),
        "/bomb.xml": dict(body=gzip.compress(b"\0" * (11 * 1024 * 1024)), headers={"Content-Encoding": "gzip"}),
        "/slow.xml": dict(body=rss([{"title": "late", "guid": "s"}]), trickle=0.05),
        "/page.xml": dict(body=b"<!doctype html><html><body>Sign in</body></html>", content_type="text/html"),
        "/api.xml": dict(body=b'{"error": "rate limited"}', content_type="application/json"),
        "/laughs.xml": dict(body=LAUGHS.encode()),
    }
    extra = "".join(f'[[feeds]]\nurl = "{server.url(path)}"\n' for path in [*hostile, "/loop.xml"])
    server.set("/a.xml", rss([]))
    h = Harness(write_config(tmp_path, server, database, extra_feeds=extra))
    h.fetch_timeout = 1.0
    for path in hostile:
        server.set(path, rss([]))
    server.redirect("/loop.xml", "/loop.xml", 301)
    h.poll_all()  # the baseline

    for path, kw in hostile.items():
        server.set(path, **kw)
    server.set("/a.xml", rss([{"title": "Envoys open peace talks in Riyadh", "guid": "p1",
                               "link": "https://n.example/p1"}]))
    h.clock.advance(minutes=11)
    outcomes = {o.feed_url.removeprefix(server.url("")): o for o in h.poll_all()}
    assert outcomes["/a.xml"].ok and outcomes["/a.xml"].alerts == 1  # the healthy feed alerted
    errors = {path: h.feed_row(server.url(path))["last_result"] for path in [*hostile, "/loop.xml"]}
    assert errors == {
        "/big.xml": "error: body larger than 10 MiB",
        "/bomb.xml": "error: body larger than 10 MiB",
        "/slow.xml": "error: timed out after 1s",
        "/page.xml": "error: not a feed: looks like an HTML page",
        "/api.xml": "error: not a feed: looks like JSON (an API answer?), not RSS or Atom",
        "/laughs.xml": "200 new=1",  # the entities are not expanded: the title stays short
        "/loop.xml": "error: too many redirects (more than 5)",
    }
    with h.store.engine.connect() as conn:
        title = conn.execute(select(items.c.title).where(items.c.link == "https://n.example/lol")).scalar_one()
    assert len(title) < 100


def test_a_feed_failing_past_alert_after_sends_one_feed_health_alert(tmp_path: Path, server: FeedServer,
                                                                     database: str) -> None:
    with Receiver() as hook:
        server.set("/a.xml", rss([]))
        h = Harness(write_config(tmp_path, server, database, hook_url=hook.url(), monitor_extra='alert_after = "1h"'))
        h.poll_all()
        server.set("/a.xml", "down", status=503)

        def fail_after(minutes: int) -> int:
            h.clock.advance(minutes=minutes)
            [outcome] = h.poll_all()
            assert not outcome.ok
            return outcome.alerts

        assert [fail_after(m) for m in (1, 30, 31, 10)] == [0, 0, 1, 0]  # one alert, after 1 h of failing
        server.set("/a.xml", rss([]))
        h.clock.advance(minutes=10)
        assert h.poll_all()[0].ok  # recovered: the next run of failures may alert again
        server.set("/a.xml", "down", status=503)
        assert [fail_after(m) for m in (1, 61)] == [0, 1]

        async def go() -> int:
            async with Sender() as sender:
                return (await Outbox(h.store, sender, h.runtime, h.clock).deliver_due()).delivered
        assert asyncio.run(go()) == 2
        first = hook.received[0].json["data"]
        assert first["topic"] == {"name": "feed-health", "title": "Feed health"}
        assert first["item"]["title"] == "Feed failing for 1h1m: Feed A"
        assert first["item"]["url"] == server.url("/a.xml")
        assert "polls in a row have failed" in first["item"]["summary"] and "HTTP 503" in first["item"]["summary"]
