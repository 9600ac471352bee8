"""One immutable snapshot of a config, indexed for routing: a poll keeps the one it began with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from monitor.config import Config, FeedConfig, TopicConfig, WebhookConfig
from monitor.stories import StoryRules
from monitor.topic_index import TopicIndex


def feeds_by_reference(feeds: tuple[FeedConfig, ...]) -> dict[str, list[FeedConfig]]:
    """What each possible entry of a topic's `feeds` selects: a feed's URL, its name, and
    "tag:x" for each of its tags (config.refers_to, for every feed at once)."""
    refs: dict[str, list[FeedConfig]] = {}
    for feed in feeds:
        names = {feed.url, *(f"tag:{tag}" for tag in feed.tags)} | ({feed.name} if feed.name else set())
        for ref in names:
            refs.setdefault(ref, []).append(feed)
    return refs


@dataclass(frozen=True)
class Runtime:
    """A config and its indexes, built once per load so that a reload swaps them together.
    Building the query index takes a while for thousands of topics: off the event loop."""

    config: Config
    feeds_by_url: Mapping[str, FeedConfig]
    topics_by_name: Mapping[str, TopicConfig]
    webhooks_by_name: Mapping[str, WebhookConfig]
    topic_index: TopicIndex[TopicConfig]  # every topic, in config order
    filtered: frozenset[int]  # the topics (ordinals in the index) with a `feeds` filter
    watched_by: Mapping[str, frozenset[int]]  # feed URL → the filtered topics that select it
    story_rules: StoryRules

    @classmethod
    def of(cls, config: Config) -> Runtime:
        filtered = [i for i, t in enumerate(config.topics) if t.feeds]
        refs = feeds_by_reference(config.feeds) if filtered else {}
        watched_by: dict[str, set[int]] = {}
        for i in filtered:
            for feed in (f for ref in config.topics[i].feeds for f in refs.get(ref, ())):
                watched_by.setdefault(feed.url, set()).add(i)
        return cls(
            config=config,
            feeds_by_url=MappingProxyType({f.url: f for f in config.feeds}),
            topics_by_name=MappingProxyType({t.name: t for t in config.topics}),
            webhooks_by_name=MappingProxyType({w.name: w for w in config.webhooks}),
            topic_index=TopicIndex((t, t.query) for t in config.topics),
            filtered=frozenset(filtered),
            watched_by=MappingProxyType({url: frozenset(topics) for url, topics in watched_by.items()}),
            story_rules=StoryRules(config.settings.story_window, MappingProxyType(
                {t.name: t.follow_up_sources for t in config.topics if t.follow_ups})),
        )

    def topics_skipped(self, feed_url: str) -> frozenset[int] | None:
        """The topics (ordinals in `topic_index`) that do not watch this feed; None when
        no topic does. A feed dropped by a reload while in flight still meets the topics
        of every feed."""
        skipped = self.filtered - self.watched_by.get(feed_url, frozenset())
        return None if len(skipped) == len(self.topic_index) else skipped

    def alert_after(self, feed_url: str) -> timedelta | None:
        """How long the feed may fail before it sends a feed-health alert; None: never."""
        feed = self.feeds_by_url.get(feed_url)
        return (feed.alert_after if feed else None) or self.config.settings.alert_after

    def webhooks_for(self, topic: TopicConfig) -> tuple[str, ...]:
        return topic.webhooks or tuple(self.webhooks_by_name)

    def feed_schedule(self) -> list[tuple[str, str | None, timedelta | None]]:
        """(url, name, fixed interval or None for "auto") per configured feed, as the feeds
        table keeps them."""
        default = self.config.settings.interval
        return [(f.url, f.name, f.interval or default) for f in self.config.feeds]
