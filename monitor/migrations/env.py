"""Alembic's entry point: migrate the connection that monitor.schema hands over."""

from __future__ import annotations

from alembic import context

from monitor.tables import metadata

connection = context.config.attributes["connection"]
# render_as_batch: ALTERs that SQLite cannot do run as copy-and-move there, and as plain
# ALTER TABLE on PostgreSQL, so one revision file serves both.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
