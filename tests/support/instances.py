"""Several real `monitor run` processes on one database, over a local feed farm and a
receiver: for the multi-instance test and benchmarks/instances.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.feedserver import FeedServer, rss
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def feed_path(n: int) -> str:
    return f"/farm/{n}.xml"


def item(feed: int, n: int, title: str) -> dict[str, Any]:
    return {"title": title, "guid": f"f{feed}-{n}", "link": f"https://farm.example/{feed}/{n}"}


class Farm:
    """N feeds on one local server, each starting with one quiet item."""

    def __init__(self, server: FeedServer, feeds: int):
        self.server = server
        self.items: list[list[dict[str, Any]]] = [[item(f, 0, f"Weather report {f}")] for f in range(feeds)]
        for f, entries in enumerate(self.items):
            server.set(feed_path(f), rss(entries))

    def publish(self, feed: int, title: str) -> None:
        entries = self.items[feed]
        entries.insert(0, item(feed, len(entries), title))
        self.server.set(feed_path(feed), rss(entries))

    def polls(self) -> list[int]:
        return [self.server.count(feed_path(f)) for f in range(len(self.items))]


def write_config(path: Path, database: str, server: FeedServer, receiver: Receiver, feeds: int,
                 interval: str) -> Path:
    feed_tables = "".join(f'[[feeds]]\nurl = "{server.url(feed_path(f))}"\n\n' for f in range(feeds))
    path.write_text(f'''
[monitor]
database = "{database}"
interval = "{interval}"
timeout = "5s"
per_host = 1000  # every feed of the farm is on one host: no politeness limit here

[[webhooks]]
name = "ops"
url = "{receiver.url()}"
secret = "{SECRET}"

{feed_tables}
[[topics]]
name = "peace"
query = "ceasefire"
''')
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def upgrade(config: Path) -> None:
    subprocess.run([sys.executable, "-m", "monitor", "db", "upgrade", "-c", str(config)],
                   check=True, capture_output=True, timeout=60)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def titles_and_ids(receiver: Receiver) -> tuple[dict[str, set[str]], int]:
    """Per delivered title, the webhook-ids it came with; and how many requests were accepted."""
    seen: dict[str, set[str]] = {}
    accepted = receiver.received
    for request in accepted:
        seen.setdefault(request.json["data"]["item"]["title"], set()).add(request.headers["webhook-id"])
    return seen, len(accepted)
