"""How often to poll a feed (pure: time is an argument).

With `interval = "auto"` a feed is polled about as often as it publishes: the typical gap
between its recent items (from their dates, else from when new items turned up), stretched
while the feed is quiet, within min_interval … max_interval. What the server asks for
(Cache-Control max-age, Expires, RSS <ttl>) is a floor. A configured interval is fixed."""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from monitor.config import format_duration

RECENT_ITEMS = 20                # the newest items whose gaps describe the feed's pace
QUIET_FACTOR = 4                 # silent for 4 h: poll about hourly
FLOOR_CAP = timedelta(days=1)    # no server can make us wait longer than this
FIRST_GUESS = timedelta(minutes=10)  # before anything is known
EWMA = 0.3                       # weight of the newest gap seen on arrival


@dataclass(frozen=True)
class Pace:
    """What is known of a feed's publishing, kept between polls."""

    mean_gap: timedelta | None = None  # typical gap between its items
    newest: datetime | None = None     # its newest item (published, else when first seen)


@dataclass(frozen=True)
class Cadence:
    interval: timedelta
    reason: str       # for `status`: why this interval
    pace: Pace


FIXED_REASON = "fixed by the config"


def fixed(interval: timedelta, pace: Pace) -> Cadence:
    return Cadence(interval, FIXED_REASON, pace)


def observe(pace: Pace, *, now: datetime, published: Sequence[datetime | None], new: int) -> Pace:
    """The pace after a poll that read the feed: `published` are its items' dates, `new`
    how many items were new. Dated items give their gaps directly; an undated feed's gap
    is learnt from when new items turned up."""
    dates = sorted((d for d in published if d is not None and d <= now), reverse=True)[:RECENT_ITEMS]
    if len(dates) >= 3:
        gaps = [(a - b).total_seconds() for a, b in zip(dates, dates[1:], strict=False)]
        return Pace(timedelta(seconds=max(1.0, statistics.median(gaps))), max(dates[0], pace.newest or dates[0]))
    if not new:
        return pace
    if pace.newest is None:
        return Pace(pace.mean_gap, now)
    gap = (now - pace.newest).total_seconds()
    mean = gap if pace.mean_gap is None else (1 - EWMA) * pace.mean_gap.total_seconds() + EWMA * gap
    return Pace(timedelta(seconds=max(1.0, mean)), now)


def adaptive(pace: Pace, *, now: datetime, low: timedelta, high: timedelta,
             floor: tuple[timedelta, str] | None = None) -> Cadence:
    """The next interval for a feed with this pace: its typical gap, or a quarter of the
    time since its newest item when that is longer (a quiet feed slows down), within
    [low, high]; then no shorter than the server's floor."""
    if pace.mean_gap is None:
        interval, reason = FIRST_GUESS, "auto: nothing known of its pace yet"
    else:
        interval = pace.mean_gap
        reason = f"auto: an item about every {format_duration(_whole(pace.mean_gap))}"
        if pace.newest is not None and (quiet := (now - pace.newest) / QUIET_FACTOR) > interval:
            interval = quiet
            reason = f"auto: quiet for {format_duration(_whole(now - pace.newest))}"
    if interval < low:
        interval, reason = low, reason + f", held to min_interval {format_duration(low)}"
    elif interval > high:
        interval, reason = high, reason + f", held to max_interval {format_duration(high)}"
    if floor is not None and floor[0] > interval:
        interval, reason = floor
    return Cadence(_whole(interval), reason, pace)


_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def server_floor(headers: Mapping[str, str], ttl: timedelta | None, now: datetime) -> tuple[timedelta, str] | None:
    """The longest wait the server asks for: Cache-Control max-age, else Expires; and
    RSS <ttl>. Capped at a day; None when it asks for nothing."""
    floors: list[tuple[timedelta, str]] = []
    cache_control = headers.get("cache-control", "")
    if (match := _MAX_AGE.search(cache_control)) and "no-cache" not in cache_control.lower():
        age = timedelta(seconds=int(match[1]))
        floors.append((age, f"Cache-Control max-age {format_duration(age)}"))
    elif expires := _http_date(headers.get("expires")):
        start = _http_date(headers.get("date")) or now
        if expires > start:
            floors.append((expires - start, f"Expires in {format_duration(_whole(expires - start))}"))
    if ttl:
        floors.append((ttl, f"<ttl> {format_duration(ttl)}"))
    if not floors:
        return None
    wait, reason = max(floors, key=lambda f: f[0])
    return (FLOOR_CAP, reason + ", capped at 1d") if wait > FLOOR_CAP else (wait, reason)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else None


def _whole(duration: timedelta) -> timedelta:
    return timedelta(seconds=max(1, round(duration.total_seconds())))
