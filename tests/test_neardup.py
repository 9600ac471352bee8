"""Near-duplicate detection: synthetic cases of wire copy and of look-alike stories, stable
hashes, and precision and recall on the labelled pairs of real headlines."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from benchmarks.story_pairs import read_items, read_pairs, score, within
from monitor.neardup import Fingerprint, fingerprint, pack, same_story, unpack

HEADLINE = "Envoys open peace talks in Riyadh as ceasefire hopes rise"
LEDE = ("Negotiators from Russia and Ukraine met on Tuesday for the first direct round of talks in months, "
        "with a prisoner exchange and a halt to strikes on energy sites on the table.")


def joined(a: tuple[str, str], b: tuple[str, str]) -> bool:
    fa, fb = fingerprint(*a), fingerprint(*b)
    assert fa is not None and fb is not None
    return same_story(fa.shingles, fb.shingles)


def test_wire_copy_joins_its_story() -> None:
    wire = (HEADLINE, LEDE)
    assert joined(wire, (HEADLINE + " - Reuters", LEDE))               # the outlet's name after the headline
    assert joined(wire, (HEADLINE + " | Daily Courier", "KYIV, Dec 2 (Reuters) - " + LEDE))  # and the dateline
    assert joined(wire, ("Negotiators open peace talks in Riyadh as ceasefire hopes rise", LEDE))  # a first word
    assert joined(wire, (HEADLINE, LEDE[:90]))                          # a summary cut shorter
    assert joined(wire, (HEADLINE.upper(), ""))                         # a copy without a summary
    assert joined((HEADLINE, ""), (HEADLINE + " after months of fighting", ""))  # a headline with words added


def test_different_stories_with_the_same_words_stay_apart() -> None:
    assert not joined((HEADLINE, LEDE), ("Peace talks in Riyadh collapse as ceasefire hopes fade",
                                         "The delegations flew home on Friday after three days of fruitless "
                                         "meetings, each side blaming the other for the breakdown."))
    # A daily briefing: one headline but for its number, and another day's summary.
    briefing = "Russia-Ukraine war at a glance: what we know on day {}"
    assert not joined((briefing.format(515), ""), (briefing.format(516), ""))
    # An edited headline whose summary tells another story.
    assert not joined(("Envoys open new peace talks in Riyadh as hopes rise", LEDE),
                      ("Envoys open peace talks in Geneva as hopes fade", "Drones struck a fuel depot in "
                       "Crimea overnight and a bridge on the peninsula was closed for hours."))
    # A shared boilerplate summary does not make two headlines one story.
    boilerplate = "The day's top stories from Washington, in a newsletter read by policymakers every afternoon."
    assert not joined(("The 12:30 Report: Senate passes the budget", boilerplate),
                      ("The 12:30 Report: Envoys head to Riyadh for talks", boilerplate))


def test_too_little_text_has_no_fingerprint() -> None:
    assert fingerprint("Live updates", "") is None
    assert fingerprint("", "") is None
    assert fingerprint("War news today", LEDE) is None  # a short title is not enough, whatever the summary


def test_features_round_trip_through_storage() -> None:
    print_ = fingerprint(HEADLINE, LEDE)
    assert isinstance(print_, Fingerprint)
    assert unpack(pack(print_.shingles)) == print_.shingles
    assert all(-(1 << 63) <= band < 1 << 63 for band in print_.bands)  # a PostgreSQL BIGINT
    assert len(set(print_.bands)) == len(print_.bands)


def test_fingerprints_are_the_same_in_every_process() -> None:
    """They are stored and compared across restarts and instances: no salted hash."""
    code = f"from monitor.neardup import fingerprint; print(fingerprint({HEADLINE!r}, {LEDE!r}))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert runs == {repr(fingerprint(HEADLINE, LEDE)) + "\n"}


def test_near_duplicates_share_a_band_and_others_rarely_do() -> None:
    wire = fingerprint(HEADLINE, LEDE)
    copy = fingerprint(HEADLINE + " - Reuters", "KYIV (AP) — " + LEDE)
    other = fingerprint("Markets close higher as oil prices slip", "Stocks rose for a third day while crude fell "
                        "on signs of weaker demand in Asia and Europe.")
    assert wire and copy and other
    assert set(wire.bands) & set(copy.bands)
    assert not set(wire.bands) & set(other.bands)


def test_precision_and_recall_on_labelled_real_pairs(corpus: Path) -> None:
    texts, published = read_items(corpus)
    pairs = read_pairs()
    prints = {key: fingerprint(*texts[key]) for pair in pairs for key in pair[:2]}

    def judge(a: Fingerprint, b: Fingerprint) -> bool:
        return same_story(a.shingles, b.shingles)

    windowed = score(pairs, prints, judge, within(timedelta(hours=72), published))
    alone = score(pairs, prints, judge)
    assert windowed["precision"] >= 0.98 and windowed["recall"] >= 0.85, windowed
    assert alone["precision"] >= 0.95 and alone["recall"] >= 0.85, alone
