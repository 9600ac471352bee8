"""0.3.0: adaptive intervals (the feed's pace and why its interval), permanent redirects,
feeds gone (410), the hash of the last body parsed, and runs of failures (alert_after).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NAMES = ("auto_interval", "interval_reason", "mean_gap_s", "newest_at", "moved_to", "gone_at", "body_hash",
         "failing_since", "health_alerted_at")


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("auto_interval", sa.Boolean))
        batch.add_column(sa.Column("interval_reason", sa.String(256)))
        batch.add_column(sa.Column("mean_gap_s", sa.Integer))
        batch.add_column(sa.Column("newest_at", sa.DateTime))
        batch.add_column(sa.Column("moved_to", sa.String(2048)))
        batch.add_column(sa.Column("gone_at", sa.DateTime))
        batch.add_column(sa.Column("body_hash", sa.LargeBinary(16)))
        batch.add_column(sa.Column("failing_since", sa.DateTime))
        batch.add_column(sa.Column("health_alerted_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        for name in reversed(NAMES):
            batch.drop_column(name)
