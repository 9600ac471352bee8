"""0.2.0: lease owner tokens, tombstones of pruned items, when a feed was last parsed,
indexes for retention.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(32)))
        batch.add_column(sa.Column("parsed_at", sa.DateTime))
    op.create_table(
        "tombstones",
        sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id"), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(16), nullable=False),
        sa.Column("story", sa.LargeBinary(16), nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("feed_id", "key_hash", name="pk_tombstones"),
    )
    op.create_index("ix_tombstones_story", "tombstones", ["story"])
    op.create_index("ix_tombstones_seen", "tombstones", ["seen_at"])
    op.create_index("ix_items_seen", "items", ["seen_at"])
    op.create_index("ix_alerts_item", "alerts", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_item", "alerts")
    op.drop_index("ix_items_seen", "items")
    op.drop_table("tombstones")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("parsed_at")
        batch.drop_column("lease_owner")
