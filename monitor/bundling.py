"""Which held alerts go out together, and when (pure: time is an argument).

A webhook with `digest` holds every alert; one with `max_per_hour` holds those that find
the clock hour's allowance spent. A topic's held alerts go out together once the earliest
hold ends, in as many digests as the target's message limits need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.formats import DIGEST_CAPACITY, digest_entry_cost

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class HeldAlert:
    """A held alert, as much of it as sizing its digest entry needs."""

    id: str
    title: str
    link: str | None
    summary: str


def split_for(format_: str, held: Sequence[HeldAlert]) -> list[list[str]]:
    """A topic's held alerts, in the order given (oldest first), cut into digests that each
    fit one message of `format_` (at least one alert each, so even an outsize entry goes out)."""
    most, budget = DIGEST_CAPACITY[format_]
    digests: list[list[str]] = []
    cost = 0
    for alert in held:
        entry = digest_entry_cost(format_, alert.title, alert.link, alert.summary)
        if not digests or len(digests[-1]) >= most or cost + entry > budget:
            digests.append([])
            cost = 0
        digests[-1].append(alert.id)
        cost += entry
    return digests


def hour_start(now: datetime) -> datetime:
    """The start of `now`'s clock hour: max_per_hour counts single alerts from here."""
    return now.replace(minute=0, second=0, microsecond=0)


def next_hour(now: datetime) -> datetime:
    """When an alert that overflowed this hour's allowance goes out, in a digest."""
    return hour_start(now) + HOUR
