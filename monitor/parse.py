"""Feed bytes → normalised items (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Item:
    """One feed entry, normalised.

    title/summary are plain text: HTML stripped, entities decoded, whitespace collapsed.
    """

    title: str
    summary: str
    link: str | None       # absolute URL as the feed gave it (resolved against the feed URL)
    guid: str | None       # the entry's guid/id, stripped; None when absent or empty
    published: datetime | None  # aware UTC; None when the feed gives no usable date
    feed_name: str


@dataclass(frozen=True)
class ParsedFeed:
    """What a feed document said: its own title and its items, in document order."""

    title: str | None
    items: list[Item]
    problem: str | None = None  # why nothing could be read (not a feed, broken XML); None when fine


def parse_feed(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str] | None = None,
    name: str | None = None,
) -> ParsedFeed:
    """Parse a feed body. `name` (the configured feed name) wins over the feed's own
    title, which wins over `url`, for `Item.feed_name`. Never raises: a body that is not
    a feed gives no items and a `problem`; broken XML gives whatever feedparser recovered."""
    raise NotImplementedError
