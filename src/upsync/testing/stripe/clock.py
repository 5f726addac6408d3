"""The stand-in's controllable clock: wall time plus an offset that tests can advance."""

from __future__ import annotations

import threading
import time

__all__ = ["Clock"]


class Clock:
    """Drives every ``created`` timestamp and the 30-day event horizon.

    The clock only moves forward: ``advance`` adds to an offset over real time, so objects
    created later never get an earlier ``created`` than ones created before (list order relies
    on it). Webhook signatures use real time instead, as the receiver checks them against its
    own wall clock.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> int:
        """The current stand-in time, in epoch seconds."""
        return int(self.time())

    def time(self) -> float:
        """The current stand-in time, in fractional epoch seconds."""
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> int:
        """Move the clock forward by ``seconds`` (≥ 0); returns the new :meth:`now`."""
        if seconds < 0:
            raise ValueError("the stand-in clock cannot go backwards")
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        """Seconds the stand-in clock runs ahead of real time."""
        with self._lock:
            return self._offset
