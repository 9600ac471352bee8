"""SQLAlchemy tables and the few queries the pipeline, the outbox and `status` need."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from alembic.util.exc import CommandError as AlembicError
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Row,
    Table,
    bindparam,
    create_engine,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from monitor import schema
from monitor import stories as story_index
from monitor.cadence import FIRST_GUESS, FIXED_REASON, Cadence, Pace
from monitor.errors import LeaseLost, SchemaError, StorageError
from monitor.formats import new_alert_id
from monitor.log import event
from monitor.metrics import StoreFigures
from monitor.neardup import Fingerprint
from monitor.schema import SchemaState
from monitor.sql import chunks, found, insert_or_skip, new_rows
from monitor.stories import FOLLOW_UP, Placement, Report, StoryRules, follow_up_key
from monitor.tables import (
    alerts,
    deliveries,
    digests,
    feeds,
    instances,
    items,
    leases,
    stories,
    tombstones,
    webhook_state,
)

T = TypeVar("T")
TOMBSTONE_REFRESH = timedelta(days=1)  # how stale a served tombstone's seen_at may get
INSTANCE_TIMEOUT = timedelta(seconds=90)  # an instance silent this long is gone (3 heartbeats)
SCHEMA_LOCK = 0x6D6F6E69  # PostgreSQL advisory lock id held while migrating ("moni")
# An alert that goes out on its own: not held for a digest, not in one.
SINGLE = alerts.c.hold_until.is_(None) & alerts.c.digest_id.is_(None)


@dataclass(frozen=True)
class FeedState:
    """A feed row as the pipeline needs it, with the token of the claim that leased it."""

    id: int
    url: str
    name: str | None
    title: str | None
    interval: timedelta          # in force: fixed, or the last one adapted
    etag: str | None
    last_modified: str | None
    error_count: int
    baselined: bool
    lease_token: str = ""
    auto: bool = False           # the interval adapts to the feed's pace
    pace: Pace = Pace()
    moved_to: str | None = None  # fetch here: a permanent redirect's target
    body_hash: bytes | None = None
    failing_since: datetime | None = None  # the first of the failures in a row, if failing
    health_alerted: bool = False           # this run of failures has sent its feed-health alert

    @property
    def fetch_url(self) -> str:
        return self.moved_to or self.url


@dataclass(frozen=True)
class NewItem:
    """An item not seen before in its feed, with the alerts it should raise."""

    key: str
    story_key: str
    guid: str | None
    link: str | None
    title: str
    summary: str
    published: datetime | None
    alerts: tuple[AlertIntent, ...]
    story_aliases: tuple[str, ...] = ()  # the story keys earlier releases gave it
    fingerprint: Fingerprint | None = None  # its text's, to find reports of the same story


@dataclass(frozen=True)
class AlertIntent:
    """One alert to store for a new item."""

    id: str
    topic: str
    webhook: str
    matched: tuple[str, ...]
    per_story: bool = True  # the topic alerts once per story (dedupe = "story"), not per item


@dataclass(frozen=True)
class KnownKeys:
    """Which of a poll's item keys the feed has recorded: as items, or only as tombstones."""

    keys: frozenset[str]
    buried: tuple[bytes, ...]  # key hashes of the pruned ones, to mark as still served


@dataclass(frozen=True)
class PendingAlert:
    """An outbox row joined with its item and feed: all a delivery needs."""

    id: str
    topic: str
    webhook: str
    matched: tuple[str, ...]
    attempts: int
    created_at: datetime
    title: str
    link: str | None
    summary: str
    published: datetime | None
    guid: str | None
    feed_name: str
    feed_url: str
    lease_token: str = ""     # the claim's; "" when read without claiming
    follow_up: bool = False   # not the story's first alert: it has reached its topic's follow_up_sources
    sources: int = 1          # feeds that have reported the story
    source_names: tuple[str, ...] = ()  # their names, first reports first


def feeds_digest(urls: Iterable[str]) -> str:
    """One config's feed list, compact: a sha256 of its sorted URLs."""
    return hashlib.sha256("\n".join(sorted(urls)).encode()).hexdigest()


def key_hash(key: str) -> bytes:
    """A tombstone's compact form of an item key: 128 bits of its sha256."""
    return hashlib.sha256(key.encode()).digest()[:16]


def story_hash(story_key: str) -> bytes:
    """A tombstone's compact form of a story key (itself a sha256 in hex): its first 128 bits."""
    return bytes.fromhex(story_key[:32])


def _feed_state(row: Row, token: str) -> FeedState:
    r = row._mapping
    return FeedState(
        id=r["id"], url=r["url"], name=r["name"], title=r["title"],
        interval=timedelta(seconds=r["interval_s"]), etag=r["etag"],
        last_modified=r["last_modified"], error_count=r["error_count"],
        baselined=r["baselined_at"] is not None, lease_token=token, auto=bool(r["auto_interval"]),
        pace=Pace(None if r["mean_gap_s"] is None else timedelta(seconds=r["mean_gap_s"]), r["newest_at"]),
        moved_to=r["moved_to"], body_hash=r["body_hash"], failing_since=r["failing_since"],
        health_alerted=r["health_alerted_at"] is not None,
    )


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    # WAL lets `status` and readers run while the daemon writes; busy_timeout makes a
    # second writer wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A checkpoint every 8,000 pages (32 MiB of WAL) rather than 1,000: each one syncs
    # and copies pages back, and a cold ingest rewrites the same index pages many times
    # over (2,000 feeds' first polls: 31 s → 29 s). The WAL is cut back to 32 MiB after.
    cursor.execute("PRAGMA wal_autocheckpoint=8000")
    cursor.execute("PRAGMA journal_size_limit=33554432")
    cursor.close()


def _item_row(feed_id: int, item: NewItem, now: datetime, story_id: int | None) -> dict:
    return dict(feed_id=feed_id, key=item.key, story_key=item.story_key, guid=item.guid,
                link=item.link, title=item.title, summary=item.summary,
                published=item.published, seen_at=now, story_id=story_id)


ITEM_IDENTITY = ("feed_id", "key")
ALERT_IDENTITY = ("story_key", "topic", "webhook")
TOMBSTONE_IDENTITY = ("feed_id", "key_hash")


def _insert_ignoring_duplicate(conn: Connection, table: Table, row: dict, unique: Sequence[str]) -> Any:
    """Insert one row unless it conflicts on `unique`; its primary key, or None when skipped."""
    found = conn.execute(_returning_insert(table, conn.dialect.name, tuple(unique)), row).first()
    return None if found is None else found[0]


@functools.cache
def _returning_insert(table: Table, dialect: str, unique: tuple[str, ...]) -> Any:
    # Built once: the row comes as parameters, so SQLAlchemy reuses the compiled form.
    # RETURNING, not rowcount: psycopg reports -1 for a skipped ON CONFLICT row.
    return insert_or_skip(table, dialect, unique).returning(*table.primary_key.columns)


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def sqlite_file(url: str) -> Path | None:
    """The file of a sqlite URL, or None (another backend, in memory, a file: URI)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None
    return Path(database)


class Store:
    """The database: opened once per process, used by the pipeline, outbox and CLI."""

    def __init__(self, url: str, *, lease_clock: Callable[[], datetime] | None = None,
                 daemon: bool = False):
        # A daemon's lease tokens start with "r", everything else's (`once`) with "o": on
        # SQLite, where one daemon runs at a time, a new daemon knows every "r" lease is a
        # dead predecessor's (killed) and frees it at once rather than after it lapses.
        self._token_prefix = "r" if daemon else "o"
        # Lease expiries come from one clock all instances share: the database's (on SQLite,
        # one host's). Tests that drive time by hand pass their own.
        self._lease_clock = lease_clock
        try:
            sa_url = make_url(url)
        except ArgumentError as e:
            raise StorageError("not a valid database URL") from e
        self._password = sa_url.password if isinstance(sa_url.password, str) else None
        self.display_url = self.display(url)
        engine_kwargs: dict = {}
        memory = is_memory_sqlite(url)
        if memory:
            # One in-memory database exists per connection: every thread must share one.
            engine_kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        elif sa_url.get_backend_name() == "sqlite":
            engine_kwargs["connect_args"] = {"timeout": 10}
        elif sa_url.get_backend_name() == "postgresql":
            engine_kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 10})
        try:
            self.engine: Engine = create_engine(sa_url, **engine_kwargs)
        except (ArgumentError, SQLAlchemyError, ImportError) as e:
            raise StorageError(f"cannot use database {self.display_url}: {self._short(e)}") from e
        # SQLite has one writer at a time; waiting on a lock here instead of in SQLite's
        # busy handler (which sleeps and retries) made a 500-feed pass 5x faster. The one
        # shared in-memory connection takes the lock for reads too, so that transactions
        # from different threads never interleave on it.
        self._write_lock: threading.Lock | None = None
        self._read_lock: threading.Lock | None = None
        if self.engine.dialect.name == "sqlite":
            sa_event.listen(self.engine, "connect", _sqlite_pragmas)
            self._write_lock = threading.Lock()
            if memory:
                self._read_lock = self._write_lock
        self._batch = threading.local()  # the connection of this thread's open batch()

    @staticmethod
    def display(url: str) -> str:
        """The URL as logs and messages may show it: without its password."""
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            return "(invalid database URL)"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Connection]:
        """One transaction; writes are serialised in-process on SQLite. Inside batch(),
        the batch's transaction."""
        batch = getattr(self._batch, "conn", None)
        if batch is not None:
            yield batch
            return
        lock = self._write_lock if write else self._read_lock
        try:
            if lock:
                lock.acquire()
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StorageError(f"database error: {self._short(e)}") from e
        finally:
            if lock:
                lock.release()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every call made inside, in this thread: many small writes
        commit once. Any error rolls back them all; a call that raises LeaseLost has
        written nothing before it does, so the others still commit."""
        with self.transaction() as conn:
            self._batch.conn = conn
            try:
                yield
            finally:
                self._batch.conn = None

    def _short(self, e: Exception) -> str:
        """The first line of a driver error, without SQLAlchemy's background link and
        without the database password, should a driver ever repeat it."""
        text = str(getattr(e, "orig", None) or e)
        line = text.splitlines()[0] if text else type(e).__name__
        return line.replace(self._password, "***") if self._password else line

    # -- schema --------------------------------------------------------------------------

    def schema_state(self) -> SchemaState:
        """Where the schema stands; the first contact, so a failure says "cannot open"."""
        try:
            with self.engine.connect() as conn:
                return schema.schema_state(conn)
        except SQLAlchemyError as e:
            raise StorageError(f"cannot open database {self.display_url}: {self._short(e)}") from e

    def upgrade(self) -> tuple[SchemaState, SchemaState]:
        """Migrate to the head revision; the states before and after. SchemaError for a
        revision this code does not know (a newer monitor wrote it)."""
        self.schema_state()  # a database that cannot be reached fails here, clearly
        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                # Instances starting together on a new database: one migrates, the others
                # wait here and then find the schema current.
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            before = schema.schema_state(conn)
            if not before.known:
                raise SchemaError(schema_problem(before, self.display_url, auto_migrate=True))
            try:
                return before, schema.upgrade(conn)
            except AlembicError as e:
                raise SchemaError(f"cannot migrate database {self.display_url}: {e}") from e

    def new_token(self) -> str:
        return self._token_prefix + uuid.uuid4().hex[:31]

    def free_dead_daemon_leases(self) -> tuple[int, int]:
        """SQLite, at a daemon's start (under its run lock): free the leases a killed daemon
        left, leaving `once`'s alone. (feeds, alerts) freed."""
        dead = "r%"
        with self.transaction() as conn:
            freed_feeds = conn.execute(update(feeds).where(feeds.c.lease_owner.like(dead)).values(
                lease_until=None, lease_owner=None)).rowcount
            freed_alerts = sum(conn.execute(update(table).where(table.c.lease_owner.like(dead)).values(
                lease_until=None, lease_owner=None)).rowcount for table in (alerts, digests))
        return freed_feeds, freed_alerts

    def renew_alerts(self, claimed: Sequence[PendingAlert], lease: timedelta) -> None:
        """Extend a batch's alert leases before its next chunk goes out."""
        with self.transaction() as conn:
            until = self.lease_now(conn) + lease
            for token in {a.lease_token for a in claimed}:
                conn.execute(update(alerts).where(
                    alerts.c.lease_owner == token, alerts.c.id.in_([a.id for a in claimed]),
                ).values(lease_until=until))

    def lease_now(self, conn: Connection) -> datetime:
        """The time leases are measured by: the database server's clock on PostgreSQL."""
        if self._lease_clock is not None:
            return self._lease_clock()
        if conn.dialect.name == "postgresql":
            naive = conn.execute(select(func.timezone("UTC", func.clock_timestamp()))).scalar_one()
            return naive.replace(tzinfo=UTC)
        return datetime.now(UTC)

    def ping(self) -> None:
        """Raise StorageError unless the database answers."""
        with self.transaction(write=False) as conn:
            conn.execute(select(1))

    # -- feeds ---------------------------------------------------------------------------

    def sync_feeds(self, configured: Sequence[tuple[str, str | None, timedelta | None]], now: datetime, *,
                   instance: str | None = None) -> bool:
        """Make the feeds table follow the config: (url, name, fixed interval or None for
        "auto") per feed.

        New feeds are due at once. A feed missing from the config is marked inactive, not
        deleted, so that adding it back neither re-baselines it nor repeats its alerts —
        but only while every other running instance has the same feed list: no instance
        takes out a feed that another one's config still has. `instance` (a daemon's id)
        also registers this feed list as a running one. False when feeds were kept for
        another instance.
        """
        wanted = {url: (name, interval) for url, name, interval in configured}
        digest = feeds_digest(wanted)
        with self.transaction() as conn:
            if instance is not None:
                self._beat(conn, instance, digest)
            added = []
            columns = (feeds.c.url, feeds.c.id, feeds.c.name, feeds.c.next_poll_at, feeds.c.interval_s,
                       feeds.c.interval_reason, feeds.c.error_count, feeds.c.active, feeds.c.auto_interval)
            # The rows of the wanted feeds, 500 at a time: 100,000 rows at once took 60 MB.
            for url, (name, interval), row in _with_rows(conn, columns, wanted):
                auto = interval is None
                if row is None:
                    secs = int((FIRST_GUESS if interval is None else interval).total_seconds())
                    added.append(dict(
                        url=url, name=name, active=True, interval_s=max(1, secs), auto_interval=auto,
                        interval_reason="auto: nothing known of its pace yet" if auto else FIXED_REASON,
                        next_poll_at=now, error_count=0, created_at=now,
                    ))
                    continue
                values: dict[str, Any] = dict(name=name, active=True, auto_interval=auto)
                if interval is not None:
                    secs = max(1, int(interval.total_seconds()))
                    values.update(interval_s=secs, interval_reason=FIXED_REASON)
                    # A shorter interval takes effect now rather than after the old wait, but
                    # a failing feed keeps its backoff and any Retry-After the server gave.
                    if secs < row.interval_s and row.error_count == 0:
                        values["next_poll_at"] = min(row.next_poll_at, now + interval)
                # Only rows that change: a reload of 100,000 unchanged feeds writes nothing.
                if any(getattr(row, column) != value for column, value in values.items()):
                    conn.execute(update(feeds).where(feeds.c.id == row.id).values(**values))
            for chunk in chunks(added):  # skipping a feed another instance, starting just now, added
                conn.execute(insert_or_skip(feeds, conn.dialect.name, ("url",)), chunk)
            gone = [feed_id for url, feed_id in conn.execute(select(feeds.c.url, feeds.c.id).where(feeds.c.active))
                    if url not in wanted]
            if not gone:
                return True
            if self._live_digests(conn, exclude=instance) - {digest}:
                return False
            for chunk in chunks(gone):
                conn.execute(update(feeds).where(feeds.c.id.in_(chunk)).values(active=False))
            return True

    def revive_feeds(self) -> list[str]:
        """Poll again the feeds that answered 410 Gone (a daemon's start or reload)."""
        with self.transaction() as conn:
            urls = list(conn.execute(select(feeds.c.url).where(feeds.c.gone_at.is_not(None))).scalars())
            if urls:
                conn.execute(update(feeds).where(feeds.c.gone_at.is_not(None)).values(gone_at=None))
        return urls

    def heartbeat(self, instance: str, configured: Iterable[str]) -> frozenset[str]:
        """A running daemon says it is alive, with its feed list; the feed lists of the
        other live instances."""
        with self.transaction() as conn:
            self._beat(conn, instance, feeds_digest(configured))
            return frozenset(self._live_digests(conn, exclude=instance))

    def leave(self, instance: str) -> None:
        """A daemon stopping cleanly takes its feed list out of the running ones."""
        with self.transaction() as conn:
            conn.execute(instances.delete().where(instances.c.id == instance))

    def _beat(self, conn: Connection, instance: str, digest: str) -> None:
        now = self.lease_now(conn)
        if not conn.execute(update(instances).where(instances.c.id == instance).values(
                feeds_digest=digest, heartbeat_at=now)).rowcount:
            conn.execute(instances.insert().values(id=instance, feeds_digest=digest, started_at=now,
                                                   heartbeat_at=now))

    def _live_digests(self, conn: Connection, *, exclude: str | None) -> set[str]:
        alive = instances.c.heartbeat_at >= self.lease_now(conn) - INSTANCE_TIMEOUT
        query = select(instances.c.feeds_digest).where(alive)
        if exclude is not None:
            query = query.where(instances.c.id != exclude)
        return set(conn.execute(query).scalars())

    def claim_due_feeds(self, now: datetime, limit: int, lease: timedelta, *, all_feeds: bool = False) -> list[FeedState]:
        """Lease up to `limit` due feeds so that no other poller takes them meanwhile.

        One claim, one token: a poll's writes succeed only while its feed is still leased
        to that token. On PostgreSQL the candidates are locked with SKIP LOCKED, in the
        total order (next_poll_at, id), so that claimants never wait on or deadlock each
        other; the guarded UPDATE makes the claim exact on every backend."""
        with self.transaction() as conn:
            lease_now = self.lease_now(conn)
            free = or_(feeds.c.lease_until.is_(None), feeds.c.lease_until < lease_now)
            query = select(feeds.c.id).where(feeds.c.active.is_(True), feeds.c.gone_at.is_(None), free).order_by(
                feeds.c.next_poll_at, feeds.c.id).limit(limit).with_for_update(skip_locked=True)
            if not all_feeds:
                query = query.where(feeds.c.next_poll_at <= now)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            token = self.new_token()
            conn.execute(update(feeds).where(feeds.c.id.in_(ids), free).values(
                lease_until=lease_now + lease, lease_owner=token))
            rows = conn.execute(select(feeds).where(feeds.c.lease_owner == token)
                                .order_by(feeds.c.next_poll_at, feeds.c.id)).all()
            return [_feed_state(row, token) for row in rows]

    def release_feeds(self, claimed: Iterable[FeedState]) -> None:
        """Give back leases that will not be used (the daemon is stopping)."""
        with self.transaction() as conn:
            release_leases(conn, feeds, [(f.id, f.lease_token) for f in claimed])

    def known_keys(self, feed_id: int, keys: Iterable[str]) -> KnownKeys:
        """Which of these item keys the feed has already recorded, pruned ones included."""
        keys = list(keys)
        known: set[str] = set()
        with self.transaction(write=False) as conn:
            known.update(key for key, in found(conn, (items.c.key,), items.c.key, keys, feed_id=feed_id))
            hashes = {key_hash(k): k for k in keys if k not in known}
            buried: list[bytes] = [h for h, in found(conn, (tombstones.c.key_hash,), tombstones.c.key_hash, hashes,
                                                      feed_id=feed_id)]
        known.update(hashes[h] for h in buried)
        return KnownKeys(frozenset(known), tuple(buried))

    def record_unchanged(self, polls: Sequence[Any]) -> list[bool]:
        """Record unchanged polls (monitor.batching.Unchanged) in one transaction; for each,
        whether its lease still held (a lapsed one writes nothing)."""
        written = []
        with self.transaction() as conn:
            for poll in polls:
                values = _good_poll_values(poll.feed, now=poll.now, next_poll_at=poll.next_poll_at, result=poll.result,
                                           etag=poll.etag, last_modified=poll.last_modified, moved_to=poll.moved_to,
                                           cadence=poll.cadence)
                statement = _good_poll_update(parsed=False, cadence=poll.cadence is not None)
                written.append(bool(conn.execute(statement, values).rowcount))
        return written

    def stories_in_feed(self, feed_id: int, story_keys: Iterable[str]) -> set[str]:
        """Which of these story keys the feed has items for."""
        with self.transaction(write=False) as conn:
            return {story for story, in found(conn, (items.c.story_key,), items.c.story_key, story_keys,
                                              feed_id=feed_id)}

    def record_poll(
        self,
        feed: FeedState,
        *,
        now: datetime,
        next_poll_at: datetime,
        result: str,
        etag: str | None,
        last_modified: str | None,
        title: str | None,
        new_items: Sequence[NewItem],
        buried: Sequence[bytes] = (),
        cadence: Cadence | None = None,
        body_hash: bytes | None = None,
        moved_to: str | None = None,
        rules: StoryRules = StoryRules(),
    ) -> int:
        """Store a successful poll in one transaction: new items, their alerts, the feed's
        new state. Returns how many alerts were actually created (duplicates of a story
        already alerted for the same topic and webhook are skipped).

        Raises LeaseLost, writing nothing, when the feed is no longer leased to this poll.
        """
        with self.transaction() as conn:
            # First, so that on PostgreSQL the row lock is held for the rest of the work.
            owned = conn.execute(_good_poll_update(parsed=True, cadence=cadence is not None), _good_poll_values(
                feed, now=now, next_poll_at=next_poll_at, result=result, etag=etag, last_modified=last_modified,
                moved_to=moved_to, cadence=cadence, title=title, body_hash=body_hash,
            )).rowcount
            if not owned:
                raise LeaseLost(f"the lease on {feed.url} lapsed and another poller took it")
            if buried:
                conn.execute(update(tombstones).where(
                    tombstones.c.feed_id == feed.id, tombstones.c.key_hash.in_(list(buried)),
                    tombstones.c.seen_at < now - TOMBSTONE_REFRESH,
                ).values(seen_at=now))
            return self._insert_new(conn, feed, new_items, now, rules)

    @staticmethod
    def _insert_new(conn: Connection, feed: FeedState, new_items: Sequence[NewItem], now: datetime,
                    rules: StoryRules) -> int:
        """Insert new items, their stories and their alerts, a statement for each (not one
        per row); how many alerts were created: a story already alerted for that topic and
        webhook makes none, nor does an item another poller has just recorded."""
        if not new_items:
            return 0
        dialect = conn.dialect.name
        placements = story_index.place(conn, feed.id, [Report((item.story_key, *item.story_aliases), item.fingerprint)
                                                        for item in new_items], now=now, window=rules.window)
        inserted: dict[str, int] = {key: item_id for key, item_id in conn.execute(
            new_rows(items, dialect, ITEM_IDENTITY, "key"),
            [_item_row(feed.id, item, now, placed.story_id) for item, placed in zip(new_items, placements)])}
        stored = [(item, placed) for item, placed in zip(new_items, placements) if item.key in inserted]
        grown = story_index.record(conn, feed.id, [(inserted[item.key], placed, item.fingerprint)
                                                   for item, placed in stored], now=now)
        rows = _alert_rows(conn, [(inserted[item.key], item, placed) for item, placed in stored if item.alerts], now)
        rows += _follow_up_rows(conn, grown, stored, inserted, rules, now)
        return len(conn.execute(new_rows(alerts, dialect, ALERT_IDENTITY, "id"), rows).all()) if rows else 0

    def record_gone(self, feed: FeedState, *, now: datetime, error: str) -> None:
        """The feed answered 410 Gone: it is not polled again until revived."""
        with self.transaction() as conn:
            self._fail(conn, feed, now=now, error=error, gone_at=now)

    def record_failure(self, feed: FeedState, *, now: datetime, next_poll_at: datetime, error: str,
                       health: NewItem | None = None) -> int:
        """A failed poll: keep the validators, count the error, retry later. `health` is
        the feed-health notice this run of failures has earned, stored with its alerts.
        Returns how many alerts that made.

        Raises LeaseLost when the feed is no longer leased to this poll."""
        with self.transaction() as conn:
            self._fail(conn, feed, now=now, error=error, next_poll_at=next_poll_at,
                       health_alerted_at=now if health else feeds.c.health_alerted_at)
            return self._insert_new(conn, feed, [health], now, StoryRules()) if health else 0

    def _fail(self, conn: Connection, feed: FeedState, *, now: datetime, error: str, **values: Any) -> None:
        if not conn.execute(update(feeds).where(
            feeds.c.id == feed.id, feeds.c.lease_owner == feed.lease_token,
        ).values(
            lease_until=None, lease_owner=None, last_poll_at=now, last_result=f"error: {error}"[:1024],
            error_count=feeds.c.error_count + 1, failing_since=func.coalesce(feeds.c.failing_since, now),
            **values,
        )).rowcount:
            raise LeaseLost(f"the lease on {feed.url} lapsed and another poller took it")

    # -- outbox --------------------------------------------------------------------------

    def due_alerts(self, now: datetime, limit: int, webhooks: Iterable[str]) -> list[PendingAlert]:
        """Pending alerts whose next attempt is due, oldest first, for known webhooks
        (a read: claim_due_alerts is what delivery uses)."""
        query = pending_query().where(
            alerts.c.status == "pending", alerts.c.next_attempt_at <= now,
            alerts.c.webhook.in_(list(webhooks)), SINGLE,
        ).order_by(alerts.c.next_attempt_at, alerts.c.item_id, alerts.c.id).limit(limit)
        with self.transaction(write=False) as conn:
            return pending_alerts(conn, conn.execute(query).all(), "")

    def claim_due_alerts(self, now: datetime, limit: int, webhooks: Iterable[str],
                         lease: timedelta) -> list[PendingAlert]:
        """Lease up to `limit` due alerts, oldest first (in feed order within one poll), as
        claim_due_feeds leases feeds:
        no two deliverers (threads or instances) send one alert at once."""
        with self.transaction() as conn:
            lease_now = self.lease_now(conn)
            free = or_(alerts.c.lease_until.is_(None), alerts.c.lease_until < lease_now)
            ids = list(conn.execute(
                select(alerts.c.id).where(alerts.c.status == "pending", alerts.c.next_attempt_at <= now,
                                          alerts.c.webhook.in_(list(webhooks)), SINGLE, free)
                .order_by(alerts.c.next_attempt_at, alerts.c.item_id, alerts.c.id).limit(limit)
                .with_for_update(skip_locked=True)).scalars())
            if not ids:
                return []
            token = self.new_token()  # one claim, one token for its batch
            conn.execute(update(alerts).where(alerts.c.id.in_(ids), free).values(
                lease_until=lease_now + lease, lease_owner=token))
            rows = conn.execute(pending_query().where(alerts.c.lease_owner == token)
                                .order_by(alerts.c.next_attempt_at, alerts.c.item_id, alerts.c.id)).all()
            return pending_alerts(conn, rows, token)

    def release_alerts(self, claimed: Iterable[PendingAlert]) -> None:
        """Give back alert leases that will not be used (stopping mid-batch)."""
        with self.transaction() as conn:
            release_leases(conn, alerts, [(a.id, a.lease_token) for a in claimed])

    def record_attempt(
        self,
        alert_id: str,
        *,
        now: datetime,
        status_code: int | None,
        error: str | None,
        elapsed_ms: int,
        outcome: str,
        next_attempt_at: datetime | None = None,
        lease_token: str | None = None,
    ) -> None:
        """Log one delivery attempt and move the alert on: outcome is delivered, retry or
        failed. With the claim's `lease_token` the write happens only while the lease is
        still this claim's; else it raises LeaseLost and writes nothing."""
        values = dict(attempt_values(outcome, now=now, next_attempt_at=next_attempt_at),
                      attempts=alerts.c.attempts + 1, last_error=error, lease_until=None, lease_owner=None)
        with self.transaction() as conn:
            which = update(alerts).where(alerts.c.id == alert_id)
            if lease_token is not None:
                which = which.where(alerts.c.lease_owner == lease_token)
            if not conn.execute(which.values(**values)).rowcount:
                raise LeaseLost(f"the lease on alert {alert_id} lapsed and another deliverer took it")
            conn.execute(deliveries.insert().values(
                alert_id=alert_id, attempted_at=now, status_code=status_code,
                error=error, elapsed_ms=elapsed_ms,
            ))

    def take_lease(self, name: str, owner: str, duration: timedelta) -> bool:
        """Hold the named lease for `duration` (taking it, or renewing it if `owner` holds
        it); False while another owner's lease runs."""
        with self.transaction() as conn:
            now = self.lease_now(conn)
            _insert_ignoring_duplicate(conn, leases, dict(name=name, owner=owner, until=now - duration),
                                       ("name",))
            return bool(conn.execute(update(leases).where(
                leases.c.name == name, or_(leases.c.owner == owner, leases.c.until < now),
            ).values(owner=owner, until=now + duration)).rowcount)

    # -- webhooks ------------------------------------------------------------------------

    def disabled_webhooks(self) -> dict[str, tuple[datetime, str]]:
        """Webhooks switched off by a 410: name → (since, reason)."""
        with self.transaction(write=False) as conn:
            return {r.name: (r.disabled_at, r.reason) for r in conn.execute(select(webhook_state))}

    def disable_webhook(self, name: str, *, reason: str, now: datetime) -> None:
        values = {"disabled_at": now, "reason": reason[:1024]}
        with self.transaction() as conn:  # two instances may meet the 410 at once
            conn.execute(insert_or_skip(webhook_state, conn.dialect.name, ("name",)).values(name=name, **values))
            conn.execute(update(webhook_state).where(webhook_state.c.name == name).values(**values))

    def enable_webhooks(self, names: Iterable[str]) -> list[str]:
        """Switch these webhooks on again (a reload); the ones that were off."""
        names = list(names)
        with self.transaction() as conn:
            were_off = list(conn.execute(select(webhook_state.c.name).where(
                webhook_state.c.name.in_(names))).scalars())
            if were_off:
                conn.execute(webhook_state.delete().where(webhook_state.c.name.in_(were_off)))
        return were_off

    def pending_by_webhook(self) -> dict[str, int]:
        with self.transaction(write=False) as conn:
            return dict(conn.execute(select(alerts.c.webhook, func.count()).where(
                alerts.c.status == "pending").group_by(alerts.c.webhook)).all())

    def held_by_webhook(self) -> dict[str, int]:
        """Pending alerts waiting for a digest (held, or bundled and not yet sent)."""
        with self.transaction(write=False) as conn:
            return dict(conn.execute(select(alerts.c.webhook, func.count()).where(
                alerts.c.status == "pending", ~SINGLE).group_by(alerts.c.webhook)).all())

    def list_alerts(self, *, status: str | None = None, topic: str | None = None,
                    webhook: str | None = None, limit: int = 50) -> list[dict]:
        """Alerts newest first, with their item's title and link, for `monitor alerts`."""
        query = (
            select(alerts.c.id, alerts.c.topic, alerts.c.webhook, alerts.c.status, alerts.c.attempts,
                   alerts.c.last_error, alerts.c.created_at, alerts.c.next_attempt_at,
                   alerts.c.delivered_at, alerts.c.hold_until, alerts.c.digest_id, alerts.c.kind,
                   items.c.title, items.c.link, items.c.story_id, stories.c.sources)
            .join(items, items.c.id == alerts.c.item_id)
            .outerjoin(stories, stories.c.id == items.c.story_id)
            .order_by(alerts.c.created_at.desc(), alerts.c.id.desc()).limit(limit)
        )
        for column, value in ((alerts.c.status, status), (alerts.c.topic, topic), (alerts.c.webhook, webhook)):
            if value is not None:
                query = query.where(column == value)
        with self.transaction(write=False) as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            names = story_index.source_names(conn, {r["story_id"] for r in rows if r["story_id"] is not None})
        for row in rows:
            row["sources"] = row["sources"] or 1
            row["source_names"] = list(names.get(row.pop("story_id"), ()))
        return rows

    def top_stories(self, *, since: datetime, limit: int = 10) -> tuple[int, list[dict]]:
        """How many stories had a report since `since`, and the most widely reported of them."""
        with self.transaction(write=False) as conn:
            return story_index.widest(conn, since=since, limit=limit)

    def requeue(self, *, now: datetime, ids: Sequence[str] = (), failed_for: str | None = None,
                all_failed: bool = False) -> tuple[int, list[str]]:
        """Queue alerts again (`monitor redeliver`), keeping their ids: the given ones (any
        state; a digest id means its alerts), or every failed one (of one webhook). An alert
        that went out in a digest goes again in that digest, under the digest's id. Their
        retry schedule starts over; the attempt log keeps the history. Returns (alerts
        queued, unknown ids); with an unknown id nothing is queued."""
        with self.transaction() as conn:
            if ids:
                known_alerts = set(conn.execute(select(alerts.c.id).where(alerts.c.id.in_(list(ids)))).scalars())
                known_digests = set(conn.execute(select(digests.c.id).where(digests.c.id.in_(list(ids)))).scalars())
                unknown = [i for i in ids if i not in known_alerts | known_digests]
                if unknown:
                    return 0, unknown
                which: ColumnElement[bool] = alerts.c.id.in_(known_alerts) | alerts.c.digest_id.in_(known_digests)
            elif all_failed or failed_for is not None:
                which = alerts.c.status == "failed"
                if failed_for is not None:
                    which = which & (alerts.c.webhook == failed_for)
            else:
                return 0, []
            again = dict(status="pending", attempts=0, next_attempt_at=now, delivered_at=None)
            in_digests = list(conn.execute(select(alerts.c.digest_id).distinct().where(
                which, alerts.c.digest_id.is_not(None))).scalars())
            if in_digests:
                which = which | alerts.c.digest_id.in_(in_digests)
                conn.execute(update(digests).where(digests.c.id.in_(in_digests)).values(**again))
            queued = conn.execute(update(alerts).where(which).values(**again)).rowcount
        return queued, []

    def failing_alerts(self) -> int:
        """Alerts that failed for good or whose last attempt failed."""
        with self.transaction(write=False) as conn:
            return conn.execute(select(func.count()).select_from(alerts).where(
                or_(alerts.c.status == "failed",
                    (alerts.c.status == "pending") & (alerts.c.attempts > 0))
            )).scalar_one()

    # -- status --------------------------------------------------------------------------

    def feed_rows(self) -> list[dict]:
        with self.transaction(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(feeds.c.url, feeds.c.name, feeds.c.title, feeds.c.active, feeds.c.last_poll_at,
                       feeds.c.last_result, feeds.c.next_poll_at, feeds.c.error_count, feeds.c.interval_s,
                       feeds.c.interval_reason, feeds.c.moved_to, feeds.c.gone_at)
                .order_by(feeds.c.id))]

    def counts(self) -> dict[str, int]:
        with self.transaction(write=False) as conn:
            out = {"items": conn.execute(select(func.count()).select_from(items)).scalar_one()}
            for status, n in conn.execute(select(alerts.c.status, func.count()).group_by(alerts.c.status)):
                out[f"alerts_{status}"] = n
            return out

    def problem_alerts(self, limit: int = 20) -> list[dict]:
        """Pending-after-failure and failed alerts, newest first, for `status`."""
        with self.transaction(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(alerts.c.id, alerts.c.topic, alerts.c.webhook, alerts.c.status,
                       alerts.c.attempts, alerts.c.next_attempt_at, alerts.c.last_error, items.c.title)
                .join(items, items.c.id == alerts.c.item_id)
                .where(alerts.c.attempts > 0, alerts.c.status != "delivered")
                .order_by(alerts.c.created_at.desc()).limit(limit))]

    def figures(self) -> StoreFigures:
        with self.transaction(write=False) as conn:
            pending = conn.execute(select(func.count(), func.min(alerts.c.created_at))
                                   .where(alerts.c.status == "pending")).one()
            active = conn.execute(select(func.count(), func.min(feeds.c.next_poll_at))
                                  .where(feeds.c.active.is_(True))).one()
        # min() comes back without the column's type on some backends: normalise it.
        oldest, due = (_aware(v) for v in (pending[1], active[1]))
        return StoreFigures(active_feeds=active[0], pending_alerts=pending[0],
                            oldest_pending_at=oldest,
                            most_overdue_poll_at=due)


def pending_query() -> Any:
    """An outbox row joined with its item and feed: what a delivery needs."""
    return (
        select(
            alerts.c.id, alerts.c.topic, alerts.c.webhook, alerts.c.matched,
            alerts.c.attempts, alerts.c.created_at, items.c.title, items.c.link,
            items.c.summary, items.c.published, items.c.guid,
            func.coalesce(feeds.c.name, feeds.c.title, feeds.c.url).label("feed_name"),
            feeds.c.url.label("feed_url"), alerts.c.kind, items.c.story_id, stories.c.sources,
        )
        .join(items, items.c.id == alerts.c.item_id)
        .join(feeds, feeds.c.id == items.c.feed_id)
        .outerjoin(stories, stories.c.id == items.c.story_id)
    )


def pending_alerts(conn: Connection, rows: Sequence[Row], token: str) -> list[PendingAlert]:
    """Outbox rows (of pending_query) as deliveries, each with its story's sources."""
    sources = story_index.source_names(conn, {r.story_id for r in rows if r.story_id is not None})
    return [pending_alert(r, token, sources) for r in rows]


def pending_alert(r: Row, token: str, sources: dict[int, tuple[str, ...]]) -> PendingAlert:
    return PendingAlert(
        id=r.id, topic=r.topic, webhook=r.webhook, matched=tuple(json.loads(r.matched)),
        attempts=r.attempts, created_at=r.created_at, title=r.title, link=r.link,
        summary=r.summary, published=r.published, guid=r.guid,
        feed_name=r.feed_name, feed_url=r.feed_url, lease_token=token,
        follow_up=r.kind == FOLLOW_UP, sources=r.sources or 1, source_names=sources.get(r.story_id, ()),
    )


def schema_problem(state: SchemaState, display_url: str, *, auto_migrate: bool,
                   config_path: str = "FILE") -> str | None:
    """Why a database with this schema cannot be used as it is, or None. A new, empty
    database is fine (it gets the schema); one behind is fine only with `auto_migrate`."""
    if not state.known:
        return (f"database {display_url} has schema revision {state.current}, which this "
                f"monitor does not know (it goes up to {state.head}): run a newer monitor")
    if state.up_to_date or state.empty or auto_migrate:
        return None
    return (f"database {display_url} has schema revision {state.current}, this monitor "
            f"needs {state.head}: run `monitor db upgrade -c {config_path}` "
            "(or set auto_migrate = true)")


def open_store(url: str, *, auto_migrate: bool, config_path: str = "FILE",
               lease_clock: Callable[[], datetime] | None = None, daemon: bool = False) -> Store:
    """The database, ready for work: a new, empty one gets the schema (nothing to lose);
    one whose schema is behind is refused unless `auto_migrate`, naming the command to run."""
    store = Store(url, lease_clock=lease_clock, daemon=daemon)
    try:
        state = store.schema_state()
        problem = schema_problem(state, store.display_url, config_path=config_path,
                                 auto_migrate=auto_migrate or is_memory_sqlite(url))
        if problem:
            raise SchemaError(problem)
        if state.up_to_date:
            return store
        before, after = store.upgrade()
        event("schema_upgraded", database=store.display_url, revision_from=before.current or "none",
              revision_to=after.current)
        return store
    except BaseException:
        store.close()
        raise


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back text for an aggregate of a DATETIME
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _with_rows(conn: Connection, columns: tuple[Column, ...],
               wanted: dict[str, T]) -> Iterator[tuple[str, T, Row | None]]:
    """Each wanted feed URL with its value and its row (of `columns`, the URL first), or None."""
    for chunk in chunks(list(wanted)):
        rows = {row[0]: row for row in found(conn, columns, feeds.c.url, chunk)}
        for url in chunk:
            yield url, wanted[url], rows.get(url)


def release_leases(conn: Connection, table: Table, claimed: Sequence[tuple[Any, str]]) -> None:
    """Free these (id, token) leases of `table`'s rows, each only while its token holds."""
    for token in {t for _, t in claimed}:
        conn.execute(update(table).where(
            table.c.id.in_([i for i, t in claimed if t == token]), table.c.lease_owner == token,
        ).values(lease_until=None, lease_owner=None))


def attempt_values(outcome: str, *, now: datetime, next_attempt_at: datetime | None) -> dict[str, Any]:
    """How an attempt's outcome (delivered, retry, failed) moves an alert or a digest on."""
    if outcome == "delivered":
        return dict(status="delivered", delivered_at=now)
    if outcome == "retry":
        assert next_attempt_at is not None
        return dict(next_attempt_at=next_attempt_at)
    return dict(status="failed")


@functools.cache
def _good_poll_update(*, parsed: bool, cadence: bool) -> Any:
    """The UPDATE of a feed's row after a good poll, if its lease still holds; built once
    per shape, its values all parameters (see _good_poll_values), so that SQLAlchemy
    reuses the compiled form: building it per poll cost a fifth of a 304's CPU."""
    values: dict[str, Any] = dict(
        next_poll_at=bindparam("p_next_poll_at"), lease_until=None, lease_owner=None,
        last_poll_at=bindparam("p_now"), last_result=bindparam("p_result"), error_count=0,
        etag=bindparam("p_etag"), last_modified=bindparam("p_last_modified"),
        moved_to=func.coalesce(bindparam("p_moved_to"), feeds.c.moved_to), failing_since=None, health_alerted_at=None,
    )
    if parsed:
        values.update(title=func.coalesce(bindparam("p_title"), feeds.c.title),
                      baselined_at=func.coalesce(feeds.c.baselined_at, bindparam("p_now")),
                      parsed_at=bindparam("p_now"),
                      body_hash=func.coalesce(bindparam("p_body_hash"), feeds.c.body_hash))
    if cadence:
        values.update({name: bindparam(f"p_{name}") for name in CADENCE_COLUMNS})
    return update(feeds).where(
        feeds.c.id == bindparam("p_id"), feeds.c.lease_owner == bindparam("p_lease_owner"),
    ).values(**values)


def _good_poll_values(feed: Any, *, now: datetime, next_poll_at: datetime, result: str, etag: str | None,
                      last_modified: str | None, moved_to: str | None, cadence: Cadence | None,
                      title: str | None = None, body_hash: bytes | None = None) -> dict[str, Any]:
    """The parameters of _good_poll_update: an empty title, hash or move keeps the old one."""
    values = dict(p_id=feed.id, p_lease_owner=feed.lease_token, p_now=now, p_next_poll_at=next_poll_at,
                  p_result=result, p_etag=etag, p_last_modified=last_modified, p_moved_to=moved_to or None,
                  p_title=title or None, p_body_hash=body_hash or None)
    values.update({f"p_{name}": value for name, value in _cadence_values(cadence).items()})
    return values


CADENCE_COLUMNS = ("interval_s", "interval_reason", "mean_gap_s", "newest_at")


def _cadence_values(cadence: Cadence | None) -> dict[str, Any]:
    if cadence is None:
        return {}
    gap = cadence.pace.mean_gap
    return dict(interval_s=int(cadence.interval.total_seconds()), interval_reason=cadence.reason[:256],
                mean_gap_s=None if gap is None else int(gap.total_seconds()), newest_at=cadence.pace.newest)


def _alert_rows(conn: Connection, loud: list[tuple[int, NewItem, Placement]], now: datetime) -> list[dict]:
    """The alerts of new items. Per story, an alert carries its story's key; per item, the
    item's own, unless its feed re-issued a story it had reported (new guid or URL)."""
    if not loud:
        return []
    old_stories = _buried_stories(conn, {key for _, item, placed in loud
                                         for key in (item.story_key, *item.story_aliases, placed.key)})
    alerted = _alerted_under(conn, {alias for _, item, _ in loud for alias in item.story_aliases})
    return [
        dict(id=a.id, item_id=item_id, story_key=placed.key if a.per_story or placed.reissued else item.story_key,
             topic=a.topic, webhook=a.webhook, matched=json.dumps(list(a.matched)), status="pending", attempts=0,
             next_attempt_at=now, created_at=now, kind=None)  # every row names every column: one statement
        # Not a story alerted long ago, nor one alerted under the key an earlier release gave it.
        for item_id, item, placed in loud if old_stories.isdisjoint((item.story_key, *item.story_aliases, placed.key))
        for a in item.alerts if not any((alias, a.topic, a.webhook) in alerted for alias in item.story_aliases)
    ]


def _follow_up_rows(conn: Connection, grown: dict[int, int], stored: list[tuple[NewItem, Placement]],
                    inserted: dict[str, int], rules: StoryRules, now: datetime) -> list[dict]:
    """A follow-up of each alert whose story this poll brought to its topic's threshold,
    carried by the report that did."""
    keys = {placed.story_id: placed.key for _, placed in stored}
    reports: dict[int, int] = {}
    for item, placed in stored:
        reports.setdefault(placed.story_id, inserted[item.key])
    return [
        dict(id=new_alert_id(now), item_id=reports[owed["story"]], story_key=follow_up_key(owed["story_key"]),
             topic=owed["topic"], webhook=owed["webhook"], matched=owed["matched"], status="pending", attempts=0,
             next_attempt_at=now, created_at=now, kind=FOLLOW_UP)
        for owed in story_index.follow_ups(conn, grown, keys, rules.follow_ups)
    ]


def _alerted_under(conn: Connection, story_keys: set[str]) -> set[tuple[str, str, str]]:
    """(story, topic, webhook) of the alerts stored under these story keys."""
    wanted = (alerts.c.story_key, alerts.c.topic, alerts.c.webhook)
    return {(story, topic, webhook) for story, topic, webhook in found(conn, wanted, alerts.c.story_key, story_keys)}


def _buried_stories(conn: Connection, story_keys: set[str]) -> set[str]:
    """The stories among these that only a tombstone remembers (pruned long ago)."""
    by_hash = {story_hash(key): key for key in story_keys}
    return {by_hash[h] for h, in found(conn, (tombstones.c.story,), tombstones.c.story, by_hash)}
