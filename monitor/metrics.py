"""Prometheus metrics of one process: counters the pipeline and outbox bump, gauges read from the store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.log import event

POLL_RESULTS = ("ok", "not_modified", "error")
DELIVERY_OUTCOMES = ("delivered", "retry", "failed")

# Feed fetches and webhook calls take from a few milliseconds (a 304 from a nearby CDN) up to
# the 30 s default timeout; roughly 2.5× steps keep the quantiles usable across that range.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)


@dataclass(frozen=True)
class StoreFigures:
    """What the store gauges are computed from, read at scrape time (aware UTC datetimes)."""

    active_feeds: int
    pending_alerts: int
    oldest_pending_at: datetime | None     # created_at of the oldest pending alert; None: none pending
    most_overdue_poll_at: datetime | None  # earliest next_poll_at of an active feed; None: no feeds


class Metrics:
    """Every metric of one process, in a registry of its own (tests and reloads never collide)."""

    def __init__(
        self,
        figures: Callable[[], StoreFigures] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.registry = CollectorRegistry()
        self._polls = Counter("monitor_polls_total", "Feed polls by result: ok (200 with a body), "
                              "not_modified (304), error.", ["result"], registry=self.registry)
        self._items_seen = Counter("monitor_items_seen_total", "Items parsed from fetched feeds.",
                                   registry=self.registry)
        self._items_new = Counter("monitor_items_new_total", "Items not seen before.",
                                  registry=self.registry)
        self._alerts = Counter("monitor_alerts_created_total", "Alerts created (one per story, topic "
                               "and webhook).", registry=self.registry)
        self._deliveries = Counter("monitor_deliveries_total", "Webhook delivery attempts by outcome: "
                                   "delivered, retry, failed.", ["outcome"], registry=self.registry)
        self._fetch_seconds = Histogram("monitor_fetch_duration_seconds", "Time to fetch one feed.",
                                        buckets=HTTP_BUCKETS, registry=self.registry)
        self._delivery_seconds = Histogram("monitor_delivery_duration_seconds",
                                           "Time of one webhook delivery attempt.",
                                           buckets=HTTP_BUCKETS, registry=self.registry)
        # Every label value exported from the start, at 0: a series born at 1 hides its first
        # event from rate() and increase(), and an alert on errors would miss the first one.
        for result in POLL_RESULTS:
            self._polls.labels(result)
        for outcome in DELIVERY_OUTCOMES:
            self._deliveries.labels(outcome)
        if figures is not None:
            self.registry.register(StoreCollector(figures, clock))

    def polled(self, result: str, seconds: float | None, seen: int = 0, new: int = 0, alerts: int = 0) -> None:
        """One poll: `result` in POLL_RESULTS; `seconds` the fetch time, None if none was measured."""
        if result not in POLL_RESULTS:
            raise ValueError(f"unknown poll result {result!r}")  # a typo would make a new series
        self._polls.labels(result).inc()
        if seconds is not None:
            self._fetch_seconds.observe(seconds)
        self._items_seen.inc(seen)
        self._items_new.inc(new)
        self._alerts.inc(alerts)

    def delivered(self, outcome: str, seconds: float) -> None:
        """One delivery attempt: `outcome` in DELIVERY_OUTCOMES; `seconds` the request time."""
        if outcome not in DELIVERY_OUTCOMES:
            raise ValueError(f"unknown delivery outcome {outcome!r}")
        self._deliveries.labels(outcome).inc()
        self._delivery_seconds.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class StoreCollector(Collector):
    """Gauges read from the database at each scrape, so they are right in every process.

    A failing read is reported as `monitor_database_up 0` rather than with a
    `monitor_scrape_errors_total` counter: a 0/1 gauge is what an alert rule wants
    (`monitor_database_up == 0` fires at once and clears by itself, as `pg_up` and
    `mysql_up` do), whereas a counter needs increase() over a window whose meaning depends
    on the scrape interval. The other store gauges are left out then, not reported as 0:
    an outbox depth of 0 would be a lie.
    """

    def __init__(self, figures: Callable[[], StoreFigures], clock: Callable[[], datetime]):
        self._figures = figures
        self._clock = clock
        self._up = True  # to log the change only, not every scrape while the database is down

    def describe(self) -> Iterator[Metric]:
        # Without describe() the registry would call collect(), and so the database, on register.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        up, feeds, depth, oldest, lag = self._families()
        try:
            figures = self._figures()
        except Exception as e:  # any failure, a bug included, must leave the rest of the scrape intact
            if self._up:
                event("metrics_database_down", logging.WARNING, error=f"{type(e).__name__}: {e}")
            self._up = False
            up.add_metric([], 0)
            yield up
            return
        if not self._up:
            event("metrics_database_up")
        self._up = True
        now = self._clock()
        up.add_metric([], 1)
        feeds.add_metric([], figures.active_feeds)
        depth.add_metric([], figures.pending_alerts)
        oldest.add_metric([], _seconds_since(figures.oldest_pending_at, now))
        lag.add_metric([], _seconds_since(figures.most_overdue_poll_at, now))
        yield from (up, feeds, depth, oldest, lag)

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("monitor_database_up",
                              "1 if the store figures could be read at this scrape, else 0."),
            GaugeMetricFamily("monitor_feeds", "Active feeds (in the current config)."),
            GaugeMetricFamily("monitor_outbox_depth", "Alerts pending delivery."),
            GaugeMetricFamily("monitor_oldest_pending_alert_age_seconds",
                              "Age of the oldest pending alert; 0 when none is pending."),
            GaugeMetricFamily("monitor_poll_lag_seconds",
                              "How far the most overdue active feed is past its next poll; 0 when none is overdue."),
        ]


def _seconds_since(when: datetime | None, now: datetime) -> float:
    """Seconds from `when` to `now`, never negative (a future time or none at all is 0)."""
    return 0.0 if when is None else max(0.0, (now - when).total_seconds())
