"""Feed dates → aware UTC datetimes (pure): the right instant or None, never a wrong one.

feedparser reads an unknown zone ("America/Los_Angeles", "CEST") as UTC, ignores "PM" and
takes a Unix timestamp for a date: each gives a wrong instant. So the date text is read
here first, in the forms feeds really send; feedparser's reading is used only for a text
none of these forms fits (its many national and legacy formats)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = {name: i for i, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
    ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
    ("oct", "october"), ("nov", "november"), ("dec", "december")), start=1) for name in names}

# Zone abbreviations that mean one offset wherever feeds use them. Ambiguous ones (IST is
# India, Ireland or Israel; CST is also China's) are left out: better no date than a
# wrong one. RFC 822's military letters are unreliable in practice; only Z is kept.
_ZONES = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2,
    "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "SAST": 2,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3, "NST": -3.5, "NDT": -2.5,
    "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AWST": 8, "ACST": 9.5, "ACDT": 10.5,
    "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
}

_TIME = (r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,]\d+)?)?"
         r"(?:\s*(?P<ampm>[ap])\.?\s?m\.?(?![a-z]))?")
_ZONE = r"(?P<zone>[+-]\d{2}:?\d{2}|[+-]\d{2}|[a-z][a-z_]*(?:/[a-z_+-]+)*)"
# "Fri, 31 Mar 2023 20:19:00 +0200", "31 March 2023 8:19 PM EST", "March 30 2020 07:02:38 PM",
# "Thursday, March 30, 2020 at 7:02 pm CET"
_TEXTUAL = re.compile(
    r"(?:[a-z]{3,9}\.?,?\s+)?"
    r"(?:(?P<day>\d{1,2})(?:st|nd|rd|th)?\.?\s+(?P<month>[a-z]{3,9})\.?,?\s+(?P<year>\d{4}|\d{2})"
    r"|(?P<month2>[a-z]{3,9})\.?\s+(?P<day2>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year2>\d{4}))"
    rf"(?:(?:\s+|\s*,\s*|\s+at\s+|T){_TIME})?"
    rf"(?:\s*\(?{_ZONE}\)?)?",
    re.IGNORECASE,
)
# "2024-05-18 11:01:59 -0400", and one real feed's "2024-05-18 2024 11:01:59 -0400"
_NUMERIC = re.compile(
    rf"(?P<year>\d{{4}})-(?P<month>\d{{2}})-(?P<day>\d{{2}})(?:\s+\d{{4}})?\s+{_TIME}(?:\s*{_ZONE})?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})")
_UNIX = re.compile(r"\d{9,10}(?:\.\d+)?|\d{12,13}")  # seconds, or milliseconds
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?",
                  re.IGNORECASE)
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # before any web feed
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def parse_date(text: str | None, feedparser_reading: time.struct_time | None = None) -> datetime | None:
    """The instant `text` names, in UTC; None when it is missing, unreadable, in a zone
    that is not known, or outside 1990–2200. A text without a zone is UTC, as RFC 822's
    and ISO 8601's readers take it. `feedparser_reading` is used for a text in a form not
    read here."""
    if not text or not text.strip():
        return _from_struct(feedparser_reading)
    text = text.strip()
    if _UNIX.fullmatch(text):  # 10 digits cover 2001-2286; 9 digits, 1973-2001
        seconds = float(text) / (1000 if len(text) >= 12 else 1)
        return _bounded(datetime.fromtimestamp(seconds, UTC).replace(microsecond=0))
    if _ISO.fullmatch(text):
        return _iso(text)
    if match := _TEXTUAL.fullmatch(text):
        month = _MONTHS.get((match["month"] or match["month2"]).lower())
        year = int(match["year"] or match["year2"])
        if year < 100:  # RFC 822's two-digit years
            year += 2000 if year < 70 else 1900
        return None if month is None else _instant(year, month, int(match["day"] or match["day2"]), match)
    if match := _NUMERIC.fullmatch(text):
        return _instant(int(match["year"]), int(match["month"]), int(match["day"]), match)
    return _checked(text, _from_struct(feedparser_reading))


def _checked(text: str, reading: datetime | None) -> datetime | None:
    """feedparser's reading of a form not read here, unless it visibly dropped the time
    of day (it reads some forms' date and leaves the clock at midnight)."""
    clock = _CLOCK.search(text)
    if reading is None or clock is None or int(clock[1]) == int(clock[2]) == 0:
        return reading
    return None if (reading.hour, reading.minute, reading.second) == (0, 0, 0) else reading


def _iso(text: str) -> datetime | None:
    text = re.sub(r"\s+(?=[Z+-])", "", text.upper()).replace(" ", "T", 1)
    try:
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return _bounded(when.astimezone(UTC).replace(microsecond=0))
    except (ValueError, OverflowError):
        return None


def _instant(year: int, month: int, day: int, match: re.Match[str]) -> datetime | None:
    """The date with the match's time of day (12-hour clock too) and zone, in UTC."""
    hour, minute, second = (int(match[k] or 0) for k in ("hour", "minute", "second"))
    if match["ampm"]:
        if not 1 <= hour <= 12:
            return None  # "13:05 PM" names no time
        hour = hour % 12 + (12 if match["ampm"].lower() == "p" else 0)
    zone = _zone(match["zone"])
    if zone is None:
        return None
    try:
        return _bounded(datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC))
    except (ValueError, OverflowError):  # 30 February; year 9999 west of UTC
        return None


def _zone(text: str | None) -> timezone | ZoneInfo | None:
    """A zone from "+0200", "-05:00", "EST", "Europe/Brussels"; UTC when absent; None when
    it names no zone known (the time then cannot be placed)."""
    if text is None:
        return UTC
    if text[0] in "+-":
        digits = text[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 14 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        return timezone(-offset if text[0] == "-" else offset)
    if (named := _ZONES.get(text.upper())) is not None:
        return timezone(timedelta(hours=named))
    if "/" in text:
        try:
            return ZoneInfo(_iana_case(text))
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


def _iana_case(name: str) -> str:
    """"america/los_angeles" → "America/Los_Angeles": zoneinfo's names are case-sensitive."""
    if name != name.lower() and name != name.upper():
        return name
    return "/".join("_".join(part.capitalize() for part in piece.split("_")) for piece in name.split("/"))


def _from_struct(parsed: time.struct_time | None) -> datetime | None:
    if parsed is None:
        return None
    try:
        year, month, day, hour, minute, second = parsed[:6]
        return _bounded(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
    except (TypeError, ValueError, OverflowError):
        return None


def _bounded(when: datetime) -> datetime | None:
    return when if _EARLIEST <= when < _LATEST else None
