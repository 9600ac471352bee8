"""Polls recorded many at a time: one transaction, and one hop to a thread, per batch
instead of per poll. Most polls of a large farm are 304s, each a row update; a cold start
writes thousands of feeds' items, each a small transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from monitor.cadence import Cadence
from monitor.store import FeedState

MAX_WAIT = 0.05    # seconds a poll's record may wait for others to join it
MAX_BATCH = 256

T = TypeVar("T")
R = TypeVar("R")


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


class Batcher(Generic[T, R]):
    """Collects records and writes them together with `write` (in a thread: it blocks),
    which gives one result per record. `record` returns once its record is written, with
    its result; a write that fails fails every record of its batch alike.

    One write at a time (a group commit): records that arrive while a batch is being
    written wait for it and go together in the next, so the busier the store, the larger
    its batches and the fewer its commits."""

    def __init__(self, write: Callable[[list[T]], list[R]], max_batch: int = MAX_BATCH,
                 max_wait: float = MAX_WAIT):
        self.write = write
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing = False

    async def record(self, record: T) -> R:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        self._pending.append((record, done))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None and not self._writing:
            self._timer = loop.call_later(self.max_wait, self._flush)
        return await done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing or not self._pending:
            return  # the write under way flushes the rest when it ends
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        self._writing = True
        asyncio.get_running_loop().create_task(self._write(batch))

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await asyncio.to_thread(self.write, [record for record, _ in batch])
        except Exception as e:  # the database: every record in the batch fails alike
            for _, done in batch:
                if not done.done():
                    done.set_exception(e)
        else:
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():  # its poll may have been cancelled meanwhile
                    done.set_result(result)
        finally:
            self._writing = False
        self._flush()
