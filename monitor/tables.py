"""The database tables (SQLAlchemy Core). Every change here ships as an Alembic revision
in monitor/migrations/versions; a test compares this metadata with the migrated schema."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


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
    Column("interval_s", Integer, nullable=False),  # the interval in force (fixed, or adapted)
    Column("auto_interval", Boolean),       # adapts to the feed's pace (None before 0.3: fixed)
    Column("interval_reason", String(256)),  # why interval_s, for `status`
    Column("mean_gap_s", Integer),          # the feed's typical gap between items
    Column("newest_at", UTCDateTime),       # its newest item: published, else first seen
    Column("moved_to", String(2048)),       # where a permanent redirect (301/308) sent us
    Column("gone_at", UTCDateTime),         # answered 410 Gone: not polled until revived
    Column("body_hash", LargeBinary(16)),   # of the last body parsed: the same bytes are not parsed again
    Column("failing_since", UTCDateTime),   # the first failure of the current run of them
    Column("health_alerted_at", UTCDateTime),  # when this run of failures sent its feed-health alert
    Column("next_poll_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),     # set while a poll is in flight
    Column("lease_owner", String(32)),      # the claim's token; a poll's writes require it
    Column("etag", String(1024)),
    Column("last_modified", String(256)),
    Column("last_poll_at", UTCDateTime),
    Column("parsed_at", UTCDateTime),       # last poll whose body was read (200, not 304)
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
    Column("story_id", Integer),  # the story it reports (stories.id); None before 0.4
    UniqueConstraint("feed_id", "key", name="uq_items_feed_key"),
)
Index("ix_items_story", items.c.story_key)
Index("ix_items_seen", items.c.seen_at)  # retention walks items oldest first

# What is left of a pruned item: enough to know it was seen, so that an old item a feed
# still serves (or an old story in a new feed) never alerts again.
tombstones = Table(
    "tombstones",
    metadata,
    Column("feed_id", Integer, ForeignKey("feeds.id"), nullable=False),
    Column("key_hash", LargeBinary(16), nullable=False),  # 128 bits of sha256(item key)
    Column("story", LargeBinary(16), nullable=False),     # the first 128 bits of its story_key
    Column("seen_at", UTCDateTime, nullable=False),   # last time the feed still served it
    PrimaryKeyConstraint("feed_id", "key_hash", name="pk_tombstones"),
)
Index("ix_tombstones_story", tombstones.c.story)
Index("ix_tombstones_seen", tombstones.c.seen_at)

# Stories: the reports of one news story across feeds (one URL, or near-identical text).
# An alert of a topic that dedupes by story carries its story's key, so the unique rule
# below allows one alert per story, whichever outlet reported it first.
stories = Table(
    "stories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),  # its first item's story_key
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),  # its newest report
    Column("sources", Integer, nullable=False),           # feeds that have reported it
)
Index("ix_stories_seen", stories.c.last_seen_at)

# Which feeds have reported a story, and with which item first.
story_reports = Table(
    "story_reports",
    metadata,
    Column("story_id", Integer, nullable=False),
    Column("feed_id", Integer, nullable=False),
    Column("item_id", Integer, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("story_id", "feed_id", name="pk_story_reports"),
)

# The near-duplicate index over the story window: each recent item's text fingerprint
# (its shingles, to compare exactly) and its LSH bands (to find candidates by lookup).
# Rows older than the window are pruned, so a check costs the same at any store size.
story_entries = Table(
    "story_entries",
    metadata,
    Column("item_id", Integer, primary_key=True),
    Column("story_id", Integer, nullable=False),
    Column("feed_id", Integer, nullable=False),
    Column("shingles", LargeBinary, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)
Index("ix_story_entries_seen", story_entries.c.seen_at)

story_bands = Table(
    "story_bands",
    metadata,
    Column("band", BigInteger, nullable=False),
    Column("item_id", Integer, nullable=False),
    PrimaryKeyConstraint("band", "item_id", name="pk_story_bands"),
)
Index("ix_story_bands_item", story_bands.c.item_id)  # pruning follows the entries

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
    Column("lease_until", UTCDateTime),      # set while a delivery is in flight
    Column("lease_owner", String(32)),       # the claim's token; the attempt's record requires it
    # Held back to go out in a digest (a digest window, or max_per_hour overflow): its
    # topic's held alerts are bundled when the earliest hold ends.
    Column("hold_until", UTCDateTime),
    Column("digest_id", String(26)),         # the digest (digests.id) it goes out in, once bundled
    Column("kind", String(16)),              # None: an alert; "follow_up": its story reached N sources
    # The rule "one alert per (story, topic, webhook)" enforced by the database, so that
    # no race between pollers can ever produce a second one.
    UniqueConstraint("story_key", "topic", "webhook", name="uq_alerts_story_topic_webhook"),
)
Index("ix_alerts_due", alerts.c.status, alerts.c.next_attempt_at)
Index("ix_alerts_item", alerts.c.item_id)  # retention finds an item's alerts
Index("ix_alerts_held", alerts.c.hold_until)
Index("ix_alerts_digest", alerts.c.digest_id)
Index("ix_alerts_sent", alerts.c.webhook, alerts.c.delivered_at)  # max_per_hour counts the hour's sends

# One message carrying several alerts of one topic to one webhook. Its delivery state is
# an alert's; its members follow it.
digests = Table(
    "digests",
    metadata,
    Column("id", String(26), primary_key=True),  # ULID; the webhook-id on every attempt
    Column("webhook", String(256), nullable=False),
    Column("topic", String(256), nullable=False),
    Column("status", String(16), nullable=False, default="pending"),  # pending|delivered|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", String(1024)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(32)),
)
Index("ix_digests_due", digests.c.status, digests.c.next_attempt_at)

# Named leases for work one instance at a time does (the maintenance job).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(32), nullable=False),
    Column("until", UTCDateTime, nullable=False),
)

# Running daemons: each says which feed list its config has, so that no instance takes a
# feed out of the schedule while another one's config still has it.
instances = Table(
    "instances",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("feeds_digest", String(64), nullable=False),  # sha256 of its sorted feed URLs
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

# Webhooks switched off by the daemon (a 410 Gone); a reload or restart switches them on.
webhook_state = Table(
    "webhook_state",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("disabled_at", UTCDateTime, nullable=False),
    Column("reason", String(1024), nullable=False),
)

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
