"""Benchmark: database bytes per stored item, and what is left after retention prunes them.

    python benchmarks/db_size.py [--items 20000] [--feeds 100] [--postgres URL]

Stores `--items` real items (titles, links and summaries parsed from the feeds in
../shared/corpus, or $MONITOR_CORPUS, cycled with fresh guids) through the same Store
calls the pipeline makes, one poll's worth at a time; one item in ten raises an alert that
is then delivered (one attempt logged). Then it moves the clock past `retention` and
prunes. On SQLite (a temporary file) and on PostgreSQL (a temporary database on the
machine's server) it prints the size with the items, per item, and after pruning: the
space still in use (tombstones) and the size once the database is compacted (VACUUM;
VACUUM FULL on PostgreSQL). Without the corpus it uses generated text of similar length.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402

from monitor.identity import item_key  # noqa: E402
from monitor.parse import Item, parse_feed  # noqa: E402
from monitor.pipeline import hashed_story_key  # noqa: E402
from monitor.retention import count_rows, prune  # noqa: E402
from monitor.store import AlertIntent, NewItem, Store, open_store  # noqa: E402
from monitor.tables import alerts, deliveries, feeds, items, tombstones  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = timedelta(days=90)
PER_POLL = 30


def corpus_items() -> list[Item]:
    corpus = Path(os.environ.get("MONITOR_CORPUS", REPO.parent / "shared" / "corpus")) / "feeds"
    found: list[Item] = []
    for path in sorted(corpus.glob("*.xml")):
        found += parse_feed(path.read_bytes(), url=f"https://{path.stem}.example/feed").items
    if found:
        return found
    print("corpus not found: using generated items", file=sys.stderr)
    return [Item(title=f"Generated headline number {n} about talks", link=f"https://gen.example/{n}",
                 guid=None, summary="A summary of about two hundred characters. " * 5, published=T0,
                 feed_name="generated") for n in range(500)]


def fill(store: Store, sample: list[Item], n_items: int, n_feeds: int) -> None:
    store.sync_feeds([(f"https://feed{f}.example/rss", None, timedelta(minutes=10)) for f in range(n_feeds)], T0)
    made = 0
    while made < n_items:
        for feed in store.claim_due_feeds(T0, n_feeds, timedelta(minutes=5), all_feeds=True):
            batch = []
            for _ in range(min(PER_POLL, n_items - made)):
                base = sample[made % len(sample)]
                item = Item(title=base.title, summary=base.summary, published=base.published,
                            feed_name=base.feed_name, guid=uuid.uuid4().hex,
                            # a host of its own: each copy is a story of its own
                            link=f"https://n{made}.{(base.link or 'https://x.example/').split('://', 1)[-1]}")
                key = item_key(item)
                intents = (AlertIntent(uuid.uuid4().hex[:26], "peace-talks", "ops", ("peace talks",)),) \
                    if made % 10 == 0 else ()
                batch.append(NewItem(key=key, story_key=hashed_story_key(item, feed.url, key),
                                     guid=item.guid, link=item.link, title=item.title,
                                     summary=item.summary, published=item.published, alerts=intents))
                made += 1
            store.record_poll(feed, now=T0, next_poll_at=T0, result="200", etag='"abc"',
                              last_modified=None, title="Feed", new_items=batch)
            if made >= n_items:
                break
    for alert in store.due_alerts(T0, n_items, ["ops"]):
        store.record_attempt(alert.id, now=T0, status_code=200, error=None, elapsed_ms=20,
                             outcome="delivered")


def sqlite_sizes(store: Store, path: Path) -> dict[str, int]:
    with store.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        page = conn.execute(text("PRAGMA page_size")).scalar_one()
        free = conn.execute(text("PRAGMA freelist_count")).scalar_one()
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
    return {"file": path.stat().st_size, "in_use": (pages - free) * page}


def postgres_sizes(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        total = sum(conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t.name}).scalar_one()
                    for t in (feeds, items, alerts, deliveries, tombstones))
    return {"file": total, "in_use": total}


def vacuum(store: Store) -> None:
    full = "VACUUM FULL" if store.engine.dialect.name == "postgresql" else "VACUUM"
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(full))


def measure(name: str, url: str, sample: list[Item], n_items: int, n_feeds: int,
            sizes: callable) -> None:  # type: ignore[valid-type]
    store = open_store(url, auto_migrate=False)
    try:
        empty = sizes(store)["file"]
        started = time.monotonic()
        fill(store, sample, n_items, n_feeds)
        filled_s = time.monotonic() - started
        rows = count_rows(store)
        vacuum(store)  # compact, so that "full" is the data, not the write-ahead churn
        full = sizes(store)
        started = time.monotonic()
        stats = prune(store, now=T0 + RETENTION + timedelta(days=1), retention=RETENTION)
        prune_s = time.monotonic() - started
        after = sizes(store)
        vacuum(store)
        compacted = sizes(store)
    finally:
        store.close()
    per_item = (full["file"] - empty) / n_items
    print(f"{name}: {n_items} items ({rows['alerts']} alerts, {rows['deliveries']} attempts) "
          f"stored in {filled_s:.1f} s")
    print(f"  empty schema          {empty / 1024:10.0f} KiB")
    print(f"  with the items        {full['file'] / 1024:10.0f} KiB   = {per_item:6.0f} bytes per item")
    print(f"  pruned ({stats.items} items in {stats.batches} batches, {prune_s:.1f} s): "
          f"{after['in_use'] / 1024:.0f} KiB in use, file {after['file'] / 1024:.0f} KiB "
          "(freed pages are reused; PostgreSQL counts dead rows until autovacuum)")
    print(f"  compacted             {compacted['file'] / 1024:10.0f} KiB   = "
          f"{(compacted['file'] - empty) / n_items:6.0f} bytes per pruned item (its tombstone)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--postgres", default=os.environ.get(
        "MONITOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    sample = corpus_items()
    average = sum(len(i.title) + len(i.summary) + len(i.link or "") for i in sample) / len(sample)
    print(f"sample: {len(sample)} corpus items, {average:.0f} characters of title+summary+link on average")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "size.db"
        measure("SQLite", f"sqlite:///{path}", sample, args.items, args.feeds,
                lambda store: sqlite_sizes(store, path))

    name = f"monitor_size_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        measure("PostgreSQL", url, sample, args.items, args.feeds, postgres_sizes)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
