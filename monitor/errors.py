"""The one error tree of monitor; only cli.py turns these into exit codes.

    MonitorError
    ├── ConfigError      bad config file: carries every problem found
    ├── QuerySyntaxError a malformed topic query, with its column (config.py turns it
    │                    into a ConfigError problem)
    ├── FetchError       a feed could not be fetched (network, status, size)
    ├── StorageError     the database could not be opened, migrated or written
    │   └── SchemaError  the schema is behind (run `monitor db upgrade`) or unknown
    ├── EvalError        labelled items for `monitor eval` are missing, malformed or do
    │                    not fit the topics being scored
    └── LeaseLost        a poll's lease lapsed and another poller took its feed; the
                         poll's result is dropped (the other poller records its own)

A failed webhook delivery is not an exception: deliver.Sender returns an Outcome, which
the outbox turns into a retry or a failure.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Root of every error monitor raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One config problem: where it is and what is wrong."""

    key: str  # dotted key path, e.g. "topics[2].query"; "" for the file itself
    message: str
    line: int | None = None

    def format(self, path: str) -> str:
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(MonitorError):
    """The config file is missing or invalid; `problems` lists every issue found."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(p.format(path) for p in problems))


class QuerySyntaxError(MonitorError):
    """A topic query could not be parsed; `column` is 1-based."""

    def __init__(self, query: str, column: int, message: str):
        self.query = query
        self.column = column
        self.message = message
        super().__init__(f"{message} at column {column}")

    def pointer(self) -> str:
        """The query with a caret under the offending column, for humans."""
        return f"{self.query}\n{' ' * (self.column - 1)}^"


class FetchError(MonitorError):
    """A feed could not be fetched; `status` is the HTTP status if one came back."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class StorageError(MonitorError):
    """The database could not be opened, migrated or written."""


class SchemaError(StorageError):
    """The database schema is not the one this code needs; the message says what to run."""


class EvalError(MonitorError):
    """Labelled data cannot score the topics: a file is missing or malformed, an item or a
    topic has no label."""


class LeaseLost(MonitorError):
    """A poll's lease lapsed and another poller claimed the feed: the poll writes nothing."""
