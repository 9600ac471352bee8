"""APScheduler wiring: a few periodic jobs (poll what is due, deliver, maintain), not one per feed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.log import event

Job = Callable[[], Awaitable[None]]


def build_scheduler(*, poll: Job, deliver: Job, maintain: Job, heartbeat: Job | None = None,
                    tick_seconds: float = 1.0, maintain_seconds: float = 3600.0,
                    heartbeat_seconds: float = 30.0) -> AsyncIOScheduler:
    """Ticks are short: which feeds are due lives in the database, so a tick only asks it.

    max_instances=1 keeps one pass of each job at a time; coalesce drops ticks missed
    while the loop was busy instead of running them in a burst. An exception escaping a
    job is logged as `job_failed` and the job keeps its schedule."""
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"max_instances": 1, "coalesce": True,
                                                                 "misfire_grace_time": None})
    scheduler.add_job(poll, "interval", seconds=tick_seconds, id="poll")
    scheduler.add_job(deliver, "interval", seconds=tick_seconds, id="deliver")
    scheduler.add_job(maintain, "interval", seconds=maintain_seconds, id="maintain")
    if heartbeat is not None:
        scheduler.add_job(heartbeat, "interval", seconds=heartbeat_seconds, id="heartbeat")
    scheduler.add_listener(_log_job_error, EVENT_JOB_ERROR)
    # APScheduler 3.11 logs the same failure itself, 'Job "..." raised an exception', on
    # the executor's logger (BaseExecutor.start names it apscheduler.executors.<alias>);
    # job_failed says it once. addFilter ignores a filter it already has.
    logging.getLogger("apscheduler.executors.default").addFilter(_not_job_error)
    return scheduler


def _log_job_error(job_event: JobExecutionEvent) -> None:
    """An exception escaped a job: `job_failed` with its traceback."""
    error = job_event.exception
    if isinstance(error, asyncio.CancelledError):
        # scheduler.shutdown() cancels running passes; `stopping` has said why.
        return
    event("job_failed", logging.ERROR, job=job_event.job_id, error=f"{type(error).__name__}: {error}",
          exc_info=error)


def _not_job_error(record: logging.LogRecord) -> bool:
    return record.msg != 'Job "%s" raised an exception'
