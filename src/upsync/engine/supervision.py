"""How engine loops treat failures: retry what time can fix, stop on the rest and say so.

An engine loop (the sync runner, the consumer supervisor, each managed consumer) that meets an
error asks :func:`is_transient`. A transient error — the database restarting or unreachable,
a serialization failure or deadlock, an upstream that is down (``upsync.errors.TransientError``)
— is retried after a :class:`~upsync.backoff.Backoff` pause; nothing was acknowledged, so no
work is lost. Anything else (a missing table, a bad configuration, a programming error) is
not retried: the loop stops that task, logs it once with its traceback (:func:`stopped`), and
the task's :class:`~upsync.engine.health.TaskHealth` shows it until a person fixes the cause.
Postgres errors are classified by :mod:`upsync.pgerrors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from upsync import pgerrors
from upsync.backoff import Backoff
from upsync.engine.health import TaskHealth
from upsync.errors import TransientError

__all__ = ["DB_BACKOFF", "Backoff", "is_transient", "pause", "stopped", "supervise"]


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


async def supervise(
    work: Callable[[], Awaitable[bool]],
    *,
    stop: asyncio.Event,
    health: TaskHealth,
    log: logging.Logger,
    backoff: Backoff = DB_BACKOFF,
) -> None:
    """Run rounds of ``work`` until ``stop`` is set, it returns ``False``, or it fails for good.

    ``work`` does one round — typically: look for work, do it, wait for a notification — and
    returns whether to go on. A transient error (:func:`is_transient`) marks ``health``
    retrying, is logged as a warning and retried after a ``backoff`` pause; any other error
    stops the loop (:func:`stopped`). A round that succeeds marks ``health`` running, unless it
    reported trouble of its own (called ``health.retrying``, e.g. for a bad configuration it
    keeps re-reading).
    """
    while not stop.is_set():
        failures = health.failures
        try:
            go_on = await work()
        except Exception as e:
            if not is_transient(e):
                stopped(log, health, e)
                return
            health.retrying(e)
            log.warning("%s: %s (retrying)", health.name, health.last_error)
            await pause(stop, backoff.delay(health.failures))
            continue
        if health.failures == failures:
            health.ok()
        if not go_on:
            return
