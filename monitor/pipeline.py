"""One feed, end to end: fetch → parse → identify → dedupe → match → store item + alerts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.batching import Batcher, Unchanged
from monitor.cadence import Cadence, Pace, adaptive, fixed, observe, server_floor
from monitor.config import FEED_HEALTH, Config, Settings, format_duration
from monitor.errors import FetchError, LeaseLost
from monitor.fetch import Fetcher, FetchResult
from monitor.formats import new_alert_id
from monitor.identity import Identified
from monitor.log import event
from monitor.metrics import Metrics
from monitor.parse import Item
from monitor.parsepool import ParsePool, ReadFeed, read_feed
from monitor.query import prepare
from monitor.runtime import Runtime
from monitor.store import AlertIntent, FeedState, NewItem, Store

MAX_ERROR_BACKOFF = timedelta(hours=6)
MAX_RETRY_AFTER = timedelta(days=1)  # a hostile Retry-After must not park a feed for years
GONE = 410  # the feed is gone for good: not polled again until the daemon is restarted or reloaded


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


def alerting_items(new_items: list[Item], *, baselined: bool, config: Config, now: datetime) -> set[int]:
    """Indexes of the new items that may alert, per `first_poll` on a feed's first good poll."""
    if baselined or config.settings.first_poll == "all":
        return set(range(len(new_items)))
    if config.settings.first_poll == "baseline":
        return set()
    since = now - config.settings.recent
    return {i for i, item in enumerate(new_items) if item.published is not None and item.published >= since}


def feed_health_notice(runtime: Runtime, feed: FeedState, *, since: datetime, errors: int, error: str,
                       now: datetime) -> NewItem:
    """The alert, to every webhook, that a feed has been failing for alert_after or more:
    stored as an item of the feed under the topic "feed-health", one per run of failures."""
    name = feed.name or feed.title or feed.url
    started = since.isoformat(timespec="seconds")
    return NewItem(
        key=f"health:{started}",
        story_key=hashlib.sha256(f"{FEED_HEALTH}\n{feed.url}\n{started}".encode()).hexdigest(),
        guid=None, link=feed.url, published=now,
        title=f"Feed failing for {format_duration(now - since)}: {name}",
        summary=f"{errors} polls in a row have failed since {since:%Y-%m-%d %H:%M} UTC. Last error: {error}. "
                "monitor keeps trying; this alert is sent once per run of failures.",
        alerts=tuple(AlertIntent(new_alert_id(now), FEED_HEALTH, hook, ()) for hook in runtime.webhooks_by_name),
    )


def jittered(interval: timedelta, rng: random.Random) -> timedelta:
    """Up to 10 % early, so that feeds added together do not stay in lock-step forever;
    never late, so that an item waits at most the interval (and the tick) to be seen."""
    return interval * rng.uniform(0.9, 1.0)


def error_backoff(interval: timedelta, errors: int, retry_after: float | None) -> timedelta:
    """Wait longer after each consecutive failure: interval × 2^(errors-1), capped at 6 h
    (but never shorter than the interval), and never sooner than the server asked
    (up to a day)."""
    cap = max(interval, MAX_ERROR_BACKOFF)
    # Cap the exponent before multiplying: 2^40 intervals overflow a timedelta, and then
    # the failure would never be recorded again.
    doublings = min(max(0, errors - 1), 32)
    seconds = min(interval.total_seconds() * 2.0 ** doublings, cap.total_seconds())
    delay = timedelta(seconds=seconds)
    if retry_after:
        delay = max(delay, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return delay


@dataclass(frozen=True)
class ParsedPoll:
    """A poll that read a new document, waiting to be stored."""

    runtime: Runtime  # the config snapshot the poll began with
    feed: FeedState
    result: FetchResult
    read: ReadFeed
    body_hash: bytes


class Pipeline:
    """Polls feeds for the daemon and `once`; a reload swaps `runtime`, and each poll keeps
    the snapshot it started with."""

    def __init__(self, store: Store, fetcher: Fetcher, runtime: Runtime,
                 clock: Callable[[], datetime] = utcnow, rng: random.Random | None = None,
                 metrics: Metrics | None = None, parser: ParsePool | None = None, batched: bool = False):
        self.store = store
        self.parser = parser
        # The daemon records polls in batches; tests and `once` one at a time.
        self.unchanged = Batcher(store.record_unchanged) if batched else None
        # Smaller batches: a batch holds SQLite's write lock while it matches its items.
        self.parsed = Batcher(self._store_all, max_batch=32) if batched else None
        self.fetcher = fetcher
        self.runtime = runtime
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = metrics or Metrics()

    async def poll(self, feed: FeedState) -> PollOutcome:
        """Poll one claimed feed; never raises for a feed's own failures."""
        runtime = self.runtime
        try:
            result = await self.fetcher.fetch(feed.fetch_url, etag=feed.etag, last_modified=feed.last_modified)
        except FetchError as e:
            if e.status == GONE:
                return await asyncio.to_thread(self._record_gone, feed, str(e))
            return await asyncio.to_thread(self._record_failure, runtime, feed, str(e), e.status,
                                           getattr(e, "retry_after", None))
        if result.moved_to and result.moved_to != feed.moved_to:
            event("feed_moved", feed=feed.url, to=result.moved_to,
                  note="a permanent redirect: polled there from now on; the config is unchanged")
        body_hash = hashlib.sha256(result.body).digest()[:16] if result.status != 304 else None
        if body_hash is None or body_hash == feed.body_hash:
            return await self._unchanged(runtime, feed, result)
        read = await self._read(result, feed)
        if read.parsed.problem and not read.parsed.items:
            return await asyncio.to_thread(self._record_failure, runtime, feed, read.parsed.problem, result.status,
                                           None, result.elapsed_ms / 1000)
        poll = ParsedPoll(runtime, feed, result, read, body_hash)
        if self.parsed is None:
            [outcome] = await asyncio.to_thread(self._store_all, [poll])
            return outcome
        return await self.parsed.record(poll)

    async def _read(self, result: FetchResult, feed: FeedState) -> ReadFeed:
        """In the parse pool's processes when there is one, else in a thread."""
        if self.parser is None:
            return await asyncio.to_thread(read_feed, result.body, url=result.url, headers=result.headers,
                                           name=feed.name, feed_url=feed.url)
        return await self.parser.read(result.body, url=result.url, headers=result.headers, name=feed.name,
                                      feed_url=feed.url)

    def _record_gone(self, feed: FeedState, error: str) -> PollOutcome:
        try:
            self.store.record_gone(feed, now=self.clock(), error=error)
        except LeaseLost as e:
            return self._lease_lost(feed, e)
        self.metrics.polled("error", None)
        event("feed_gone", logging.ERROR, feed=feed.url, error=error,
              note="not polled again until the daemon is restarted or reloaded")
        return PollOutcome(feed.url, ok=False, status=GONE, error=error)

    def _record_failure(self, runtime: Runtime, feed: FeedState, error: str, status: int | None,
                        retry_after: float | None, seconds: float | None = None) -> PollOutcome:
        now = self.clock()
        errors = feed.error_count + 1
        next_poll = now + error_backoff(feed.interval, errors, retry_after)
        since = feed.failing_since or now
        after = runtime.alert_after(feed.url)
        health = None
        if after is not None and not feed.health_alerted and now - since >= after:
            health = feed_health_notice(runtime, feed, since=since, errors=errors, error=error, now=now)
        try:
            created = self.store.record_failure(feed, now=now, next_poll_at=next_poll, error=error, health=health)
        except LeaseLost as e:
            return self._lease_lost(feed, e)
        self.metrics.polled("error", seconds)
        event("poll_failed", logging.WARNING, feed=feed.url, error=error, errors=errors,
              retry_at=next_poll.isoformat(timespec="seconds"))
        if health:
            event("feed_health_alert", logging.WARNING, feed=feed.url, failing_since=since.isoformat(timespec="seconds"),
                  errors=errors, alerts=created)
        return PollOutcome(feed.url, ok=False, status=status, error=error, alerts=created)

    def _lease_lost(self, feed: FeedState, e: LeaseLost) -> PollOutcome:
        event("poll_lease_lost", logging.WARNING, feed=feed.url,
              note="another poller took the feed after this poll's lease lapsed; its result was dropped")
        return PollOutcome(feed.url, ok=False, error=str(e))

    async def _unchanged(self, runtime: Runtime, feed: FeedState, result: FetchResult) -> PollOutcome:
        """Nothing new to read: a 304, or the very bytes parsed last time."""
        now = self.clock()
        cadence = self._cadence(runtime.config.settings, feed, feed.pace, now, server_floor(result.headers, None, now))
        poll = Unchanged(feed, now, now + jittered(cadence.interval, self.rng),
                         "304" if result.status == 304 else f"{result.status} unchanged",
                         result.etag, result.last_modified, cadence, result.moved_to)
        if self.unchanged is None:
            [written] = await asyncio.to_thread(self.store.record_unchanged, [poll])
        else:
            written = await self.unchanged.record(poll)
        if not written:
            return self._lease_lost(feed, LeaseLost(f"the lease on {feed.url} lapsed and another poller took it"))
        self.metrics.polled("not_modified", result.elapsed_ms / 1000)
        event("polled", feed=feed.url, status=result.status, new=0, unchanged=result.status != 304 or None,
              ms=result.elapsed_ms)
        return PollOutcome(feed.url, ok=True, status=result.status)

    def _store_all(self, polls: list[ParsedPoll]) -> list[PollOutcome]:
        """Store parsed polls in one transaction, then log them (once they are in)."""
        with self.store.batch():
            outcomes = [self._store_parsed(poll) for poll in polls]
        for poll, outcome in zip(polls, outcomes, strict=True):
            if outcome.ok:
                self.metrics.polled("ok", poll.result.elapsed_ms / 1000, seen=outcome.items, new=outcome.new,
                                    alerts=outcome.alerts)
                event("polled", feed=poll.feed.url, status=outcome.status, items=outcome.items,
                      new=outcome.new, alerts=outcome.alerts, baseline=None if poll.feed.baselined else True,
                      ms=poll.result.elapsed_ms)
        return outcomes

    def _store_parsed(self, poll: ParsedPoll) -> PollOutcome:
        runtime, feed, result, parsed = poll.runtime, poll.feed, poll.result, poll.read.parsed
        config = runtime.config
        now = self.clock()
        fresh, buried = self._unseen(feed, poll.read.identified)
        may_alert = alerting_items([i.item for i in fresh], baselined=feed.baselined, config=config, now=now)
        skipped = runtime.topics_skipped(feed.url)
        new_items = [self._new_item(runtime, identified, skipped if n in may_alert else None, now)
                     for n, identified in enumerate(fresh)]
        pace = observe(feed.pace, now=now, published=[item.published for item in parsed.items], new=len(fresh))
        cadence = self._cadence(config.settings, feed, pace, now, server_floor(result.headers, parsed.ttl, now))
        try:
            created = self.store.record_poll(
                feed, now=now, next_poll_at=now + jittered(cadence.interval, self.rng),
                result=f"{result.status} new={len(new_items)}", etag=result.etag,
                last_modified=result.last_modified, title=parsed.title, new_items=new_items,
                buried=buried, cadence=cadence, body_hash=poll.body_hash, moved_to=result.moved_to,
                rules=runtime.story_rules,
            )
        except LeaseLost as e:
            return self._lease_lost(feed, e)
        return PollOutcome(feed.url, ok=True, status=result.status, items=len(parsed.items),
                           new=len(new_items), alerts=created)

    @staticmethod
    def _cadence(settings: Settings, feed: FeedState, pace: Pace, now: datetime,
                 floor: tuple[timedelta, str] | None) -> Cadence:
        if not feed.auto:
            return fixed(feed.interval, pace)
        return adaptive(pace, now=now, low=settings.min_interval, high=settings.max_interval, floor=floor)

    def _unseen(self, feed: FeedState, identified: list[Identified]) -> tuple[list[Identified], tuple[bytes, ...]]:
        """The items this feed has never recorded under any of their keys, in document
        order; and the tombstones of pruned items the feed still serves.

        An item whose guid the document shares with others, and whose story this feed
        already has, is the item stored under that guid before."""
        if not feed.baselined:  # never read before: nothing of it is stored, nothing buried
            return identified, ()
        known = self.store.known_keys(feed.id, [key for i in identified for key in i.keys])
        fresh = [i for i in identified if known.keys.isdisjoint(i.keys)]
        rekeyed = {story for i in fresh if i.shared_guid for story in i.stories}
        if rekeyed:
            had = self.store.stories_in_feed(feed.id, rekeyed)
            fresh = [i for i in fresh if not (i.shared_guid and not had.isdisjoint(i.stories))]
        return fresh, known.buried

    @staticmethod
    def _new_item(runtime: Runtime, identified: Identified, skipped: frozenset[int] | None,
                  now: datetime) -> NewItem:
        """`skipped`: the topics that do not watch the feed; None: no matching at all."""
        item = identified.item
        intents: list[AlertIntent] = []
        if skipped is not None:
            doc = prepare(item.title, item.summary)
            for topic, matched in runtime.topic_index.matches(doc, skipped):
                intents += [AlertIntent(new_alert_id(now), topic.name, hook, tuple(matched), topic.dedupe == "story")
                            for hook in runtime.webhooks_for(topic)]
        story, *aliases = identified.stories
        return NewItem(
            key=identified.key, story_key=story, story_aliases=tuple(aliases), guid=item.guid,
            link=item.link, title=item.title, summary=item.summary, published=item.published,
            alerts=tuple(intents), fingerprint=identified.fingerprint,
        )
