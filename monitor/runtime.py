"""One immutable snapshot of a config, indexed for routing: a poll keeps the one it began with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from monitor.config import Config, FeedConfig, TopicConfig, WebhookConfig, refers_to


def topics_for_feed(topics: tuple[TopicConfig, ...], feed: FeedConfig) -> tuple[TopicConfig, ...]:
    """The topics that watch this feed: those with no `feeds` filter, or selecting it."""
    return tuple(t for t in topics if not t.feeds or any(refers_to(ref, feed) for ref in t.feeds))


@dataclass(frozen=True)
class Runtime:
    """A config and its indexes, built once per load so that a reload swaps them together."""

    config: Config
    feeds_by_url: Mapping[str, FeedConfig]
    topics_by_feed: Mapping[str, tuple[TopicConfig, ...]]
    topics_by_name: Mapping[str, TopicConfig]
    webhooks_by_name: Mapping[str, WebhookConfig]
    unfiltered_topics: tuple[TopicConfig, ...]  # those watching every feed

    @classmethod
    def of(cls, config: Config) -> Runtime:
        return cls(
            config=config,
            feeds_by_url=MappingProxyType({f.url: f for f in config.feeds}),
            topics_by_feed=MappingProxyType({f.url: topics_for_feed(config.topics, f)
                                             for f in config.feeds}),
            topics_by_name=MappingProxyType({t.name: t for t in config.topics}),
            webhooks_by_name=MappingProxyType({w.name: w for w in config.webhooks}),
            unfiltered_topics=tuple(t for t in config.topics if not t.feeds),
        )

    def topics_for(self, feed_url: str) -> tuple[TopicConfig, ...]:
        # A feed dropped by a reload while in flight still meets the topics of every feed.
        return self.topics_by_feed.get(feed_url, self.unfiltered_topics)

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
