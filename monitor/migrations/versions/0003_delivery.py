"""0.2.0: alert leases, named leases (maintenance), running instances, webhooks disabled
by a 410 Gone.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime))
        batch.add_column(sa.Column("lease_owner", sa.String(32)))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("until", sa.DateTime, nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("feeds_digest", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "webhook_state",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("disabled_at", sa.DateTime, nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_state")
    op.drop_table("instances")
    op.drop_table("leases")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("lease_owner")
        batch.drop_column("lease_until")
