"""0.4.0: stories across feeds — the stories, the feeds that reported each, and the
near-duplicate index (text fingerprints and their LSH bands) over the story window;
items carry their story, alerts their kind (an alert, or a story's follow-up).

The items of the last 72 hours (the default window) are indexed on the way: each URL
story key becomes a story, so that a report arriving after the upgrade finds the story
its earlier reports were alerted under and repeats nothing.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from monitor import neardup

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WINDOW = timedelta(hours=72)


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("story_id", sa.Integer))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("kind", sa.String(16)))
    stories = op.create_table(
        "stories",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("first_seen_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
        sa.Column("sources", sa.Integer, nullable=False),
    )
    op.create_index("ix_stories_seen", "stories", ["last_seen_at"])
    reports = op.create_table(
        "story_reports",
        sa.Column("story_id", sa.Integer, nullable=False),
        sa.Column("feed_id", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("story_id", "feed_id", name="pk_story_reports"),
    )
    entries = op.create_table(
        "story_entries",
        sa.Column("item_id", sa.Integer, primary_key=True),
        sa.Column("story_id", sa.Integer, nullable=False),
        sa.Column("feed_id", sa.Integer, nullable=False),
        sa.Column("shingles", sa.LargeBinary, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_story_entries_seen", "story_entries", ["seen_at"])
    bands = op.create_table(
        "story_bands",
        sa.Column("band", sa.BigInteger, nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("band", "item_id", name="pk_story_bands"),
    )
    op.create_index("ix_story_bands_item", "story_bands", ["item_id"])
    _index_recent_items(op.get_bind(), stories, reports, entries, bands)


def _index_recent_items(conn: sa.Connection, stories: sa.Table, reports: sa.Table, entries: sa.Table,
                        bands: sa.Table) -> None:
    items = sa.table("items", sa.column("id"), sa.column("feed_id"), sa.column("story_key"), sa.column("title"),
                     sa.column("summary"), sa.column("seen_at", sa.DateTime), sa.column("story_id"))
    since = datetime.now(UTC).replace(tzinfo=None) - WINDOW
    rows = conn.execute(sa.select(items.c.id, items.c.feed_id, items.c.story_key, items.c.title, items.c.summary,
                                  items.c.seen_at).where(items.c.seen_at >= since).order_by(items.c.id)).all()
    if not rows:
        return
    opened: dict[str, dict] = {}
    for row in rows:
        story = opened.setdefault(row.story_key, dict(key=row.story_key, first_seen_at=row.seen_at,
                                                      last_seen_at=row.seen_at, feeds={}))
        story["last_seen_at"] = max(story["last_seen_at"], row.seen_at)
        story["feeds"].setdefault(row.feed_id, (row.id, row.seen_at))
    conn.execute(stories.insert(), [dict(key=s["key"], first_seen_at=s["first_seen_at"], last_seen_at=s["last_seen_at"],
                                         sources=len(s["feeds"])) for s in opened.values()])
    ids = dict(conn.execute(sa.select(stories.c.key, stories.c.id)).all())
    conn.execute(reports.insert(), [dict(story_id=ids[s["key"]], feed_id=feed, item_id=item, seen_at=seen)
                                    for s in opened.values() for feed, (item, seen) in s["feeds"].items()])
    conn.execute(items.update().where(items.c.id == sa.bindparam("item")).values(story_id=sa.bindparam("story")),
                 [dict(item=row.id, story=ids[row.story_key]) for row in rows])
    printed = [(row, fp) for row in rows if (fp := neardup.fingerprint(row.title, row.summary)) is not None]
    if printed:
        conn.execute(entries.insert(), [dict(item_id=row.id, story_id=ids[row.story_key], feed_id=row.feed_id,
                                             shingles=neardup.pack(fp.shingles), seen_at=row.seen_at)
                                        for row, fp in printed])
        conn.execute(bands.insert(), [dict(band=band, item_id=row.id) for row, fp in printed
                                      for band in dict.fromkeys(fp.bands)])


def downgrade() -> None:
    for index, table in (("ix_story_bands_item", "story_bands"), ("ix_story_entries_seen", "story_entries"),
                         ("ix_stories_seen", "stories")):
        op.drop_index(index, table_name=table)
    for table in ("story_bands", "story_entries", "story_reports", "stories"):
        op.drop_table(table)
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("story_id")
