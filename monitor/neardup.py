"""Whether two items are one report, from their text alone: fingerprints, LSH bands and the
exact test (pure).

An item's fingerprint is a set of 32-bit features: the words of its title (its numbers
marked apart), and the word trigrams of the start of its summary. Two reports are one
when their titles' numbers agree and either both have a summary, the summaries overlap
and the titles are alike, or one has none and the titles are near-identical. The
thresholds are measured on labelled pairs of real headlines: see benchmarks/story_pairs.py
and the README's *How near-duplicates are found*.

Candidates come from MinHash with LSH banding, separately over the title words and the
summary trigrams: a band is two min-hashes, so items meet in a band when they share much
of their text, and one shared common word is not enough. Every hash here is stable across
processes and releases (crc32 and fixed multipliers): fingerprints live in the database.
"""

from __future__ import annotations

import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass

# Feature kinds, in a feature's top two bits.
TITLE, NUMBER, SUMMARY = 0, 1 << 30, 2 << 30
_KIND = 3 << 30
_VALUE = (1 << 30) - 1

MIN_TITLE_WORDS = 4   # a shorter title without a summary says too little to join anything
MIN_SUMMARY = 6       # trigrams: a shorter summary is a caption or a stub, not evidence
SUMMARY_WORDS = 40    # outlets cut summaries at different lengths: compare their starts
# Measured (benchmarks/story_pairs.py --sweep): see the README for the table.
TITLE_ALONE = 0.8     # title word Jaccard when either item has no summary (or one title holds the other)
TITLE_WITH_SUMMARY = 0.5  # ... when both have one, with
SUMMARY_OVERLAP = 0.5  # the shared trigrams over the smaller summary's;
SAME_SUMMARY = 0.9    # and a summary this close needs titles only this alike: an edited headline
TITLE_EDITED = 0.4

BANDS_PER_PART = 4    # LSH bands over the title, and as many over the summary
ROWS = 2              # min-hashes per band

_STOP = frozenset("a an the of to in on for and as at by with is are".split())
_WORD = re.compile(r"\w+")
# " - Reuters", " | The Guardian", " — AP": an outlet's name after the headline.
_OUTLET = re.compile(r"\s+[-|–—]\s+[^-|–—]{2,40}$")
# "MOSCOW, Jan 12 (Reuters) - ", "VIENNA (AP) — ": a wire's dateline, which its republishers cut.
_DATELINE = re.compile(r"^.{0,60}?\((?:Reuters|AP|AFP)\)\s*[-—–]\s*")
_MASK64 = (1 << 64) - 1
# Fixed odd 64-bit multipliers and offsets, one pair per min-hash (multiply-shift hashing).
_SALTS = tuple((0x9E3779B97F4A7C15 * (2 * i + 1) & _MASK64 | 1, 0xC2B2AE3D27D4EB4F * (i + 7) & _MASK64)
               for i in range(2 * BANDS_PER_PART * ROWS))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    shingles: tuple[int, ...]  # the features, sorted
    bands: tuple[int, ...]     # LSH keys, signed 64-bit (a PostgreSQL BIGINT)


def fingerprint(title: str, summary: str) -> Fingerprint | None:
    """None when there is too little text to judge: such an item joins no story by text."""
    title_words = _words(_OUTLET.sub("", title))
    summary_words = _words(_DATELINE.sub("", summary))[:SUMMARY_WORDS]
    titles = {_feature(NUMBER if word.isdigit() else TITLE, word) for word in title_words if word not in _STOP}
    trigrams = {_feature(SUMMARY, " ".join(summary_words[i:i + 3])) for i in range(len(summary_words) - 2)}
    if len(trigrams) < MIN_SUMMARY:
        trigrams = set()
        if len(titles) < MIN_TITLE_WORDS:
            return None
    if not titles:
        return None
    bands = _bands(titles, 0) + (_bands(trigrams, BANDS_PER_PART) if trigrams else ())
    return Fingerprint(tuple(sorted(titles | trigrams)), bands)


def same_story(a: tuple[int, ...], b: tuple[int, ...], *, threshold: float = TITLE_ALONE) -> bool:
    """Whether two fingerprints' features (Fingerprint.shingles) are one report."""
    return _judge(a, b, threshold) is not None


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """How alike two fingerprints are, 0–1 (title and summary together): to choose among
    several that are the same story."""
    score = _judge(a, b, TITLE_ALONE)
    return 0.0 if score is None else score


def _judge(a: tuple[int, ...], b: tuple[int, ...], threshold: float) -> float | None:
    title_a, numbers_a, summary_a = _parts(a)
    title_b, numbers_b, summary_b = _parts(b)
    if numbers_a != numbers_b:  # "day 515" and "day 519" of a daily briefing
        return None
    words_a, words_b = title_a | numbers_a, title_b | numbers_b
    titles = _jaccard(words_a, words_b)
    if summary_a and summary_b:
        overlap = len(summary_a & summary_b) / min(len(summary_a), len(summary_b))
        if (titles >= TITLE_WITH_SUMMARY and overlap >= SUMMARY_OVERLAP
                or titles >= TITLE_EDITED and overlap >= SAME_SUMMARY):
            return (titles + overlap) / 2
        return None
    # A headline with words added ("... over the war in Ukraine") is the same headline.
    held = len(words_a & words_b) / min(len(words_a), len(words_b))
    return titles if titles >= threshold or held >= 1.0 and titles >= TITLE_WITH_SUMMARY else None


def pack(shingles: tuple[int, ...]) -> bytes:
    return struct.pack(f"<{len(shingles)}I", *shingles)


def unpack(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(data) // 4}I", data)


def _words(text: str) -> list[str]:
    """Case, accents and punctuation folded; a possessive 's dropped."""
    folded = text.casefold().replace("’", "'")
    if not folded.isascii():
        folded = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    return [word for word in _WORD.findall(folded.replace("'s ", " ")) if word != "s"]


def _feature(kind: int, text: str) -> int:
    return kind | zlib.crc32(text.encode()) & _VALUE


def _parts(features: tuple[int, ...]) -> tuple[set[int], set[int], set[int]]:
    title: set[int] = set()
    numbers: set[int] = set()
    summary: set[int] = set()
    for feature in features:
        kind = feature & _KIND
        (title if kind == TITLE else numbers if kind == NUMBER else summary).add(feature)
    return title, numbers, summary


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _bands(features: set[int], first: int) -> tuple[int, ...]:
    bands = []
    for band in range(first, first + BANDS_PER_PART):
        value = band
        for row in range(ROWS):
            multiplier, offset = _SALTS[band * ROWS + row]
            lowest = min([(multiplier * feature + offset) & _MASK64 for feature in features]) >> 32
            value = (value * 0x100000001B3 ^ lowest) & _MASK64
        bands.append(value - (1 << 64) if value >= 1 << 63 else value)
    return tuple(bands)
