"""Logging setup: one line per event, `event=name key=value ...`, or JSON on request."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("monitor")


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields; values are quoted only when they need it."""
    logger.log(level, name, extra={"fields": fields})


def _value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        fields = getattr(record, "fields", {})
        parts = [when, record.levelname.lower(), f"event={_value(record.getMessage())}"]
        parts += [f"{k}={_value(v)}" for k, v in fields.items() if v is not None]
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        out.update({k: v for k, v in getattr(record, "fields", {}).items() if v is not None})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str = "info", json_lines: bool = False) -> None:
    """Log to stderr; quiet the libraries that would otherwise log every request."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if json_lines else KeyValueFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # APScheduler warns each time a tick is skipped because the last pass still runs,
    # which is the design here (max_instances=1), not a problem.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
