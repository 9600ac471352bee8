"""The story index in the database: which story each new item reports (the same canonical
URL, else near-identical text within the story window), which feeds have reported it,
and the follow-ups owed when a story reaches enough sources."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, select, text, update

from monitor import neardup
from monitor.neardup import Fingerprint
from monitor.sql import chunks, found, insert_or_skip
from monitor.tables import alerts, feeds, items, stories, story_bands, story_entries, story_reports

# PostgreSQL advisory lock held, until commit, by a transaction placing items in stories:
# two instances must not each open a story for the same report ("stor").
STORY_LOCK = 0x73746F72
FOLLOW_UP = "follow_up"


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
    by_url = _stories_by_url(conn, {key for r in reports for key in r.story_keys})
    candidates = _candidates(conn, {band for r in reports if r.fingerprint for band in r.fingerprint.bands},
                             since=now - window)
    chosen: list[int | None] = []  # a story id, or None: a new story
    opened: list[tuple[int, Fingerprint | None]] = []  # (index of the item opening a story, its print)
    for n, report in enumerate(reports):
        story = next((by_url[key] for key in report.story_keys if key in by_url), None)
        if story is None and report.fingerprint is not None:
            story = _nearest(report.fingerprint, candidates)
        if story is None:  # the same story earlier in this very document?
            story = _same_as_earlier(report, reports, opened, chosen)
            if story is None:
                opened.append((n, report.fingerprint))
        chosen.append(story)
    new_ids = _open(conn, [reports[n].story_keys[0] for n, _ in opened], now)
    ids: list[int] = []
    for n, story in enumerate(chosen):
        ids.append(new_ids[reports[n].story_keys[0]] if story is None else story if story >= 0 else ids[-story - 1])
    keys = _keys(conn, set(ids))
    had = {story for story, in found(conn, (story_reports.c.story_id,), story_reports.c.story_id, set(ids),
                                     feed_id=feed_id)}
    return [Placement(story, keys[story], story in had) for story in ids]


def record(conn: Connection, feed_id: int, placed: Sequence[tuple[int, Placement, Fingerprint | None]], *,
           now: datetime) -> dict[int, int]:
    """Record inserted items (item id, placement, print) against their stories: the feed
    as a source, the prints in the index. Returns the sources of each story this feed
    has just joined."""
    if not placed:
        return {}
    firsts: dict[int, int] = {}  # story → this feed's first item of it
    for item_id, placement, _ in placed:
        if not placement.reissued:
            firsts.setdefault(placement.story_id, item_id)
    if firsts:
        conn.execute(insert_or_skip(story_reports, conn.dialect.name, ("story_id", "feed_id")),
                     [dict(story_id=s, feed_id=feed_id, item_id=i, seen_at=now) for s, i in firsts.items()])
        conn.execute(update(stories).where(stories.c.id == bindparam("story")).values(
            sources=stories.c.sources + 1, last_seen_at=now), [{"story": s} for s in firsts])
    older = {p.story_id for _, p, _ in placed} - set(firsts)
    if older:
        conn.execute(update(stories).where(stories.c.id.in_(older)).values(last_seen_at=now))
    printed = [(item_id, p.story_id, fp) for item_id, p, fp in placed if fp is not None]
    if printed:
        conn.execute(story_entries.insert(), [
            dict(item_id=i, story_id=s, feed_id=feed_id, shingles=neardup.pack(fp.shingles), seen_at=now)
            for i, s, fp in printed])
        conn.execute(story_bands.insert(), [dict(band=band, item_id=i) for i, _, fp in printed
                                            for band in dict.fromkeys(fp.bands)])
    return {story: sources for story, sources in found(conn, (stories.c.id, stories.c.sources), stories.c.id,
                                                        firsts)}


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
    statement = (select(story_reports.c.story_id, func.coalesce(feeds.c.name, feeds.c.title, feeds.c.url))
                 .join(feeds, feeds.c.id == story_reports.c.feed_id)
                 .where(story_reports.c.story_id.in_(bindparam("stories", expanding=True)))
                 .order_by(story_reports.c.seen_at, story_reports.c.feed_id))
    for chunk in chunks(sorted(story_ids)):
        for story, name in conn.execute(statement, {"stories": chunk}):
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


def _stories_by_url(conn: Connection, story_keys: set[str]) -> dict[str, int]:
    """Story key → story, for the keys a story is known by: its own, or an item's in it."""
    known = {key: story for key, story in found(conn, (stories.c.key, stories.c.id), stories.c.key, story_keys)}
    for key, story in found(conn, (items.c.story_key, items.c.story_id), items.c.story_key, story_keys):
        if story is not None:
            known.setdefault(key, story)
    return known


Candidate = tuple[int, tuple[int, ...]]  # (story, shingles) of an indexed item


def _candidates(conn: Connection, bands: set[int], *, since: datetime) -> dict[int, list[Candidate]]:
    """Band → the indexed items within the window that share it."""
    found_by_band: dict[int, list[Candidate]] = {}
    statement = (select(story_bands.c.band, story_entries.c.story_id, story_entries.c.shingles)
                 .join(story_entries, story_entries.c.item_id == story_bands.c.item_id)
                 .where(story_bands.c.band.in_(bindparam("bands", expanding=True)),
                        story_entries.c.seen_at >= since))
    for chunk in chunks(sorted(bands)):
        for band, story, shingles in conn.execute(statement, {"bands": chunk}):
            found_by_band.setdefault(band, []).append((story, neardup.unpack(shingles)))
    return found_by_band


def _nearest(print_: Fingerprint, candidates: Mapping[int, list[Candidate]]) -> int | None:
    """The story of the most similar indexed item, if it is near-identical."""
    best, best_score = None, 0.0
    seen: set[tuple[int, ...]] = set()
    for band in print_.bands:
        for story, shingles in candidates.get(band, ()):
            if shingles in seen:
                continue
            seen.add(shingles)
            score = neardup.similarity(print_.shingles, shingles)
            if score > best_score and neardup.similar(print_.shingles, shingles):
                best, best_score = story, score
    return best


def _same_as_earlier(report: Report, reports: Sequence[Report], opened: list[tuple[int, Fingerprint | None]],
                     chosen: list[int | None]) -> int | None:
    """-(n + 1) when the n-th item of the document, which opens a story, is this one's."""
    for n, print_ in opened:
        if reports[n].story_keys[0] in report.story_keys or (
                print_ is not None and report.fingerprint is not None
                and neardup.similar(print_.shingles, report.fingerprint.shingles)):
            return -(n + 1)
    return None


def _open(conn: Connection, story_keys: list[str], now: datetime) -> dict[str, int]:
    if not story_keys:
        return {}
    conn.execute(insert_or_skip(stories, conn.dialect.name, ("key",)),
                 [dict(key=key, first_seen_at=now, last_seen_at=now, sources=0) for key in dict.fromkeys(story_keys)])
    return {key: story for key, story in found(conn, (stories.c.key, stories.c.id), stories.c.key, story_keys)}


def _keys(conn: Connection, story_ids: set[int]) -> dict[int, str]:
    return {story: key for story, key in found(conn, (stories.c.id, stories.c.key), stories.c.id, story_ids)}
