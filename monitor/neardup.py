"""PROVISIONAL (replaced by the issue9-neardup branch): text fingerprints for near-duplicates."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from monitor.words import tokenise

BANDS = 8
MIN_WORDS = 5
THRESHOLD = 0.6
_MASK = (1 << 64) - 1
_SUFFIX = re.compile(r"\s+[-|–—]\s+[^-|–—]{1,40}$")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    shingles: tuple[int, ...]
    bands: tuple[int, ...]


def fingerprint(title: str, summary: str) -> Fingerprint | None:
    words = [w.casefold() for w in tokenise(_SUFFIX.sub("", title))]
    if len(words) < MIN_WORDS:
        return None
    grams = {zlib.crc32(" ".join(words[i:i + 2]).encode()) for i in range(len(words) - 1)}
    shingles = tuple(sorted(grams))
    bands = []
    for b in range(BANDS):
        low = min(zlib.crc32(struct.pack("<IB", s, b)) for s in shingles)
        value = (b << 56) | low
        bands.append(value - (1 << 64) if value >= 1 << 63 else value)
    return Fingerprint(shingles, tuple(bands))


def pack(shingles: tuple[int, ...]) -> bytes:
    return struct.pack(f"<{len(shingles)}I", *shingles)


def unpack(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(data) // 4}I", data)


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0


def similar(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return similarity(a, b) >= THRESHOLD
