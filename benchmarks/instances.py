"""Benchmark: delivery with 1 and 3 `monitor run` instances on one PostgreSQL.

    python benchmarks/instances.py [--alerts 2000] [--postgres ADMIN_URL]

Starts its own feed farm and a webhook receiver (which verifies every signature) on
127.0.0.1. For each instance count, in a fresh database:

1. throughput: `monitor once` records one matching item in each of `--alerts` feeds while
   the webhook points at a closed port, so every alert waits in the outbox; then the
   instances start against the real receiver and drain it. Deliveries per second = alerts /
   (last receipt - first receipt).
2. latency: with the instances running, new matching items are published a few at a time;
   commit -> receipt is the receiver's arrival time minus the alert's created_at (the
   moment its row was committed), p50 and p95. It includes waiting for the next poll, so
   the feeds are polled every second.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, select, text  # noqa: E402

from monitor.tables import alerts  # noqa: E402
from tests.support.feedserver import FeedServer  # noqa: E402
from tests.support.instances import SECRET, Farm, start, titles_and_ids, upgrade, wait_until, write_config  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

LATENCY_ITEMS = 60


def run(instances: int, n_alerts: int, admin_url: str, tmp: Path) -> None:
    name = f"monitor_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        with FeedServer() as server, Receiver(secret=SECRET) as receiver:
            farm = Farm(server, n_alerts)
            closed = tmp / "closed.toml"
            write_config(closed, database, server, receiver, n_alerts, "1s")
            closed.write_text(closed.read_text().replace(receiver.url(), "http://127.0.0.1:9/closed"))
            upgrade(closed)
            once = [sys.executable, "-m", "monitor", "once", "--all", "-c", str(closed)]
            subprocess.run(once, check=True, capture_output=True, timeout=600)  # the baseline
            for f in range(n_alerts):
                farm.publish(f, f"Ceasefire report {f}")
            subprocess.run(once, capture_output=True, timeout=600)  # alerts stored, first tries fail
            time.sleep(6)  # their retry (5 s) is due

            config = write_config(tmp / f"run{instances}.toml", database, server, receiver, n_alerts, "1s")
            logs = [tmp / f"i{instances}-{i}.log" for i in range(instances)]
            daemons = [start(config, log) for log in logs]
            try:
                wait_until(lambda: len(receiver.received) >= n_alerts, 600, "the backlog to drain")
                arrivals = sorted(r.time for r in receiver.received)
                throughput = (n_alerts - 1) / (arrivals[-1] - arrivals[0])

                done = len(receiver.received)
                for n in range(LATENCY_ITEMS):
                    farm.publish(n * (n_alerts // LATENCY_ITEMS), f"Ceasefire update {n}")
                    time.sleep(0.1)
                wait_until(lambda: len(receiver.received) >= done + LATENCY_ITEMS, 120, "the new alerts")
            finally:
                for daemon in daemons:
                    daemon.send_signal(signal.SIGTERM)
                for daemon in daemons:
                    daemon.wait(timeout=60)
            seen, accepted = titles_and_ids(receiver)
            latest = {r.headers["webhook-id"]: r.time for r in receiver.received[done:]}
        engine = create_engine(database)
        with engine.connect() as conn:
            created = dict(conn.execute(select(alerts.c.id, alerts.c.created_at)
                                        .where(alerts.c.id.in_(list(latest)))).all())
        engine.dispose()
        latencies = sorted(latest[i] - created[i].timestamp() for i in latest)
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(f"{instances} instance(s): {throughput:7.1f} deliveries/s draining {n_alerts} alerts; "
              f"commit -> receipt p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
              f"({LATENCY_ITEMS} alerts); delivered {len(seen)} distinct, {accepted - len(seen)} repeats")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        for instances in (1, 3):
            run(instances, args.alerts, args.postgres, Path(tmp))


if __name__ == "__main__":
    main()
