"""Benchmark: `monitor once` over a local farm of N feeds, with a real webhook receiver.

    python benchmarks/poll_farm.py [--feeds 2000] [--items 20] [--new 1]

Starts its own feed server and webhook receiver on 127.0.0.1, writes a config with N
feeds into a temporary directory, then runs `monitor once --all` three times as a
subprocess: the baseline pass (every feed new, nothing alerts), a pass where each feed has
`--new` new items (a fraction match a topic and are delivered), and a pass where nothing
changed (every feed answers 304). Prints wall time, feeds/second, peak RSS and alerts.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.feedserver import FeedServer, rss  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

WORDS = "market council river election storm harvest museum league bridge festival".split()


def feed_items(feed: int, start: int, count: int) -> list[dict]:
    """Deterministic items; every 10th mentions a ceasefire so that some alerts fire."""
    out = []
    for n in range(start, start + count):
        topic = "ceasefire talks resume" if n % 10 == 0 else f"{WORDS[n % 10]} report"
        out.append({"title": f"Feed {feed} item {n}: {topic}", "guid": f"f{feed}-i{n}",
                    "link": f"https://farm.example/{feed}/{n}",
                    "description": f"<p>Story {n} of feed {feed} about the {WORDS[(n + feed) % 10]}.</p>"})
    return out


def publish(server: FeedServer, feeds: int, items: int, first: int) -> None:
    for f in range(feeds):
        server.set(f"/feed/{f}.xml", rss(list(reversed(feed_items(f, first, items))), title=f"Feed {f}"))


def write_config(directory: Path, server: FeedServer, receiver: Receiver, feeds: int) -> Path:
    lines = [
        "[monitor]", 'database = "sqlite:///farm.db"', 'interval = "10m"',
        "per_host = 1000  # the whole farm is one host: measure the daemon, not the politeness limit", "",
        "[[webhooks]]", 'name = "bench"', f'url = "{receiver.url()}"', "",
        "[[topics]]", 'name = "peace"', "query = 'ceasefire NEAR/3 talks'", "",
    ]
    for f in range(feeds):
        lines += ["[[feeds]]", f'url = "{server.url(f"/feed/{f}.xml")}"', ""]
    path = directory / "farm.toml"
    path.write_text("\n".join(lines))
    return path


def run_once(config: Path) -> tuple[float, int]:
    """Wall seconds and exit code of one `monitor once --all`."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "monitor", "--log-level", "warning", "once", "--all",
                           "-c", str(config)], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"monitor once failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items", type=int, default=20, help="items per feed")
    parser.add_argument("--new", type=int, default=1, help="new items per feed in the second pass")
    args = parser.parse_args()

    with FeedServer() as server, Receiver() as receiver, tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), server, receiver, args.feeds)
        publish(server, args.feeds, args.items, first=0)
        print(f"farm: {args.feeds} feeds × {args.items} items on {server.base_url}")

        passes = []
        for label in ("baseline (all new feeds)", f"{args.new} new item(s) per feed", "unchanged (304)"):
            before = len(receiver.received)
            requests_before = len(server.requests)
            seconds, code = run_once(config)
            delivered = len(receiver.received) - before
            fetched = len(server.requests) - requests_before
            passes.append((label, seconds, fetched, delivered, code))
            if label.startswith("baseline"):
                publish(server, args.feeds, args.items, first=args.new)

        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{'pass':<28} {'seconds':>8} {'feeds/s':>8} {'requests':>9} {'alerts':>7} exit")
        for label, seconds, fetched, delivered, code in passes:
            print(f"{label:<28} {seconds:>8.2f} {args.feeds / seconds:>8.0f} {fetched:>9} {delivered:>7} {code:>4}")
        print(f"peak RSS of a `monitor once` process: {rss_mb:.0f} MiB")
        expected = sum(1 for f in range(args.feeds) for n in range(args.items, args.items + args.new)
                       if n % 10 == 0)
        print(f"alerts expected in pass 2: {expected}, delivered: {passes[1][3]}")


if __name__ == "__main__":
    main()
