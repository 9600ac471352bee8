"""Logging setup: one line per event, `event=name key=value ...`, or JSON on request."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from monitor.config import Config

logger = logging.getLogger("monitor")


def event(name: str, level: int = logging.INFO, *,
          exc_info: bool | BaseException | None = None, **fields: Any) -> None:
    """Log one event with its fields; values are quoted only when they need it.

    exc_info=True (inside `except`) or an exception adds its traceback as `exc`."""
    logger.log(level, name, exc_info=exc_info, extra={"fields": fields})


def _value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _content(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    """Our events carry `fields`; anything else (a library, a captured warning) is `library_log`."""
    fields = getattr(record, "fields", None)
    if fields is None:
        return "library_log", {"logger": record.name, "message": record.getMessage()}
    return record.getMessage(), fields


class _Formatter(logging.Formatter):
    """What both formats share: the secrets to cut out of every finished line."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()

    def redact(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= 4:  # shorter ones would blank out ordinary words
                # As written and as repr() writes it inside a list or dict; each also as it
                # reads inside a quoted value or a JSON string (quotes, backslashes escaped).
                for form in (secret, repr(secret)[1:-1]):
                    forms.update((form, json.dumps(form, ensure_ascii=False)[1:-1]))
        # Longest first, so a secret containing another is cut whole.
        self.secrets = tuple(sorted(forms, key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        line = self.render(record)
        for secret in self.secrets:
            line = line.replace(secret, "***")
        return line

    def render(self, record: logging.LogRecord) -> str:
        raise NotImplementedError


class KeyValueFormatter(_Formatter):
    def render(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        name, fields = _content(record)
        parts = [when, record.levelname.lower(), f"event={_value(name)}"]
        parts += [f"{k}={_value(v)}" for k, v in fields.items() if v is not None]
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JSONFormatter(_Formatter):
    def render(self, record: logging.LogRecord) -> str:
        name, fields = _content(record)
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": name,
        }
        out.update({k: v for k, v in fields.items() if v is not None})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time, as logging.lastResort does, so a
    redirect made after setup (pytest's capture, for one) still gets the lines."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _by_design(record: logging.LogRecord) -> bool:
    """False for APScheduler's notes on ticks it skipped: with max_instances=1 and coalesce,
    skipping a tick while the last pass still runs is the design, not a problem."""
    if not record.name.startswith("apscheduler."):
        return True
    template = str(record.msg)
    return not ("maximum number of running instances reached" in template
                or template.startswith('Run time of job "%s" was missed'))


def _ours(root: logging.Logger) -> list[tuple[logging.Handler, _Formatter]]:
    return [(h, h.formatter) for h in root.handlers if isinstance(h.formatter, _Formatter)]


def setup(level: str = "info", json_lines: bool = False) -> None:
    """Log everything to stderr through one formatter: our events at `level`, libraries'
    records (APScheduler, asyncio, captured warnings) from WARNING up as `library_log`."""
    formatter: _Formatter = JSONFormatter() if json_lines else KeyValueFormatter()
    root = logging.getLogger()
    # Replace only our own handler (pytest's capture on root stays). Setting up again, for
    # the config's log_format after the command line's, keeps the secrets.
    for previous, old in _ours(root):
        formatter.secrets = old.secrets
        root.removeHandler(previous)
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_by_design)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # Our events reach root's handler by propagation, at the level asked for.
    logger.handlers.clear()
    logger.setLevel(level.upper())
    logger.propagate = True
    # Pinned, not just inherited from root: they log every request below WARNING.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Otherwise warnings are printed raw to stderr, which would break JSON mode.
    logging.captureWarnings(True)


def redact(secrets: Iterable[str]) -> None:
    """Write `***` for each secret (4+ characters) wherever it would appear in a log line,
    exception text included. Replaces the previous set: call it again after a reload."""
    secrets = list(secrets)
    for _, formatter in _ours(logging.getLogger()):
        formatter.redact(secrets)


MIN_URL_SECRET = 16  # Slack's /services/T…/B…/… and Discord's /api/webhooks/… are far longer


def secrets_in(config: Config) -> list[str]:
    """What must never reach a log: webhook secrets and header values, each webhook URL's
    path and query when long enough to hold a token (Slack, Discord and Teams put it
    there; the host stays readable), and the database password."""
    found: list[str | None] = []
    for hook in config.webhooks:
        found.append(hook.secret)
        for _, value in hook.headers:
            # "Bearer <token>": the token alone may turn up in a message too.
            found += [value, *value.split()[1:]]
        url = urlsplit(hook.url)
        tail = url.path + (f"?{url.query}" if url.query else "")
        # A short path ("/monitor", "/hooks/alerts") is a route, not a token, and would
        # blank out ordinary words (file paths) in other lines.
        found += [tail if len(tail) >= MIN_URL_SECRET else None, url.password]
    from sqlalchemy.engine import make_url  # here: parse workers import this module too, and need no SQLAlchemy

    database = config.settings.database
    # Both as SQLAlchemy decodes it and as written (percent-encoded) in the URL.
    found += [make_url(database).password, urlsplit(database).password]
    return list(dict.fromkeys(s for s in found if s))
