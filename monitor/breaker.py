"""A circuit breaker per webhook (pure: time is an argument): after repeated failures stop
sending a webhook's queue, then probe it with one alert until it answers again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

THRESHOLD = 5                       # consecutive failures that open the circuit
FIRST_COOLDOWN = timedelta(seconds=30)
MAX_COOLDOWN = timedelta(minutes=10)


@dataclass
class _Circuit:
    failures: int = 0
    open_until: datetime | None = None
    cooldown: timedelta = FIRST_COOLDOWN
    probing: bool = False


class Breakers:
    """The circuits of one deliverer, by webhook name.

    closed: send freely. open: send nothing until `open_until`. half-open (after that):
    let exactly one alert through as a probe; its success closes the circuit, its failure
    opens it again for twice as long (up to MAX_COOLDOWN)."""

    def __init__(self, threshold: int = THRESHOLD) -> None:
        self.threshold = threshold
        self._circuits: dict[str, _Circuit] = {}

    def state(self, name: str, now: datetime) -> str:
        circuit = self._circuits.get(name)
        if circuit is None or circuit.open_until is None:
            return "closed"
        if now < circuit.open_until or circuit.probing:
            return "open"
        return "half_open"

    def probe(self, name: str) -> None:
        """One alert goes out as the probe of a half-open circuit."""
        self._circuits[name].probing = True

    def record(self, name: str, ok: bool, now: datetime) -> str | None:
        """An attempt's result: "opened" or "closed" when the circuit changes, else None."""
        circuit = self._circuits.setdefault(name, _Circuit())
        was_open = circuit.open_until is not None
        if ok:
            self._circuits.pop(name)
            return "closed" if was_open else None
        circuit.failures += 1
        if circuit.probing:  # the probe failed: wait longer before the next one
            circuit.probing = False
            circuit.cooldown = min(circuit.cooldown * 2, MAX_COOLDOWN)
            circuit.open_until = now + circuit.cooldown
            return None
        if not was_open and circuit.failures >= self.threshold:
            circuit.open_until = now + circuit.cooldown
            return "opened"
        return None

    def retry_at(self, name: str) -> datetime | None:
        circuit = self._circuits.get(name)
        return circuit.open_until if circuit else None
