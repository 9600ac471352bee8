"""The service: start, poll and deliver on schedule, reload on SIGHUP, stop gracefully."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import log
from monitor.config import Config, load_config
from monitor.deliver import Sender
from monitor.errors import ConfigError, MonitorError
from monitor.fetch import Fetcher
from monitor.log import event
from monitor.metrics import Metrics
from monitor.outbox import Outbox
from monitor.parsepool import ParsePool
from monitor.pipeline import Pipeline, PollOutcome, utcnow
from monitor.retention import PruneStats, prune
from monitor.runtime import Runtime
from monitor.scheduler import build_scheduler
from monitor.server import Liveness, OpsServer
from monitor.store import FeedState, Store, open_store, sqlite_file

SHUTDOWN_GRACE = 10.0           # seconds in-flight work gets after SIGTERM/SIGINT
STALE_LOOP = 60.0               # /healthz fails when the poll loop has not ticked for this long
# The maintenance job runs hourly; its holder renews the lease each time, and if it dies
# another instance takes over within the hour.
MAINTENANCE_LEASE = timedelta(minutes=65)


def hold_run_lock(database: str) -> IO[bytes] | None:
    """On SQLite one daemon per database file: an exclusive lock on a file beside it, held
    until the process ends (the kernel drops it even after SIGKILL). `once` takes none."""
    file = sqlite_file(database)
    if file is None:
        return None
    path = file.with_name(file.name + ".run-lock")
    try:
        handle = path.open("ab")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise MonitorError(
            f"another `monitor run` is already using {file} (it holds {path}): on SQLite one "
            "daemon runs per database; for several instances use PostgreSQL "
            "(`monitor once` beside a daemon is fine)") from None
    except OSError as e:
        raise MonitorError(f"cannot lock {path}: {e.strerror or e}") from e
    return handle


class Service:
    """Everything one process needs: store, fetcher, sender, pipeline, outbox."""

    def __init__(self, config: Config, clock: Callable[[], datetime] = utcnow, *, daemon: bool = False):
        self.clock = clock
        self.runtime = Runtime.of(config)
        self.store: Store = open_store(config.settings.database, auto_migrate=config.settings.auto_migrate,
                                       config_path=str(config.path), daemon=daemon)
        timeout = config.settings.timeout.total_seconds()
        self.metrics = Metrics(figures=self.store.figures, clock=clock)
        settings = config.settings
        self.fetcher = Fetcher(concurrency=settings.concurrency, timeout=timeout, per_host=settings.per_host,
                               host_delay=settings.host_delay.total_seconds())
        self.sender = Sender()
        self.parser = ParsePool()
        self.pipeline = Pipeline(self.store, self.fetcher, self.runtime, clock, metrics=self.metrics,
                                 parser=self.parser, batched=True)
        self.outbox = Outbox(self.store, self.sender, self.runtime, clock, metrics=self.metrics)
        # A poll holds its lease for the fetch timeout plus processing (with room to wait
        # for a turn); a crashed process's leases lapse after this and its feeds are due again.
        self.lease = timedelta(seconds=2 * timeout + 10)

    @property
    def config(self) -> Config:
        return self.runtime.config

    def apply(self, runtime: Runtime, instance: str | None = None) -> None:
        """Adopt a config (startup or reload): the feeds table first, then the snapshot that
        polls and deliveries read. A daemon (with its `instance` id) also switches on again
        the webhooks and feeds that answered 410. Blocking: call it off the event loop."""
        self.sync_feeds(runtime, instance)
        for name in self.store.enable_webhooks(runtime.webhooks_by_name):
            event("webhook_enabled", webhook=name)
        if instance is not None:
            for url in self.store.revive_feeds():
                event("feed_revived", feed=url)
        settings = runtime.config.settings
        self.fetcher.set_politeness(settings.per_host, settings.host_delay.total_seconds())
        self.runtime = self.pipeline.runtime = self.outbox.runtime = runtime

    def sync_feeds(self, runtime: Runtime, instance: str | None = None) -> None:
        if not self.store.sync_feeds(runtime.feed_schedule(), self.clock(), instance=instance):
            event("feeds_kept", note="feeds missing from this config stay scheduled: another "
                  "running instance has a different feed list (give them all one config)")

    def prune(self) -> PruneStats:
        stats = prune(self.store, now=self.clock(), retention=self.config.settings.retention,
                      story_window=self.config.settings.story_window, progress=lambda s: event("progress", step="prune", items=s.items,
                                               tombstones=s.tombstones))
        event("pruned", items=stats.items, alerts=stats.alerts, attempts=stats.attempts,
              tombstones=stats.tombstones, prints=stats.prints, stories=stats.stories, batches=stats.batches)
        return stats

    async def aclose(self) -> None:
        await self.fetcher.aclose()
        await self.sender.aclose()
        await asyncio.to_thread(self.parser.close)
        self.store.close()

    async def poll_once(self, *, all_feeds: bool) -> list[PollOutcome]:
        """Poll every due feed (or every feed) concurrently, with a progress line."""
        feeds = await asyncio.to_thread(self.store.claim_due_feeds, self.clock(), 1_000_000,
                                        self.lease, all_feeds=all_feeds)
        progress = Progress(len(feeds))
        async def poll(feed: FeedState) -> PollOutcome:
            outcome = await self.pipeline.poll(feed)
            progress.tick()
            return outcome
        return list(await asyncio.gather(*(poll(f) for f in feeds)))


class Progress:
    """Logs `progress done=N total=M` at most every few seconds during a long pass."""

    def __init__(self, total: int, every: float = 5.0):
        self.total, self.done, self.every = total, 0, every
        self.last = time.monotonic()

    def tick(self) -> None:
        self.done += 1
        if time.monotonic() - self.last >= self.every and self.done < self.total:
            self.last = time.monotonic()
            event("progress", done=self.done, total=self.total)


async def run_once(config: Config, *, all_feeds: bool) -> int:
    """`monitor once`: one pass, then deliver what is due. 1 if any delivery is still failing."""
    service = Service(config)
    try:
        await asyncio.to_thread(service.apply, service.runtime)
        started = time.monotonic()
        outcomes = await service.poll_once(all_feeds=all_feeds)
        stats = await service.outbox.deliver_due()
        failing = await asyncio.to_thread(service.store.failing_alerts)
        event("pass_done", feeds=len(outcomes), failed=sum(not o.ok for o in outcomes),
              new=sum(o.new for o in outcomes), alerts=sum(o.alerts for o in outcomes),
              delivered=stats.delivered, failing=failing,
              seconds=round(time.monotonic() - started, 2))
        return 1 if failing else 0
    finally:
        await service.aclose()


class Daemon:
    """`monitor run`: APScheduler ticks, signal handling, reload, graceful stop."""

    def __init__(self, config: Config):
        self.path = Path(config.path)
        self.instance = uuid.uuid4().hex
        self._run_lock = hold_run_lock(config.settings.database)
        self.service = Service(config, daemon=True)
        if self._run_lock:
            feeds, alerts = self.service.store.free_dead_daemon_leases()
            if feeds or alerts:
                event("leases_recovered", feeds=feeds, alerts=alerts,
                      note="left by a daemon that did not stop cleanly")
        self.inflight: set[asyncio.Task] = set()   # ticks, poll tasks, the delivery pass
        self.stopping = asyncio.Event()
        self.scheduler: AsyncIOScheduler | None = None
        self.liveness = Liveness(STALE_LOOP)
        self.server: OpsServer | None = None
        self._reloading = asyncio.Lock()
        self._peers: frozenset[str] = frozenset()  # the other live instances' feed lists
        self._backlog = False  # the last claim was full: more feeds may be due

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        service = self.service
        try:
            await asyncio.to_thread(service.apply, service.runtime, self.instance)
            self.start_server(service.config)
        except BaseException:
            await service.aclose()
            raise
        scheduler = self.scheduler = build_scheduler(poll=self.poll_tick, deliver=self.deliver_tick,
                                                     maintain=self.maintain, heartbeat=self.heartbeat)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        config = service.config
        event("started", config=str(self.path), feeds=len(config.feeds), topics=len(config.topics),
              webhooks=len(config.webhooks), database=service.store.display_url)
        scheduler.start()
        try:
            await self.stopping.wait()
        finally:
            # Pause, not shut down, before the drain: shutting down APScheduler's asyncio
            # executor cancels the job coroutines still running, the delivery pass among them.
            scheduler.pause()
            await self.drain()
            scheduler.shutdown(wait=False)
            if self.server:
                await asyncio.to_thread(self.server.stop)
            try:
                await asyncio.to_thread(service.store.leave, self.instance)
            except MonitorError as e:  # its row lapses by itself
                event("leave_failed", logging.WARNING, error=str(e))
            await service.aclose()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if self._run_lock:
                self._run_lock.close()
            event("stopped")

    def start_server(self, config: Config) -> None:
        if config.server is None:
            return
        store = self.service.store
        self.server = OpsServer(config.server.host, config.server.port, self.service.metrics,
                                health=lambda: self.liveness.check(store.ping))
        self.server.start()

    def request_stop(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():
            # A second signal: stop waiting for in-flight work. Nothing is lost: items and
            # alerts are written in one transaction, unfinished polls' leases lapse.
            for task in list(self.inflight):
                task.cancel()
            event("stopping_now", signal=sig.name)
            return
        event("stopping", signal=sig.name, inflight=len(self.inflight), grace_s=SHUTDOWN_GRACE)
        self.stopping.set()

    async def drain(self) -> None:
        """Give in-flight polls and deliveries a bounded time to finish, then cancel them."""
        pending = {t for t in self.inflight if not t.done()}
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5)
            event("abandoned", logging.WARNING, tasks=len(late),
                  note="their feeds are polled again after the lease lapses; their alerts stay pending")

    def track(self, task: asyncio.Task) -> None:
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    async def poll_tick(self) -> None:
        """Claim due feeds up to the free fetch capacity and poll each in its own task."""
        if self.stopping.is_set():
            return
        self.liveness.ticked()
        task = asyncio.current_task()
        assert task is not None
        self.track(task)  # so that a stop waits for a claim in flight, not just its polls
        service = self.service
        polls = sum(1 for t in self.inflight if t.get_name().startswith("poll:"))
        free = 2 * service.config.settings.concurrency - polls
        if free <= 0:
            return
        try:
            feeds = await asyncio.to_thread(service.store.claim_due_feeds, service.clock(), free, service.lease)
            if feeds and self.stopping.is_set():
                # A stop came while claiming: these polls would start after the drain,
                # against closed clients. Hand the feeds back instead.
                await asyncio.to_thread(service.store.release_feeds, feeds)
                return
        except MonitorError as e:
            event("poll_tick_failed", logging.ERROR, error=str(e))
            return
        # A full claim means more feeds may be due than there was room for: each finished
        # poll then asks for the next tick at once, instead of waiting for the next second.
        self._backlog = len(feeds) == free
        for feed in feeds:
            self.track(asyncio.create_task(self.poll_feed(feed), name=f"poll:{feed.url}"))

    async def poll_feed(self, feed: FeedState) -> None:
        try:
            outcome = await self.service.pipeline.poll(feed)
            if outcome.alerts and self.scheduler and not self.stopping.is_set():
                # Deliver now rather than at the next tick: every second counts for news.
                self.scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug or a database outage must not take the daemon down
            event("poll_crashed", logging.ERROR, feed=feed.url, error=f"{type(e).__name__}: {e}",
                  exc_info=not isinstance(e, MonitorError))
        if self._backlog and self.scheduler and not self.stopping.is_set():
            self.scheduler.modify_job("poll", next_run_time=datetime.now(UTC))

    async def deliver_tick(self) -> None:
        if self.stopping.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self.track(task)
        try:
            await self.service.outbox.deliver_due()
        except MonitorError as e:
            event("deliver_tick_failed", logging.ERROR, error=str(e))

    async def maintain(self) -> None:
        """Retention, in the background and in one instance at a time (the one holding the
        maintenance lease); a failure is logged and tried again next time."""
        if self.stopping.is_set():
            return
        try:
            store = self.service.store
            if not await asyncio.to_thread(store.take_lease, "maintenance", self.instance, MAINTENANCE_LEASE):
                event("maintenance_skipped", note="another instance holds the maintenance lease")
                return
            await asyncio.to_thread(self.service.prune)
        except Exception as e:
            event("maintenance_failed", logging.ERROR, error=f"{type(e).__name__}: {e}",
                  exc_info=not isinstance(e, MonitorError))

    async def heartbeat(self) -> None:
        """Tell the database this instance and its feed list are alive; when the other
        instances' feed lists change (one stopped, died or reloaded), sync the feeds again,
        so that a feed kept for another instance leaves once none has it."""
        service = self.service
        runtime = service.runtime
        try:
            peers = await asyncio.to_thread(service.store.heartbeat, self.instance, runtime.feeds_by_url)
            if peers != self._peers:
                self._peers = peers
                await asyncio.to_thread(service.sync_feeds, runtime, self.instance)
        except MonitorError as e:
            event("heartbeat_failed", logging.ERROR, error=str(e))

    def request_reload(self) -> None:
        """SIGHUP: reload in a task, off the signal handler (loading and syncing block)."""
        if not self.stopping.is_set():
            self.track(asyncio.create_task(self.reload(), name="reload"))

    async def reload(self) -> None:
        """Adopt the file's new config, or keep the old one if the new one is bad."""
        async with self._reloading:  # two quick SIGHUPs apply in order, not interleaved
            try:
                config = await asyncio.to_thread(load_config, self.path)
            except ConfigError as e:
                for problem in e.problems:
                    event("reload_refused", logging.ERROR, problem=problem.format(str(self.path)))
                return
            current = self.service.config
            for key, old, new in (("monitor.database", current.settings.database, config.settings.database),
                                  ("server.listen", current.server, config.server)):
                if old != new:
                    event("reload_refused", logging.ERROR,
                          problem=f"{key} cannot change while running; restart instead")
                    return
            try:
                runtime = await asyncio.to_thread(Runtime.of, config)  # compiles the query index
                await asyncio.to_thread(self.service.apply, runtime, self.instance)
            except MonitorError as e:
                event("reload_refused", logging.ERROR, problem=str(e))
                return
            log.redact(log.secrets_in(config))
            event("reloaded", feeds=len(config.feeds), topics=len(config.topics),
                  webhooks=len(config.webhooks))
