"""How often a feed is polled: its pace from item dates or arrivals, quiet feeds slowing
down, the bounds, and what the server asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.cadence import FIRST_GUESS, FLOOR_CAP, Pace, adaptive, observe, server_floor

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LOW, HIGH = timedelta(minutes=2), timedelta(hours=2)


def every(minutes: float, n: int = 10, start: datetime = NOW) -> list[datetime | None]:
    return [start - timedelta(minutes=minutes * i) for i in range(n)]


def test_dated_items_give_the_median_gap() -> None:
    dates = every(30) + [NOW - timedelta(days=3)]  # one old outlier does not move the median
    pace = observe(Pace(), now=NOW, published=dates, new=0)
    assert pace.mean_gap == timedelta(minutes=30) and pace.newest == NOW
    cadence = adaptive(pace, now=NOW, low=LOW, high=HIGH)
    assert cadence.interval == timedelta(minutes=30)
    assert cadence.reason == "auto: an item about every 30m"


def test_future_dates_and_undated_items_are_ignored() -> None:
    dates = [NOW + timedelta(days=1), None, *every(20, 4)]
    assert observe(Pace(), now=NOW, published=dates, new=0).mean_gap == timedelta(minutes=20)


def test_an_undated_feed_learns_its_pace_from_arrivals() -> None:
    pace = observe(Pace(), now=NOW, published=[None], new=3)
    assert pace == Pace(None, NOW)  # first sighting: nothing to measure yet
    assert adaptive(pace, now=NOW, low=LOW, high=HIGH).interval == FIRST_GUESS
    pace = observe(pace, now=NOW + timedelta(minutes=40), published=[None], new=1)
    assert pace.mean_gap == timedelta(minutes=40)
    pace = observe(pace, now=NOW + timedelta(minutes=60), published=[None], new=1)
    assert pace.mean_gap == timedelta(minutes=34)  # 0.7 × 40 + 0.3 × 20
    assert observe(pace, now=NOW + timedelta(hours=5), published=[None], new=0) == pace


def test_a_quiet_feed_slows_down_within_the_bounds() -> None:
    pace = Pace(timedelta(minutes=10), NOW - timedelta(hours=2))
    cadence = adaptive(pace, now=NOW, low=LOW, high=HIGH)
    assert cadence.interval == timedelta(minutes=30) and cadence.reason == "auto: quiet for 2h"
    silent = adaptive(Pace(timedelta(minutes=10), NOW - timedelta(days=2)), now=NOW, low=LOW, high=HIGH)
    assert silent.interval == HIGH and silent.reason.endswith("held to max_interval 2h")
    busy = adaptive(Pace(timedelta(seconds=20), NOW), now=NOW, low=LOW, high=HIGH)
    assert busy.interval == LOW and busy.reason == "auto: an item about every 20s, held to min_interval 2m"


def test_the_server_sets_a_floor() -> None:
    pace = Pace(timedelta(minutes=5), NOW)
    floor = server_floor({"cache-control": "public, max-age=1800"}, None, NOW)
    assert floor == (timedelta(minutes=30), "Cache-Control max-age 30m")
    assert adaptive(pace, now=NOW, low=LOW, high=HIGH, floor=floor).interval == timedelta(minutes=30)
    # A floor below the pace changes nothing.
    assert adaptive(pace, now=NOW, low=LOW, high=HIGH, floor=(timedelta(minutes=1), "x")).interval == \
        timedelta(minutes=5)


def test_expires_ttl_and_the_cap() -> None:
    date = "Sat, 28 Nov 2026 12:00:00 GMT"
    expires = {"date": date, "expires": "Sat, 28 Nov 2026 12:45:00 GMT"}
    assert server_floor(expires, None, NOW) == (timedelta(minutes=45), "Expires in 45m")
    assert server_floor({}, timedelta(hours=1), NOW) == (timedelta(hours=1), "<ttl> 1h")
    both = server_floor({"cache-control": "max-age=600"}, timedelta(hours=1), NOW)
    assert both == (timedelta(hours=1), "<ttl> 1h")  # the longer wait wins
    huge = server_floor({"cache-control": "max-age=31536000"}, None, NOW)
    assert huge == (FLOOR_CAP, "Cache-Control max-age 365d, capped at 1d")
    for asks_nothing in ({"cache-control": "no-cache, max-age=600"}, {"expires": "0"},
                         {"expires": "Sat, 28 Nov 2026 11:00:00 GMT"}, {}):
        assert server_floor(asks_nothing, None, NOW) is None, asks_nothing
