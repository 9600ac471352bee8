"""SQLAlchemy tables and the few queries the pipeline, the outbox and `status` need."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from monitor.errors import StorageError


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend (SQLite drops tz)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

# Scheduling state lives here, not in memory: any process (or later, any instance) can
# pick up the feeds that are due.
feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", String(2048), nullable=False, unique=True),
    Column("name", String(512)),            # configured name, if any
    Column("title", String(1024)),          # the feed's own title, from its last good poll
    Column("active", Boolean, nullable=False, default=True),  # still in the config
    Column("interval_s", Integer, nullable=False),
    Column("next_poll_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),     # set while a poll is in flight
    Column("etag", String(1024)),
    Column("last_modified", String(256)),
    Column("last_poll_at", UTCDateTime),
    Column("last_result", String(1024)),    # "200 new=3", "304", "error: HTTP 404"
    Column("error_count", Integer, nullable=False, default=0),
    Column("baselined_at", UTCDateTime),    # first successful poll; None = never seen
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_feeds_due", feeds.c.active, feeds.c.next_poll_at)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("feed_id", Integer, ForeignKey("feeds.id"), nullable=False),
    Column("key", String(600), nullable=False),        # identity within the feed
    Column("story_key", String(64), nullable=False),  # identity across feeds (a hash)
    Column("guid", Text),
    Column("link", Text),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("published", UTCDateTime),
    Column("seen_at", UTCDateTime, nullable=False),
    UniqueConstraint("feed_id", "key", name="uq_items_feed_key"),
)
Index("ix_items_story", items.c.story_key)

# The outbox: written in the same transaction as its item, delivered afterwards.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(26), primary_key=True),  # ULID; the webhook-id on every attempt
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("story_key", String(64), nullable=False),
    Column("topic", String(256), nullable=False),
    Column("webhook", String(256), nullable=False),
    Column("matched", Text, nullable=False),     # JSON list of terms
    Column("status", String(16), nullable=False, default="pending"),  # pending|delivered|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", String(1024)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    # The rule "one alert per (story, topic, webhook)" enforced by the database, so that
    # no race between pollers can ever produce a second one.
    UniqueConstraint("story_key", "topic", "webhook", name="uq_alerts_story_topic_webhook"),
)
Index("ix_alerts_due", alerts.c.status, alerts.c.next_attempt_at)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("alert_id", String(26), ForeignKey("alerts.id"), nullable=False, index=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", String(1024)),
    Column("elapsed_ms", Integer, nullable=False),
)


@dataclass(frozen=True)
class FeedState:
    """A feed row as the pipeline needs it."""

    id: int
    url: str
    name: str | None
    title: str | None
    interval: timedelta
    etag: str | None
    last_modified: str | None
    error_count: int
    baselined: bool


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


@dataclass(frozen=True)
class AlertIntent:
    """One alert to store for a new item."""

    id: str
    topic: str
    webhook: str
    matched: tuple[str, ...]


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


def _feed_state(row: Row) -> FeedState:
    r = row._mapping
    return FeedState(
        id=r["id"], url=r["url"], name=r["name"], title=r["title"],
        interval=timedelta(seconds=r["interval_s"]), etag=r["etag"],
        last_modified=r["last_modified"], error_count=r["error_count"],
        baselined=r["baselined_at"] is not None,
    )


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    # WAL lets `status` and readers run while the daemon writes; busy_timeout makes a
    # second writer wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _item_row(feed_id: int, item: NewItem, now: datetime) -> dict:
    return dict(feed_id=feed_id, key=item.key, story_key=item.story_key, guid=item.guid,
                link=item.link, title=item.title, summary=item.summary,
                published=item.published, seen_at=now)


def _insert_ignoring_duplicate(conn: Connection, table: Table, row: dict) -> int:
    """INSERT ... ON CONFLICT DO NOTHING (the one place that speaks dialect); 1 if inserted."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: psycopg reports -1 for a skipped ON CONFLICT row.
    stmt = insert(table).values(**row).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return 0 if conn.execute(stmt).first() is None else 1


class Store:
    """The database: opened once per process, used by the pipeline, outbox and CLI."""

    def __init__(self, url: str):
        try:
            sa_url = make_url(url)
            engine_kwargs: dict = {}
            if sa_url.get_backend_name() == "sqlite":
                engine_kwargs["connect_args"] = {"timeout": 10}
            self.engine: Engine = create_engine(sa_url, **engine_kwargs)
        except (ArgumentError, SQLAlchemyError, ImportError) as e:
            raise StorageError(f"cannot use database {url!r}: {e}") from e
        # SQLite has one writer at a time; waiting on a lock here instead of in SQLite's
        # busy handler (which sleeps and retries) made a 500-feed pass 5x faster.
        self._write_lock: threading.Lock | None = None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self._write_lock = threading.Lock()
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as e:
            raise StorageError(f"cannot open database {self.engine.url!r}: {_short(e)}") from e

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        """One transaction; writes are serialised in-process on SQLite."""
        lock = self._write_lock if write else None
        try:
            if lock:
                lock.acquire()
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StorageError(f"database error: {_short(e)}") from e
        finally:
            if lock:
                lock.release()

    # -- feeds ---------------------------------------------------------------------------

    def sync_feeds(self, configured: Sequence[tuple[str, str | None, timedelta]], now: datetime) -> None:
        """Make the feeds table follow the config: (url, name, interval) per feed.

        New feeds are due at once; a removed feed is marked inactive, not deleted, so
        that adding it back does not re-baseline it or repeat its alerts.
        """
        wanted = {url: (name, interval) for url, name, interval in configured}
        with self._tx() as conn:
            existing = {r.url: r for r in conn.execute(select(feeds.c.url, feeds.c.id, feeds.c.next_poll_at))}
            for url, (name, interval) in wanted.items():
                secs = max(1, int(interval.total_seconds()))
                row = existing.get(url)
                if row is None:
                    conn.execute(feeds.insert().values(
                        url=url, name=name, active=True, interval_s=secs,
                        next_poll_at=now, error_count=0, created_at=now,
                    ))
                else:
                    # A shorter interval takes effect now, not after the old wait.
                    next_poll = min(row.next_poll_at, now + interval)
                    conn.execute(update(feeds).where(feeds.c.id == row.id).values(
                        name=name, active=True, interval_s=secs, next_poll_at=next_poll,
                    ))
            gone = [r.id for url, r in existing.items() if url not in wanted]
            if gone:
                conn.execute(update(feeds).where(feeds.c.id.in_(gone)).values(active=False))

    def claim_due_feeds(self, now: datetime, limit: int, lease: timedelta, *, all_feeds: bool = False) -> list[FeedState]:
        """Lease up to `limit` due feeds so that no other poller takes them meanwhile."""
        with self._tx() as conn:
            query = select(feeds).where(
                feeds.c.active.is_(True),
                or_(feeds.c.lease_until.is_(None), feeds.c.lease_until < now),
            ).order_by(feeds.c.next_poll_at).limit(limit)
            if not all_feeds:
                query = query.where(feeds.c.next_poll_at <= now)
            claimed = []
            for row in conn.execute(query).all():
                # The guarded UPDATE is the lock: it succeeds for exactly one claimant.
                won = conn.execute(update(feeds).where(
                    feeds.c.id == row.id,
                    or_(feeds.c.lease_until.is_(None), feeds.c.lease_until < now),
                ).values(lease_until=now + lease)).rowcount
                if won:
                    claimed.append(_feed_state(row))
            return claimed

    def known_keys(self, feed_id: int, keys: Iterable[str]) -> set[str]:
        """Which of these item keys the feed has already recorded."""
        keys = list(keys)
        found: set[str] = set()
        with self._tx(write=False) as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                found.update(conn.execute(
                    select(items.c.key).where(items.c.feed_id == feed_id, items.c.key.in_(chunk))
                ).scalars())
        return found

    def record_poll(
        self,
        feed_id: int,
        *,
        now: datetime,
        next_poll_at: datetime,
        result: str,
        etag: str | None,
        last_modified: str | None,
        title: str | None,
        new_items: Sequence[NewItem],
    ) -> int:
        """Store a successful poll in one transaction: new items, their alerts, the feed's
        new state. Returns how many alerts were actually created (duplicates of a story
        already alerted for the same topic and webhook are silently skipped)."""
        created = 0
        with self._tx() as conn:
            quiet = [item for item in new_items if not item.alerts]
            if quiet:  # one executemany: most new items raise no alert
                conn.execute(items.insert(), [_item_row(feed_id, item, now) for item in quiet])
            for item in new_items:
                if not item.alerts:
                    continue
                item_id = conn.execute(items.insert().values(**_item_row(feed_id, item, now))
                                       .returning(items.c.id)).scalar_one()
                for a in item.alerts:
                    created += _insert_ignoring_duplicate(conn, alerts, dict(
                        id=a.id, item_id=item_id, story_key=item.story_key, topic=a.topic,
                        webhook=a.webhook, matched=json.dumps(list(a.matched)), status="pending",
                        attempts=0, next_attempt_at=now, created_at=now,
                    ))
            conn.execute(update(feeds).where(feeds.c.id == feed_id).values(
                next_poll_at=next_poll_at, lease_until=None, last_poll_at=now,
                last_result=result, error_count=0, etag=etag, last_modified=last_modified,
                title=title or feeds.c.title, baselined_at=func.coalesce(feeds.c.baselined_at, now),
            ))
        return created

    def record_failure(self, feed_id: int, *, now: datetime, next_poll_at: datetime, error: str) -> None:
        """A failed poll: keep the validators, count the error, retry later."""
        with self._tx() as conn:
            conn.execute(update(feeds).where(feeds.c.id == feed_id).values(
                next_poll_at=next_poll_at, lease_until=None, last_poll_at=now,
                last_result=f"error: {error}"[:1024], error_count=feeds.c.error_count + 1,
            ))

    # -- outbox --------------------------------------------------------------------------

    def due_alerts(self, now: datetime, limit: int, webhooks: Iterable[str]) -> list[PendingAlert]:
        """Pending alerts whose next attempt is due, oldest first, for known webhooks."""
        query = (
            select(
                alerts.c.id, alerts.c.topic, alerts.c.webhook, alerts.c.matched,
                alerts.c.attempts, alerts.c.created_at, items.c.title, items.c.link,
                items.c.summary, items.c.published, items.c.guid,
                func.coalesce(feeds.c.name, feeds.c.title, feeds.c.url).label("feed_name"),
                feeds.c.url.label("feed_url"),
            )
            .join(items, items.c.id == alerts.c.item_id)
            .join(feeds, feeds.c.id == items.c.feed_id)
            .where(alerts.c.status == "pending", alerts.c.next_attempt_at <= now,
                   alerts.c.webhook.in_(list(webhooks)))
            .order_by(alerts.c.next_attempt_at, alerts.c.created_at)
            .limit(limit)
        )
        with self._tx(write=False) as conn:
            return [
                PendingAlert(
                    id=r.id, topic=r.topic, webhook=r.webhook, matched=tuple(json.loads(r.matched)),
                    attempts=r.attempts, created_at=r.created_at, title=r.title, link=r.link,
                    summary=r.summary, published=r.published, guid=r.guid,
                    feed_name=r.feed_name, feed_url=r.feed_url,
                )
                for r in conn.execute(query)
            ]

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
    ) -> None:
        """Log one delivery attempt and move the alert on: outcome is delivered, retry or failed."""
        values: dict = dict(attempts=alerts.c.attempts + 1, last_error=error)
        if outcome == "delivered":
            values.update(status="delivered", delivered_at=now)
        elif outcome == "retry":
            assert next_attempt_at is not None
            values.update(next_attempt_at=next_attempt_at)
        else:
            values.update(status="failed")
        with self._tx() as conn:
            conn.execute(deliveries.insert().values(
                alert_id=alert_id, attempted_at=now, status_code=status_code,
                error=error, elapsed_ms=elapsed_ms,
            ))
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))

    def failing_alerts(self) -> int:
        """Alerts that failed for good or whose last attempt failed."""
        with self._tx(write=False) as conn:
            return conn.execute(select(func.count()).select_from(alerts).where(
                or_(alerts.c.status == "failed",
                    (alerts.c.status == "pending") & (alerts.c.attempts > 0))
            )).scalar_one()

    # -- status --------------------------------------------------------------------------

    def feed_rows(self) -> list[dict]:
        with self._tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(feeds.c.url, feeds.c.name, feeds.c.title, feeds.c.active, feeds.c.last_poll_at,
                       feeds.c.last_result, feeds.c.next_poll_at, feeds.c.error_count)
                .order_by(feeds.c.id))]

    def counts(self) -> dict[str, int]:
        with self._tx(write=False) as conn:
            out = {"items": conn.execute(select(func.count()).select_from(items)).scalar_one()}
            for status, n in conn.execute(select(alerts.c.status, func.count()).group_by(alerts.c.status)):
                out[f"alerts_{status}"] = n
            return out

    def problem_alerts(self, limit: int = 20) -> list[dict]:
        """Pending-after-failure and failed alerts, newest first, for `status`."""
        with self._tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(alerts.c.id, alerts.c.topic, alerts.c.webhook, alerts.c.status,
                       alerts.c.attempts, alerts.c.next_attempt_at, alerts.c.last_error, items.c.title)
                .join(items, items.c.id == alerts.c.item_id)
                .where(alerts.c.attempts > 0, alerts.c.status != "delivered")
                .order_by(alerts.c.created_at.desc()).limit(limit))]

    def prune_deliveries(self, before: datetime) -> int:
        """Drop the attempt log of delivered alerts older than `before` (it only grows)."""
        with self._tx() as conn:
            done = select(alerts.c.id).where(alerts.c.status == "delivered")
            return conn.execute(deliveries.delete().where(
                deliveries.c.attempted_at < before, deliveries.c.alert_id.in_(done))).rowcount


def _short(e: Exception) -> str:
    """The first line of a driver error, without SQLAlchemy's background link."""
    text = str(getattr(e, "orig", None) or e)
    return text.splitlines()[0] if text else type(e).__name__
