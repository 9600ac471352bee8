"""One feed, end to end: fetch → parse → identify → dedupe → match → store item + alerts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.config import Config, FeedConfig, TopicConfig, refers_to
from monitor.errors import FetchError
from monitor.fetch import Fetcher, FetchResult
from monitor.formats import new_alert_id
from monitor.identity import item_key, story_key
from monitor.log import event
from monitor.parse import Item, parse_feed
from monitor.query import prepare
from monitor.store import AlertIntent, FeedState, NewItem, Store

MAX_ERROR_BACKOFF = timedelta(hours=6)
MAX_RETRY_AFTER = timedelta(days=1)  # a hostile Retry-After must not park a feed for years


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PollOutcome:
    """What one poll did, for logs, `once` and tests."""

    feed_url: str
    ok: bool
    status: int | None = None
    items: int = 0
    new: int = 0
    alerts: int = 0
    error: str | None = None


def topics_for_feed(topics: tuple[TopicConfig, ...], feed: FeedConfig) -> list[TopicConfig]:
    """The topics that watch this feed: those with no `feeds` filter, or selecting it."""
    return [t for t in topics if not t.feeds or any(refers_to(ref, feed) for ref in t.feeds)]


def webhooks_for_topic(topic: TopicConfig, config: Config) -> tuple[str, ...]:
    return topic.webhooks or tuple(w.name for w in config.webhooks)


def alerting_items(new_items: list[Item], *, baselined: bool, config: Config, now: datetime) -> set[int]:
    """Indexes of the new items that may alert, per `first_poll` on a feed's first good poll."""
    if baselined or config.settings.first_poll == "all":
        return set(range(len(new_items)))
    if config.settings.first_poll == "baseline":
        return set()
    since = now - config.settings.recent
    return {i for i, item in enumerate(new_items) if item.published is not None and item.published >= since}


def hashed_story_key(item: Item, feed_url: str, key: str) -> str:
    """Across feeds a story is its canonical URL; an item without a link is its own story."""
    basis = story_key(item) or f"{feed_url}\n{key}"
    return hashlib.sha256(basis.encode()).hexdigest()


def jittered(interval: timedelta, rng: random.Random) -> timedelta:
    """±10 % so that feeds added together do not stay in lock-step forever."""
    return interval * rng.uniform(0.9, 1.1)


def error_backoff(interval: timedelta, errors: int, retry_after: float | None) -> timedelta:
    """Wait longer after each consecutive failure: interval × 2^(errors-1), capped at 6 h
    (but never shorter than the interval), and never sooner than the server asked
    (up to a day)."""
    delay = min(interval * 2 ** max(0, errors - 1), max(interval, MAX_ERROR_BACKOFF))
    if retry_after:
        delay = max(delay, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return delay


class Pipeline:
    """Polls feeds for the daemon and `once`; the config can be swapped on reload."""

    def __init__(self, store: Store, fetcher: Fetcher, config: Config,
                 clock: Callable[[], datetime] = utcnow, rng: random.Random | None = None):
        self.store = store
        self.fetcher = fetcher
        self.config = config  # the setter indexes it
        self.clock = clock
        self.rng = rng or random.Random()

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """Adopt a (re)loaded config, indexing its feeds so that a poll finds its own in O(1)."""
        self._config = config
        self._feeds_by_url = {f.url: f for f in config.feeds}

    async def poll(self, feed: FeedState) -> PollOutcome:
        """Poll one claimed feed; never raises for a feed's own failures."""
        try:
            result = await self.fetcher.fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified)
        except FetchError as e:
            return await asyncio.to_thread(self._record_failure, feed, str(e), e.status,
                                           getattr(e, "retry_after", None))
        return await asyncio.to_thread(self._process, feed, result)

    def _record_failure(self, feed: FeedState, error: str, status: int | None,
                        retry_after: float | None) -> PollOutcome:
        now = self.clock()
        errors = feed.error_count + 1
        next_poll = now + error_backoff(feed.interval, errors, retry_after)
        self.store.record_failure(feed.id, now=now, next_poll_at=next_poll, error=error)
        event("poll_failed", logging.WARNING, feed=feed.url, error=error, errors=errors,
              retry_at=next_poll.isoformat(timespec="seconds"))
        return PollOutcome(feed.url, ok=False, status=status, error=error)

    def _process(self, feed: FeedState, result: FetchResult) -> PollOutcome:
        config = self.config
        now = self.clock()
        next_poll = now + jittered(feed.interval, self.rng)
        # A feed dropped by a reload while in flight is still matched by its URL.
        feed_config = self._feeds_by_url.get(feed.url) or FeedConfig(feed.url)
        if result.status == 304:
            self.store.record_poll(feed.id, now=now, next_poll_at=next_poll, result="304",
                                   etag=result.etag, last_modified=result.last_modified,
                                   title=None, new_items=[])
            event("polled", feed=feed.url, status=304, new=0, ms=result.elapsed_ms)
            return PollOutcome(feed.url, ok=True, status=304)

        parsed = parse_feed(result.body, url=result.url, headers=result.headers, name=feed.name)
        if parsed.problem and not parsed.items:
            return self._record_failure(feed, parsed.problem, result.status, None)

        fresh = self._unseen(feed, parsed.items)
        may_alert = alerting_items([item for _, item in fresh], baselined=feed.baselined,
                                   config=config, now=now)
        topics = topics_for_feed(config.topics, feed_config)
        new_items = [
            self._new_item(feed, key, item, topics if i in may_alert else [], config, now)
            for i, (key, item) in enumerate(fresh)
        ]
        created = self.store.record_poll(
            feed.id, now=now, next_poll_at=next_poll, result=f"{result.status} new={len(new_items)}",
            etag=result.etag, last_modified=result.last_modified, title=parsed.title,
            new_items=new_items,
        )
        event("polled", feed=feed.url, status=result.status, items=len(parsed.items),
              new=len(new_items), alerts=created, baseline=None if feed.baselined else True,
              ms=result.elapsed_ms)
        return PollOutcome(feed.url, ok=True, status=result.status, items=len(parsed.items),
                           new=len(new_items), alerts=created)

    def _unseen(self, feed: FeedState, parsed: list[Item]) -> list[tuple[str, Item]]:
        """Items this feed has never recorded, in document order, each key once."""
        keyed: dict[str, Item] = {}
        for item in parsed:
            keyed.setdefault(item_key(item), item)
        known = self.store.known_keys(feed.id, keyed)
        return [(key, item) for key, item in keyed.items() if key not in known]

    def _new_item(self, feed: FeedState, key: str, item: Item, topics: list[TopicConfig],
                  config: Config, now: datetime) -> NewItem:
        intents: list[AlertIntent] = []
        if topics:
            doc = prepare(item.title, item.summary)
            for topic in topics:
                matched = topic.query.match(doc)
                if matched:
                    intents += [AlertIntent(new_alert_id(now), topic.name, hook, tuple(matched))
                                for hook in webhooks_for_topic(topic, config)]
        return NewItem(
            key=key, story_key=hashed_story_key(item, feed.url, key), guid=item.guid,
            link=item.link, title=item.title, summary=item.summary, published=item.published,
            alerts=tuple(intents),
        )
