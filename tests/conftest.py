"""Shared fixtures: where the shared corpus lives."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feedserver import FeedServer

REPO = Path(__file__).resolve().parent.parent


def corpus_path() -> Path:
    """$MONITOR_CORPUS, else ../shared/corpus beside the repo."""
    return Path(os.environ.get("MONITOR_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_path()
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path} (set MONITOR_CORPUS to its path)")
    return path


POSTGRES = os.environ.get("MONITOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards.

    The server is the machine's (`.ci/run` starts it if it is down); point
    MONITOR_TEST_POSTGRES at another admin URL to use a different one."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as e:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES} is not reachable ({e.orig}); start it or set MONITOR_TEST_POSTGRES")
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test runs twice: on a SQLite file in tmp_path and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def database(database_url: str) -> Iterator[str]:
    """database_url, closing every tests.support.pipeline Harness store afterwards."""
    from tests.support.pipeline import closing_stores

    with closing_stores():
        yield database_url


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A local feed server on 127.0.0.1."""
    with FeedServer() as s:
        yield s
