"""Where "now" comes from.

Every timed decision (ack deadlines, redelivery, the ``1h`` deliver policy, record timestamps) is
made in SQL as ``coalesce(%(now)s, now())``: the database's clock by default, so that several
processes agree, or an injected instant so tests can move time without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime | None]
"""Returns the current instant, or ``None`` for "use the database's ``now()``"."""


def db_clock() -> datetime | None:
    """The default clock: defer to the database's ``now()``."""
    return None


class ManualClock:
    """A clock that only moves when told to (for tests and simulations)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, *, ms: float = 0, seconds: float = 0, hours: float = 0) -> datetime:
        """Move forward and return the new instant."""
        self.now += timedelta(milliseconds=ms, seconds=seconds, hours=hours)
        return self.now
