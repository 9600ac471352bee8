"""Benchmark: the time to check a new item against the story index and index it, as the
index grows to 10,000, 100,000 and 1,000,000 stored items.

    python benchmarks/story_index.py [--sizes 10000,100000,1000000] [--checks 2000] [--database URL]

The store is a real SQLite file in a temporary directory (or --database, e.g. a
PostgreSQL URL) at the current schema. It is filled with distinct stored items, each with
its story, its source, its text fingerprint and its LSH bands, written in bulk; their
texts are made of random words, so their bands are spread as distinct stories' are. Then,
at each size, `--checks` new items go through what a poll does for them — the story
lookup (canonical URL, then near-identical text), the insert of the item, the record of
its source and its fingerprint — one transaction per item, as a feed with one new item
does. Half of them are copies of a stored item under another URL (they join its story),
half are new stories. It prints the mean and p95 time per item, and how many copies were
found, at each size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor import neardup  # noqa: E402
from monitor.store import open_store  # noqa: E402
from monitor.stories import Report, place, record  # noqa: E402
from monitor.tables import feeds, items, stories, story_bands, story_entries, story_reports  # noqa: E402

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=72)
FEEDS = 1000
CHUNK = 20_000


def words(rng: random.Random, vocabulary: list[str], n: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(n))


def texts(rng: random.Random, vocabulary: list[str], n: int) -> list[tuple[str, str]]:
    return [(words(rng, vocabulary, 11).capitalize(), words(rng, vocabulary, 24) + ".") for _ in range(n)]


def fill(store, size: int, rng: random.Random, vocabulary: list[str]) -> list[tuple[int, str, str]]:
    """Stored items 1..size, each its own story with one source, indexed; a sample of them
    (id, title, summary) to copy."""
    kept: list[tuple[int, str, str]] = []
    with store.transaction() as conn:
        conn.execute(feeds.insert(), [dict(id=f + 1, url=f"https://feed{f}.example/rss", active=True,
                                            interval_s=600, error_count=0, next_poll_at=NOW, created_at=NOW)
                                       for f in range(FEEDS)])
    for low in range(1, size + 1, CHUNK):
        ids = range(low, min(size, low + CHUNK - 1) + 1)
        batch = texts(rng, vocabulary, len(ids))
        prints = [neardup.fingerprint(title, summary) for title, summary in batch]
        seen = NOW - WINDOW * 0.9 * rng.random()
        with store.transaction() as conn:
            conn.execute(stories.insert(), [dict(id=n, key=f"{n:064x}", first_seen_at=seen, last_seen_at=seen,
                                                 sources=1) for n in ids])
            conn.execute(items.insert(), [
                dict(id=n, feed_id=n % FEEDS + 1, key=f"guid:{n}", story_key=f"{n:064x}", title=title,
                     summary=summary, seen_at=seen, story_id=n) for n, (title, summary) in zip(ids, batch)])
            conn.execute(story_reports.insert(), [dict(story_id=n, feed_id=n % FEEDS + 1, item_id=n, seen_at=seen)
                                                  for n in ids])
            conn.execute(story_entries.insert(), [
                dict(item_id=n, story_id=n, feed_id=n % FEEDS + 1, shingles=neardup.pack(fp.shingles), seen_at=seen)
                for n, fp in zip(ids, prints) if fp])
            conn.execute(story_bands.insert(), [dict(band=band, item_id=n) for n, fp in zip(ids, prints)
                                                if fp for band in dict.fromkeys(fp.bands)])
        kept += [(n, *text) for n, text in rng.sample(list(zip(ids, batch)), min(len(ids), 50))]
        print(f"  stored {ids[-1]:,} of {size:,} items", file=sys.stderr, flush=True)
    return kept


def check(store, n: int, title: str, summary: str, story_key: str) -> int:
    """One new item, as a poll stores it; the story it joined."""
    fp = neardup.fingerprint(title, summary)
    feed_id = n % FEEDS + 1
    with store.transaction() as conn:
        [placed] = place(conn, feed_id, [Report((story_key,), fp)], now=NOW, window=WINDOW)
        item_id = conn.execute(items.insert().values(
            feed_id=feed_id, key=f"guid:new-{n}", story_key=story_key, title=title, summary=summary, seen_at=NOW,
            story_id=placed.story_id).returning(items.c.id)).scalar_one()
        record(conn, feed_id, [(item_id, placed, fp)], now=NOW)
    return placed.story_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--database", help="a SQLAlchemy URL of an EMPTY database (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(args.seed)
    vocabulary = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "re", "sa", "ti", "vo", "ze", "pa")
                  for b in ("ran", "dol", "mek", "sil", "tor", "vin", "bas", "cor", "lum", "fet",
                            "gra", "hon", "jis", "kel", "mor", "nap", "pul", "ris", "sut", "wen")]
    vocabulary += [f"w{i}" for i in range(5000)]  # a news vocabulary's long tail
    print(f"story index: one transaction per new item, {args.checks} new items per size, half of them "
          f"copies of stored items under new URLs; database {args.database or 'a new SQLite file'}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(args.database or f"sqlite:///{Path(tmp) / 'stories.db'}", auto_migrate=True)
            try:
                kept = fill(store, size, rng, vocabulary)
                times, joined, swallowed = [], 0, 0
                for n in range(args.checks):
                    if n % 2:
                        original, title, summary = rng.choice(kept)
                        title += " - Wire Service"
                    else:
                        original = None
                        title, summary = texts(rng, vocabulary, 1)[0]
                    started = time.perf_counter()
                    story = check(store, n, title, summary, f"new-{n:060x}")
                    times.append(time.perf_counter() - started)
                    joined += story == original
                    swallowed += original is None and story <= size
            finally:
                store.close()
        times.sort()
        print(f"{size:>9,} stored items: check + index {1000 * statistics.mean(times):.2f} ms mean, "
              f"p95 {1000 * times[int(0.95 * len(times))]:.2f} ms per item "
              f"({joined} of {args.checks // 2} copies joined their story; "
              f"{swallowed} new stories wrongly joined one)", flush=True)
        if args.database:
            break  # an outside database is filled once: pass one size


if __name__ == "__main__":
    main()
