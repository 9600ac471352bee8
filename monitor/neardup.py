"""Text fingerprints that find near-duplicate items: wire copy, syndication, edited headlines (pure).

Every hash here is stable across processes and releases (crc32, blake2b): fingerprints
live in the database and are compared by other processes."""

from __future__ import annotations

import re
import struct
import zlib
from bisect import bisect_left
from dataclasses import dataclass
from hashlib import blake2b
from typing import NamedTuple

from monitor.words import tokenise

# Each shingle is a 32-bit crc32 whose top two bits say what it is, so that one sorted
# tuple holds every part of an item and `similarity` can take it apart again.
_TITLE = 0x00000000    # a word or a pair of adjacent words of the title
_NUMBER = 0x40000000   # a number in the title ("day 433", "21st package")
_SUMMARY = 0x80000000  # a word or a pair of adjacent words of the summary's opening
_KIND = 0xC0000000
_VALUE = 0x3FFFFFFF

# An item with fewer title words than this is never merged: "Live updates", "Briefing".
MIN_TITLE_WORDS = 4
# The summary's opening is what outlets share: they truncate it at different lengths.
SUMMARY_WORDS = 40
# A summary that adds fewer words than this to its title only repeats it (Google News:
# "<title>  Reuters"), and says nothing either way.
MIN_SUMMARY_WORDS = 6

# LSH over the title's shingles: BANDS bands of ROWS one-permutation MinHash values each.
# Measured on the 6,234 headlines (benchmarks/story_pairs.py): with 12 bands, 16.2
# candidates per item on average (max 333), and every labelled duplicate the exact check
# accepts is among them; 16 bands give 22.6 (max 405) and find no more, 8 lose one.
# With single words in the bands as well, 142.5 an item (max 939).
BANDS = 12
ROWS = 4
_BINS = BANDS * ROWS

# Thresholds, from `python benchmarks/story_pairs.py --sweep`, first on one reader's
# labels (114 same-report pairs, 393 different stories): title 0.6 with summary 0.5 gives
# precision 0.981, recall 0.930 (2 false merges, 8 misses). A title threshold of 0.65
# loses 11 more duplicates for one false merge fewer; 0.55 gains one; summary
# containment 0.3 lets in a wire story of another day (3 false merges); no summary check
# at all, 6. Identical titles whose summaries disagree were mostly the same report from
# two outlets' feeds, hence TITLE_SAME.
TITLE_SAME = 0.9           # Jaccard of the titles' shingles: the same headline
TITLE_THRESHOLD = 0.6      # a lightly edited headline, unless the summaries disagree:
SUMMARY_THRESHOLD = 0.5    # containment of the shorter summary opening in the longer

# Words that say nothing about which story it is; kept out of the shingles.
_STOP = frozenset(
    "a an the of to in on for and or at by with from as is are was be has have had its it "
    "that this after over says said say will".split()
)
# A trailing outlet name: " - Reuters", " | The Guardian", " — AP News": a short run of
# capitalised words after a spaced dash or bar, at the very end of the title.
_OUTLET = re.compile(r"\s+[-|\u2013\u2014]\s+(?:[A-Z0-9][\w.&'’]*\s*){1,4}$")
_NUMERIC = re.compile(r"\d")
_CRC_TITLE = zlib.crc32(b"t")
_CRC_SUMMARY = zlib.crc32(b"s")
# The band index, as blake2b's salt: band i of one item only ever meets band i of another.
_SALTS = [band.to_bytes(16, "little") for band in range(BANDS)]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the store keeps of an item to find its near-duplicates."""

    shingles: tuple[int, ...]  # sorted, unique uint32: see _TITLE, _NUMBER, _SUMMARY
    bands: tuple[int, ...]     # BANDS LSH keys, signed 64-bit, band index mixed in


def fingerprint(title: str, summary: str) -> Fingerprint | None:
    """The item's fingerprint; None when its title is too short to judge (never merged)."""
    words = _words(_OUTLET.sub("", title))
    if len(words) < MIN_TITLE_WORDS:
        return None
    head = _shingles(words, _CRC_TITLE, _TITLE)
    numbers = {_NUMBER | (zlib.crc32(w.encode()) & _VALUE) for w in words if _NUMERIC.search(w)}
    # Enough characters for SUMMARY_WORDS words: some summaries are whole articles.
    body = _words(summary[:SUMMARY_WORDS * 12])[:SUMMARY_WORDS]
    if len(set(body) - set(words)) < MIN_SUMMARY_WORDS:
        body = []
    shingles = head | numbers | _shingles(body, _CRC_SUMMARY, _SUMMARY)
    # Bands from the pairs of words only: single words such as "Ukraine" or "nuclear"
    # would make every item on the subject a candidate of every other.
    pairs = _shingles(words, _CRC_TITLE, _TITLE, single=False) if len(words) > 1 else head
    return Fingerprint(tuple(sorted(shingles)), _bands(pairs))


def _words(text: str) -> list[str]:
    return [w for w in tokenise(text.casefold()) if w not in _STOP]


def _shingles(words: list[str], seed: int, kind: int, single: bool = True) -> set[int]:
    """Each word and each pair of adjacent words, hashed: pairs tell a re-ordered
    headline from the same one, words keep a one-word edit from breaking everything."""
    out = {kind | (zlib.crc32(w.encode(), seed) & _VALUE) for w in words} if single else set()
    out.update(kind | (zlib.crc32(f"{a} {b}".encode(), seed) & _VALUE) for a, b in zip(words, words[1:]))
    return out


def _bands(shingles: set[int]) -> tuple[int, ...]:
    """One-permutation MinHash (Li, Owen & Zhang 2012) with densification by rotation
    (Shrivastava & Li 2014): one pass over the shingles instead of one per hash function.
    Band i hashes the minima of bins i*ROWS .. i*ROWS+ROWS-1, salted with i."""
    bins: list[int | None] = [None] * _BINS
    for s in shingles:
        # Spread the bits first: crc32 values of similar strings are not evenly spread.
        h = (s * 0x9E3779B1) & 0xFFFFFFFF
        b, low = h % _BINS, h // _BINS
        current = bins[b]
        if current is None or low < current:
            bins[b] = low
    # An empty bin takes the next filled one to its right (circularly), marked with the
    # distance: low < 2**26, so the sum is still distinct for each (value, distance).
    filled = [0] * _BINS
    carry, distance = 0, 0
    for b in range(2 * _BINS - 1, -1, -1):
        value = bins[b % _BINS]
        if value is not None:
            carry, distance = value, 0
        else:
            distance += 1
        if b < _BINS:
            filled[b] = carry + (distance << 26)
    packed = struct.pack(f"<{_BINS}I", *filled)
    width = 4 * ROWS
    return tuple(
        int.from_bytes(blake2b(packed[band * width:(band + 1) * width], digest_size=8, salt=_SALTS[band]).digest(),
                       "little", signed=True)
        for band in range(BANDS)
    )


def pack(shingles: tuple[int, ...]) -> bytes:
    """The shingles as little-endian uint32, for a BLOB column."""
    return struct.pack(f"<{len(shingles)}I", *shingles)


def unpack(data: bytes) -> tuple[int, ...]:
    """The shingles `pack` stored."""
    return struct.unpack(f"<{len(data) // 4}I", data)


class Text(NamedTuple):
    """A fingerprint's shingles by part, ready to compare (the index reads each once)."""

    title: frozenset[int]
    numbers: frozenset[int]
    summary: frozenset[int]


def read(shingles: tuple[int, ...]) -> Text:
    # Sorted shingles run title, numbers, summary: their kind is in the top bits.
    numbers, summary = bisect_left(shingles, _NUMBER), bisect_left(shingles, _SUMMARY)
    return Text(frozenset(shingles[:numbers]), frozenset(shingles[numbers:summary]), frozenset(shingles[summary:]))


def match(a: Text, b: Text, title_threshold: float = TITLE_THRESHOLD) -> float | None:
    """The titles' similarity when two items are the same report: the same title; or a
    lightly edited title whose summary does not tell another story (a daily digest keeps
    its headline, not its text). None when they are not."""
    if not a.title or not b.title or (a.numbers and b.numbers and a.numbers != b.numbers):
        return None  # "day 433" vs "day 434", "20th" vs "21st package"
    shared = len(a.title & b.title)
    title = shared / (len(a.title) + len(b.title) - shared)
    if title >= TITLE_SAME:
        return title
    if title < title_threshold:
        return None
    if a.summary and b.summary and len(a.summary & b.summary) / min(len(a.summary), len(b.summary)) < SUMMARY_THRESHOLD:
        return None
    return title


def same_story(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two items (their shingles) are the same report."""
    return match(read(a), read(b)) is not None
