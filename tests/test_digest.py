"""Digests: which alerts go together (pure), each format's digest within its target's
limits, and the outbox holding, bundling, retrying and redelivering them against real
receivers on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from monitor.bundling import HeldAlert, hour_start, next_hour, split_for
from monitor.config import FORMATS, WebhookConfig
from monitor.deliver import Sender
from monitor.digest_store import DigestStore
from monitor.formats import DIGEST_CAPACITY, AlertMessage, DigestMessage, render
from monitor.outbox import Outbox
from monitor.retention import count_rows, prune
from monitor.store import Store
from monitor.tables import digests
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config
from tests.support.receiver import Receiver

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# --- which alerts go together ----------------------------------------------------------


def held(n: int, *, title: str = "A title", link: str | None = "https://n.example/x",
         summary: str = "") -> list[HeldAlert]:
    return [HeldAlert(f"A{i:03}", title, link, summary) for i in range(n)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_window_splits_into_digests_no_bigger_than_the_format_takes(fmt: str) -> None:
    most, _ = DIGEST_CAPACITY[fmt]
    alerts = held(3 * most + 1)
    digests = split_for(fmt, alerts)
    assert [i for d in digests for i in d] == [a.id for a in alerts]  # every one, in order
    assert all(1 <= len(d) <= most for d in digests) and len(digests[0]) == most


def test_big_entries_make_smaller_digests_but_never_empty_ones() -> None:
    small = split_for("ntfy", held(10, title="short"))
    large = split_for("ntfy", held(10, title="x" * 300, link="https://n.example/" + "y" * 400))
    assert len(small) == 1 and len(large) > 1
    huge = split_for("ntfy", held(2, link="https://n.example/" + "z" * 5000))
    assert huge == [["A000"], ["A001"]]  # an outsize entry still goes, alone


def test_max_per_hour_counts_clock_hours() -> None:
    moment = datetime(2026, 11, 28, 12, 59, 59, 900, tzinfo=UTC)
    assert hour_start(moment) == datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert next_hour(moment) == datetime(2026, 11, 28, 13, tzinfo=UTC)


# --- each format's digest --------------------------------------------------------------


def alert_message(i: int, *, title: str, feed: str) -> AlertMessage:
    return AlertMessage(
        alert_id=f"01JDQ3ZK8X7M4N5P6Q7R8S{i:04}", created_at=T, topic_name="peace-talks",
        topic_title="Peace talks", title=title, url=f"https://news.example/story/{i}?ref=rss",
        summary="Delegations met on Friday. " * 60, published=T, guid=f"g{i}", feed_name=feed,
        feed_url="https://news.example/rss", matched=("peace talks",))


def worst_digest(fmt: str) -> DigestMessage:
    """As many alerts as one digest of `fmt` takes, each as long as feeds make them."""
    title = "Envoys & <officials> say talks *continue* @everyone " * 8
    messages = [alert_message(i, title=title, feed="World news desk " * 15) for i in range(60)]
    entries = [HeldAlert(m.alert_id, m.title, m.url, m.summary) for m in messages]
    first = split_for(fmt, entries)[0]
    return DigestMessage("01JDQ3ZK8X7M4N5P6Q7R8SDGST", T, "peace-talks", "Peace talks",
                         tuple(m for m in messages if m.alert_id in first))


def digest_body(fmt: str, digest: DigestMessage) -> Any:
    rendered = render(digest, WebhookConfig("test", "https://hooks.example/x", fmt))
    return rendered.body if fmt == "ntfy" else json.loads(rendered.body)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_digest_entry_carries_its_alert_id_and_link(fmt: str) -> None:
    digest = worst_digest(fmt)
    rendered = render(digest, WebhookConfig("test", "https://hooks.example/x", fmt))
    text = rendered.body.decode()
    for alert in digest.alerts:
        assert alert.alert_id in text and alert.url and alert.url in text, fmt
    assert len(digest.alerts) >= 5  # a digest is worth having in every format


def test_json_digest_shape() -> None:
    digest = worst_digest("json")
    payload = digest_body("json", digest)
    assert payload["type"] == "monitor.digest" and payload["timestamp"] == "2026-11-28T12:00:00Z"
    data = payload["data"]
    assert data["digest_id"] == digest.digest_id and data["count"] == len(digest.alerts)
    assert data["topic"] == {"name": "peace-talks", "title": "Peace talks"}
    first = data["alerts"][0]
    assert set(first) == {"alert_id", "item", "matched", "snippet", "story"}
    assert first["story"] == {"sources": 1}
    assert first["item"]["url"] == digest.alerts[0].url and len(first["item"]["summary"]) <= 280
    assert 0 < len(first["snippet"]) <= 160
    rendered = render(digest, WebhookConfig("test", "https://hooks.example/x", "json"))
    assert len(rendered.body) < 20_000  # Standard Webhooks' advice


def test_slack_digest_fits_slack_limits() -> None:
    payload = digest_body("slack", worst_digest("slack"))
    assert len(payload["blocks"]) <= 50
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    sections = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
    assert all(len(s) <= 3000 for s in sections)
    assert "<officials>" not in json.dumps(payload) and "&lt;officials&gt;" in sections[0]


def test_discord_digest_fits_discord_limits() -> None:
    payload = digest_body("discord", worst_digest("discord"))
    embeds = payload["embeds"]
    assert len(embeds) <= 10 and len(payload["content"]) <= 2000
    assert all(len(e["title"]) <= 256 for e in embeds)
    assert sum(len(e["title"]) + len(e["footer"]["text"]) for e in embeds) <= 6000
    assert payload["allowed_mentions"] == {"parse": []}


def test_teams_mattermost_and_ntfy_digests_fit_their_limits() -> None:
    teams = render(worst_digest("teams"), WebhookConfig("t", "https://hooks.example/x", "teams"))
    assert len(teams.body) <= 28_000
    card = json.loads(teams.body)["attachments"][0]["content"]
    assert all(e["selectAction"]["type"] == "Action.OpenUrl" for e in card["body"] if e["type"] == "Container")
    assert len(digest_body("mattermost", worst_digest("mattermost"))["text"]) <= 16_383
    assert "@\u200beveryone" in digest_body("mattermost", worst_digest("mattermost"))["text"]
    ntfy = render(worst_digest("ntfy"), WebhookConfig("n", "https://ntfy.example/news", "ntfy"))
    assert len(ntfy.body) <= 4096 and ntfy.headers["Title"].startswith("Peace talks: ")


@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_characters_never_reach_a_digest(fmt: str) -> None:
    digest = worst_digest(fmt)
    bad = dataclasses.replace(digest.alerts[0], title="\u202eevil\u202c \x07bell", feed_name="\u2066feed\u2069")
    rendered = render(dataclasses.replace(digest, alerts=(bad, *digest.alerts[1:])),
                      WebhookConfig("test", "https://hooks.example/x", fmt))
    text = rendered.body.decode()
    for char in "\u202e\u202c\u2066\u2069\x07":
        assert char not in text and json.dumps(char)[1:-1] not in text
    assert "evil" in text


# --- the outbox with digests -----------------------------------------------------------

OLD = [{"title": "Weather today", "guid": "w", "link": "https://n.example/w"}]


def story(n: int, title: str = "Ceasefire talks, day {n}") -> dict[str, str]:
    return {"title": title.format(n=n), "guid": f"s{n}", "link": f"https://n.example/s{n}"}


def harness(tmp_path: Path, server: FeedServer, database: str, hook: Receiver, extra: str) -> Harness:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database, hook_url=hook.url(), hook_extra=extra))
    h.poll_all()  # the baseline
    return h


def publish(h: Harness, server: FeedServer, stories: list[dict[str, str]]) -> None:
    server.set("/a.xml", rss([*stories, *OLD]))
    h.poll_all()


def deliver(h: Harness) -> int:
    async def go() -> int:
        async with Sender() as sender:
            return (await Outbox(h.store, sender, h.runtime, h.clock).deliver_due()).delivered
    return asyncio.run(go())


def test_a_digest_window_sends_one_signed_message_per_topic(tmp_path: Path, server: FeedServer,
                                                            database: str) -> None:
    with Receiver(secret=SECRET) as hook:
        h = harness(tmp_path, server, database, hook,
                    f'secret = "{SECRET}"\ndigest = "10m"\nretry = ["0s"]')
        h.clock.now = datetime.now(UTC) - timedelta(minutes=12)  # signatures meet the real time
        publish(h, server, [story(1), story(2), story(3, "Sanctions on Russia widen")])
        assert deliver(h) == 0 and hook.requests == []  # held for the window
        assert {r["hold_until"] for r in h.store.list_alerts()} == {h.clock.now + timedelta(minutes=10)}

        h.clock.advance(minutes=6)
        publish(h, server, [story(1), story(2), story(3, "Sanctions on Russia widen"), story(4)])
        assert deliver(h) == 0  # the window is still open: story 4 joins it

        h.clock.advance(minutes=5)
        hook.respond([503])  # the digest's first attempt fails; its retry keeps its id
        assert deliver(h) == 4
        failed, *delivered = hook.requests
        assert [r.status for r in hook.requests] == [503, 200, 200]
        bodies = {r.json["data"]["topic"]["name"]: r for r in delivered}
        assert set(bodies) == {"peace", "sanctions"} and all(r.verified for r in hook.requests)
        [retried] = [r for r in delivered if r.headers["webhook-id"] == failed.headers["webhook-id"]]
        assert retried.body == failed.body
        peace = bodies["peace"]
        assert peace.json["type"] == "monitor.digest" and peace.json["data"]["count"] == 3
        titles = [a["item"]["title"] for a in peace.json["data"]["alerts"]]
        assert titles == ["Ceasefire talks, day 1", "Ceasefire talks, day 2", "Ceasefire talks, day 4"]

        rows = h.store.list_alerts()
        assert {r["status"] for r in rows} == {"delivered"}
        in_peace = {r["id"] for r in rows if r["digest_id"] == peace.headers["webhook-id"]}
        assert in_peace == {a["alert_id"] for a in peace.json["data"]["alerts"]}
        attempts = {r["topic"]: r["attempts"] for r in rows}
        assert sorted(attempts.values()) == [1, 2]  # the retried digest's alerts count both

        # Redelivering one alert of a digest sends that digest again, under its own id.
        queued, unknown = h.store.requeue(now=h.clock(), ids=[next(iter(in_peace))])
        assert (queued, unknown) == (3, [])
        assert deliver(h) == 3
        assert hook.requests[-1].headers["webhook-id"] == peace.headers["webhook-id"]
        assert hook.requests[-1].json["data"]["alerts"] == peace.json["data"]["alerts"]
        assert deliver(h) == 0


def test_max_per_hour_rolls_the_overflow_into_one_digest_per_topic(
        tmp_path: Path, server: FeedServer, database: str) -> None:
    with Receiver() as hook:
        h = harness(tmp_path, server, database, hook, "max_per_hour = 2")
        stories = [story(n) for n in range(4)] + [story(9, "Sanctions on Russia widen")]
        publish(h, server, stories)
        assert deliver(h) == 2  # the hour's two singles
        assert [r.json["type"] for r in hook.received] == ["monitor.alert"] * 2
        h.clock.advance(minutes=30)
        assert deliver(h) == 0  # the rest waits for the hour to end
        assert h.store.held_by_webhook() == {"ops": 3}

        h.clock.now = next_hour(h.clock.now) + timedelta(seconds=1)
        publish(h, server, [*stories, story(5)])  # a new hour: story 5 goes on its own
        assert deliver(h) == 4
        kinds = sorted((r.json["type"], r.json["data"].get("count", 1)) for r in hook.received[2:])
        assert kinds == [("monitor.alert", 1), ("monitor.digest", 1), ("monitor.digest", 2)]
        sent = [a["alert_id"] for r in hook.received for a in
                (r.json["data"]["alerts"] if r.json["type"] == "monitor.digest" else [r.json["data"]])]
        assert len(sent) == len(set(sent)) == 6  # every alert once, none twice
        assert h.store.pending_by_webhook() == {}


def test_a_disabled_webhook_keeps_its_held_alerts(tmp_path: Path, server: FeedServer, database: str) -> None:
    with Receiver() as hook:
        h = harness(tmp_path, server, database, hook, 'digest = "1m"')
        publish(h, server, [story(1), story(2)])
        assert deliver(h) == 0
        h.store.disable_webhook("ops", reason="HTTP 410", now=h.clock())
        h.clock.advance(minutes=2)
        assert deliver(h) == 0 and h.store.held_by_webhook() == {"ops": 2}
        h.store.enable_webhooks(["ops"])
        assert deliver(h) == 2 and len(hook.received) == 1


def test_two_instances_bundling_at_once_share_the_alerts_out(tmp_path: Path, server: FeedServer,
                                                              database: str) -> None:
    with Receiver() as hook:
        h = harness(tmp_path, server, database, hook, 'digest = "1m"')
        publish(h, server, [story(n) for n in range(6)])
        assert deliver(h) == 0  # all six held
        other = Store(database, lease_clock=h.clock)
        try:
            ids = [a.id for a in DigestStore(h.store).held("ops", "peace")]
            start = threading.Barrier(2)

            def bundle(store: Store) -> tuple[str, int] | None:
                start.wait()
                return DigestStore(store).bundle("ops", "peace", ids, now=h.clock())

            with ThreadPoolExecutor(2) as pool:
                made = [m for m in pool.map(bundle, [h.store, other]) if m]
        finally:
            other.close()
        assert sum(n for _, n in made) == 6  # each alert in exactly one digest
        with h.store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(digests)).scalar_one() == len(made)
        h.clock.advance(minutes=2)
        assert deliver(h) == 6 and len(hook.received) == len(made)


def test_a_digest_is_pruned_with_the_last_of_its_alerts(tmp_path: Path, server: FeedServer,
                                                         database: str) -> None:
    with Receiver() as hook:
        h = harness(tmp_path, server, database, hook, 'digest = "1m"')
        publish(h, server, [story(1), story(2)])
        deliver(h)
        h.clock.advance(minutes=2)
        assert deliver(h) == 2
        h.clock.advance(days=2)
        assert prune(h.store, now=h.clock(), retention=timedelta(days=3)).alerts == 0
        assert count_rows(h.store)["digests"] == 1
        h.clock.advance(days=2)
        assert prune(h.store, now=h.clock(), retention=timedelta(days=3)).alerts == 2
        assert count_rows(h.store)["digests"] == 0
