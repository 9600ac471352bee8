"""APScheduler wiring: a few periodic jobs (poll what is due, deliver, maintain), not one per feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

Job = Callable[[], Awaitable[None]]


def build_scheduler(*, poll: Job, deliver: Job, maintain: Job,
                    tick_seconds: float = 1.0, maintain_seconds: float = 3600.0) -> AsyncIOScheduler:
    """Ticks are short: which feeds are due lives in the database, so a tick only asks it.

    max_instances=1 keeps one pass of each job at a time; coalesce drops ticks missed
    while the loop was busy instead of running them in a burst."""
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"max_instances": 1, "coalesce": True,
                                                                 "misfire_grace_time": None})
    scheduler.add_job(poll, "interval", seconds=tick_seconds, id="poll")
    scheduler.add_job(deliver, "interval", seconds=tick_seconds, id="deliver")
    scheduler.add_job(maintain, "interval", seconds=maintain_seconds, id="maintain")
    return scheduler
