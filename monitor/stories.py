"""The story index in the database: which story each new item reports (the same canonical
URL, else near-identical text within the story window), which feeds have reported it,
and the follow-ups owed when a story reaches enough sources."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.sql import Select

from monitor import neardup
from monitor.neardup import Fingerprint
from monitor.sql import bound, found, insert_or_skip, insert_plain, is_one_of, listed, new_rows
from monitor.tables import alerts, feeds, items, stories, story_bands, story_entries, story_reports

# PostgreSQL advisory lock held, until commit, by a transaction placing items in stories:
# two instances must not each open a story for the same report ("stor").
STORY_LOCK = 0x73746F72
FOLLOW_UP = "follow_up"
# A band shared by this many indexed items is a common phrase, not a story: it is neither
# looked up (the database counts it, without handing its rows over) nor given more items;
# an item's other bands still find its near-duplicates. So no lookup reads more than this
# many items per band, whatever the window holds.
HOT_BAND = 16


@dataclass(frozen=True)
class StoryRules:
    """How the config wants stories kept: the window a report can join a story by its
    text, and the topics that follow a story up (topic → the sources that earn it)."""

    window: timedelta = timedelta(hours=72)
    follow_ups: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """What placing a new item needs to know of it."""

    story_keys: tuple[str, ...]  # its story key (canonical URL), then earlier releases' keys
    fingerprint: Fingerprint | None  # None: too little text to compare


@dataclass(frozen=True)
class Placement:
    """The story a new item reports."""

    story_id: int
    key: str        # the story's key: what an alert of a topic deduping by story carries
    reissued: bool  # the feed had reported this story already, under another item
    opened: bool    # a new story, opened by this item
    crowded: frozenset[int] = frozenset()  # its bands that already lead to HOT_BAND items: not indexed again


def follow_up_key(story_key: str) -> str:
    """The key a story's follow-up alerts carry: one per topic and webhook, like an alert."""
    return hashlib.sha256(f"{FOLLOW_UP}\n{story_key}".encode()).hexdigest()


def place(conn: Connection, feed_id: int, reports: Sequence[Report], *, now: datetime,
          window: timedelta) -> list[Placement]:
    """The story of each of a poll's new items, in order, opening those that are new.
    Before the items are inserted (they carry their story); `record` follows."""
    if not reports:
        return []
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": STORY_LOCK})
    # A story is a stored one, or the index of the item of this document that opens it.
    by_url: dict[str, Story | int] = dict(_stories_by_url(conn, {key for r in reports for key in r.story_keys}))
    bands = {band for r in reports if r.fingerprint for band in r.fingerprint.bands}
    crowded, candidates = _indexed(conn, bands, since=now - window)
    chosen: list[Story | int | None] = []  # None: the item opens a story
    for n, report in enumerate(reports):
        said = neardup.read(report.fingerprint.shingles) if report.fingerprint else None
        story = next((by_url[key] for key in report.story_keys if key in by_url), None)
        if story is None and report.fingerprint is not None and said is not None:
            story = _nearest(report.fingerprint, said, candidates)
        if story is None:  # later items of this document may report it too
            for key in report.story_keys:
                by_url.setdefault(key, n)
            if report.fingerprint is not None and said is not None:
                for band in report.fingerprint.bands:
                    candidates.setdefault(band, []).append((-n - 1, n, said))
        chosen.append(story)
    opened = _open(conn, [r.story_keys[0] for r, story in zip(reports, chosen) if story is None], now)
    stories_of: list[Story] = []
    for report, story in zip(reports, chosen):
        stories_of.append(opened[report.story_keys[0]] if story is None else
                          stories_of[story] if isinstance(story, int) else story)
    stored = {story.id for story in stories_of if story.key not in opened}
    had = {story for story, in found(conn, (story_reports.c.story_id,), story_reports.c.story_id, stored,
                                     feed_id=feed_id)} if stored else set()
    placements, earlier = [], set()
    for report, story in zip(reports, stories_of):  # a second report of one story in one document is a re-issue too
        full = crowded.intersection(report.fingerprint.bands) if report.fingerprint else frozenset()
        placements.append(Placement(story.id, story.key, story.id in had or story.id in earlier, story.key in opened,
                                    full))
        earlier.add(story.id)
    return placements


def record(conn: Connection, feed_id: int, placed: Sequence[tuple[int, Placement, Fingerprint | None]], *,
           now: datetime) -> dict[int, int]:
    """Record inserted items (item id, placement, print) against their stories: the feed
    as a source, the prints in the index. Returns the sources of each stored story this
    feed has just joined (a story opened by this poll has one: this feed)."""
    if not placed:
        return {}
    firsts: dict[int, int] = {}  # story → this feed's first item of it
    for item_id, placement, _ in placed:
        if not placement.reissued:
            firsts.setdefault(placement.story_id, item_id)
    if firsts:
        conn.execute(insert_or_skip(story_reports, conn.dialect.name, ("story_id", "feed_id")),
                     [dict(story_id=s, feed_id=feed_id, item_id=i, seen_at=now) for s, i in firsts.items()])
    opened = {p.story_id for _, p, _ in placed if p.opened}
    grown: dict[int, int] = {}
    for story in set(firsts) - opened:  # few: most reports of a poll open their story
        grown[story] = conn.execute(update(stories).where(stories.c.id == story).values(
            sources=stories.c.sources + 1, last_seen_at=now).returning(stories.c.sources)).scalar_one()
    older = {p.story_id for _, p, _ in placed} - set(firsts) - opened
    if older:
        conn.execute(update(stories).where(stories.c.id.in_(older)).values(last_seen_at=now))
    printed = [(item_id, p, fp) for item_id, p, fp in placed if fp is not None]
    if printed:
        seen_at = bound(conn, story_entries.c.seen_at, now)
        insert_plain(conn, story_entries, ("item_id", "story_id", "feed_id", "shingles", "seen_at"), [
            (i, p.story_id, feed_id, neardup.pack(fp.shingles), seen_at) for i, p, fp in printed])
        insert_plain(conn, story_bands, ("band", "item_id"), [
            (band, i) for i, p, fp in printed for band in dict.fromkeys(fp.bands) if band not in p.crowded])
    return grown


def follow_ups(conn: Connection, grown: Mapping[int, int], keys: Mapping[int, str],
               thresholds: Mapping[str, int]) -> list[dict]:
    """The alerts (topic, webhook, matched, story) whose story has just reached its topic's
    follow-up threshold: those to follow up."""
    if not grown or not thresholds:
        return []
    wanted = {keys[story]: story for story, sources in grown.items() if sources >= min(thresholds.values())}
    if not wanted:
        return []
    rows = found(conn, (alerts.c.story_key, alerts.c.topic, alerts.c.webhook, alerts.c.matched),
                 alerts.c.story_key, wanted)
    return [dict(story_key=key, story=wanted[key], topic=topic, webhook=webhook, matched=matched)
            for key, topic, webhook, matched in rows
            if topic in thresholds and grown[wanted[key]] >= thresholds[topic]]


def source_names(conn: Connection, story_ids: set[int]) -> dict[int, tuple[str, ...]]:
    """Story → the names of the feeds that reported it, in the order they did."""
    names: dict[int, list[str]] = {}
    if story_ids:
        dialect = conn.dialect.name
        for story, name in conn.execute(_names_of_sources(dialect),
                                        {"values": listed(story_reports.c.story_id, dialect, sorted(story_ids))}):
            names.setdefault(story, []).append(name)
    return {story: tuple(feed_names) for story, feed_names in names.items()}


def widest(conn: Connection, *, since: datetime, limit: int) -> tuple[int, list[dict]]:
    """How many stories had a report since `since`; the `limit` most widely reported of
    them (two sources or more), with their first report's title and every source's name."""
    recent = stories.c.last_seen_at >= since
    total = conn.execute(select(func.count()).select_from(stories).where(recent)).scalar_one()
    first = (select(items.c.title).join(story_reports, story_reports.c.item_id == items.c.id)
             .where(story_reports.c.story_id == stories.c.id)
             .order_by(story_reports.c.seen_at).limit(1).scalar_subquery())
    rows = [dict(r._mapping) for r in conn.execute(
        select(stories.c.id, stories.c.sources, stories.c.first_seen_at, stories.c.last_seen_at,
               first.label("title"))
        .where(recent, stories.c.sources >= 2)
        .order_by(stories.c.sources.desc(), stories.c.last_seen_at.desc()).limit(limit))]
    names = source_names(conn, {r["id"] for r in rows})
    for row in rows:
        row["source_names"] = list(names.get(row.pop("id"), ()))
    return total, rows


def prune_index(conn: Connection, *, before: datetime, batch: int) -> int:
    """Drop up to `batch` prints older than the window, with their bands; how many."""
    old = list(conn.execute(select(story_entries.c.item_id).where(story_entries.c.seen_at < before)
                            .order_by(story_entries.c.seen_at).limit(batch)).scalars())
    if old:
        conn.execute(story_bands.delete().where(story_bands.c.item_id.in_(old)))
        conn.execute(story_entries.delete().where(story_entries.c.item_id.in_(old)))
    return len(old)


class Story(NamedTuple):
    id: int
    key: str


def _stories_by_url(conn: Connection, story_keys: set[str]) -> dict[str, Story]:
    """Story key → story, for the keys a story is known by: its own, or an item's in it."""
    known = {key: Story(story, key) for key, story in found(conn, (stories.c.key, stories.c.id), stories.c.key,
                                                             story_keys)}
    if unknown := sorted(story_keys - set(known)):
        dialect = conn.dialect.name
        for key, story, story_key in conn.execute(_stories_of_items(dialect),
                                                  {"values": listed(items.c.story_key, dialect, unknown)}):
            known.setdefault(key, Story(story, story_key))
    return known


Candidate = tuple[int, Story | int, neardup.Text]  # an indexed item (or a poll's), its story and its text


def _indexed(conn: Connection, bands: set[int], *, since: datetime) -> tuple[frozenset[int], dict[int, list[Candidate]]]:
    """Of these bands, those HOT_BAND indexed items share (crowded); of the others, band →
    the indexed items within the window that share it. A crowded band's rows are counted
    in the band index alone, never read: they would be thrown away."""
    if not bands:
        return frozenset(), {}
    dialect = conn.dialect.name
    values = listed(story_bands.c.band, dialect, sorted(bands))
    crowded = frozenset(conn.execute(_crowded_bands(dialect), {"values": values}).scalars())
    found_by_band: dict[int, list[Candidate]] = {}
    if calm := bands - crowded:
        for band, item, story, key, shingles in conn.execute(_band_rows(dialect), {
                "values": listed(story_bands.c.band, dialect, sorted(calm)), "since": since}).all():
            found_by_band.setdefault(band, []).append((item, Story(story, key), _text(shingles)))
    return crowded, found_by_band


@functools.lru_cache(maxsize=2048)
def _text(shingles: bytes) -> neardup.Text:
    """An indexed item's text, read once: the same items are candidates of many polls.
    Keyed by content, so safe across databases; 2,048 texts of up to ~15 kB each keep
    the cache well inside the memory target."""
    return neardup.read(neardup.unpack(shingles))


@functools.cache
def _crowded_bands(dialect: str) -> Select:
    """Of some bands, those HOT_BAND items or more share: an index-only count."""
    return (select(story_bands.c.band).where(is_one_of(story_bands.c.band, dialect))
            .group_by(story_bands.c.band).having(func.count() >= HOT_BAND))


@functools.cache
def _band_rows(dialect: str) -> Select:
    """The items within the window sharing any of some bands (none crowded, so fewer
    than HOT_BAND each): band, item, its story and its shingles."""
    return (select(story_bands.c.band, story_entries.c.item_id, stories.c.id, stories.c.key, story_entries.c.shingles)
            .join(story_entries, story_entries.c.item_id == story_bands.c.item_id)
            .join(stories, stories.c.id == story_entries.c.story_id)
            .where(is_one_of(story_bands.c.band, dialect), story_entries.c.seen_at >= bindparam("since")))


@functools.cache
def _stories_of_items(dialect: str) -> Select:
    """Story key of an item → its story's id and key, for items whose story another opened."""
    return (select(items.c.story_key, stories.c.id, stories.c.key).join(stories, stories.c.id == items.c.story_id)
            .where(is_one_of(items.c.story_key, dialect)))


@functools.cache
def _names_of_sources(dialect: str) -> Select:
    return (select(story_reports.c.story_id, func.coalesce(feeds.c.name, feeds.c.title, feeds.c.url))
            .join(feeds, feeds.c.id == story_reports.c.feed_id)
            .where(is_one_of(story_reports.c.story_id, dialect))
            .order_by(story_reports.c.seen_at, story_reports.c.feed_id))


def _nearest(print_: Fingerprint, text: neardup.Text, candidates: Mapping[int, list[Candidate]]) -> Story | int | None:
    """The story of the most similar indexed item, if it is near-identical."""
    best: Story | int | None = None
    best_score = 0.0
    seen: set[int] = set()
    for band in print_.bands:
        for item, story, other in candidates.get(band, ()):
            if item in seen:  # met in several bands
                continue
            seen.add(item)
            score = neardup.match(text, other)
            if score is not None and score > best_score:
                best, best_score = story, score
    return best


def _open(conn: Connection, story_keys: list[str], now: datetime) -> dict[str, Story]:
    """New stories, one per key, with one source (the feed of the poll opening them)."""
    if not story_keys:
        return {}
    rows = [dict(key=key, first_seen_at=now, last_seen_at=now, sources=1) for key in dict.fromkeys(story_keys)]
    opened = {key: Story(story, key) for key, story in
              conn.execute(new_rows(stories, conn.dialect.name, ("key",), "key"), rows)}
    if len(opened) < len(rows):  # opened meanwhile (a race only a lapsed lock could allow): use it
        missing = [row["key"] for row in rows if row["key"] not in opened]
        opened.update((key, Story(story, key)) for key, story in
                      found(conn, (stories.c.key, stories.c.id), stories.c.key, missing))
    return opened
