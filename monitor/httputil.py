"""HTTP details shared by feed fetching and webhook delivery (pure)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP-date), or None.

    `now` must be timezone-aware; a date in the past gives 0.
    """
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
