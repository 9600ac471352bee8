"""feedparser on every core: documents parsed, and their items identified, in worker
processes, awaited off the event loop.

Parsing is pure CPU and holds the GIL; in a thread it would serialise every poll behind
it. The workers are spawned (not forked from a process with threads), ignore SIGINT and
SIGTERM (the daemon decides when they stop), and exit when the daemon goes, even killed:
each watches that its parent still lives."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial

from monitor.identity import Identified, identify
from monitor.log import event
from monitor.parse import ParsedFeed, parse_feed

MAX_WORKERS = 8
PARENT_CHECK = 1.0  # seconds between a worker's checks that the daemon still lives
MAX_RESTARTS = 3  # then parse in threads: a pool that keeps dying will not come good


@dataclass(frozen=True)
class ReadFeed:
    """A document parsed, and its items identified (all pure work, done where the CPU is)."""

    parsed: ParsedFeed
    identified: list[Identified]  # parsed.items with their keys, each key once


def read_feed(body: bytes, *, url: str, headers: Mapping[str, str], name: str | None, feed_url: str) -> ReadFeed:
    """Parse `body` (fetched from `url`) and identify its items as items of `feed_url`."""
    parsed = parse_feed(body, url=url, headers=headers, name=name)
    return ReadFeed(parsed, identify(parsed.items, feed_url))


class ParsePool:
    def __init__(self, workers: int | None = None):
        self.workers = workers or min(os.cpu_count() or 1, MAX_WORKERS)
        self._pool: ProcessPoolExecutor | None = self._start()
        self._restarts = 0

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_leave_signals_to_the_daemon, initargs=(os.getpid(),))

    async def read(self, body: bytes, *, url: str, headers: Mapping[str, str], name: str | None,
                   feed_url: str) -> ReadFeed:
        job = partial(read_feed, body, url=url, headers=dict(headers), name=name, feed_url=feed_url)
        pool = self._pool
        if pool is None:
            return await asyncio.to_thread(job)
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, job)
        except BrokenProcessPool:
            # A worker died (out of memory, killed): parse this feed here, and start a new
            # pool for the next ones (the first feed to notice does it).
            if pool is self._pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._restarts += 1
                self._pool = self._start() if self._restarts <= MAX_RESTARTS else None
                event("parse_pool_broken", logging.WARNING, feed=url, restarts=self._restarts,
                      note="a parse worker died; " + ("a new pool takes over" if self._pool
                                                      else "parsing goes on in threads"))
            return await asyncio.to_thread(job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _leave_signals_to_the_daemon(daemon: int) -> None:
    """A worker's start: signals are the daemon's to act on, and when the daemon is gone
    (killed, even with SIGKILL, perhaps before this worker got going) the worker goes too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(daemon,), name="parent-watch", daemon=True).start()


def _exit_with(daemon: int) -> None:
    while os.getppid() == daemon:  # an orphan is adopted by another process
        time.sleep(PARENT_CHECK)
    os._exit(0)
