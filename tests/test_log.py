"""Log lines as an operator reads them: our events, library records in the same format,
job failures once with their traceback, and no secret in any line."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES

from monitor import log
from monitor.config import Config, Settings, WebhookConfig
from monitor.log import event
from monitor.scheduler import build_scheduler

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup() changes process-wide state: put it back for the other tests."""
    root, ours = logging.getLogger(), log.logger
    saved = root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate
    yield
    logging.captureWarnings(False)
    root.handlers[:], ours.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    ours.setLevel(saved[3])
    ours.propagate = saved[4]


def lines(capfd: pytest.CaptureFixture[str]) -> list[str]:
    return capfd.readouterr().err.splitlines()


def json_lines(capfd: pytest.CaptureFixture[str]) -> list[dict]:
    """Every line on stderr, each of which must be one JSON object."""
    out = []
    for line in lines(capfd):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line on stderr: {line!r}")
    return out


# --- our events ------------------------------------------------------------------------


def test_our_events_keep_their_text_format(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("info")
    event("polled", feed="https://feeds.example/world.xml", status=200, new=2, baseline=None)
    event("delivery_retry", logging.WARNING, error="connection refused", webhook="ops")
    assert [re.sub(TS, "TS", line) for line in lines(capfd)] == [
        "TS info event=polled feed=https://feeds.example/world.xml status=200 new=2",
        'TS warning event=delivery_retry error="connection refused" webhook=ops',
    ]


def test_exc_info_adds_the_traceback_not_a_field(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("info", json_lines=True)
    try:
        raise KeyError("feed_id")
    except KeyError as e:
        event("poll_crashed", logging.ERROR, error=f"{type(e).__name__}: {e}", exc_info=True)
    event("poll_crashed", logging.ERROR, error="StorageError: down", exc_info=False)
    crashed, plain = json_lines(capfd)
    assert "exc_info" not in crashed and "Traceback" in crashed["exc"] and "KeyError" in crashed["exc"]
    assert set(plain) == {"ts", "level", "event", "error"}


def test_the_monitor_level_is_as_given_and_libraries_log_from_warning(
        capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("debug")
    event("debug_note", logging.DEBUG)
    for name in ("somelib", "httpx", "apscheduler.scheduler"):
        logging.getLogger(name).info("chatter")
    logging.getLogger("somelib").warning("disk at %d%%", 91)
    got = [re.sub(TS, "TS", line) for line in lines(capfd)]
    assert got == ["TS debug event=debug_note",
                   'TS warning event=library_log logger=somelib message="disk at 91%"']
    log.setup("warning")
    event("polled")
    assert lines(capfd) == []


def test_library_records_are_json_too(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("info", json_lines=True)
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("somelib.pool").exception("worker %s died", 3)
    (record,) = json_lines(capfd)
    assert record["level"] == "error" and record["event"] == "library_log"
    assert record["logger"] == "somelib.pool" and record["message"] == "worker 3 died"
    assert "ZeroDivisionError" in record["exc"]


def test_captured_warnings_are_library_log(capfd: pytest.CaptureFixture[str]) -> None:
    logging.captureWarnings(False)  # an earlier setup under pytest's own warning capture
    log.setup("info", json_lines=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old option", DeprecationWarning, stacklevel=1)
    (record,) = json_lines(capfd)
    assert record["event"] == "library_log" and record["logger"] == "py.warnings"
    assert "DeprecationWarning: old option" in record["message"]


def test_a_never_retrieved_task_exception_is_library_log(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("info", json_lines=True)

    async def fail() -> None:
        raise ValueError("lost in a task")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(fail())
        await asyncio.sleep(0.01)
        assert task.done()
        del task
        gc.collect()  # asyncio reports the unretrieved exception when the task is collected

    asyncio.run(main())
    (record,) = json_lines(capfd)
    assert record["event"] == "library_log" and record["logger"] == "asyncio"
    assert record["message"].startswith("Task exception was never retrieved")
    assert "ValueError: lost in a task" in record["exc"]


# --- the scheduler ---------------------------------------------------------------------


async def _noop() -> None:
    pass


def test_a_job_that_raises_logs_job_failed_once(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("info", json_lines=True)
    calls = 0

    async def poll() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database on fire")

    async def main() -> None:
        scheduler = build_scheduler(poll=poll, deliver=_noop, maintain=_noop, tick_seconds=0.05)
        scheduler.start()
        for _ in range(100):  # the job keeps its schedule after failing
            if calls >= 2:
                break
            await asyncio.sleep(0.02)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    records = json_lines(capfd)
    assert calls >= 2
    assert records == [records[0]], records
    (failed,) = records
    assert failed["event"] == "job_failed" and failed["level"] == "error"
    assert failed["job"] == "poll" and failed["error"] == "RuntimeError: database on fire"
    assert failed["exc"].startswith("Traceback") and "in poll" in failed["exc"]


def test_skipped_ticks_stay_quiet_but_apscheduler_errors_show(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("info")
    skipped = 0

    def count(_: object) -> None:
        nonlocal skipped
        skipped += 1

    async def slow() -> None:
        await asyncio.sleep(0.3)

    async def main() -> None:
        scheduler = build_scheduler(poll=slow, deliver=_noop, maintain=_noop, tick_seconds=0.05)
        scheduler.add_listener(count, EVENT_JOB_MAX_INSTANCES)
        scheduler.start()
        await asyncio.sleep(0.5)
        scheduler.shutdown(wait=False)  # cancels the running pass: no job_failed for that
        await asyncio.sleep(0.05)

    asyncio.run(main())
    logging.getLogger("apscheduler.executors.default").warning(
        'Run time of job "%s" was missed by %s', "poll", "0:00:02")
    logging.getLogger("apscheduler.scheduler").error("Error getting due jobs from job store %r: %s",
                                                     "default", "locked")
    assert skipped > 0  # APScheduler did skip ticks, and said nothing about it
    got = [re.sub(TS, "TS", line) for line in lines(capfd)]
    assert got == ["TS error event=library_log logger=apscheduler.scheduler "
                   "message=\"Error getting due jobs from job store 'default': locked\""]


# --- secrets ---------------------------------------------------------------------------

SLACK_PATH = "/services/T0001/B0002/XXXXsecrettoken"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = 'tok"en\\with-quote'         # a quote and a backslash: escaped in quoted values and JSON
DB_PASSWORD = "p@ss word!"            # percent-encoded in the URL


def secret_config() -> Config:
    hooks = (
        WebhookConfig("slack", f"https://hooks.slack.com{SLACK_PATH}", format="slack"),
        WebhookConfig("ops", "https://ops.example/hook?key=querysecret", secret=SIGNING,
                      headers=(("Authorization", f"Bearer {TOKEN}"), ("X-Api-Key", "apikey-1234"))),
    )
    database = "postgresql+psycopg://monitor:p%40ss%20word%21@db.internal:5432/monitor"
    return Config(Path("monitor.toml"), Settings(database=database), hooks, (), ())


def test_secrets_in_collects_each_kind() -> None:
    assert log.secrets_in(secret_config()) == [
        SLACK_PATH, SIGNING, f"Bearer {TOKEN}", TOKEN, "apikey-1234", "/hook?key=querysecret",
        DB_PASSWORD, "p%40ss%20word%21",
    ]


def test_a_short_webhook_path_is_a_route_not_a_secret() -> None:
    # Redacting "/monitor" would also blank "/tmp/ex/monitor.db" in the `started` line.
    hooks = (WebhookConfig("local", "http://127.0.0.1:9/"), WebhookConfig("m", "http://127.0.0.1:8080/monitor"))
    config = Config(Path("m.toml"), Settings(), hooks, (), ())
    assert log.secrets_in(config) == []


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_no_secret_reaches_a_line(capfd: pytest.CaptureFixture[str], json_mode: bool) -> None:
    log.setup("info", json_lines=json_mode)
    config = secret_config()
    log.redact(log.secrets_in(config))
    hook = config.webhooks[1]
    event("delivery_retry", logging.WARNING, webhook="slack",
          error=f"503 from https://hooks.slack.com{SLACK_PATH}")
    event("delivery_retry", logging.WARNING, webhook="ops", error=f"401 for {hook.url}",
          sent=dict(hook.headers), signing=hook.secret)
    event("note", token=TOKEN)
    try:
        raise ConnectionError(f"cannot connect to monitor:{DB_PASSWORD}@db.internal "
                              "(postgresql+psycopg://monitor:p%40ss%20word%21@db.internal/monitor)")
    except ConnectionError:
        event("poll_tick_failed", logging.ERROR, error="database down", exc_info=True)
    try:
        raise PermissionError(f"bad signature with {SIGNING}")
    except PermissionError:
        logging.getLogger("somelib").exception("request failed")
    out = capfd.readouterr().err
    if json_mode:
        assert all(json.loads(line) for line in out.splitlines())
    # A fragment of each, so that no escaped form (JSON, repr in the dict) slips through either.
    for fragment in ("secrettoken", "MfKQ9r8G", "with-quote", "apikey", "querysecret", "ss word",
                     "ss%20word"):
        assert fragment not in out
    assert out.count("***") >= 9
    assert "https://hooks.slack.com***" in out and "https://ops.example***" in out  # hosts stay


def test_redact_replaces_the_set_and_survives_a_second_setup(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup("info")
    log.redact(["old-secret", "abc"])
    event("note", a="old-secret", b="abc")
    log.redact(["new-secret", "new-secret-longer"])
    log.setup("info", json_lines=True)
    event("note", a="old-secret", b="new-secret", c="new-secret-longer")
    first, second = lines(capfd)
    assert first.endswith("a=*** b=abc")  # three characters are too short to redact
    assert json.loads(second) | {"ts": None} == {"ts": None, "level": "info", "event": "note",
                                                 "a": "old-secret", "b": "***", "c": "***"}
