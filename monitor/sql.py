"""Statements the store's modules share: insert-or-skip (the one place that speaks dialect)
and lookups by many values, built once."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, Row, Table, bindparam, select
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

def found(conn: Connection, wanted: tuple[Column, ...], among: Column, values: Iterable[Any], *,
           feed_id: int | None = None) -> Iterator[Row]:
    """The `wanted` columns of the rows whose `among` is one of `values` (and, when given,
    of that feed), asked 500 values at a time."""
    statement = lookup(wanted, among, feed_id is not None)
    for chunk in chunks(list(values)):
        yield from conn.execute(statement, {"values": chunk, "feed_id": feed_id})

@functools.cache
def lookup(wanted: tuple[Column, ...], among: Column, in_feed: bool) -> Any:
    # Built once, the values an expanding parameter: building the statement per call cost
    # more than running it.
    where: list[ColumnElement[bool]] = [among.in_(bindparam("values", expanding=True))]
    if in_feed:
        where.append(among.table.c.feed_id == bindparam("feed_id"))
    return select(*wanted).where(*where)

def chunks(values: list[T], size: int = 500) -> Iterator[list[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]

