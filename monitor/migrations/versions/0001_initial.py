"""The 0.1.0 schema, exactly as that release created it (with metadata.create_all).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False, unique=True),
        sa.Column("name", sa.String(512)),
        sa.Column("title", sa.String(1024)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("interval_s", sa.Integer, nullable=False),
        sa.Column("next_poll_at", sa.DateTime, nullable=False),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("etag", sa.String(1024)),
        sa.Column("last_modified", sa.String(256)),
        sa.Column("last_poll_at", sa.DateTime),
        sa.Column("last_result", sa.String(1024)),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("baselined_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_feeds_due", "feeds", ["active", "next_poll_at"])
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id"), nullable=False),
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("story_key", sa.String(64), nullable=False),
        sa.Column("guid", sa.Text),
        sa.Column("link", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("published", sa.DateTime),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("feed_id", "key", name="uq_items_feed_key"),
    )
    op.create_index("ix_items_story", "items", ["story_key"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("story_key", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("webhook", sa.String(256), nullable=False),
        sa.Column("matched", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("last_error", sa.String(1024)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("delivered_at", sa.DateTime),
        sa.UniqueConstraint("story_key", "topic", "webhook", name="uq_alerts_story_topic_webhook"),
    )
    op.create_index("ix_alerts_due", "alerts", ["status", "next_attempt_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alert_id", sa.String(26), sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("attempted_at", sa.DateTime, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.String(1024)),
        sa.Column("elapsed_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_deliveries_alert_id", "deliveries", ["alert_id"])


def downgrade() -> None:
    for table in ("deliveries", "alerts", "items", "feeds"):
        op.drop_table(table)
