"""Fetcher against a real HTTP server: validators, redirects, statuses, limits, fan-out."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from monitor import USER_AGENT
from monitor.errors import FetchError
from monitor.fetch import Fetcher, FetchResult, parse_retry_after
from tests.support.feedserver import FeedServer, rss

FEED = rss([{"title": "Talks resume", "link": "http://example.org/1", "guid": "1"}])


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def fetch(
    url: str, *, etag: str | None = None, last_modified: str | None = None, **options: Any
) -> FetchResult:
    """One fetch on a fresh Fetcher(**options)."""

    async def go() -> FetchResult:
        async with Fetcher(**options) as fetcher:
            return await fetcher.fetch(url, etag=etag, last_modified=last_modified)

    return asyncio.run(go())


def fetch_error(url: str, **kw: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, **kw)
    return info.value


def test_200_returns_body_validators_and_sends_our_headers(server: FeedServer) -> None:
    server.set("/feed.xml", FEED)
    result = fetch(server.url("/feed.xml"))
    assert result.status == 200
    assert result.body == FEED
    assert result.url == server.url("/feed.xml")
    assert result.etag and result.last_modified
    assert result.elapsed_ms >= 0
    sent = server.requests[0].headers
    assert sent["user-agent"] == USER_AGENT
    assert sent["accept"].startswith("application/rss+xml, application/atom+xml")
    assert "gzip" in sent["accept-encoding"]
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_charset_in_content_type_is_passed_through(server: FeedServer) -> None:
    server.set("/feed.xml", FEED, content_type="application/xml; charset=windows-1252")
    headers = fetch(server.url("/feed.xml")).headers
    assert headers["content-type"] == "application/xml; charset=windows-1252"


def test_second_conditional_get_is_304_with_the_same_validators(server: FeedServer) -> None:
    server.set("/feed.xml", FEED)
    first = fetch(server.url("/feed.xml"))
    again = fetch(server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    assert (again.status, again.body) == (304, b"")
    assert (again.etag, again.last_modified) == (first.etag, first.last_modified)
    sent = server.requests[1].headers
    assert sent["if-none-match"] == first.etag
    assert sent["if-modified-since"] == first.last_modified


def test_if_modified_since_alone_gives_304(server: FeedServer) -> None:
    server.set("/feed.xml", FEED, etag=False)
    first = fetch(server.url("/feed.xml"))
    assert first.etag is None
    assert fetch(server.url("/feed.xml"), last_modified=first.last_modified).status == 304


def test_a_changed_feed_is_200_again(server: FeedServer) -> None:
    server.set("/feed.xml", FEED)
    first = fetch(server.url("/feed.xml"))
    server.set("/feed.xml", rss([{"title": "New", "guid": "2"}]))
    again = fetch(server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    assert again.status == 200
    assert again.etag != first.etag and again.last_modified != first.last_modified


def test_304_without_validators_keeps_the_ones_sent(server: FeedServer) -> None:
    server.set("/feed.xml", b"", status=304)
    result = fetch(server.url("/feed.xml"), etag='"v1"', last_modified="Sat, 01 Jan 2000 00:00:00 GMT")
    assert (result.status, result.etag, result.last_modified) == (
        304, '"v1"', "Sat, 01 Jan 2000 00:00:00 GMT",
    )


def test_redirects_are_followed_to_the_final_url(server: FeedServer) -> None:
    server.set("/new.xml", FEED)
    server.redirect("/old.xml", "/moved.xml", status=301)
    server.redirect("/moved.xml", server.url("/new.xml"))
    result = fetch(server.url("/old.xml"))
    assert (result.status, result.url, result.body) == (200, server.url("/new.xml"), FEED)


def test_exactly_max_redirects_is_allowed(server: FeedServer) -> None:
    server.set("/r2", FEED)
    server.redirect("/r0", "/r1")
    server.redirect("/r1", "/r2")
    assert fetch(server.url("/r0"), max_redirects=2).body == FEED
    assert fetch_error(server.url("/r0"), max_redirects=1).args[0] == "too many redirects (more than 1)"


def test_a_redirect_loop_is_cut_off(server: FeedServer) -> None:
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")
    error = fetch_error(server.url("/a"))
    assert str(error) == "too many redirects (more than 5)"
    assert server.count("/a") + server.count("/b") == 6


@pytest.mark.parametrize("status", [404, 500])
def test_error_status_raises_with_status(server: FeedServer, status: int) -> None:
    server.set("/feed.xml", "nope", status=status)
    error = fetch_error(server.url("/feed.xml"))
    assert (str(error), error.status, error.retry_after) == (f"HTTP {status}", status, None)


def test_missing_path_is_404(server: FeedServer) -> None:
    assert fetch_error(server.url("/nothing.xml")).status == 404


def test_429_carries_retry_after(server: FeedServer) -> None:
    server.set("/feed.xml", "slow down", status=429, headers={"Retry-After": "120"})
    error = fetch_error(server.url("/feed.xml"))
    assert (error.status, error.retry_after) == (429, 120.0)


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 28, 18, 0, 0, tzinfo=UTC)
    assert parse_retry_after(" 30 ", now) == 30.0
    assert parse_retry_after("Sat, 28 Nov 2026 18:02:00 GMT", now) == 120.0
    assert parse_retry_after("Sat, 28 Nov 2026 18:02:00 -0000", now) == 120.0
    assert parse_retry_after("Sat, 28 Nov 2026 17:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_cap_is_refused(server: FeedServer, chunked: bool) -> None:
    server.set("/big.xml", b"x" * 2048, chunked=chunked)
    assert fetch(server.url("/big.xml"), max_bytes=2048).body == b"x" * 2048
    assert str(fetch_error(server.url("/big.xml"), max_bytes=2047)) == "body larger than 2047 bytes"


def test_default_cap_is_10_mib(server: FeedServer) -> None:
    server.set("/big.xml", b"x" * (10 * 1024 * 1024 + 1), chunked=True)
    assert str(fetch_error(server.url("/big.xml"))) == "body larger than 10 MiB"


def test_gzip_bomb_is_capped_on_decoded_size(server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * (11 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    server.set("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})
    assert str(fetch_error(server.url("/bomb.xml"))) == "body larger than 10 MiB"


def test_gzip_body_is_decoded_and_wire_headers_dropped(server: FeedServer) -> None:
    server.set("/feed.xml", gzip.compress(FEED), headers={"Content-Encoding": "gzip"})
    result = fetch(server.url("/feed.xml"))
    assert result.body == FEED
    assert "content-encoding" not in result.headers and "content-length" not in result.headers


def test_trickling_server_is_cut_by_the_total_timeout(server: FeedServer) -> None:
    server.set("/slow.xml", FEED, trickle=0.05)  # ~15 s for the whole body
    started = time.monotonic()
    error = fetch_error(server.url("/slow.xml"), timeout=0.5)
    assert str(error) == "timed out after 0.5s"
    assert error.status is None
    assert time.monotonic() - started < 5


def test_total_timeout_starts_when_a_slot_is_free(server: FeedServer) -> None:
    for i in range(3):
        server.set(f"/f{i}", FEED, delay=0.3)

    async def go() -> list[FetchResult]:
        async with Fetcher(concurrency=1, timeout=0.6) as fetcher:
            return await asyncio.gather(*(fetcher.fetch(server.url(f"/f{i}")) for i in range(3)))

    assert [r.status for r in asyncio.run(go())] == [200, 200, 200]


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = fetch_error(f"http://127.0.0.1:{port}/feed.xml")
    assert (str(error), error.status, error.retry_after) == ("connection refused", None, None)
    chain, cause = [], error.__cause__
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ConnectionRefusedError) for c in chain)  # the OS's reason is kept


def test_connect_timeout_is_named() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    error = fetch_error("http://feeds.example/x", transport=httpx.MockTransport(hang), connect_timeout=2)
    assert str(error) == "connect timed out after 2s"


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://example.org/feed", "unsupported protocol"), ("http://[::1/feed", "invalid URL")],
)
def test_unusable_urls_raise_fetch_error(url: str, message: str) -> None:
    assert message in str(fetch_error(url))


def test_fan_out_of_2000_fetches_all_succeed(server: FeedServer) -> None:
    """Thousands of fetch() calls at once queue on the semaphore, not in the httpx pool."""
    n = 2000
    for i in range(n):
        server.set(f"/feeds/{i}.xml", rss([{"title": f"Item {i}", "guid": str(i)}], title=f"Feed {i}"))

    async def go() -> list[FetchResult | BaseException]:
        async with Fetcher(concurrency=32) as fetcher:
            calls = (fetcher.fetch(server.url(f"/feeds/{i}.xml")) for i in range(n))
            return await asyncio.gather(*calls, return_exceptions=True)

    started = time.monotonic()
    results = asyncio.run(go())
    print(f"\n2,000-fetch fan-out: {time.monotonic() - started:.2f}s")
    assert sum(isinstance(r, FetchResult) and r.status == 200 for r in results) == n


def test_one_failing_feed_does_not_disturb_the_others(server: FeedServer) -> None:
    server.set("/ok.xml", FEED)
    server.set("/broken.xml", "", status=500)

    async def go() -> list[FetchResult | BaseException]:
        async with Fetcher(concurrency=2) as fetcher:
            urls = [server.url("/ok.xml"), server.url("/broken.xml"), server.url("/ok.xml")]
            return await asyncio.gather(*(fetcher.fetch(u) for u in urls), return_exceptions=True)

    ok, broken, again = asyncio.run(go())
    assert isinstance(ok, FetchResult) and isinstance(again, FetchResult)
    assert isinstance(broken, FetchError) and broken.status == 500


def fetch_all(urls: list[str], **options: Any) -> None:
    async def go() -> None:
        async with Fetcher(**options) as fetcher:
            await asyncio.gather(*(fetcher.fetch(url) for url in urls))
    asyncio.run(go())


def arrivals(server: FeedServer, host: str) -> list[float]:
    return sorted(r.time for r in server.requests if r.headers["host"].startswith(host))


def test_at_most_per_host_fetches_to_one_host_and_other_hosts_go_on(server: FeedServer) -> None:
    for i in range(6):
        server.set(f"/slow{i}.xml", FEED, delay=0.3)
    server.set("/other.xml", FEED)
    slow = [server.url(f"/slow{i}.xml") for i in range(6)]
    other = server.url("/other.xml").replace("127.0.0.1", "localhost")  # the same server, another host
    fetch_all([*slow, other], per_host=2, concurrency=32)
    times = arrivals(server, "127.0.0.1")
    # Two at a time: each pair starts only once the pair before it has been answered.
    for k in range(2, 6):
        assert times[k] - times[k - 2] >= 0.29, times
    [other_arrival] = arrivals(server, "localhost")
    assert other_arrival < times[2]  # not queued behind the slow host


def test_new_per_host_limits_apply_to_the_fetches_that_start_after_them(server: FeedServer) -> None:
    for i in range(6):
        server.set(f"/slow{i}.xml", FEED, delay=0.3)
    urls = [server.url(f"/slow{i}.xml") for i in range(6)]

    async def go() -> None:
        async with Fetcher(per_host=1, concurrency=32) as fetcher:
            await asyncio.gather(*(fetcher.fetch(url) for url in urls[:2]))  # one at a time
            fetcher.set_politeness(per_host=4, host_delay=0)  # a reload
            await asyncio.gather(*(fetcher.fetch(url) for url in urls[2:]))  # four at once
    asyncio.run(go())
    times = arrivals(server, "127.0.0.1")
    assert times[1] - times[0] >= 0.29, times
    assert times[5] - times[2] < 0.2, times


def test_host_delay_spaces_the_starts_of_one_hosts_fetches(server: FeedServer) -> None:
    for i in range(4):
        server.set(f"/f{i}.xml", FEED)
    fetch_all([server.url(f"/f{i}.xml") for i in range(4)], per_host=10, host_delay=0.2)
    times = arrivals(server, "127.0.0.1")
    assert len(times) == 4 and all(b - a >= 0.19 for a, b in zip(times, times[1:], strict=False)), times
