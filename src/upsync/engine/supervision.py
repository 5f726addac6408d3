"""How engine loops treat failures: retry what time can fix, stop on the rest and say so.

An engine loop (the sync runner, the consumer supervisor, each managed consumer) that meets an
error asks :func:`is_transient`. A transient error — the database restarting or unreachable,
a serialization failure or deadlock, an upstream that is down (``upsync.errors.TransientError``)
— is retried after a :class:`Backoff` pause; nothing was acknowledged, so no work is lost.
Anything else (a missing table, a bad configuration, a programming error) is not retried: the
loop stops that task, logs it once with its traceback (:func:`stopped`), and the task's
:class:`~upsync.engine.health.TaskHealth` shows it until a person fixes the cause. Postgres
errors are classified by :mod:`upsync.pgerrors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

from upsync import pgerrors
from upsync.engine.health import TaskHealth
from upsync.errors import TransientError

__all__ = ["DB_BACKOFF", "Backoff", "is_transient", "pause", "stopped"]


@dataclass(frozen=True)
class Backoff:
    """Growing, jittered pauses between retries.

    The n-th consecutive failure waits ``min(max_s, base_s * 2**(n-1))``, less a random
    ``jitter`` fraction (so many tasks do not retry in step).
    """

    base_s: float = 0.2
    max_s: float = 30.0
    jitter: float = 0.5

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        full = min(self.max_s, self.base_s * 2.0 ** max(0, min(failures - 1, 60)))
        return full * (1.0 - self.jitter * (rng or random).random())


#: pauses between retries after a transient database error (a batch, a catalog read)
DB_BACKOFF = Backoff(base_s=0.2, max_s=30.0)


def is_transient(error: BaseException) -> bool:
    """Whether retrying later may succeed: a transient upsync error or Postgres error."""
    return isinstance(error, TransientError) or pgerrors.is_transient(error)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def stopped(log: logging.Logger, health: TaskHealth, error: BaseException) -> None:
    """Record that ``health``'s task stopped on ``error`` and log it once, with its traceback."""
    health.stop(error)
    log.error(
        "%s stopped: %s (not retried; fix the cause, then change or restart it)",
        health.name,
        health.last_error,
        exc_info=error,
    )
