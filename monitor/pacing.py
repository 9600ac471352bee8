"""Pacing per webhook (pure: time is an argument): a token bucket for `rate_limit`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_RATE = re.compile(r"([1-9][0-9]{0,5})/([smh])")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}

# What each target publishes or is known to take (../docs in WEBHOOKS.md): Slack about one
# message a second per webhook, Discord 30 a minute, Teams Workflows 4 a second, ntfy.sh a
# message every 5 s once a burst is spent. Your own json receiver: no limit.
DEFAULT_RATES = {"slack": "1/s", "discord": "30/m", "teams": "4/s", "mattermost": "10/s",
                 "ntfy": "12/m"}


@dataclass(frozen=True)
class Rate:
    """`count` messages per `seconds`; the bucket holds up to `count` (one window's burst)."""

    count: int
    seconds: float

    def __str__(self) -> str:
        unit = next(u for u, s in _PER.items() if s == self.seconds)
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate:
    """"30/m" → Rate(30, 60); ValueError with a clear message."""
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'invalid rate "{text}": write N/s, N/m or N/h, like "30/m"')
    return Rate(int(match.group(1)), _PER[match.group(2)])


class Buckets:
    """One token bucket per webhook name, refilled continuously at its rate."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[float, datetime]] = {}

    def available(self, name: str, rate: Rate, now: datetime) -> int:
        """Whole messages that may go out now."""
        return int(self._refill(name, rate, now))

    def take(self, name: str, rate: Rate, now: datetime) -> bool:
        tokens = self._refill(name, rate, now)
        if tokens < 1:
            return False
        self._tokens[name] = (tokens - 1, now)
        return True

    def _refill(self, name: str, rate: Rate, now: datetime) -> float:
        tokens, then = self._tokens.get(name, (float(rate.count), now))
        elapsed = max(0.0, (now - then).total_seconds())
        tokens = min(float(rate.count), tokens + elapsed * rate.count / rate.seconds)
        self._tokens[name] = (tokens, now)
        return tokens
