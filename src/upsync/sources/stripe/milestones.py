"""Info-level log lines that tell a person how a sync is doing, without flooding the log.

One line when a sync's backfill of a collection starts, one at each progress milestone, one
when it completes (with its count and duration), and one when the sync goes live on events.
Stripe's lists do not say how many objects they hold, so milestones are counted in objects
(every :attr:`BackfillLog.every_objects`) or in time (at most :attr:`BackfillLog.every_s`
seconds without a line while objects are arriving), whichever comes first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BackfillLog"]

_log = logging.getLogger("upsync.sources.stripe.source")


@dataclass
class _Collection:
    started: float
    start_count: int
    next_count: int
    last_line: float


@dataclass
class BackfillLog:
    """Milestone log lines for one sync's backfill and its switch to events."""

    label: str
    """how the lines name the sync, e.g. ``sync 'acme'``"""
    every_objects: int = 10_000
    every_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _collections: dict[str, _Collection] = field(default_factory=dict)
    _live: bool = False

    def started(self, collection_id: str, count: int) -> None:
        """The backfill of ``collection_id`` starts (``count`` objects already durable)."""
        now = self.clock()
        self._collections[collection_id] = _Collection(now, count, self._next(count), now)
        resumed = f" (resuming after {count} objects)" if count else ""
        _log.info("%s: backfill of %s started%s", self.label, collection_id, resumed)

    def progress(self, collection_id: str, count: int) -> None:
        """``count`` objects of ``collection_id`` are durable; log if a milestone was passed."""
        state = self._collections.get(collection_id)
        if state is None:
            return
        now = self.clock()
        if count < state.next_count and now - state.last_line < self.every_s:
            return
        state.next_count = self._next(count)
        state.last_line = now
        rate = (count - state.start_count) / max(now - state.started, 1e-3)
        _log.info(
            "%s: backfill of %s: %d objects so far (%.0f/s)",
            self.label,
            collection_id,
            count,
            rate,
        )

    def completed(self, collection_id: str, count: int) -> None:
        """The backfill of ``collection_id`` read its last page."""
        state = self._collections.pop(collection_id, None)
        took = 0.0 if state is None else self.clock() - state.started
        _log.info(
            "%s: backfill of %s complete: %d objects in %.1f s",
            self.label,
            collection_id,
            count,
            took,
        )

    def live(self, poll_interval: float) -> None:
        """The first successful poll of events after the backfill (logged once)."""
        if self._live:
            return
        self._live = True
        _log.info(
            "%s: live: following Stripe events (polling every %.1f s)", self.label, poll_interval
        )

    def _next(self, count: int) -> int:
        return (count // self.every_objects + 1) * self.every_objects
