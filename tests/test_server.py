"""The ops server on a real socket: /metrics parsed as Prometheus text, /healthz, errors."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from monitor.errors import MonitorError, StorageError
from monitor.metrics import HTTP_BUCKETS, Metrics, StoreFigures
from monitor.server import Health, Liveness, OpsServer

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def healthy() -> tuple[bool, str]:
    return True, "ok"


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[OpsServer, httpx.Client]]]:
    """Start an OpsServer on 127.0.0.1:0; stopped (and its client closed) after the test."""
    started: list[tuple[OpsServer, httpx.Client]] = []

    def start(metrics: Metrics | None = None, health: Health = healthy) -> tuple[OpsServer, httpx.Client]:
        server = OpsServer("127.0.0.1", 0, metrics or Metrics(), health)
        server.start()
        # trust_env=False: an HTTP_PROXY in the environment must not catch 127.0.0.1.
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", trust_env=False, timeout=5)
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        client.close()
        server.stop()


def scrape(client: httpx.Client) -> dict[str, tuple[str, list[Sample]]]:
    """GET /metrics → {family name: (type, samples)}, parsed by prometheus_client itself."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(response.text)}


def value(families: dict[str, tuple[str, list[Sample]]], sample: str, **labels: str) -> float:
    family = sample.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
    matches = [s.value for s in families[family][1] if s.name == sample and s.labels == labels]
    assert len(matches) == 1, f"{sample}{labels}: {matches}"
    return matches[0]


# --- /metrics ------------------------------------------------------------------------


def test_counters_and_histograms_after_polls_and_deliveries(serve) -> None:
    metrics = Metrics()
    metrics.polled("ok", 0.12, seen=10, new=3, alerts=2)
    metrics.polled("ok", 0.004, seen=5, new=0, alerts=0)
    metrics.polled("not_modified", 0.02)
    metrics.polled("error", None)
    metrics.delivered("delivered", 0.05)
    metrics.delivered("retry", 31.0)
    _, client = serve(metrics)

    families = scrape(client)

    assert families["monitor_polls"][0] == "counter"
    assert value(families, "monitor_polls_total", result="ok") == 2
    assert value(families, "monitor_polls_total", result="not_modified") == 1
    assert value(families, "monitor_polls_total", result="error") == 1
    assert value(families, "monitor_items_seen_total") == 15
    assert value(families, "monitor_items_new_total") == 3
    assert value(families, "monitor_alerts_created_total") == 2
    assert families["monitor_deliveries"][0] == "counter"
    assert value(families, "monitor_deliveries_total", outcome="delivered") == 1
    assert value(families, "monitor_deliveries_total", outcome="retry") == 1
    assert value(families, "monitor_deliveries_total", outcome="failed") == 0

    fetch = "monitor_fetch_duration_seconds"
    assert families[fetch][0] == "histogram"
    assert value(families, f"{fetch}_count") == 3  # the error measured no time
    assert value(families, f"{fetch}_sum") == pytest.approx(0.144)
    assert value(families, f"{fetch}_bucket", le="0.005") == 1
    assert value(families, f"{fetch}_bucket", le="0.025") == 2
    assert value(families, f"{fetch}_bucket", le="+Inf") == 3
    les = [s.labels["le"] for s in families[fetch][1] if s.name == f"{fetch}_bucket"]
    assert les == [*(str(float(b)) for b in HTTP_BUCKETS), "+Inf"]
    assert HTTP_BUCKETS[0] == 0.005 and HTTP_BUCKETS[-1] == 30.0

    delivery = "monitor_delivery_duration_seconds"
    assert families[delivery][0] == "histogram"
    assert value(families, f"{delivery}_count") == 2
    assert value(families, f"{delivery}_bucket", le="30.0") == 1  # 31 s only in +Inf
    assert value(families, f"{delivery}_bucket", le="+Inf") == 2


def test_every_label_value_is_exported_from_the_start(serve) -> None:
    _, client = serve(Metrics())
    families = scrape(client)
    assert {s.labels["result"] for s in families["monitor_polls"][1] if s.name.endswith("_total")} == \
        {"ok", "not_modified", "error"}
    assert {s.labels["outcome"] for s in families["monitor_deliveries"][1] if s.name.endswith("_total")} == \
        {"delivered", "retry", "failed"}
    assert "monitor_database_up" not in families  # no figures function, no store gauges


def test_content_type_is_prometheus_text(serve) -> None:
    _, client = serve()
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    body, content_type = Metrics().render()
    assert response.headers["content-type"] == content_type
    assert body.startswith(b"# HELP")


def test_unknown_label_values_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="poll result"):
        metrics.polled("timeout", 1.0)
    with pytest.raises(ValueError, match="delivery outcome"):
        metrics.delivered("ok", 1.0)


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # a global registry would refuse the second
    first.polled("ok", 0.1, seen=1)
    assert b"monitor_items_seen_total 1.0" in first.render()[0]
    assert b"monitor_items_seen_total 0.0" in second.render()[0]


def test_store_gauges_are_read_at_scrape_time(serve) -> None:
    figures = StoreFigures(active_feeds=5, pending_alerts=3,
                           oldest_pending_at=NOW - timedelta(seconds=90),
                           most_overdue_poll_at=NOW - timedelta(seconds=30))
    calls: list[StoreFigures] = []

    def read() -> StoreFigures:
        calls.append(figures)
        return figures

    _, client = serve(Metrics(figures=read, clock=lambda: NOW))
    assert not calls  # registering must not touch the database
    families = scrape(client)

    assert len(calls) == 1
    for name in ("monitor_database_up", "monitor_feeds", "monitor_outbox_depth",
                 "monitor_oldest_pending_alert_age_seconds", "monitor_poll_lag_seconds"):
        assert families[name][0] == "gauge", name
    assert value(families, "monitor_database_up") == 1
    assert value(families, "monitor_feeds") == 5
    assert value(families, "monitor_outbox_depth") == 3
    assert value(families, "monitor_oldest_pending_alert_age_seconds") == 90
    assert value(families, "monitor_poll_lag_seconds") == 30

    figures = StoreFigures(active_feeds=2, pending_alerts=0, oldest_pending_at=None,
                           most_overdue_poll_at=NOW + timedelta(minutes=5))  # not due yet
    families = scrape(client)
    assert value(families, "monitor_feeds") == 2
    assert value(families, "monitor_outbox_depth") == 0
    assert value(families, "monitor_oldest_pending_alert_age_seconds") == 0
    assert value(families, "monitor_poll_lag_seconds") == 0

    figures = StoreFigures(0, 0, None, None)
    assert value(scrape(client), "monitor_poll_lag_seconds") == 0


def test_a_failing_store_leaves_the_rest_of_the_scrape(serve) -> None:
    down = True

    def read() -> StoreFigures:
        if down:
            raise StorageError("database is locked")
        return StoreFigures(1, 0, None, None)

    metrics = Metrics(figures=read, clock=lambda: NOW)
    metrics.polled("ok", 0.1, seen=4)
    _, client = serve(metrics)

    families = scrape(client)
    assert value(families, "monitor_database_up") == 0
    for name in ("monitor_feeds", "monitor_outbox_depth", "monitor_oldest_pending_alert_age_seconds",
                 "monitor_poll_lag_seconds"):
        assert name not in families, name  # absent, not a misleading 0
    assert value(families, "monitor_items_seen_total") == 4

    down = False
    families = scrape(client)
    assert value(families, "monitor_database_up") == 1
    assert value(families, "monitor_feeds") == 1


# --- /healthz ------------------------------------------------------------------------


def test_healthz_ok_and_head(serve) -> None:
    _, client = serve()
    response = client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    head = client.head("/healthz")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "3"
    assert client.get("/healthz?verbose=1").status_code == 200  # a query string is ignored


def test_healthz_reports_a_stale_poll_loop(serve) -> None:
    ticks = Ticks()
    liveness = Liveness(limit=60, clock=ticks)
    _, client = serve(health=lambda: liveness.check(lambda: None))

    ticks.now += 59  # never ticked, but still within the start-up grace
    assert client.get("/healthz").status_code == 200
    ticks.now += 2
    response = client.get("/healthz")
    assert (response.status_code, response.text) == (503, "poll loop has not ticked yet\n")

    liveness.ticked()
    ticks.now += 60
    assert client.get("/healthz").text == "ok\n"
    ticks.now += 35
    response = client.get("/healthz")
    assert (response.status_code, response.text) == (503, "poll loop last ticked 95 s ago (limit 60 s)\n")
    assert client.head("/healthz").status_code == 503

    liveness.ticked()
    assert client.get("/healthz").status_code == 200


def test_healthz_reports_a_failing_database(serve) -> None:
    liveness = Liveness(limit=60, clock=Ticks())

    def ping() -> None:
        raise StorageError("could not connect to server: Connection refused\n\tIs the server running?")

    _, client = serve(health=lambda: liveness.check(ping))
    response = client.get("/healthz")
    assert (response.status_code, response.text) == (503, "database: could not connect to server: Connection refused\n")


def test_healthz_when_the_check_itself_breaks(serve) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("bug")

    _, client = serve(health=broken)
    response = client.get("/healthz")
    assert (response.status_code, response.text) == (503, "health check failed: RuntimeError: bug\n")


def test_liveness_checks_the_database_first() -> None:
    ticks = Ticks()
    liveness = Liveness(limit=10, clock=ticks)
    ticks.now += 100

    def ping() -> None:
        raise OSError()

    assert liveness.check(ping) == (False, "database: OSError")
    assert liveness.check(lambda: None) == (False, "poll loop has not ticked yet")


# --- everything else -----------------------------------------------------------------


def test_unknown_paths_and_methods(serve) -> None:
    _, client = serve()
    assert client.get("/").status_code == 404
    assert client.get("/metrics/extra").status_code == 404
    assert client.head("/nope").status_code == 404
    response = client.post("/metrics", content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert client.delete("/healthz").status_code == 405
    assert client.put("/nope").status_code == 404


def test_requests_write_nothing_to_stderr(serve, capfd) -> None:
    _, client = serve()
    client.get("/healthz")
    client.get("/nope")
    client.post("/metrics")
    assert capfd.readouterr().err == ""


def test_a_port_in_use_is_a_monitor_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = OpsServer("127.0.0.1", port, Metrics(), healthy)
        with pytest.raises(MonitorError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: ") as info:
            server.start()
    assert isinstance(info.value.__cause__, OSError)
    server.stop()  # never started: nothing to do


def test_a_bad_host_is_a_monitor_error() -> None:
    server = OpsServer("no-such-host.invalid", 0, Metrics(), healthy)
    with pytest.raises(MonitorError, match=r"^cannot listen on no-such-host\.invalid:0: "):
        server.start()


def test_stop_frees_the_port(serve) -> None:
    server, client = serve()
    port = server.port
    assert port != 0
    assert client.get("/healthz").status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        client.get("/healthz")
    server.stop()  # a second stop is harmless

    again = OpsServer("127.0.0.1", port, Metrics(), healthy)  # a restart gets the same port
    again.start()
    try:
        assert again.port == port
        with httpx.Client(trust_env=False) as fresh:
            assert fresh.get(f"http://127.0.0.1:{port}/healthz").text == "ok\n"
    finally:
        again.stop()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = OpsServer("::1", 0, Metrics(), healthy)
    try:
        server.start()
    except MonitorError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    try:
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"http://[::1]:{server.port}/healthz").status_code == 200
    finally:
        server.stop()
