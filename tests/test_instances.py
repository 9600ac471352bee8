"""Three `monitor run` processes on one PostgreSQL over a local farm, one killed mid-run:
every feed is still polled about once per interval, every alert arrives, none twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.support.feedserver import FeedServer
from tests.support.instances import Farm, start, titles_and_ids, upgrade, wait_until, write_config
from tests.support.receiver import Receiver

# CI runs 300 feeds; MONITOR_INSTANCES_FEEDS=1000 MONITOR_INSTANCES_INTERVAL=5 runs the
# issue's 1,000 (slower, and tighter on two cores).
FEEDS = int(os.environ.get("MONITOR_INSTANCES_FEEDS", "300"))
INTERVAL = float(os.environ.get("MONITOR_INSTANCES_INTERVAL", "3"))
ALERTS = 60


def test_three_instances_share_the_feeds_and_survive_a_kill(tmp_path: Path, postgres_url: str) -> None:
    with FeedServer() as server, Receiver(secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") as receiver:
        farm = Farm(server, FEEDS)
        config = write_config(tmp_path / "monitor.toml", postgres_url, server, receiver, FEEDS, f"{INTERVAL:.0f}s")
        upgrade(config)
        logs = [tmp_path / f"instance{i}.log" for i in range(3)]
        daemons = [start(config, log) for log in logs]
        try:
            wait_until(lambda: min(farm.polls()) >= 2, 60, "the baseline of every feed")
            daemons[0].send_signal(signal.SIGKILL)  # one instance dies with its leases
            daemons[0].wait()
            for n in range(ALERTS):
                farm.publish(n * (FEEDS // ALERTS), f"Ceasefire report {n}")
            wait_until(lambda: len(titles_and_ids(receiver)[0]) == ALERTS, 90, "every alert")

            # The dead instance's feed leases lapse after 2 × timeout + 10 s; after that,
            # every feed is polled by the two that remain, about once per interval.
            time.sleep(22)
            before = farm.polls()
            window = 4 * INTERVAL
            time.sleep(window)
            polls = [after - b for after, b in zip(farm.polls(), before, strict=True)]
        finally:
            for daemon in daemons[1:]:
                daemon.terminate()
            codes = [daemon.wait(timeout=30) for daemon in daemons[1:]]
        assert codes == [0, 0], [log.read_text()[-2000:] for log in logs[1:]]

    seen, accepted = titles_and_ids(receiver)
    assert len(seen) == ALERTS and all(len(ids) == 1 for ids in seen.values())
    assert accepted == ALERTS  # none delivered twice
    expected = window / INTERVAL
    # Up to 10 % early, and a feed waits up to a second for the next tick after it is due (a
    # 3 s interval comes round in about 3.5 s): never starved, never polled twice as often.
    assert min(polls) >= expected / 2 and max(polls) <= expected * 2, (min(polls), max(polls))
    mean = sum(polls) / len(polls)
    assert 0.6 * expected <= mean <= 1.3 * expected, mean
    print(f"3 instances, {FEEDS} feeds every {INTERVAL:.0f} s, one killed: polls per feed per "
          f"interval {mean / expected:.2f} (min {min(polls) / expected:.2f}, max {max(polls) / expected:.2f}); "
          f"alerts expected {ALERTS}, delivered {len(seen)}, repeated {accepted - len(seen)}")
