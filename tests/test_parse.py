"""parse_feed: hand-made fixtures with exact items, and every corpus document without a crash."""

from __future__ import annotations

import csv
import re
import socket
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import feedparser
import pytest

from monitor.parse import Item, ParsedFeed, parse_feed, strip_html
from tests.conftest import corpus_path

DATA = Path(__file__).parent / "data"
FEED_URL = "https://news.example/feeds/world.xml"
UTC = UTC


def parse_fixture(name: str, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_feed((DATA / name).read_bytes(), url=FEED_URL, headers=headers)


# ---- hand-made fixtures ------------------------------------------------------


def test_rss2_items() -> None:
    feed = parse_fixture("parse_rss2.xml")
    name = "Example & Co World"
    assert feed == ParsedFeed(
        title=name,
        items=[
            Item(
                title="Talks resume in Geneva & Vienna",
                summary="Delegations met on Saturday. Café talk ended.",
                link="https://news.example/world/talks-resume?utm_source=rss",
                guid="talks-2026-11-28",
                published=datetime(2026, 11, 28, 17, 55, tzinfo=UTC),
                feed_name=name,
            ),
            Item(
                title="Ceasefire holds — for now & then",
                summary="Quiet night along the front.",
                link="https://news.example/world/ceasefire",
                guid=None,
                published=None,
                feed_name=name,
            ),
            Item(
                title="No link, a guid that is not a URL",
                summary="Only content:encoded, no description.",
                link=None,
                guid="12345",
                published=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
                feed_name=name,
            ),
            Item(
                title="",
                summary="None",
                link="https://news.example/world/untitled",
                guid=None,
                published=None,
                feed_name=name,
            ),
        ],
        problem=None,
    )


def test_atom_items_with_xml_base_and_typed_text() -> None:
    feed = parse_fixture("parse_atom.xml")
    name = "Atom Example"
    assert feed == ParsedFeed(
        title=name,
        items=[
            Item(
                # type="text": the angle brackets are text, not markup.
                title="Why 5 < 6 & <b> is not a tag",
                summary="One two three",
                link="https://news.example/news/2026/first.html",
                guid="tag:atom.example,2026:1",
                published=datetime(2026, 11, 28, 15, 0, tzinfo=UTC),
                feed_name=name,
            ),
            Item(
                title="Second entry",
                summary="Only content: 5 < 6.",
                link="https://mirror.example/base/second.html",
                guid="tag:atom.example,2026:2",
                published=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
                feed_name=name,
            ),
            Item(
                title="Root-relative",
                summary="",
                link="https://news.example/abs/third",
                guid=None,
                published=None,
                feed_name=name,
            ),
        ],
        problem=None,
    )


def test_charset_from_http_header_only() -> None:
    feed = parse_fixture(
        "parse_cp1251_http_charset.xml",
        headers={"Content-Type": "application/rss+xml; charset=windows-1251"},
    )
    assert feed.title == "Новости"
    assert [(i.title, i.summary) for i in feed.items] == [
        ("Переговоры о мире", "Делегации встретились в Женеве.")
    ]


def test_configured_name_wins_then_feed_title_then_url() -> None:
    body = (DATA / "parse_rss2.xml").read_bytes()
    assert parse_feed(body, url=FEED_URL, name="Wire").items[0].feed_name == "Wire"
    assert parse_feed(body, url=FEED_URL).items[0].feed_name == "Example & Co World"
    untitled = b'<rss version="2.0"><channel><item><title>x</title></item></channel></rss>'
    assert parse_feed(untitled, url=FEED_URL).items[0].feed_name == FEED_URL


def test_relative_guid_is_not_resolved_against_the_feed_url() -> None:
    # A guid must not change when the feed moves.
    body = b'<rss version="2.0"><channel><item><guid>42</guid></item></channel></rss>'
    for url in ("https://a.example/feed", "https://b.example/other/feed"):
        (item,) = parse_feed(body, url=url).items
        assert (item.guid, item.link) == ("42", None)


def test_absolute_permalink_guid_is_the_link() -> None:
    body = b'<rss version="2.0"><channel><item><guid>https://x.example/a</guid></item></channel></rss>'
    (item,) = parse_feed(body, url=FEED_URL).items
    assert (item.guid, item.link) == ("https://x.example/a", "https://x.example/a")


def test_non_web_links_are_dropped() -> None:
    body = (
        b'<rss version="2.0"><channel>'
        b"<item><title>a</title><link>javascript:alert(1)</link></item>"
        b"<item><title>b</title><link>mailto:desk@news.example</link></item>"
        b"</channel></rss>"
    )
    assert [i.link for i in parse_feed(body, url=FEED_URL).items] == [None, None]


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Sat, 28 Nov 2026 19:55:00 +0200", datetime(2026, 11, 28, 17, 55, tzinfo=UTC)),
        ("2026-11-28T08:00:00Z", datetime(2026, 11, 28, 8, 0, tzinfo=UTC)),
        ("Thu, 01 Jan 1970 00:00:00 +0000", None),  # generators' "no date"
        ("Fri, 31 Dec 9999 23:59:59 -1200", None),  # past datetime.max in UTC
        ("Mon, 31 Feb 2020 25:61:61 GMT", None),
        ("yesterday", None),
    ],
)
def test_dates(date: str, expected: datetime | None) -> None:
    body = f'<rss version="2.0"><channel><item><title>t</title><pubDate>{date}</pubDate></item></channel></rss>'
    (item,) = parse_feed(body.encode(), url=FEED_URL).items
    assert item.published == expected


DATE_CASES = tomllib.loads((DATA / "dates.toml").read_text())["case"]


@pytest.mark.parametrize("case", DATE_CASES, ids=[c["text"] or "(empty)" for c in DATE_CASES])
def test_date_cases(case: dict[str, str]) -> None:
    """tests/data/dates.toml: the right instant or none, in an RSS pubDate and an Atom
    published element alike."""
    expected = None if case["utc"] == "none" else datetime.fromisoformat(case["utc"])
    text = escape(case["text"])
    rss = f'<rss version="2.0"><channel><item><title>t</title><pubDate>{text}</pubDate></item></channel></rss>'
    atom = ('<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>t</title>'
            f'<published>{text}</published></entry></feed>')
    for body in (rss, atom):
        (item,) = parse_feed(body.encode(), url=FEED_URL).items
        assert item.published == expected, body


TITLE_CASES = tomllib.loads((DATA / "titles.toml").read_text())["case"]


@pytest.mark.parametrize("case", TITLE_CASES, ids=[c.get("rss") or c["atom"] for c in TITLE_CASES])
def test_title_cases(case: dict[str, str]) -> None:
    """tests/data/titles.toml: a title is text unless the feed marks it up."""
    if "rss" in case:
        body = f'<rss version="2.0"><channel><item><title>{case["rss"]}</title></item></channel></rss>'
    else:
        body = f'<feed xmlns="http://www.w3.org/2005/Atom"><entry>{case["atom"]}</entry></feed>'
    (item,) = parse_feed(body.encode(), url=FEED_URL).items
    assert item.title == case["text"]




@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        ("plain & simple", "plain & simple"),
        ("  two\n lines\t ", "two lines"),
        ("<p>a</p><p>b</p>", "a b"),
        ("a<br>b<br/>c<li>d", "a b c d"),
        ("<b>bold</b><i>italic</i>", "bolditalic"),
        ("x<script>var y = '<p>';</script>z<style>p{}</style>", "xz"),
        ("AT&amp;T &eacute; &#8212; &#x41;&nbsp;!", "AT&T é — A !"),
        ("Q&amp;amp;A", "Q&A"),
        ("<![if !supportLists]>x<![endif]>", "x"),
        ("a<![foo[b]]>c", "a c"),  # html.parser rejects this section; crude fallback
        ("5 < 6", "5 < 6"),
    ],
)
def test_strip_html(fragment: str, text: str) -> None:
    assert strip_html(fragment) == text


def test_one_extra_level_of_escaping_is_undone() -> None:
    # RSS: XML unescapes once, the HTML stripper once, the extra pass once more.
    rss = (
        b'<rss version="2.0"><channel><item>'
        b"<title>Q&amp;amp;amp;A: Smith&amp;paragon, &amp;amp;amp;amp;</title>"
        b"</item></channel></rss>"
    )
    # Atom text: already plain text after XML, so the extra pass is the only one.
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry>'
        b'<title type="text">Q&amp;amp;A</title></entry></feed>'
    )
    # "&para" in "Smith&paragon" lacks its semicolon: not an entity, left alone.
    assert parse_feed(rss, url=FEED_URL).items[0].title == "Q&A: Smith&paragon, &amp;"
    assert parse_feed(atom, url=FEED_URL).items[0].title == "Q&A"


# ---- documents that are not feeds ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  \n\t ",
        b'<?xml version="1.0"?>\n<!-- nothing here -->\n',
        b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>',
    ],
)
def test_empty_document_or_zero_items_is_not_a_problem(body: bytes) -> None:
    feed = parse_feed(body, url=FEED_URL)
    assert (feed.items, feed.problem) == ([], None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>x</body></html>",
         "not a feed: looks like an HTML page"),
        (b"<config><a>1</a></config>", "not a feed: no RSS, Atom or RDF document element"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
         "not a feed: a JSON Feed (jsonfeed.org), which monitor does not read: use the site's RSS or Atom feed"),
        (b'\xef\xbb\xbf  [{"error": "rate limited"}]', "not a feed: looks like JSON (an API answer?), not RSS or Atom"),
        (b'{"half": ', "not a feed: not well-formed (invalid token)"),
    ],
)
def test_not_a_feed(body: bytes, problem: str) -> None:
    assert parse_feed(body, url=FEED_URL) == ParsedFeed(title=None, items=[], problem=problem)


def test_bytes_naming_a_file_are_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes((DATA / "parse_rss2.xml").read_bytes())
    feed = parse_feed(str(path).encode(), url=FEED_URL)
    assert feed.items == [] and feed.problem


def test_bytes_naming_a_url_are_not_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parse_feed opened a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    feed = parse_feed(b"http://127.0.0.1:9/feed.xml", url=FEED_URL)
    assert feed.items == [] and feed.problem


def test_external_entities_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<rss version="2.0"><channel><item><title>a&x;b</title></item></channel></rss>'
    ).encode()
    assert "SECRET" not in repr(parse_feed(body, url=FEED_URL))


def test_parser_crash_becomes_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(feedparser, "parse", crash)
    feed = parse_feed(b"<rss/>", url=FEED_URL)
    assert feed == ParsedFeed(title=None, items=[], problem="could not parse: RuntimeError: boom")


def test_known_feedparser_crash_does_not_escape() -> None:
    # feedparser 6.0 raises UnicodeDecodeError on a non-UTF-8 byte in the declaration.
    body = b'<?xml version="1.0" encoding="UTF\x898"?><rss version="2.0"></rss>'
    assert parse_feed(body, url=FEED_URL).items == []


# ---- the shared corpus ----------------------------------------------------------


def corpus_files(folder: str) -> list[str]:
    """Paths relative to corpus/<folder>, for parametrising; a placeholder when the
    corpus is absent (the `corpus` fixture then skips with its reason)."""
    root = corpus_path() / folder
    if not root.is_dir():
        return ["(corpus absent)"]
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def assert_well_typed(feed: ParsedFeed) -> None:
    assert isinstance(feed, ParsedFeed)
    assert feed.title is None or (isinstance(feed.title, str) and feed.title)
    assert feed.problem is None or isinstance(feed.problem, str)
    if feed.items:
        assert feed.problem is None
    for item in feed.items:
        for text in (item.title, item.summary):
            assert isinstance(text, str)
            assert text == " ".join(text.split())  # one line, collapsed, stripped
        assert isinstance(item.feed_name, str) and item.feed_name
        assert item.guid is None or (isinstance(item.guid, str) and item.guid == item.guid.strip() != "")
        if item.link is not None:
            parts = urlsplit(item.link)
            assert parts.scheme in ("http", "https") and parts.netloc, item.link
        if item.published is not None:
            assert item.published.utcoffset() == timedelta(0)


# feedparser's harness turns these comment lines into HTTP response headers.
HEADER_LINE = re.compile(rb"^Header:\s*([\w-]+):\s*(.*?)\s*$", re.MULTILINE)


@pytest.mark.parametrize("relpath", corpus_files("feedparser-tests"))
def test_feedparser_suite_file(corpus: Path, relpath: str) -> None:
    body = (corpus / "feedparser-tests" / relpath).read_bytes()
    headers = {k.decode(): v.decode("latin-1") for k, v in HEADER_LINE.findall(body[:2048])}
    url = headers.get("Content-Location", f"https://feeds.example/{relpath}")
    assert_well_typed(parse_feed(body, url=url, headers=headers))


@pytest.mark.parametrize("name", corpus_files("feeds"))
def test_corpus_feed(corpus: Path, name: str) -> None:
    body = (corpus / "feeds" / name).read_bytes()
    feed = parse_feed(body, url=f"https://feeds.example/{name}")
    assert_well_typed(feed)
    if name.endswith(".xml"):
        assert feed.problem is None


def test_corpus_item_counts_match_sources(corpus: Path) -> None:
    with open(corpus / "feeds" / "SOURCES.tsv", newline="", encoding="utf-8") as f:
        expected = {row["filename"]: int(row["item_count"]) for row in csv.DictReader(f, delimiter="\t")}
    counts = {
        name: len(parse_feed((corpus / "feeds" / name).read_bytes(), url="https://feeds.example/").items)
        for name in expected
    }
    assert counts == expected


def parse_corpus_feed(corpus: Path, name: str) -> ParsedFeed:
    return parse_feed((corpus / "feeds" / name).read_bytes(), url=f"https://feeds.example/{name}")


def test_windows_1251_feed(corpus: Path) -> None:
    feed = parse_corpus_feed(corpus, "oren-ru-windows1251-2014-01.xml")
    assert feed.title == "Новости Оренбурга и области / Раздел Новости"
    assert feed.items[0].title == "В Бузулуке главные стройплощадки – детсад и Ледовый дворец"


def test_iso_8859_1_feeds(corpus: Path) -> None:
    jn = parse_corpus_feed(corpus, "jornal-de-noticias-pt-iso8859-1-2018-01.xml")
    assert jn.title == "Jornal de Notícias - Últimas Notícias"
    assert jn.items[0].title == "Mãe de utente é a nova presidente da Raríssimas"
    golem = parse_corpus_feed(corpus, "golem-de-rdf-iso8859-2023-01.xml")
    assert golem.items[0].title == "Digitalministerium: Neue Glasfaserförderung mit Schnellkasse"


def test_empty_file_gives_no_items(corpus: Path) -> None:
    feed = parse_corpus_feed(corpus, "dailytelegraph-au-EMPTY-0bytes-2021-10.xml")
    assert feed == ParsedFeed(title=None, items=[], problem=None)


def test_empty_channel_keeps_its_title(corpus: Path) -> None:
    feed = parse_corpus_feed(corpus, "DERIVED-meduza-articles-EMPTY-CHANNEL-2025-07.xml")
    assert (feed.title, feed.items, feed.problem) == ("Meduza — Статьи", [], None)


def test_epoch_dates_mean_no_date(corpus: Path) -> None:
    feed = parse_corpus_feed(corpus, "DERIVED-meduza-feedgen-2025-11.xml")
    assert len(feed.items) == 24
    assert {i.published for i in feed.items} == {None}


def test_not_well_formed_feed_is_recovered(corpus: Path) -> None:
    feed = parse_corpus_feed(corpus, "uol-noticias-br-2018-09.xml")
    assert len(feed.items) == 15 and feed.problem is None


def test_relative_links_resolve_against_feed_url(corpus: Path) -> None:
    feed = parse_feed(
        (corpus / "feeds" / "talkingpointsmemo-atom-2017-11.xml").read_bytes(),
        url="https://talkingpointsmemo.com/feed/all",
    )
    assert feed.items[0].link == (
        "https://talkingpointsmemo.com/livewire/"
        "hannity-announces-fox-hired-sebastian-gorka-national-security-strategist"
    )


EXPECTED_DATE = re.compile(rb"entries\[0\]\['(published|updated)_parsed'\] == \(([\d, ]+)\)")


def dated_suite_files() -> list[str]:
    """The feedparser suite files that state an entry's date."""
    root = corpus_path() / "feedparser-tests"
    if not root.is_dir():
        return ["(corpus absent)"]  # the corpus fixture skips, saying why
    return [p for p in corpus_files("feedparser-tests") if EXPECTED_DATE.search((root / p).read_bytes()[:2048])]


@pytest.mark.parametrize("relpath", dated_suite_files())
def test_feedparser_suite_dates_are_right_or_none(corpus: Path, relpath: str) -> None:
    """Where feedparser's own suite states an entry's date, ours is that instant or None."""
    body = (corpus / "feedparser-tests" / relpath).read_bytes()
    expected = EXPECTED_DATE.search(body[:2048])
    assert expected is not None
    year, month, day, hour, minute, second = (int(n) for n in expected[2].split(b",")[:6])
    (item, *_) = parse_feed(body, url=f"https://feeds.example/{relpath}").items
    assert item.published in (None, datetime(year, month, day, hour, minute, second, tzinfo=UTC))


# ---- HTML to text: the regex path against html.parser ------------------------------

EDGE_FRAGMENTS = [
    "a &amp<b>x</b>p;", "<p>x</p ><br/>y", "<a href=x>l</a>", "<P>Up</P>", "<br />z", "x<y", "<o:p>q</o:p>",
    "<img src='a>b'>t", '<a title="x>y">t</a>', "tom &amp; jerry &copy 2020 &#169;", "<p>a</p><script>bad()</script>b",
    "<div\nclass='x'>y</div>", "<b>bold</b", "<p>unclosed", "a&b;c", "<input disabled>v", "<p a=1 b='2' c=\"3\" d>z</p>",
    "<!-- note --><p>after</p>", "<p>x<![CDATA[y]]></p>", "<style>p{}</style>text", "&amp;amp;lt;",
]


def html_parser_text(fragment: str) -> str:
    """What html.parser alone makes of a fragment (the path every odd fragment takes)."""
    from monitor import parse

    extractor = parse._TextExtractor()
    extractor.feed(parse._BARE_AMPERSAND.sub("&amp;", fragment))
    extractor.close()
    return parse._one_line("".join(extractor.parts))


def corpus_fragments(corpus: Path) -> list[str]:
    found = []
    for path in sorted((corpus / "feeds").iterdir()):
        for entry in feedparser.parse(path.read_bytes(), resolve_relative_uris=False, sanitize_html=False).entries:
            found += [v for v in (entry.get("title"), entry.get("summary")) if isinstance(v, str)]
            found += [c["value"] for c in entry.get("content") or () if isinstance(c.get("value"), str)]
    return found


def test_the_fast_html_path_gives_what_html_parser_gives(corpus: Path) -> None:
    from monitor.parse import _simple_text

    fragments = corpus_fragments(corpus) + EDGE_FRAGMENTS
    fast = [f for f in fragments if ("<" in f or "&" in f) and _simple_text(f) is not None]
    assert len(fast) > 500  # most real markup takes the regex path
    assert [strip_html(f) for f in fragments] == [html_parser_text(f) for f in fragments]
