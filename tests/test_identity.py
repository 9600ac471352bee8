"""Canonical URLs, item and story keys, content fingerprints."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from monitor.identity import (
    MAX_KEY_LENGTH,
    canonical_url,
    content_fingerprint,
    item_key,
    story_key,
)
from monitor.parse import Item, parse_feed


def make_item(
    *, title: str = "Title", summary: str = "Summary", link: str | None = None, guid: str | None = None
) -> Item:
    return Item(title=title, summary=summary, link=link, guid=guid, published=None, feed_name="Feed")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        # scheme and host case
        ("HTTPS://News.Example.COM/World/Story", "https://news.example.com/World/Story"),
        # default ports only
        ("http://news.example:80/a", "http://news.example/a"),
        ("https://news.example:443/a", "https://news.example/a"),
        ("http://news.example:443/a", "http://news.example:443/a"),
        ("https://news.example:8443/a", "https://news.example:8443/a"),
        ("https://news.example:/a", "https://news.example/a"),
        # fragment
        ("https://news.example/a#comments", "https://news.example/a"),
        # tracking parameters, any utm_*, any case; others kept in order
        ("https://news.example/a?utm_source=rss&utm_medium=feed&utm_whatever=1", "https://news.example/a"),
        ("https://news.example/a?id=7&fbclid=X&page=2&gclid=Y", "https://news.example/a?id=7&page=2"),
        ("https://news.example/a?b=2&a=1", "https://news.example/a?b=2&a=1"),
        # Matomo campaign tags, any mtm_*
        ("https://news.example/a?mtm_campaign=rss&id=3&MTM_kwd=x&mtm_source=feed", "https://news.example/a?id=3"),
        ("https://news.example/a?UTM_Source=x&q=1", "https://news.example/a?q=1"),
        ("https://news.example/a?dclid=1&gbraid=2&wbraid=3&msclkid=4&mc_cid=5&mc_eid=6"
         "&igshid=7&yclid=8&_ga=9&_gl=10", "https://news.example/a"),
        ("https://www.bbc.co.uk/news/uk-58943184?at_medium=RSS&at_campaign=KARANGA",
         "https://www.bbc.co.uk/news/uk-58943184"),
        ("https://news.example/a?utm=1&utmost=2&ga=3", "https://news.example/a?utm=1&utmost=2&ga=3"),
        # empty query and empty parameters
        ("https://news.example/a?", "https://news.example/a"),
        ("https://news.example/a?x=1&&y=2&", "https://news.example/a?x=1&y=2"),
        ("https://news.example/a?flag", "https://news.example/a?flag"),
        # empty path
        ("https://news.example", "https://news.example/"),
        ("https://news.example?q=1", "https://news.example/?q=1"),
        # left as they are: path case, encoding, trailing slash, www, userinfo case
        ("https://news.example/A%2fb/", "https://news.example/A%2fb/"),
        ("https://www.news.example/a", "https://www.news.example/a"),
        ("https://User:Pw@News.Example/a", "https://User:Pw@news.example/a"),
        # IPv6 literals
        ("http://[2001:DB8::1]:80/a", "http://[2001:db8::1]/a"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        # not absolute URLs with a host: stripped, otherwise unchanged
        ("  https://news.example/a  ", "https://news.example/a"),
        ("/relative/path?utm_source=x", "/relative/path?utm_source=x"),
        ("news.example/a", "news.example/a"),
        ("mailto:Desk@News.Example", "mailto:Desk@News.Example"),
        ("http://[::1", "http://[::1"),
        ("", ""),
        ("not a url at all", "not a url at all"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_canonical_url_is_idempotent() -> None:
    url = "HTTP://News.Example:80/a?utm_source=x&id=1#top"
    assert canonical_url(canonical_url(url)) == canonical_url(url) == "http://news.example/a?id=1"


@pytest.mark.parametrize(
    ("item", "key"),
    [
        (make_item(guid="abc-123", link="https://news.example/a"), "guid:abc-123"),
        (make_item(link="HTTPS://News.Example/a?utm_source=rss#x"), "url:https://news.example/a"),
        (make_item(title="T", summary="S"), "hash:" + sha256("t\ns")),
        # a site's front page identifies no story: fall through to the content
        (make_item(title="T", summary="S", link="https://news.example/"), "hash:" + sha256("t\ns")),
        (make_item(title="T", summary="S", link="https://news.example"), "hash:" + sha256("t\ns")),
        (make_item(link="https://news.example/?p=42"), "url:https://news.example/?p=42"),
    ],
)
def test_item_key_fallbacks(item: Item, key: str) -> None:
    assert item_key(item) == key


def test_edited_item_keeps_its_key() -> None:
    before = make_item(title="Talks start", summary="Draft", guid="g1")
    after = make_item(title="Talks start in Geneva", summary="Updated", guid="g1")
    assert item_key(before) == item_key(after)
    by_link = make_item(title="Talks start", link="https://news.example/a")
    assert item_key(by_link) == item_key(make_item(title="Edited", link="https://news.example/a"))


def test_item_without_guid_or_link_is_its_content() -> None:
    # The documented caveat: editing such an item makes a new key.
    assert item_key(make_item(title="A")) != item_key(make_item(title="A (updated)"))


def test_long_keys_are_hashed() -> None:
    guid = "g" * 600
    assert item_key(make_item(guid=guid)) == "guid#sha256:" + sha256(guid)
    link = "https://news.example/" + "p" * 600
    assert item_key(make_item(link=link)) == "url#sha256:" + sha256(link)
    assert story_key(make_item(link=link)) == "url#sha256:" + sha256(link)
    fits = "g" * (MAX_KEY_LENGTH - len("guid:"))
    assert item_key(make_item(guid=fits)) == "guid:" + fits


def test_content_fingerprint_ignores_case_and_whitespace() -> None:
    assert content_fingerprint("Peace  Talks\n", " in GENEVA ") == content_fingerprint(
        "peace talks", "in geneva"
    )
    assert content_fingerprint("a", "b c") != content_fingerprint("a b", "c")
    assert content_fingerprint("Straße", "") == content_fingerprint("STRASSE", "")


def test_story_key() -> None:
    from_newsletter = make_item(link="https://News.Example/a?utm_source=newsletter&fbclid=1", guid="x")
    from_feed = make_item(link="https://news.example/a#top", guid="y")
    assert story_key(from_newsletter) == story_key(from_feed) == "https://news.example/a"
    assert story_key(make_item(guid="x")) is None
    assert story_key(make_item(link="https://news.example/")) is None


def parse_corpus(corpus: Path, name: str) -> list[Item]:
    return parse_feed((corpus / "feeds" / name).read_bytes(), url=f"https://feeds.example/{name}").items


def test_item_keys_are_unique_within_every_corpus_feed(corpus: Path) -> None:
    for path in sorted((corpus / "feeds").glob("*.xml")):
        keys = Counter(item_key(item) for item in parse_corpus(corpus, path.name))
        assert [k for k, n in keys.items() if n > 1] == [], path.name


def test_front_page_links_do_not_merge_a_feed(corpus: Path) -> None:
    # Every item of this generated feed links to https://meduza.io/ and has no guid.
    items = parse_corpus(corpus, "DERIVED-meduza-feedgen-2025-11.xml")
    assert len({item_key(i) for i in items}) == len(items) == 24
    assert {story_key(i) for i in items} == {None}


def test_same_story_in_two_feeds(corpus: Path) -> None:
    # Two captures that carry the same Washington Times stories.
    a = {story_key(i) for i in parse_corpus(corpus, "washingtontimes-world-2024-05.xml")}
    b = {story_key(i) for i in parse_corpus(corpus, "bbc-news-frontpage-2024-05.xml")}
    assert len(a & b) == 20
