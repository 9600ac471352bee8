"""A Store + Pipeline over a config, driven by a fake clock, for pipeline and retention tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from monitor.config import Config, load_config
from monitor.fetch import Fetcher
from monitor.pipeline import Pipeline
from monitor.runtime import Runtime
from monitor.store import Store, open_store
from monitor.tables import alerts, feeds, items
from tests.support.feedserver import FeedServer

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def write_config(tmp_path: Path, server: FeedServer, database: str, *, first_poll: str = "baseline",
                 extra_feeds: str = "", topics: str | None = None,
                 hook_url: str = "http://127.0.0.1:9/hook", hook_extra: str = "",
                 interval: str = "10m", monitor_extra: str = "") -> Config:
    topics = topics or '''
[[topics]]
name = "peace"
title = "Peace talks"
query = '"peace talks" OR ceasefire'

[[topics]]
name = "sanctions"
query = 'sanctions AND Russia'
'''
    (tmp_path / "monitor.toml").write_text(f'''
[monitor]
database = "{database}"
interval = "{interval}"
first_poll = "{first_poll}"
recent = "24h"
{monitor_extra}

[[webhooks]]
name = "ops"
url = "{hook_url}"
{hook_extra}

[[feeds]]
url = "{server.url('/a.xml')}"
name = "Feed A"
tags = ["wire"]
{extra_feeds}
{topics}
''')
    return load_config(tmp_path / "monitor.toml")


class Harness:
    """One Store + Pipeline over a config, driven by a fake clock (time is an input)."""

    def __init__(self, config: Config):
        self.config = config
        self.clock = Clock()
        self.fetch_timeout = 10.0
        self.runtime = Runtime.of(config)
        self.store = open_store(config.settings.database, auto_migrate=False, lease_clock=self.clock)
        _open_stores.append(self.store)
        self.store.sync_feeds(self.runtime.feed_schedule(), self.clock())

    def poll_all(self) -> list:
        async def go() -> list:
            async with Fetcher(timeout=self.fetch_timeout) as fetcher:
                pipeline = Pipeline(self.store, fetcher, self.runtime, self.clock)
                due = self.store.claim_due_feeds(self.clock(), 100, timedelta(minutes=1), all_feeds=True)
                return [await pipeline.poll(f) for f in due]
        return asyncio.run(go())

    def alerts(self) -> list[tuple[str, str, str]]:
        """(item title, topic, webhook) of every stored alert, in creation order."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(items.c.title, alerts.c.topic, alerts.c.webhook)
                                .join(items, items.c.id == alerts.c.item_id)
                                .order_by(alerts.c.created_at, items.c.id, alerts.c.topic))
            return [tuple(r) for r in rows]

    def feed_row(self, url: str) -> dict:
        with self.store.engine.connect() as conn:
            return dict(conn.execute(select(feeds).where(feeds.c.url == url)).one()._mapping)


_open_stores: list[Store] = []


@contextmanager
def closing_stores() -> Iterator[None]:
    """Close every Harness store at the end (PostgreSQL drops a database only when idle)."""
    try:
        yield
    finally:
        while _open_stores:
            _open_stores.pop().close()
