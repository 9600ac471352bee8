"""TOML file → validated, frozen config; collects every problem with its key path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from monitor.query import Query

FORMATS = ("json", "slack", "discord", "teams", "mattermost", "ntfy")
FIRST_POLL_MODES = ("baseline", "recent", "all")


@dataclass(frozen=True)
class Settings:
    """The [monitor] table."""

    database: str = "sqlite:///monitor.db"   # resolved: a relative sqlite path is made absolute
    interval: timedelta = timedelta(minutes=10)
    first_poll: str = "baseline"
    recent: timedelta = timedelta(hours=24)
    concurrency: int = 32                     # feeds fetched at once (beyond SPEC; documented)
    timeout: timedelta = timedelta(seconds=30)  # total time for one feed fetch (beyond SPEC)


@dataclass(frozen=True)
class WebhookConfig:
    name: str
    url: str
    format: str = "json"
    secret: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class FeedConfig:
    url: str
    name: str | None = None
    interval: timedelta | None = None       # None: Settings.interval
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class TopicConfig:
    name: str
    query: Query
    title: str | None = None
    webhooks: tuple[str, ...] = ()           # () = every webhook
    feeds: tuple[str, ...] = ()              # () = every feed; entries are names, URLs or "tag:x"


@dataclass(frozen=True)
class Config:
    path: Path
    settings: Settings
    webhooks: tuple[WebhookConfig, ...]
    feeds: tuple[FeedConfig, ...]
    topics: tuple[TopicConfig, ...]


def parse_duration(text: str) -> timedelta:
    """"30s", "5m", "1h", "2d" (also "1h30m") → timedelta; ValueError with a clear message."""
    raise NotImplementedError


def load_config(path: str | Path) -> Config:
    """Read and validate; raises ConfigError listing every problem (never anything else)."""
    raise NotImplementedError
