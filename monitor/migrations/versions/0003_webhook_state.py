"""0.2.0: webhooks disabled by a 410 Gone, until a reload.

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
    op.create_table(
        "webhook_state",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("disabled_at", sa.DateTime, nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_state")
