"""Schema migrations: a 0.1.0 database upgraded in place loses and repeats nothing; the
migrated schema is exactly the tables the code declares; commands refuse a stale schema."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from monitor import schema
from monitor.identity import hashed_story_keys, item_key
from monitor.parse import Item
from monitor.tables import metadata
from tests.support.feedserver import FeedServer, rss
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PENDING_ID = "01JDPENDINGALERT000000000A"
DELIVERED_ID = "01JDDELIVEREDALERT0000000B"

DELIVERED = {"title": "Ceasefire talks begin", "guid": "w1", "link": "https://news.example/w1"}
QUIET = {"title": "Markets close higher", "guid": "w2", "link": "https://news.example/w2"}
PENDING = {"title": "Envoys open peace talks in Riyadh", "guid": "w3", "link": "https://news.example/w3"}
NEW = {"title": "Second round of peace talks set for Geneva", "guid": "w4",
       "link": "https://news.example/w4"}


def monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          timeout=60)


def write_config(tmp_path: Path, database: str, feed_url: str, hook_url: str, extra: str = "") -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'''
[monitor]
database = "{database}"
{extra}

[[webhooks]]
name = "ops"
url = "{hook_url}"
secret = "{SECRET}"

[[feeds]]
url = "{feed_url}"

[[topics]]
name = "peace"
query = '"peace talks" OR ceasefire'
''')
    return path


def as_item(entry: dict) -> Item:
    return Item(title=entry["title"], link=entry["link"], guid=entry["guid"], summary="", published=None,
                feed_name="Test feed")


def build_release_0_1_0(engine: Engine, feed_url: str, *, unversioned: bool) -> None:
    """What 0.1.0 left behind: a baselined feed, three items, one alert delivered and one
    still pending after a failed attempt. Written with plain SQL against revision 0001."""
    t0 = datetime(2026, 11, 20, 12, 0)  # 0.1.0 stored naive UTC
    with engine.begin() as conn:
        schema.upgrade(conn, to="0001")
        if unversioned:  # 0.1.0 itself created its tables without Alembic
            conn.execute(text("DROP TABLE alembic_version"))
        # Ids come from the database, as they did (explicit ids would leave PostgreSQL's
        # sequences behind and make the next insert collide).
        feed_id = conn.execute(text(
            "INSERT INTO feeds (url, active, interval_s, next_poll_at, error_count, baselined_at,"
            " created_at, last_poll_at, last_result) VALUES (:url, :t, 600, :t0, 0, :t0, :t0, :t0,"
            " '200 new=3') RETURNING id"), dict(url=feed_url, t=True, t0=t0)).scalar_one()
        item_ids = []
        for entry in (DELIVERED, QUIET, PENDING):
            item = as_item(entry)
            key = item_key(item)
            item_ids.append(conn.execute(text(
                "INSERT INTO items (feed_id, key, story_key, guid, link, title, summary, seen_at)"
                " VALUES (:feed, :key, :story, :guid, :link, :title, '', :t0) RETURNING id"),
                dict(feed=feed_id, key=key, story=hashed_story_keys(item, feed_url, key)[0], guid=item.guid,
                     link=item.link, title=item.title, t0=t0)).scalar_one())
        for alert_id, item_id, entry, status, attempts in (
            (DELIVERED_ID, item_ids[0], DELIVERED, "delivered", 1),
            (PENDING_ID, item_ids[2], PENDING, "pending", 1),
        ):
            item = as_item(entry)
            conn.execute(text(
                "INSERT INTO alerts (id, item_id, story_key, topic, webhook, matched, status, attempts,"
                " next_attempt_at, created_at, last_error) VALUES (:id, :item, :story, 'peace', 'ops',"
                " :matched, :status, :attempts, :t0, :t0, :error)"),
                dict(id=alert_id, item=item_id, story=hashed_story_keys(item, feed_url, item_key(item))[0],
                     matched=json.dumps(["ceasefire"]), status=status, attempts=attempts, t0=t0,
                     error=None if status == "delivered" else "HTTP 503"))
            conn.execute(text(
                "INSERT INTO deliveries (alert_id, attempted_at, status_code, elapsed_ms)"
                " VALUES (:id, :t0, :code, 5)"),
                dict(id=alert_id, t0=t0, code=200 if status == "delivered" else 503))


@pytest.mark.parametrize("unversioned", [True, False], ids=["0.1.0-create_all", "0.1.0-stamped"])
def test_upgrade_from_0_1_0_loses_and_repeats_nothing(tmp_path: Path, database_url: str, unversioned: bool) -> None:
    with FeedServer() as feeds, Receiver(secret=SECRET) as receiver:
        feed_url = feeds.url("/a.xml")
        engine = create_engine(database_url)
        build_release_0_1_0(engine, feed_url, unversioned=unversioned)
        engine.dispose()
        config = str(write_config(tmp_path, database_url, feed_url, receiver.url()))
        feeds.set("/a.xml", rss([NEW, PENDING, QUIET, DELIVERED]))

        # Every command but `db upgrade` refuses the old schema, in one line.
        for command in (["once", "--all"], ["status"], ["check"], ["db", "prune"]):
            refused = monitor(*command, "-c", config)
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr.count("\n") == 1 and f"run `monitor db upgrade -c {config}`" in refused.stderr
        assert monitor("db", "current", "-c", config).returncode == 1
        assert receiver.requests == [] and feeds.count("/a.xml") == 0

        upgraded = monitor("db", "upgrade", "-c", config)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"schema upgraded from 0001 to {schema.head_revision()}" in upgraded.stdout
        again = monitor("db", "upgrade", "-c", config)
        assert again.returncode == 0 and "nothing to do" in again.stdout
        assert monitor("db", "current", "-c", config).returncode == 0

        first = monitor("once", "--all", "-c", config)
        assert first.returncode == 0, first.stderr
        delivered = receiver.wait_for(2)
        assert all(r.verified for r in delivered)
        by_title = {r.json["data"]["item"]["title"]: r.headers["webhook-id"] for r in delivered}
        # The pending alert goes out with its original id; the new item alerts; the
        # delivered one and the quiet one do not.
        assert by_title == {PENDING["title"]: PENDING_ID, NEW["title"]: by_title[NEW["title"]]}
        assert by_title[NEW["title"]] not in (PENDING_ID, DELIVERED_ID)

        second = monitor("once", "--all", "-c", config)
        assert second.returncode == 0, second.stderr
        assert len(receiver.requests) == 2


def test_new_database_gets_the_schema_from_db_upgrade_or_first_run(tmp_path: Path, database_url: str) -> None:
    config = str(write_config(tmp_path, database_url, "http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/h"))
    assert monitor("db", "current", "-c", config).returncode == 1
    result = monitor("db", "upgrade", "-c", config)
    assert result.returncode == 0, result.stderr
    assert f"from none to {schema.head_revision()}" in result.stdout
    current = monitor("db", "current", "-c", config)
    assert current.returncode == 0 and f"schema {schema.head_revision()}, current" in current.stdout


def test_once_creates_a_new_database_but_status_and_check_never_do(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    config = str(write_config(tmp_path, "sqlite:///state.db", "http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/h"))
    status = monitor("status", "-c", config)
    assert status.returncode == 2 and "no database at" in status.stderr
    assert monitor("check", "-c", config).returncode == 0
    assert monitor("db", "current", "-c", config).returncode == 1
    assert not db.exists()
    once = monitor("once", "-c", config)
    assert once.returncode == 0, once.stderr
    assert db.exists() and monitor("status", "-c", config).returncode == 0


def test_auto_migrate_upgrades_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_engine(url)
    build_release_0_1_0(engine, "http://127.0.0.1:9/a.xml", unversioned=True)
    engine.dispose()
    config = str(write_config(tmp_path, url, "http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/h",
                              extra="auto_migrate = true"))
    result = monitor("status", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "event=schema_upgraded" in result.stderr and "revision_from=0001" in result.stderr
    assert "alerts_pending=1" in result.stdout and "alerts_delivered=1" in result.stdout


@pytest.mark.parametrize("command", [["once"], ["db", "upgrade"]])
def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path, command: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        schema.upgrade(conn)
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    config = str(write_config(tmp_path, url, "http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/h",
                              extra="auto_migrate = true"))  # auto_migrate or not
    result = monitor(*command, "-c", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "revision 9999, which this monitor does not know" in result.stderr


def test_migrated_schema_is_exactly_the_declared_tables(database_url: str) -> None:
    """Every schema change ships as a revision: upgrading an empty database to the head gives
    what monitor/tables.py declares, column types included, on both backends."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            schema.upgrade(conn)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_every_revision_downgrades_and_upgrades_again(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            schema.upgrade(conn)
            config = schema._alembic_config(conn)
            from alembic import command

            command.downgrade(config, "base")
            assert not inspect(conn).has_table("feeds")
            schema.upgrade(conn)
            assert schema.schema_state(conn).up_to_date
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    revisions = sorted(p.name for p in schema.MIGRATIONS.joinpath("versions").glob("0*.py"))
    assert revisions[0] == "0001_initial.py" and len(revisions) >= 2
    # No SQLite- or PostgreSQL-only SQL in a revision: they use Alembic operations only.
    for name in revisions:
        source = schema.MIGRATIONS.joinpath("versions", name).read_text()
        assert "op.execute" not in source and "sqlite" not in source.lower(), name


WIRE = {"title": "Envoys open peace talks in Riyadh as ceasefire hopes rise",
        "description": "Negotiators from both sides met on Tuesday for the first direct round in months.",
        "guid": "w9", "link": "https://news.example/w9"}


def test_upgrade_from_0_3_0_indexes_recent_stories_so_copies_do_not_alert(tmp_path: Path, database_url: str) -> None:
    """0.3.0 (revision 0005) alerted for a story an hour ago; after the upgrade its wire copy
    in another feed, under another URL and guid, joins that story and alerts nobody."""
    with FeedServer() as feeds, Receiver(secret=SECRET) as receiver:
        urls = [feeds.url("/a.xml"), feeds.url("/b.xml")]
        engine = create_engine(database_url)
        now = datetime.now(UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            schema.upgrade(conn, to="0005")
            ids = [conn.execute(text(
                "INSERT INTO feeds (url, active, interval_s, next_poll_at, error_count, baselined_at, created_at)"
                " VALUES (:url, :t, 600, :now, 0, :now, :now) RETURNING id"),
                dict(url=url, t=True, now=now)).scalar_one() for url in urls]
            item = Item(title=WIRE["title"], link=WIRE["link"], guid=WIRE["guid"], summary=WIRE["description"],
                        published=None, feed_name="a")
            key = item_key(item)
            story = hashed_story_keys(item, urls[0], key)[0]
            item_id = conn.execute(text(
                "INSERT INTO items (feed_id, key, story_key, guid, link, title, summary, seen_at)"
                " VALUES (:feed, :key, :story, :guid, :link, :title, :summary, :seen) RETURNING id"),
                dict(feed=ids[0], key=key, story=story, guid=item.guid, link=item.link, title=item.title,
                     summary=item.summary, seen=now - timedelta(hours=1))).scalar_one()
            conn.execute(text(
                "INSERT INTO alerts (id, item_id, story_key, topic, webhook, matched, status, attempts,"
                " next_attempt_at, created_at, delivered_at) VALUES (:id, :item, :story, 'peace', 'ops',"
                " '[\"peace talks\"]', 'delivered', 1, :now, :now, :now)"),
                dict(id=DELIVERED_ID, item=item_id, story=story, now=now - timedelta(hours=1)))
        engine.dispose()
        config = write_config(tmp_path, database_url, urls[0], receiver.url(),
                              extra="").read_text().replace(f'url = "{urls[0]}"', f'url = "{urls[0]}"\nname = "A"'
                                                            f'\n\n[[feeds]]\nurl = "{urls[1]}"\nname = "B"')
        (tmp_path / "monitor.toml").write_text(config)
        path = str(tmp_path / "monitor.toml")
        upgraded = monitor("db", "upgrade", "-c", path)
        assert upgraded.returncode == 0, upgraded.stderr

        feeds.set("/a.xml", rss([WIRE]))
        copy = dict(WIRE, title=WIRE["title"] + " - Wire Service", guid="b-1", link="https://wire.example/b1")
        fresh = {"title": "Ceasefire declared along the whole front line after overnight deal", "guid": "b-2",
                 "link": "https://wire.example/b2"}
        feeds.set("/b.xml", rss([copy, fresh]))
        ran = monitor("once", "--all", "-c", path)
        assert ran.returncode == 0, ran.stderr
        [alert] = receiver.wait_for(1)
        time.sleep(0.5)
        assert len(receiver.requests) == 1 and alert.json["data"]["item"]["title"] == fresh["title"]
        status = monitor("status", "-c", path)
        assert "2 sources: A, B" in status.stdout, status.stdout
