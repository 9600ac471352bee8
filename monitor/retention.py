"""Retention: prune old items, alerts and attempts in small batches, leaving tombstones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select, tuple_

from monitor.store import TOMBSTONE_IDENTITY, TOMBSTONE_REFRESH, Store, insert_or_skip, key_hash, story_hash
from monitor.stories import prune_index
from monitor.tables import alerts, deliveries, digests, feeds, items, stories, story_entries, story_reports, tombstones

BATCH = 500  # rows per transaction: short enough never to hold the write lock for long


@dataclass
class PruneStats:
    """What one prune removed."""

    items: int = 0
    alerts: int = 0
    attempts: int = 0
    tombstones: int = 0
    prints: int = 0   # near-duplicate index entries older than the story window
    stories: int = 0
    batches: int = 0


def prune(store: Store, *, now: datetime, retention: timedelta, story_window: timedelta = timedelta(hours=72),
          batch: int = BATCH, progress: Callable[[PruneStats], None] | None = None) -> PruneStats:
    """Remove what is older than `retention`, one short transaction per batch.

    An item goes (with its alerts and their attempts) once it was first seen before the
    cutoff and no alert of it is still pending; it leaves a tombstone of its identity.
    A tombstone goes once it is older than the cutoff and its feed has been read since
    without it for a day or more: while a feed still serves an item, it is remembered.
    The near-duplicate index keeps the story window; a story goes with retention, once
    its newest report is older than the cutoff.
    """
    cutoff = now - retention
    stats = PruneStats()
    last_report = time.monotonic()

    def prints(store: Store, now: datetime, cutoff: datetime, batch: int, stats: PruneStats) -> int:
        with store.transaction() as conn:
            done = prune_index(conn, before=now - story_window, batch=batch)
        stats.prints += done
        return done

    for step in (_prune_items, _prune_tombstones, prints, _prune_stories):
        while True:
            done = step(store, now, cutoff, batch, stats)
            stats.batches += 1
            if progress and time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                progress(stats)
            if done < batch:
                break
    return stats


def _prune_items(store: Store, now: datetime, cutoff: datetime, batch: int, stats: PruneStats) -> int:
    pending = exists().where(alerts.c.item_id == items.c.id, alerts.c.status == "pending")
    with store.transaction() as conn:
        rows = conn.execute(
            select(items.c.id, items.c.feed_id, items.c.key, items.c.story_key)
            .where(items.c.seen_at < cutoff, ~pending).order_by(items.c.seen_at, items.c.id)
            .limit(batch)).all()
        if not rows:
            return 0
        ids = [r.id for r in rows]
        conn.execute(insert_or_skip(tombstones, conn.dialect.name, TOMBSTONE_IDENTITY), [
            dict(feed_id=r.feed_id, key_hash=key_hash(r.key), story=story_hash(r.story_key), seen_at=now)
            for r in rows])
        their_alerts = select(alerts.c.id).where(alerts.c.item_id.in_(ids))
        their_digests = set(conn.execute(select(alerts.c.digest_id).where(
            alerts.c.item_id.in_(ids), alerts.c.digest_id.is_not(None))).scalars())
        stats.attempts += conn.execute(
            deliveries.delete().where(deliveries.c.alert_id.in_(their_alerts))).rowcount
        stats.alerts += conn.execute(alerts.delete().where(alerts.c.item_id.in_(ids))).rowcount
        stats.items += conn.execute(items.delete().where(items.c.id.in_(ids))).rowcount
        if their_digests:  # a digest goes with the last of its alerts
            still_used = select(alerts.c.digest_id).where(alerts.c.digest_id.in_(their_digests))
            conn.execute(digests.delete().where(digests.c.id.in_(their_digests), digests.c.id.not_in(still_used)))
    return len(rows)


def _prune_tombstones(store: Store, now: datetime, cutoff: datetime, batch: int, stats: PruneStats) -> int:
    # A served item's tombstone is re-sighted at least daily (TOMBSTONE_REFRESH), so one last
    # seen before the cutoff whose feed was read 2 days after the cutoff is no longer served.
    gone = and_(tombstones.c.seen_at < cutoff,
                feeds.c.parsed_at >= cutoff + 2 * TOMBSTONE_REFRESH)
    with store.transaction() as conn:
        keys = conn.execute(
            select(tombstones.c.feed_id, tombstones.c.key_hash)
            .join(feeds, feeds.c.id == tombstones.c.feed_id).where(gone).limit(batch)).all()
        if keys:
            stats.tombstones += conn.execute(tombstones.delete().where(
                tuple_(tombstones.c.feed_id, tombstones.c.key_hash).in_([tuple(k) for k in keys]))).rowcount
    return len(keys)


def _prune_stories(store: Store, now: datetime, cutoff: datetime, batch: int, stats: PruneStats) -> int:
    with store.transaction() as conn:
        old = list(conn.execute(select(stories.c.id).where(stories.c.last_seen_at < cutoff)
                                .order_by(stories.c.last_seen_at).limit(batch)).scalars())
        if old:
            conn.execute(story_reports.delete().where(story_reports.c.story_id.in_(old)))
            conn.execute(story_entries.delete().where(story_entries.c.story_id.in_(old)))
            stats.stories += conn.execute(stories.delete().where(stories.c.id.in_(old))).rowcount
    return len(old)


def count_rows(store: Store) -> dict[str, int]:
    """Rows per table, for `db prune` and the size benchmark."""
    with store.transaction(write=False) as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (items, alerts, digests, deliveries, tombstones)}
