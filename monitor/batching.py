"""Unchanged polls recorded many at a time: one transaction, and one hop to a thread, per
batch instead of per poll. Most polls of a large farm are 304s; each costs a row update."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from monitor.cadence import Cadence
from monitor.store import FeedState, Store

MAX_WAIT = 0.05    # seconds a poll's record may wait for others to join it
MAX_BATCH = 256


@dataclass(frozen=True)
class Unchanged:
    """What an unchanged poll (a 304, or the same bytes) writes to its feed's row."""

    feed: FeedState
    now: datetime
    next_poll_at: datetime
    result: str
    etag: str | None
    last_modified: str | None
    cadence: Cadence
    moved_to: str | None


class UnchangedWriter:
    """Collects unchanged polls and records them together; `record` returns once its poll
    is written: True, or False when the feed's lease had lapsed (nothing was written)."""

    def __init__(self, store: Store):
        self.store = store
        self._pending: list[tuple[Unchanged, asyncio.Future[bool]]] = []
        self._timer: asyncio.TimerHandle | None = None

    async def record(self, poll: Unchanged) -> bool:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._pending.append((poll, done))
        if len(self._pending) >= MAX_BATCH:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(MAX_WAIT, self._flush)
        return await done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            asyncio.get_running_loop().create_task(self._write(batch))

    async def _write(self, batch: list[tuple[Unchanged, asyncio.Future[bool]]]) -> None:
        try:
            written = await asyncio.to_thread(self.store.record_unchanged, [poll for poll, _ in batch])
        except Exception as e:  # the database: every poll in the batch fails alike
            for _, done in batch:
                done.set_exception(e)
            return
        for (_, done), ok in zip(batch, written, strict=True):
            done.set_result(ok)
