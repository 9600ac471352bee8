"""The real daemon (`monitor run` in a subprocess) against a local feed server and a real
webhook receiver that verifies every signature with the standardwebhooks package."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.feedserver import FeedServer, rss
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

OLD = [
    {"title": "Ceasefire hopes fade", "guid": "w1", "link": "https://news.example/w1"},
    {"title": "Markets close higher", "guid": "w2", "link": "https://news.example/w2"},
]
PEACE = {"title": "Envoys open peace talks in Riyadh", "guid": "w3",
         "link": "https://news.example/w3", "description": "<p>Russia and Ukraine send teams.</p>"}
BOTH = {"title": "Ceasefire offer as new sanctions on Russia bite", "guid": "w4",
        "link": "https://news.example/w4"}
OTHER = {"title": "Football: late winner in the derby", "guid": "w5", "link": "https://news.example/w5"}
LATER = {"title": "Second round of peace talks set for Geneva", "guid": "w6",
         "link": "https://news.example/w6"}

TOPICS = '''
[[topics]]
name = "peace-talks"
title = "Peace talks"
query = '"peace talks" OR ceasefire'

[[topics]]
name = "sanctions"
query = 'sanction* AND Russia'
'''


def write_config(path: Path, server: FeedServer, receiver: Receiver, topics: str = TOPICS,
                 database: str = "sqlite:///state.db", hook_extra: str = "") -> Path:
    path.write_text(f'''
[monitor]
database = "{database}"
interval = "1s"

[[webhooks]]
name = "ops"
url = "{receiver.url('/hook')}"
secret = "{SECRET}"
{hook_extra}

[[feeds]]
url = "{server.url('/world.xml')}"
name = "World"

[[feeds]]
url = "{server.url('/wire.xml')}"
name = "Wire"
{topics}
''')
    return path


class Daemon:
    """`python -m monitor run` as a child process, its log in a file."""

    def __init__(self, config: Path):
        self.log = config.with_suffix(".log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def logs(self) -> str:
        return self.log.read_text()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def farm(tmp_path: Path, database_url: str) -> Iterator[tuple[FeedServer, Receiver, Path]]:
    """A feed server, a receiver and a config; each daemon test runs on SQLite and PostgreSQL."""
    with FeedServer() as server, Receiver(secret=SECRET) as receiver:
        server.set("/world.xml", rss(OLD, title="World"))
        server.set("/wire.xml", rss([], title="Wire"))
        yield server, receiver, write_config(tmp_path / "monitor.toml", server, receiver,
                                             database=database_url)


def polled_twice(server: FeedServer) -> bool:
    """Two polls of each feed: the first (the baseline) has certainly been processed."""
    return server.count("/world.xml") >= 2 and server.count("/wire.xml") >= 2


def test_daemon_alerts_once_per_new_matching_item_across_restarts(farm) -> None:
    server, receiver, config = farm
    daemon = Daemon(config)
    try:
        wait_until(lambda: polled_twice(server), what="the first polls")
        server.set("/world.xml", rss([OTHER, BOTH, PEACE, *OLD], title="World"))
        receiver.wait_for(3, timeout=20)
        # The same story on the wire, with tracking junk and its own guid: no second alert.
        server.set("/wire.xml", rss([dict(PEACE, guid="wire-9",
                                          link="https://NEWS.example/w3?utm_source=x#top")]))
        wait_until(lambda: server.count("/wire.xml") >= 4, what="polls of the wire copy")
        time.sleep(2)  # several more polls: nothing may repeat
    finally:
        assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()

    got = receiver.received
    assert all(r.verified for r in receiver.requests)
    assert sorted((r.json["data"]["item"]["title"], r.json["data"]["topic"]["name"]) for r in got) == [
        ("Ceasefire offer as new sanctions on Russia bite", "peace-talks"),
        ("Ceasefire offer as new sanctions on Russia bite", "sanctions"),
        ("Envoys open peace talks in Riyadh", "peace-talks"),
    ]
    peace = next(r for r in got if r.json["data"]["item"]["guid"] == "w3")
    assert peace.headers["webhook-id"] == peace.json["data"]["alert_id"]
    assert peace.json["type"] == "monitor.alert"
    assert peace.json["data"]["item"]["summary"] == "Russia and Ukraine send teams."
    assert peace.json["data"]["item"]["feed"]["name"] == "World"
    assert peace.json["data"]["matched"] == ["peace talks"]
    assert "event=stopped" in daemon.logs()

    # Published while the daemon was down: delivered after the restart; nothing repeats.
    server.set("/world.xml", rss([LATER, OTHER, BOTH, PEACE, *OLD], title="World"))
    daemon = Daemon(config)
    try:
        receiver.wait_for(4, timeout=20)
        time.sleep(3)
    finally:
        assert daemon.stop(signal.SIGINT) == 0, daemon.logs()
    got = receiver.received
    assert len(got) == 4
    assert got[-1].json["data"]["item"]["title"] == LATER["title"]
    assert len({r.headers["webhook-id"] for r in got}) == 4


def test_daemon_alerts_once_per_story_and_follows_it_up(farm, tmp_path: Path, database_url: str) -> None:
    """Wire copy under another URL and guid joins the story: no second alert, and with
    follow_ups one signed monitor.follow_up once the story has two sources."""
    server, receiver, _ = farm
    topics = TOPICS.replace('title = "Peace talks"', 'title = "Peace talks"\nfollow_ups = true\nfollow_up_sources = 2')
    config = write_config(tmp_path / "stories.toml", server, receiver, topics=topics, database=database_url)
    story = dict(PEACE, description="<p>Russia and Ukraine send teams to the first direct round in months.</p>")
    daemon = Daemon(config)
    try:
        wait_until(lambda: polled_twice(server), what="the first polls")
        server.set("/world.xml", rss([story, *OLD], title="World"))
        receiver.wait_for(1, timeout=20)
        server.set("/wire.xml", rss([dict(story, title=story["title"] + " - Wire Service", guid="wire-1",
                                          link="https://wire.example/stories/1")], title="Wire"))
        receiver.wait_for(2, timeout=20)
        time.sleep(2)  # more polls: nothing else may come
    finally:
        assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()
    got = receiver.received
    assert all(r.verified for r in receiver.requests)
    assert [r.json["type"] for r in got] == ["monitor.alert", "monitor.follow_up"]
    first, follow_up = (r.json["data"] for r in got)
    assert first["story"] == {"sources": 1, "feeds": ["World"]}
    assert follow_up["story"] == {"sources": 2, "feeds": ["World", "Wire"]}
    assert follow_up["item"]["url"] == "https://wire.example/stories/1"
    assert got[0].headers["webhook-id"] != got[1].headers["webhook-id"]


def test_daemon_sends_a_digest_per_topic_when_its_window_closes(farm, tmp_path: Path, database_url: str) -> None:
    server, receiver, _ = farm
    config = write_config(tmp_path / "digest.toml", server, receiver, database=database_url,
                          hook_extra='digest = "5s"')
    daemon = Daemon(config)
    try:
        wait_until(lambda: polled_twice(server), what="the first polls")
        server.set("/world.xml", rss([OTHER, BOTH, PEACE, *OLD], title="World"))
        time.sleep(1.5)
        server.set("/world.xml", rss([LATER, OTHER, BOTH, PEACE, *OLD], title="World"))
        receiver.wait_for(2, timeout=20)
        time.sleep(4)  # another window's worth: nothing more may come
    finally:
        assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()
    got = receiver.received
    assert all(r.verified for r in receiver.requests) and len(got) == 2
    assert {r.json["type"] for r in got} == {"monitor.digest"}
    by_topic = {r.json["data"]["topic"]["name"]: [a["item"]["guid"] for a in r.json["data"]["alerts"]]
                for r in got}
    assert sorted(by_topic["peace-talks"]) == ["w3", "w4", "w6"] and by_topic["sanctions"] == ["w4"]
    assert all(r.headers["webhook-id"] == r.json["data"]["digest_id"] for r in got)
    assert "event=digest_created" in daemon.logs()


def test_pending_alert_survives_a_stop_and_keeps_its_id(farm) -> None:
    server, receiver, config = farm
    receiver.respond([503])  # the receiver fails the first attempt
    daemon = Daemon(config)
    try:
        wait_until(lambda: polled_twice(server), what="the first polls")
        server.set("/world.xml", rss([PEACE, *OLD], title="World"))
        wait_until(lambda: len(receiver.requests) >= 1, what="a first attempt")
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert receiver.received == []
    first_id = receiver.requests[0].headers["webhook-id"]

    # `once` after the retry is due: delivered, with the same webhook-id, exactly once.
    deadline = time.monotonic() + 60
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(2)
        subprocess.run([sys.executable, "-m", "monitor", "once", "-c", str(config)],
                       capture_output=True, timeout=60)
    [delivered] = receiver.received
    assert delivered.headers["webhook-id"] == first_id
    assert {r.headers["webhook-id"] for r in receiver.requests} == {first_id}
    assert len({r.headers["webhook-timestamp"] for r in receiver.requests}) >= 1


def test_sighup_reloads_topics_and_refuses_a_bad_config(farm) -> None:
    server, receiver, config = farm
    daemon = Daemon(config)
    try:
        wait_until(lambda: polled_twice(server), what="the first polls")
        database = re.search(r'database = "(.*)"', config.read_text()).group(1)  # type: ignore[union-attr]
        write_config(config, server, receiver, TOPICS + '''
[[topics]]
name = "football"
query = 'football OR derby'
''', database=database)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "event=reloaded" in daemon.logs(), what="the reload")
        server.set("/world.xml", rss([OTHER, *OLD], title="World"))
        [alert] = receiver.wait_for(1, timeout=20)
        assert alert.json["data"]["topic"]["name"] == "football"

        config.write_text(config.read_text() + "\n[[topics]]\nname = 'broken'\nquery = '(a OR'\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "event=reload_refused" in daemon.logs(), what="the refusal")
        server.set("/world.xml", rss([LATER, OTHER, *OLD], title="World"))
        receiver.wait_for(2, timeout=20)  # the old config keeps working
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0, daemon.logs()


def test_sigterm_lets_an_in_flight_poll_finish_and_a_second_signal_forces(farm) -> None:
    server, receiver, config = farm
    server.set("/world.xml", rss(OLD, title="World"), delay=2.0)
    daemon = Daemon(config)
    wait_until(lambda: server.count("/world.xml") >= 1, what="the slow poll to start")
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    logs = daemon.logs()
    assert "event=stopping signal=SIGTERM inflight=" in logs
    assert "event=polled feed=" + server.url("/world.xml") in logs  # finished, not dropped
    assert time.monotonic() - started < 10

    server.set("/wire.xml", rss([], title="Wire"), delay=60.0)
    server.set("/world.xml", rss(OLD, title="World"))
    daemon.log.unlink()
    wire_polls = server.count("/wire.xml")
    daemon = Daemon(config)
    wait_until(lambda: server.count("/wire.xml") > wire_polls, what="the stuck poll to start")
    daemon.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "event=stopping " in daemon.logs(), what="the first signal")
    started = time.monotonic()
    assert daemon.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 5  # did not wait out the grace period
    assert "event=stopping_now" in daemon.logs()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_metrics_and_json_logs_of_a_running_daemon(farm) -> None:
    server, receiver, config = farm
    port = free_port()
    text = config.read_text().replace('interval = "1s"', f'interval = "1s"\nlog_format = "json"\n\n'
                                      f'[server]\nlisten = "127.0.0.1:{port}"\n', 1)
    config.write_text(text)
    daemon = Daemon(config)
    try:
        wait_until(lambda: polled_twice(server), what="the first polls")
        server.set("/world.xml", rss([PEACE, *OLD], title="World"))
        receiver.wait_for(1, timeout=20)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and health.text == "ok\n"
        wait_until(lambda: 'monitor_deliveries_total{outcome="delivered"} 1.0'
                   in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text, what="metrics")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(
                       httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
                   for s in f.samples}
        assert samples[("monitor_polls_total", (("result", "ok"),))] >= 3
        assert samples[("monitor_items_new_total", ())] == 3  # two in the baseline, then PEACE
        assert samples[("monitor_alerts_created_total", ())] == 1
        assert samples[("monitor_delivery_duration_seconds_count", ())] == 1
        assert samples[("monitor_fetch_duration_seconds_count", ())] >= 3
        assert samples[("monitor_feeds", ())] == 2 and samples[("monitor_outbox_depth", ())] == 0
        assert samples[("monitor_database_up", ())] == 1
    finally:
        assert daemon.stop() == 0, daemon.logs()
    lines = daemon.logs().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON, nothing else
    assert {"started", "listening", "polled", "delivered", "stopped"} <= {r["event"] for r in records}
