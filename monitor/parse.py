"""Feed bytes → normalised items (pure: no I/O, no clock)."""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax import SAXParseException

import feedparser

from monitor.dates import parse_date


@dataclass(frozen=True)
class Item:
    """One feed entry, normalised.

    title/summary are plain text: HTML stripped, entities decoded, whitespace collapsed.
    """

    title: str
    summary: str
    link: str | None       # absolute URL as the feed gave it (resolved against the feed URL)
    guid: str | None       # the entry's guid/id, stripped; None when absent or empty
    published: datetime | None  # aware UTC; None when the feed gives no usable date
    feed_name: str


@dataclass(frozen=True)
class ParsedFeed:
    """What a feed document said: its own title and its items, in document order."""

    title: str | None
    items: list[Item]
    problem: str | None = None  # why nothing could be read (not a feed, broken XML); None when fine
    ttl: timedelta | None = None  # RSS <ttl>: how long the feed may be cached


def parse_feed(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str] | None = None,
    name: str | None = None,
) -> ParsedFeed:
    """Parse a feed body. `name` (the configured feed name) wins over the feed's own
    title, which wins over `url`, for `Item.feed_name`. Never raises: a body that is not
    a feed gives no items and a `problem`; broken XML gives whatever feedparser recovered."""
    try:
        return _parse(body, url=url, headers=headers or {}, name=name)
    except Exception as e:  # untrusted bytes through a third-party parser
        return ParsedFeed(title=None, items=[], problem=f"could not parse: {type(e).__name__}: {e}")


def _parse(body: bytes, *, url: str, headers: Mapping[str, str], name: str | None) -> ParsedFeed:
    # A BytesIO, never the bytes themselves: feedparser opens bytes that name a file.
    # No Content-Location, so guids stay as written (feedparser would resolve a relative
    # guid against it, and the guid would change whenever the feed's URL does); links
    # are resolved against `url` here instead.
    result = feedparser.parse(
        io.BytesIO(body),
        response_headers=_response_headers(headers),
        # Explicit, as feedparser's module-level defaults are anyone's to change. Both only
        # rewrite HTML, which becomes plain text here (strip_html drops script and style
        # with their contents); sanitizing cost a third of the parse.
        resolve_relative_uris=False,
        sanitize_html=False,
    )
    # Only Atom declares text constructs as plain text; for an RSS description feedparser
    # guesses, and guesses wrong (a <media:description type="plain"> relabels an HTML one).
    typed = str(result.get("version", "")).startswith("atom")
    title = _plain(result.feed.get("title"), result.feed.get("title_detail"), True) or None
    feed_name = name or title or url
    items = [_item(entry, url, feed_name, typed) for entry in result.entries]
    problem = None if items else _not_a_feed(body, result)
    return ParsedFeed(title=title, items=items, problem=problem, ttl=_ttl(result.feed.get("ttl")))


def _ttl(value: Any) -> timedelta | None:
    """RSS <ttl>: whole minutes, at most a day's worth; anything else is ignored."""
    text = value.strip() if isinstance(value, str) else ""
    return timedelta(minutes=int(text)) if text.isdigit() and 0 < int(text) <= 1440 else None


def _response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    given = {k.lower(): v for k, v in headers.items()}
    # Without a Content-Type feedparser assumes ISO-8859-1 for XML with no encoding
    # declaration; application/xml makes it follow the declaration, else UTF-8.
    out = {"content-type": given.get("content-type") or "application/xml"}
    if "content-language" in given:
        out["content-language"] = given["content-language"]
    return out


# Nothing but whitespace, XML declarations/processing instructions and comments.
_EMPTY_DOCUMENT = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s|<\?.*?\?>|<!--.*?-->)*", re.S)


def _not_a_feed(body: bytes, result: Any) -> str | None:
    """Why a document with no entries is not a feed; None for an empty or zero-item feed."""
    if result.get("version"):
        return None
    if _looks_like_html(body):
        return "not a feed: looks like an HTML page"
    if (kind := _json_kind(body)) is not None:
        return f"not a feed: {kind}"
    # Channel-level data without a known version: a CDF channel with no items.
    if result.get("feed") or _EMPTY_DOCUMENT.fullmatch(body):
        return None
    if result.get("bozo"):
        error = result.get("bozo_exception")
        # SAX messages start with "<unknown>:line:col", and the line is off by one
        # because feedparser rewrites the XML declaration.
        reason = error.getMessage() if isinstance(error, SAXParseException) else str(error)
        return f"not a feed: {reason}"
    return "not a feed: no RSS, Atom or RDF document element"


def _json_kind(body: bytes) -> str | None:
    """What a JSON body is (an API answer, a JSON Feed), or None when it is not JSON."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head not in (b"{", b"["):
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and "jsonfeed.org" in str(document.get("version", "")):
        return "a JSON Feed (jsonfeed.org), which monitor does not read: use the site's RSS or Atom feed"
    return "looks like JSON (an API answer?), not RSS or Atom"


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lower()
    return b"<!doctype html" in head or b"<html" in head


def _item(entry: Any, url: str, feed_name: str, typed: bool) -> Item:
    summary, summary_detail = _summary_source(entry)
    return Item(
        # A title is text unless it is marked up: Atom says so, and for RSS feedparser
        # calls text/html only what holds real markup (closing tags, entities), so
        # "Why &lt;script&gt; tags are bad" keeps its words.
        title=_plain(entry.get("title"), entry.get("title_detail"), True),
        summary=_plain(summary, summary_detail, typed),
        link=_link(entry, url),
        guid=_guid(entry),
        published=_published(entry),
        feed_name=feed_name,
    )


def _summary_source(entry: Any) -> tuple[Any, Any]:
    first_content = (entry.get("content") or [{}])[0]
    if entry.get("summary"):
        # feedparser copies an Atom <content> into `summary` without its detail.
        return entry["summary"], entry.get("summary_detail") or first_content
    return first_content.get("value", ""), first_content


def _link(entry: Any, url: str) -> str | None:
    link = entry.get("link")
    if not isinstance(link, str) or not link.strip():
        return None
    link = link.strip()
    # With no <link> element feedparser copies the guid into `link`; a guid that is not
    # already a URL ("12345") is an id, and resolving it would invent a page.
    if not entry.get("links") and not _is_web_url(link):
        return None
    try:
        absolute = urljoin(url, link)
    except ValueError:
        return None
    return absolute if _is_web_url(absolute) else None


def _is_web_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _guid(entry: Any) -> str | None:
    guid = entry.get("id")
    return (guid.strip() or None) if isinstance(guid, str) else None


def _published(entry: Any) -> datetime | None:
    """The published date, else the updated one. dict.get: FeedParserDict maps a missing
    key to another (updated_parsed to published_parsed), with a DeprecationWarning."""
    for text, reading in (("published", "published_parsed"), ("updated", "updated_parsed")):
        raw = dict.get(entry, text)
        when = parse_date(raw if isinstance(raw, str) else None, dict.get(entry, reading))
        if when is not None:
            return when
    return None


# ---- plain text ------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "template"})
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "img", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td",
    "th", "tr", "ul",
})
_TAG = re.compile(r"<[^>]*>")
# A start or end tag with plain attributes (quoted, unquoted or bare), maybe self-closing.
_SIMPLE_TAG = re.compile(r"""</?([A-Za-z][A-Za-z0-9]*)(?:\s+[^\s"'<>=/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>=`]+))?)*\s*/?>""")
# Only semicolon-terminated references: "&para" in "Smith&paragon" is not an entity.
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_BARE_AMPERSAND = re.compile(r"&(?!#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};)")


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, with block boundaries as spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def strip_html(fragment: str) -> str:
    """An HTML fragment as one line of plain text, as feed titles and summaries are
    cleaned: tags dropped (script/style with their contents), block elements and <br>
    as spaces, entities decoded, whitespace collapsed."""
    return _one_line(_text_of(fragment))


def _text_of(fragment: str) -> str:
    if "<" not in fragment and "&" not in fragment:
        return fragment
    simple = _simple_text(fragment)
    if simple is not None:
        return simple
    extractor = _TextExtractor()
    try:
        # html.parser would read "&para" in "Smith&paragon" as "¶": a bare "&" is text.
        extractor.feed(_BARE_AMPERSAND.sub("&amp;", fragment))
        extractor.close()
    except AssertionError:
        # html.parser gives up on some malformed "<![...]>" sections; drop tags crudely.
        return html.unescape(_TAG.sub(" ", fragment))
    return "".join(extractor.parts)


def _simple_text(fragment: str) -> str | None:
    """The text _TextExtractor would give, for a fragment of plain elements only (no
    comments, declarations, scripts or styles, nothing odd): a regex is ten times faster
    than html.parser on what most feeds send. None for any other fragment."""
    parts: list[str] = []
    start = 0
    for tag in _SIMPLE_TAG.finditer(fragment):
        text = fragment[start:tag.start()]
        name = tag.group(1).lower()
        if "<" in text or name in _SKIPPED:
            return None
        parts += [html.unescape(_BARE_AMPERSAND.sub("&amp;", text)), " " if name in _BLOCK else ""]
        start = tag.end()
    tail = fragment[start:]
    if "<" in tail:
        return None
    parts.append(html.unescape(_BARE_AMPERSAND.sub("&amp;", tail)))
    return "".join(parts)


def _one_line(text: str) -> str:
    # Publishers often escape twice ("&amp;amp;"); one more pass undoes that.
    text = _ENTITY.sub(lambda m: html.unescape(m.group()), text)
    return " ".join(text.split())


def _plain(value: Any, detail: Any, typed: bool) -> str:
    """A feed text construct as one line of plain text. `typed`: trust a text/plain type,
    declared or guessed (feedparser has already decoded it); otherwise it is HTML."""
    if not isinstance(value, str):
        return ""
    if typed and detail and detail.get("type") == "text/plain":
        return _one_line(value)
    return strip_html(value)
