"""Leases on real databases: alerts and feeds claimed exactly once, SKIP LOCKED claimants that
never wait, lease times from the database clock, one maintenance holder, one SQLite daemon."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, select, text

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.errors import LeaseLost, MonitorError
from monitor.store import feeds_digest, open_store
from monitor.tables import feeds
from tests.support.feedserver import FeedServer, rss
from tests.support.pipeline import Harness, write_config

OLD = [{"title": "Weather today", "guid": "a1", "link": "https://news.example/a1"}]
NEW = [{"title": f"Ceasefire talks, day {n}", "guid": f"c{n}", "link": f"https://news.example/c{n}"}
       for n in range(5)]
LEASE = timedelta(minutes=1)


def with_alerts(tmp_path: Path, server: FeedServer, database: str) -> Harness:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    h.poll_all()
    server.set("/a.xml", rss([*NEW, *OLD]))
    h.poll_all()
    assert len(h.alerts()) == 5
    return h


def test_an_alert_is_claimed_by_one_deliverer_at_a_time(tmp_path: Path, server: FeedServer, database: str) -> None:
    h = with_alerts(tmp_path, server, database)
    first = h.store.claim_due_alerts(h.clock(), 3, ["ops"], LEASE)
    second = h.store.claim_due_alerts(h.clock(), 10, ["ops"], LEASE)
    assert len(first) == 3 and len(second) == 2
    assert not {a.id for a in first} & {a.id for a in second}
    assert h.store.claim_due_alerts(h.clock(), 10, ["ops"], LEASE) == []

    h.clock.advance(minutes=2)  # the first deliverer died: its leases lapse
    third = h.store.claim_due_alerts(h.clock(), 10, ["ops"], LEASE)
    assert {a.id for a in third} == {a.id for a in first} | {a.id for a in second}

    late = first[0]
    with pytest.raises(LeaseLost):  # the dead deliverer's record cannot overwrite
        h.store.record_attempt(late.id, now=h.clock(), status_code=200, error=None, elapsed_ms=1,
                               outcome="delivered", lease_token=late.lease_token)
    winner = next(a for a in third if a.id == late.id)
    h.store.record_attempt(winner.id, now=h.clock(), status_code=503, error="HTTP 503", elapsed_ms=1,
                           outcome="retry", next_attempt_at=h.clock(), lease_token=winner.lease_token)
    [again] = [a for a in h.store.claim_due_alerts(h.clock(), 10, ["ops"], LEASE) if a.id == late.id]
    assert again.attempts == 1  # released by its record, due again, one attempt logged


def test_postgres_claimants_skip_locked_rows_instead_of_waiting(tmp_path: Path, server: FeedServer,
                                                                postgres_url: str) -> None:
    h = with_alerts(tmp_path, server, postgres_url)
    # Were the claim to wait for the lock, fail in 3 s instead of hanging the suite.
    h.store.engine.dispose()
    event.listen(h.store.engine, "connect",
                 lambda dbapi, _: dbapi.cursor().execute("SET lock_timeout = '3s'"))
    other = create_engine(postgres_url)
    try:
        with other.connect() as conn:
            # Another instance is in the middle of its claim: it holds the oldest rows.
            locked = conn.execute(text(
                "SELECT id FROM alerts ORDER BY next_attempt_at, id LIMIT 2 FOR UPDATE")).scalars().all()
            started = time.monotonic()
            claimed = h.store.claim_due_alerts(h.clock(), 10, ["ops"], LEASE)
            assert time.monotonic() - started < 2  # did not wait for the other transaction
            assert {a.id for a in claimed}.isdisjoint(locked) and len(claimed) == 3
            conn.rollback()
    finally:
        other.dispose()
        h.store.close()


def test_postgres_leases_follow_the_database_clock(postgres_url: str, tmp_path: Path, server: FeedServer) -> None:
    server.set("/a.xml", rss(OLD))
    config = write_config(tmp_path, server, postgres_url)
    store = open_store(postgres_url, auto_migrate=False)  # no lease clock: the server's
    try:
        store.sync_feeds([(f.url, f.name, timedelta(minutes=10)) for f in config.feeds], datetime.now(UTC))
        skewed = datetime(2000, 1, 1, tzinfo=UTC)  # a host whose clock is decades off
        [feed] = store.claim_due_feeds(skewed, 10, LEASE, all_feeds=True)
        with store.engine.connect() as conn:
            until = conn.execute(select(feeds.c.lease_until)).scalar_one()
        assert abs(until - (datetime.now(UTC) + LEASE)) < timedelta(seconds=30)
        assert feed.lease_token
    finally:
        store.close()


def test_one_instance_holds_the_maintenance_lease(tmp_path: Path, server: FeedServer, database: str) -> None:
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    hour = timedelta(minutes=65)
    assert h.store.take_lease("maintenance", "a", hour)
    assert not h.store.take_lease("maintenance", "b", hour)
    h.clock.advance(minutes=60)
    assert h.store.take_lease("maintenance", "a", hour)  # the holder renews
    h.clock.advance(minutes=64)
    assert not h.store.take_lease("maintenance", "b", hour)
    h.clock.advance(minutes=2)  # a died: b takes over once the lease runs out
    assert h.store.take_lease("maintenance", "b", hour)
    assert not h.store.take_lease("maintenance", "a", hour)


def daemon_config(tmp_path: Path, server: FeedServer) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'[monitor]\ndatabase = "sqlite:///state.db"\n\n[[feeds]]\nurl = "{server.url("/a.xml")}"\n')
    return path


def test_a_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path, server: FeedServer) -> None:
    server.set("/a.xml", rss(OLD))
    config = load_config(daemon_config(tmp_path, server))
    first = Daemon(config)
    with pytest.raises(MonitorError, match="another `monitor run` is already using"):
        Daemon(config)
    first._run_lock.close()  # type: ignore[union-attr]
    Daemon(config)  # free again


def test_monitor_run_twice_refuses_the_second_but_once_is_allowed(tmp_path: Path, server: FeedServer) -> None:
    server.set("/a.xml", rss(OLD))
    config = str(daemon_config(tmp_path, server))
    daemon = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", config],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while server.count("/a.xml") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "monitor", "run", "-c", config],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert second.stderr.startswith("monitor: another `monitor run` is already using")
        assert len(second.stderr.splitlines()) == 1
        once = subprocess.run([sys.executable, "-m", "monitor", "once", "--all", "-c", config],
                              capture_output=True, text=True, timeout=30)
        assert once.returncode == 0, once.stderr
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0


def test_no_instance_takes_out_a_feed_another_running_config_has(tmp_path: Path, server: FeedServer,
                                                                database: str) -> None:
    extra = f'[[feeds]]\nurl = "{server.url("/b.xml")}"\nname = "Feed B"\n'
    server.set("/a.xml", rss(OLD))
    server.set("/b.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database, extra_feeds=extra))
    both = h.runtime.feed_schedule()
    only_a = [f for f in both if f[0].endswith("/a.xml")]

    def active() -> set[str]:
        with h.store.engine.connect() as conn:
            return {u.rsplit("/", 1)[1] for u in conn.execute(
                select(feeds.c.url).where(feeds.c.active.is_(True))).scalars()}

    assert h.store.sync_feeds(both, h.clock(), instance="big")  # instance "big" runs a and b
    assert not h.store.sync_feeds(only_a, h.clock(), instance="small")  # b is kept for "big"
    assert active() == {"a.xml", "b.xml"}
    assert h.store.heartbeat("small", [u for u, _, _ in only_a]) == {feeds_digest(u for u, _, _ in both)}

    h.clock.advance(seconds=60)
    h.store.heartbeat("big", [u for u, _, _ in both])  # still alive a minute later
    assert not h.store.sync_feeds(only_a, h.clock(), instance="small")
    h.clock.advance(seconds=100)  # "big" died: silent longer than the instance timeout
    assert h.store.heartbeat("small", [u for u, _, _ in only_a]) == frozenset()
    assert h.store.sync_feeds(only_a, h.clock(), instance="small")
    assert active() == {"a.xml"}

    # A clean stop leaves at once; one config for all: removals apply at once.
    assert h.store.sync_feeds(both, h.clock(), instance="big")
    h.store.leave("big")
    assert h.store.sync_feeds(only_a, h.clock(), instance="small")
    assert h.store.sync_feeds(only_a, h.clock())  # `once`, registering nothing
    assert active() == {"a.xml"}


def test_instances_starting_together_add_the_same_new_feeds(tmp_path: Path, server: FeedServer,
                                                           database: str) -> None:
    """Daemons' first syncs of one config race to insert the same feed rows."""
    server.set("/a.xml", rss(OLD))
    h = Harness(write_config(tmp_path, server, database))
    schedule = [(f"https://race.example/{n}.xml", None, timedelta(minutes=10)) for n in range(300)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def sync(instance: str) -> None:
        barrier.wait()
        try:
            h.store.sync_feeds(schedule, h.clock(), instance=instance)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=sync, args=(f"i{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with h.store.engine.connect() as conn:
        rows = conn.execute(select(feeds.c.url).where(feeds.c.url.like("https://race.example/%"))).all()
    assert len(rows) == 300
