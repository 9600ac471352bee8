"""Benchmark: polling a local farm with `monitor run`, and with the `reader` library on the
same farm in the same run.

    python benchmarks/poll_vs_reader.py [--feeds 2000] [--items 30] [--share 0.02]
                                        [--interval 20] [--steady 60] [--no-reader]
                                        [--first-poll all|baseline]

The steady state at 100,000 feeds: --feeds 100000 --items 3 --interval 300 --steady 600
--share 0.01 --first-poll baseline --no-reader.

Starts its own feed server (ETag and Last-Modified on every feed, so an unchanged feed is a
304) and a webhook receiver on 127.0.0.1. Then:

1. monitor, cold: `monitor run` on a new SQLite database with `first_poll = "all"`, so
   every item is fetched, parsed, deduplicated, matched and stored, and the alerts of the
   matching ones queued. Their webhook is unreachable meanwhile (its circuit opens after
   five refused attempts), so delivering them does not compete with the ingest; a reload
   then points it at the receiver, which gets them all before the steady state starts.
   Cold ingest = from the farm's first request to the moment every feed has been polled.
2. monitor, steady state: every feed polled every `--interval` seconds (a fixed interval,
   so the figure does not depend on the adaptive one) for `--steady` seconds; before each
   cycle a share of the feeds gains one item, which matches a topic. CPU per poll = the CPU
   time (user + system, from /proc) of the daemon and its parse workers in that window /
   the polls the server saw.
   Publish → alert latency = receipt at the webhook - the moment the item was published.
   Peak RSS = the VmHWM of the daemon and of each parse worker, added up.
3. reader, in its own process on its own database: `update_feeds(workers=16, scheduled=False)` cold, then
   once more after the same share of feeds gained an item (its CPU time / the feeds).

Prints both, and the ratios. The farm and the receiver run in this process and take CPU
from both contenders alike; compare figures within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.feedserver import FeedServer, rss  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

WORDS = "market council river election storm harvest museum league bridge festival".split()
# Every item tells its own story: a template repeated with new numbers would be one story
# told 60,000 times, and monitor would rightly fold the copies into one.
VOCABULARY = [a + b + c for a in ("ka", "lo", "mi", "nu", "re", "sa", "ti", "vo", "ze", "pa", "do", "fi")
              for b in ("r", "d", "m", "s", "t", "v", "b", "c", "l", "f", "g", "h", "j", "k", "n", "p")
              for c in ("an", "ol", "ek", "il", "or", "in", "as", "um", "et", "ur", "is", "en")]  # 2,304 words
TOPIC = "'ceasefire NEAR/3 talks'"


class Farm:
    """N feeds of M items with HTML descriptions; one in ten items matches the topic."""

    def __init__(self, server: FeedServer, feeds: int, items: int):
        self.server, self.items = server, items
        self.first = [0] * feeds  # each feed's oldest item number
        self.published: dict[str, float] = {}  # item link → when it was published
        self.lock = threading.Lock()
        for f in range(feeds):
            self._serve(f)

    def url(self, f: int) -> str:
        return self.server.url(f"/feed/{f}.xml")

    def gain(self, feeds: list[int]) -> None:
        """Each of these feeds gains one item, a matching one."""
        for f in feeds:
            self.first[f] += 1
            self._serve(f, matching_newest=True)
            with self.lock:
                self.published[_link(f, self.first[f] + self.items - 1)] = time.time()

    def _serve(self, f: int, matching_newest: bool = False) -> None:
        first = self.first[f]
        entries = []
        for n in range(first + self.items - 1, first - 1, -1):
            matching = n % 10 == 0 or (matching_newest and n == first + self.items - 1)
            subject = "ceasefire talks resume" if matching else f"{WORDS[n % 10]} report"
            words = random.Random(f * 1_000_003 + n).choices(VOCABULARY, k=30)
            entries.append({
                "title": f"{' '.join(words[:3])} {subject} {' '.join(words[3:7])}", "guid": f"f{f}-i{n}",
                "link": _link(f, n),
                "description": f"<p>Story <b>{n}</b> of feed {f}, about the {WORDS[(n + f) % 10]} "
                               f"and the <a href='https://farm.example/{f}'>council</a>. {' '.join(words[7:])}."
                               "</p>",
            })
        self.server.set(f"/feed/{f}.xml", rss(entries, title=f"Feed {f}"))


def _link(f: int, n: int) -> str:
    return f"https://farm.example/{f}/{n}"


def write_config(directory: Path, farm: Farm, hook_url: str, feeds: int, interval: int,
                 first_poll: str = "all") -> Path:
    lines = [
        "[monitor]", 'database = "sqlite:///farm.db"', f'interval = "{interval}s"', f'first_poll = "{first_poll}"',
        "concurrency = 32", "per_host = 1000  # the whole farm is one host: no politeness limit", "",
        "[[webhooks]]", 'name = "bench"', f'url = "{hook_url}"', 'rate_limit = "none"', "",
        "[[topics]]", 'name = "peace"', f"query = {TOPIC}", "",
    ]
    for f in range(feeds):
        lines += ["[[feeds]]", f'url = "{farm.url(f)}"', ""]
    path = directory / "farm.toml"
    path.write_text("\n".join(lines))
    return path


def family(pid: int) -> list[int]:
    """The daemon and its live children (the parse workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(c) for c in children)]


def cpu_seconds(pid: int, *, workers: bool = True) -> float:
    """User + system CPU of the daemon and (unless told not to) its parse workers."""
    total = 0
    for member in family(pid) if workers else [pid]:
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The peak resident memory of the daemon and its parse workers, added up."""
    total = 0
    for member in family(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def count(database: Path, query: str) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(query).fetchone()[0]
    except sqlite3.OperationalError:
        return -1  # not created yet


def polled_feeds(database: Path) -> int:
    return count(database, "SELECT count(*) FROM feeds WHERE last_poll_at IS NOT NULL")


def pending_alerts(database: Path) -> int:
    return count(database, "SELECT count(*) FROM alerts WHERE status = 'pending'")


def wait_for(condition: Any, timeout: float, what: str, every: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(every)
    return time.monotonic()


def run_monitor(args: argparse.Namespace, farm: Farm, receiver: Receiver, tmp: Path) -> dict[str, float]:
    # During the cold ingest the webhook is a closed port: alerts are queued, and after five
    # refused attempts the circuit opens, so delivery does not compete with the ingest
    # (reader has nothing to deliver). A reload then points it at the receiver.
    config = write_config(tmp, farm, "http://127.0.0.1:9/closed", args.feeds, args.interval, args.first_poll)
    log = tmp / "monitor.log"
    with log.open("wb") as err:
        daemon = subprocess.Popen([sys.executable, "-m", "monitor", "--log-level", "warning", "run", "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
    try:
        # --log-level warning keeps logging out of the figures; `started` is info, so the
        # start is taken from the first request the farm sees.
        requests_before = len(farm.server.requests)
        wait_for(lambda: len(farm.server.requests) > requests_before, 120, "the daemon's first request")
        started = min(r.time for r in farm.server.requests[requests_before:])
        done = wait_for(lambda: polled_feeds(tmp / "farm.db") >= args.feeds, 3600, "the cold ingest", every=0.1)
        cold = done - started
        cold_rss = peak_rss_mib(daemon.pid)
        cold_cpu_main, cold_cpu_all = cpu_seconds(daemon.pid, workers=False), cpu_seconds(daemon.pid)

        # Steady state: once the cold ingest's alerts are delivered, measure whole cycles.
        write_config(tmp, farm, receiver.url(), args.feeds, args.interval, args.first_poll)
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: pending_alerts(tmp / "farm.db") == 0, 3600, "the cold ingest's alerts", every=0.2)
        cycles = max(1, round(args.steady / args.interval))
        share = max(1, round(args.feeds * args.share))
        cpu_before, polls_before = cpu_seconds(daemon.pid), len(farm.server.requests)
        window_start = time.monotonic()
        received_before = len(receiver.received)
        for cycle in range(cycles):
            first = (cycle * share) % args.feeds
            farm.gain([(first + i) % args.feeds for i in range(share)])
            time.sleep(args.interval)
        window = time.monotonic() - window_start
        cpu = cpu_seconds(daemon.pid) - cpu_before
        polls = len(farm.server.requests) - polls_before
        time.sleep(2)  # the last cycle's alerts
        latencies = [r.time - farm.published[r.json["data"]["item"]["url"]]
                     for r in receiver.received[received_before:]
                     if r.json and r.json["data"]["item"]["url"] in farm.published]
        rss_mib = peak_rss_mib(daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    if daemon.returncode != 0:
        sys.exit(f"monitor exited {daemon.returncode}:\n{log.read_text()[-3000:]}")
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [float("nan")] * 19
    return {"cold_s": cold, "cold_rss_mib": cold_rss, "cold_cpu_main_s": cold_cpu_main,
            "cold_cpu_workers_s": cold_cpu_all - cold_cpu_main, "steady_polls": polls, "steady_window_s": window,
            "cpu_ms_per_poll": 1000 * cpu / max(1, polls), "rss_mib": rss_mib, "alerts_timed": len(latencies),
            "latency_p50_s": statistics.median(latencies) if latencies else float("nan"),
            "latency_p95_s": quantiles[18]}


READER_CHILD = r"""
import json, resource, sys, time
from reader import make_reader
urls = json.loads(sys.stdin.readline())
reader = make_reader(sys.argv[1])
for url in urls:
    reader.add_feed(url)
def timed():
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    reader.update_feeds(workers=16, scheduled=False)  # every feed, not only those its schedule says are due
    after = resource.getrusage(resource.RUSAGE_SELF)
    return time.monotonic() - started, (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
wall, cpu = timed()
print(json.dumps({"cold_s": wall, "cold_cpu_s": cpu}), flush=True)
sys.stdin.readline()  # the farm has changed
wall, cpu = timed()
print(json.dumps({"steady_s": wall, "steady_cpu_s": cpu,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
"""


def run_reader(args: argparse.Namespace, farm: Farm, tmp: Path) -> dict[str, float]:
    child = subprocess.Popen([sys.executable, "-c", READER_CHILD, str(tmp / "reader.sqlite")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin and child.stdout
    child.stdin.write(json.dumps([farm.url(f) for f in range(args.feeds)]) + "\n")
    child.stdin.flush()
    cold = json.loads(child.stdout.readline())
    share = max(1, round(args.feeds * args.share))
    farm.gain(list(range(share)))
    child.stdin.write("go\n")
    child.stdin.flush()
    steady = json.loads(child.stdout.readline())
    child.wait(timeout=60)
    return {**cold, **steady, "cpu_ms_per_poll": 1000 * steady["steady_cpu_s"] / args.feeds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--share", type=float, default=0.02, help="share of feeds gaining an item per cycle")
    parser.add_argument("--interval", type=int, default=20, help="seconds between polls of a feed (steady state)")
    parser.add_argument("--steady", type=int, default=60, help="seconds of steady state to measure")
    parser.add_argument("--no-reader", action="store_true", help="monitor only (e.g. at 100,000 feeds)")
    parser.add_argument("--first-poll", default="all", choices=["all", "baseline"],
                        help="baseline: the cold ingest records items without matching them (a steady-state run)")
    args = parser.parse_args()

    with FeedServer() as server, Receiver() as receiver, tempfile.TemporaryDirectory() as tmp:
        farm = Farm(server, args.feeds, args.items)
        print(f"farm: {args.feeds} feeds x {args.items} items on {server.base_url}; "
              f"{args.share:.0%} of feeds gain an item per cycle", flush=True)
        mon = run_monitor(args, farm, receiver, Path(tmp))
        print(f"monitor: cold ingest {mon['cold_s']:.1f} s ({args.feeds / mon['cold_s']:.0f} feeds/s, "
              f"CPU {mon['cold_cpu_main_s']:.1f} s daemon + {mon['cold_cpu_workers_s']:.1f} s parse workers, "
              f"peak RSS {mon['cold_rss_mib']:.0f} MiB); steady state {mon['steady_polls']} polls in "
              f"{mon['steady_window_s']:.0f} s, {mon['cpu_ms_per_poll']:.2f} ms CPU per poll, peak RSS "
              f"{mon['rss_mib']:.0f} MiB; publish -> alert p50 {mon['latency_p50_s']:.2f} s, "
              f"p95 {mon['latency_p95_s']:.2f} s ({mon['alerts_timed']} alerts; interval {args.interval} s)",
              flush=True)
        if args.no_reader:
            return
        rd = run_reader(args, farm, Path(tmp))
        print(f"reader:  cold ingest {rd['cold_s']:.1f} s ({args.feeds / rd['cold_s']:.0f} feeds/s, "
              f"CPU {rd['cold_cpu_s']:.1f} s); "
              f"steady pass {rd['steady_s']:.1f} s, {rd['cpu_ms_per_poll']:.2f} ms CPU per poll, "
              f"peak RSS {rd['rss_mib']:.0f} MiB")
        print(f"ratios (reader / monitor): cold ingest {rd['cold_s'] / mon['cold_s']:.2f}x, "
              f"CPU per steady poll {rd['cpu_ms_per_poll'] / mon['cpu_ms_per_poll']:.2f}x")


if __name__ == "__main__":
    main()
