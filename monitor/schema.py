"""Schema revisions (Alembic, shipped inside the package): what a database is at, and upgrade."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# 0.1.0 created its tables without Alembic; such a database is exactly revision 0001.
UNVERSIONED_RELEASE = "0001"


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands against the revisions this code ships."""

    current: str | None   # None: no monitor tables at all (a new, empty database)
    head: str
    known: bool           # False: a revision this code does not know (a newer monitor wrote it)

    @property
    def empty(self) -> bool:
        return self.current is None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _alembic_config(conn: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def schema_state(conn: Connection) -> SchemaState:
    head = head_revision()
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None and inspect(conn).has_table("feeds"):
        current = UNVERSIONED_RELEASE
    known = current is None or _is_known(current)
    return SchemaState(current=current, head=head, known=known)


def _is_known(revision: str) -> bool:
    try:
        return ScriptDirectory(str(MIGRATIONS)).get_revision(revision) is not None
    except (CommandError, RevisionError):  # an id no revision file has
        return False


def upgrade(conn: Connection, to: str = "head") -> SchemaState:
    """Create the schema or migrate it to `to` (the head revision); harmless when there."""
    config = _alembic_config(conn)
    if MigrationContext.configure(conn).get_current_revision() is None and inspect(conn).has_table("feeds"):
        command.stamp(config, UNVERSIONED_RELEASE)
    command.upgrade(config, to)
    return schema_state(conn)
