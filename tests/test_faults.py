"""Fault injection with real processes: the daemon killed with SIGKILL at random moments
while it polls and delivers, again and again; then every expected alert has arrived, and
any alert that arrived twice carried the same webhook-id both times."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from tests.support.feedserver import FeedServer, rss
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TRIALS = 20


MARK = "MONITOR_FAULT_TRIAL"  # in the environment of each daemon, inherited by its parse workers


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a daemon and return once it has logged that it started (so that a kill soon
    after lands in its work, not in its imports, however loaded the machine is)."""
    started = _starts(log)
    daemon = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config)],
                              stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                              env={**os.environ, "PYTHONUNBUFFERED": "1", MARK: str(config)})
    deadline = time.monotonic() + 60
    while _starts(log) == started:
        assert daemon.poll() is None, f"the daemon exited with {daemon.returncode}: see {log}"
        assert time.monotonic() < deadline, f"the daemon did not start within 60 s: see {log}"
        time.sleep(0.05)
    return daemon


def _starts(log: Path) -> int:
    return log.read_text().count("event=started") if log.exists() else 0


def left_behind(config: Path) -> list[int]:
    """Live processes started by these trials' daemons: parse workers outliving them."""
    mark = f"{MARK}={config}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mark in (proc / "environ").read_bytes().split(b"\0") \
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, server: FeedServer) -> None:
    rng = random.Random(20261203)
    feeds = [f"/f{n}.xml" for n in range(4)]
    items: dict[str, list[dict]] = {path: [] for path in feeds}
    for path in feeds:  # the baseline: nothing here alerts
        items[path].append({"title": f"Weather {path}", "guid": f"{path}-0", "link": f"https://n.example{path}/0"})
        # a slow feed, so that kills land mid-poll as well as mid-delivery
        server.set(path, rss(items[path]), delay=0.2)
    # A slow endpoint, so that kills land mid-delivery too (after the receiver has the
    # request, before the daemon has its answer: the alert is sent again, with its id).
    with Receiver(secret=SECRET, delay=0.3) as receiver:
        config = tmp_path / "monitor.toml"
        config.write_text(f'''
[monitor]
database = "sqlite:///state.db"
interval = "1s"

[[webhooks]]
name = "ops"
url = "{receiver.url()}"
secret = "{SECRET}"
retry = ["1s", "1s", "1s", "1s", "1s"]

{"".join(f'[[feeds]]{chr(10)}url = "{server.url(p)}"{chr(10)}' for p in feeds)}
[[topics]]
name = "peace"
query = "ceasefire"
''')
        log = tmp_path / "daemon.log"
        daemon = start(config, log)
        while not all(server.count(p) >= 2 for p in feeds):  # the baselines are in
            time.sleep(0.1)
        daemon.kill()
        daemon.wait()

        expected: set[str] = set()
        for trial in range(TRIALS):
            for path in rng.sample(feeds, 2):
                n = len(items[path])
                title = f"Ceasefire report {trial}-{path}"
                items[path].insert(0, {"title": title, "guid": f"{path}-{n}", "link": f"https://n.example{path}/{n}"})
                server.set(path, rss(items[path]), delay=0.2)
                expected.add(title)
            # Every fifth trial the receiver is down for the first attempts (of this trial:
            # a trial killed before it delivered leaves no outage to the next).
            receiver.respond([503, 503] if trial % 5 == 4 else [], replace=True)
            daemon = start(config, log)
            time.sleep(rng.uniform(0.6, 2.5))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()

        daemon = start(config, log)
        try:
            deadline = time.monotonic() + 60
            while {r.json["data"]["item"]["title"] for r in receiver.received} != expected:
                assert time.monotonic() < deadline, f"missing: {expected - {r.json['data']['item']['title'] for r in receiver.received}}"
                time.sleep(0.2)
            time.sleep(2)  # nothing more may come
        finally:
            daemon.terminate()
            assert daemon.wait(timeout=30) == 0
        # The parse workers of the killed daemons went with them, even those killed while
        # their pool was starting (each checks every second that its daemon lives).
        deadline = time.monotonic() + 10
        while leftovers := left_behind(config):
            assert time.monotonic() < deadline, f"processes {leftovers} outlived their daemon"
            time.sleep(0.3)

    ids_per_title: dict[str, set[str]] = defaultdict(set)
    for request in receiver.received:
        assert request.verified
        ids_per_title[request.json["data"]["item"]["title"]].add(request.headers["webhook-id"])
    assert set(ids_per_title) == expected
    assert all(len(ids) == 1 for ids in ids_per_title.values()), "a repeat with another webhook-id"
    repeats = len(receiver.received) - len(expected)
    print(f"{TRIALS} kill trials: {len(expected)} alerts expected, {len(ids_per_title)} delivered, "
          f"{repeats} repeats (same webhook-id)")
