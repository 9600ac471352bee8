"""0.2.0: digests (one message carrying several alerts of a topic) and held alerts.

digest_id has no foreign key: adding one to an existing table would mean copying the
table on some backends; the code keeps the reference (a digest is pruned after its alerts).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("hold_until", sa.DateTime))
        batch.add_column(sa.Column("digest_id", sa.String(26)))
    op.create_index("ix_alerts_held", "alerts", ["hold_until"])
    op.create_index("ix_alerts_digest", "alerts", ["digest_id"])
    op.create_index("ix_alerts_sent", "alerts", ["webhook", "delivered_at"])
    op.create_table(
        "digests",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("webhook", sa.String(256), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("last_error", sa.String(1024)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("delivered_at", sa.DateTime),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("lease_owner", sa.String(32)),
    )
    op.create_index("ix_digests_due", "digests", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_digests_due", "digests")
    op.drop_table("digests")
    op.drop_index("ix_alerts_sent", "alerts")
    op.drop_index("ix_alerts_digest", "alerts")
    op.drop_index("ix_alerts_held", "alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("digest_id")
        batch.drop_column("hold_until")
