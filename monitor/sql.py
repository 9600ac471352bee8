"""Statements the store's modules share: insert-or-skip (the one place that speaks dialect),
lookups by many values in one parameter, and plain bulk inserts, each built once."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, Row, String, Table, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")


def insert_or_skip(table: Table, dialect: str, unique: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT (unique) DO NOTHING: the one place that speaks dialect. Only
    that constraint is tolerated; any other conflict is still an error, never a lost row."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(unique))


@functools.cache
def new_rows(table: Table, dialect: str, unique: tuple[str, ...], column: str) -> Any:
    """Many rows in one statement, skipping those that conflict on `unique`: `column` and
    the primary key of each row inserted (those skipped return nothing)."""
    return insert_or_skip(table, dialect, unique).returning(table.c[column], *table.primary_key.columns)


def is_one_of(column: Column, dialect: str, name: str = "values") -> ColumnElement[bool]:
    """`column` is one of the values bound to `name` as `listed` gives them: one parameter
    however many values, where an expanding IN renders (and SQLAlchemy processes) one per
    value, which cost more than running the query. Bytes, which JSON cannot carry, expand."""
    if _expands(column):
        return column.in_(bindparam(name, expanding=True))
    if dialect == "postgresql":
        return column == any_(cast(bindparam(name), ARRAY(column.type)))
    return column.in_(select(func.json_each(bindparam(name, type_=String)).table_valued("value").c.value))


def listed(column: Column, dialect: str, values: list[Any]) -> Any:
    """The parameter value of `is_one_of(column, dialect)` for these values."""
    return values if dialect == "postgresql" or _expands(column) else json.dumps(values)


def found(conn: Connection, wanted: tuple[Column, ...], among: Column, values: Iterable[Any], *,
          feed_id: int | None = None) -> Iterator[Row]:
    """The `wanted` columns of the rows whose `among` is one of `values` (and, when given,
    of that feed)."""
    values = list(values)
    if not values:
        return
    dialect = conn.dialect.name
    statement = lookup(wanted, among, feed_id is not None, dialect)
    for chunk in chunks(values) if _expands(among) else [values]:  # an expanding IN has a parameter limit
        yield from conn.execute(statement, {"values": listed(among, dialect, chunk), "feed_id": feed_id})


@functools.cache
def lookup(wanted: tuple[Column, ...], among: Column, in_feed: bool, dialect: str) -> Any:
    where: list[ColumnElement[bool]] = [is_one_of(among, dialect)]
    if in_feed:
        where.append(among.table.c.feed_id == bindparam("feed_id"))
    return select(*wanted).where(*where)


def insert_plain(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert rows of values the driver takes as they are (ints, bytes, text; see `bound`)
    in one executemany handed straight to it: SQLAlchemy's work per row of parameters cost
    more than the database's on the index's hundreds of rows a poll."""
    if rows:
        conn.exec_driver_sql(_plain_insert(table.name, columns, conn.dialect.paramstyle), rows)


def bound(conn: Connection, column: Column, value: Any) -> Any:
    """`value` as the driver takes it for `column` (a datetime, say), for `insert_plain`."""
    process = column.type._cached_bind_processor(conn.dialect)
    return process(value) if process else value


@functools.cache
def _plain_insert(table: str, columns: tuple[str, ...], paramstyle: str) -> str:
    marker = "?" if paramstyle == "qmark" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"


def _expands(column: Column) -> bool:
    return column.type.python_type is bytes


def chunks(values: list[T], size: int = 500) -> Iterator[list[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
