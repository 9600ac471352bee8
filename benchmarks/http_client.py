"""Benchmark: the feed fetcher's CPU per request with httpx's default transport and with
the httpx-aiohttp transport, against a farm served from another process.

    python benchmarks/http_client.py [--feeds 500] [--rounds 4]

The farm (500 feeds of 30 items, with ETag and Last-Modified) runs in a child process, so
only the client's CPU is counted: `time.process_time()` over `--rounds` passes of every
feed, conditional (304) and unconditional (200), each transport twice, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERVER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from tests.support.feedserver import FeedServer, rss
with FeedServer() as s:
    for f in range(int(sys.argv[2])):
        s.set(f"/f/{f}.xml", rss([{"title": f"t{i}", "guid": f"{f}-{i}", "link": f"https://x/{f}/{i}",
                                   "description": "d" * 300} for i in range(30)]))
    print(s.url(""), flush=True)
    sys.stdin.readline()
"""


async def cpu_per_request(base: str, feeds: int, rounds: int, transport_name: str, conditional: bool) -> float:
    import httpx
    from httpx_aiohttp import AiohttpTransport

    from monitor.fetch import Fetcher

    limits = httpx.Limits(max_connections=32, max_keepalive_connections=8)  # as the Fetcher's own
    transport: httpx.AsyncBaseTransport = (
        AiohttpTransport(limits=limits) if transport_name == "httpx-aiohttp" else httpx.AsyncHTTPTransport(limits=limits))
    urls = [f"{base}/f/{f}.xml" for f in range(feeds)]
    async with Fetcher(concurrency=32, per_host=1000, transport=transport) as fetcher:
        first = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
        started = time.process_time()
        for _ in range(rounds):
            await asyncio.gather(*(
                fetcher.fetch(u, etag=r.etag if conditional else None,
                              last_modified=r.last_modified if conditional else None)
                for u, r in zip(urls, first, strict=True)))
        return (time.process_time() - started) / (rounds * feeds) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(REPO), str(args.feeds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout and server.stdin
    base = server.stdout.readline().strip()
    try:
        for conditional in (True, False):
            figures: dict[str, list[float]] = {"httpx": [], "httpx-aiohttp": []}
            for name in ("httpx", "httpx-aiohttp", "httpx", "httpx-aiohttp"):
                figures[name].append(asyncio.run(cpu_per_request(base, args.feeds, args.rounds, name, conditional)))
            kind = "304 (conditional)" if conditional else "200 (30 items)"
            line = ", ".join(f"{name} {min(v):.2f} ms" for name, v in figures.items())
            ratio = min(figures["httpx"]) / min(figures["httpx-aiohttp"])
            print(f"{kind:18} CPU per request: {line}; httpx / httpx-aiohttp = {ratio:.1f}x")
    finally:
        server.stdin.write("\n")
        server.stdin.flush()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
