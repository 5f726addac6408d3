"""The worker loop: pull a batch, hand it to your code, ack after it succeeded, nack with
backoff when it failed, stop cleanly on a signal. The protocol is a generator of steps
(:func:`_worker_steps`), performed by a blocking and an async driver."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import signal
import threading
from collections.abc import (
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from upsync.client._calls import T
from upsync.client.http import AsyncClient, Client
from upsync.errors import (
    ConfigurationError,
    InvalidAckToken,
    TransientError,
)
from upsync.records import Record
from upsync.redact import redact
from upsync.stream.models import Batch

log = logging.getLogger("upsync.client")

# -- the worker loop -------------------------------------------------------------------------


@dataclass
class Backoff:
    """Bounded exponential backoff with jitter: the n-th consecutive failure waits a random
    time between half and all of ``min(cap_s, base_s * 2**(n-1))``."""

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * float(2 ** min(self.failures - 1, 30)))
        return ceiling * (0.5 + self.rng.random() / 2)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class WorkerStats:
    """What a worker loop did before it stopped."""

    batches: int = 0
    """Batches handled and acked."""
    records: int = 0
    """Records in those batches."""
    failures: int = 0
    """Batches whose handler raised (they were nacked)."""
    errors: int = 0
    """Failed calls to the API (next, ack or nack)."""


@dataclass(frozen=True, slots=True)
class _Pull:
    pass


@dataclass(frozen=True, slots=True)
class _Handle:
    records: list[Record]


@dataclass(frozen=True, slots=True)
class _Ack:
    tokens: list[str]


@dataclass(frozen=True, slots=True)
class _Nack:
    tokens: list[str]


@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float


_Action = _Pull | _Handle | _Ack | _Nack | _Sleep


class _Stopping(Exception):
    """Thrown into the worker steps when a batch arrives after the stop was requested."""


def _worker_steps(
    consumer: str, *, wait_for_ms: int, idle_s: float, backoff: Backoff, stats: WorkerStats
) -> Generator[_Action, Any, None]:
    """The worker's decisions, free of I/O: yields what to do, receives (or is thrown) the
    outcome. Shared by the blocking and the asyncio drivers."""
    while True:
        try:
            batch: Batch = yield _Pull()
        except TransientError as e:
            stats.errors += 1
            delay = backoff.next_delay()
            log.warning(
                "upsync worker %r: next failed (%s); retrying in %.1fs",
                consumer,
                redact(str(e)),
                delay,
            )
            yield _Sleep(delay)
            continue
        if not batch.messages:
            if wait_for_ms < 100:  # no long poll to pace us: do not spin
                yield _Sleep(idle_s)
            continue
        tokens = [m.ack_token for m in batch.messages]
        try:
            yield _Handle([m.record for m in batch.messages])
        except _Stopping:
            yield from _give_back(consumer, tokens, stats, "stopping")
            return
        except Exception as e:
            stats.failures += 1
            delay = backoff.next_delay()
            log.error(
                "upsync worker %r: handler failed on %d record(s): %s; nacked, next pull in %.1fs",
                consumer,
                len(tokens),
                redact(f"{type(e).__name__}: {e}"),
                delay,
            )
            yield from _give_back(consumer, tokens, stats, "handler failed")
            yield _Sleep(delay)
            continue
        try:
            yield _Ack(tokens)
        except (TransientError, InvalidAckToken) as e:
            # the batch was applied; it will be redelivered and re-applied (idempotently)
            stats.errors += 1
            log.warning(
                "upsync worker %r: ack failed (%s); the batch will be redelivered",
                consumer,
                redact(str(e)),
            )
        else:
            stats.batches += 1
            stats.records += len(tokens)
        backoff.reset()


def _give_back(
    consumer: str, tokens: list[str], stats: WorkerStats, why: str
) -> Generator[_Action, Any, None]:
    try:
        yield _Nack(tokens)
    except (TransientError, InvalidAckToken) as e:
        # not lost: the messages come back once their ack window expires
        stats.errors += 1
        log.warning("upsync worker %r: nack after %s failed (%s)", consumer, why, redact(str(e)))


Handler = Callable[[list[Record]], object]
AsyncHandler = Callable[[list[Record]], Awaitable[object] | object]


def run_worker(
    client: Client,
    consumer: str,
    handler: Handler,
    *,
    batch_size: int = 100,
    wait_for_ms: int = 5000,
    stop: threading.Event | None = None,
    install_signal_handlers: bool = False,
    backoff: Backoff | None = None,
    idle_s: float = 1.0,
) -> WorkerStats:
    """Pull batches from ``consumer`` and hand their records to ``handler`` until ``stop``.

    A batch is acked only after ``handler`` returned; if it raised, the batch is nacked (so it
    is redelivered) and the next pull waits a jittered, exponentially growing delay. Failed API
    calls are retried the same way. Stopping never loses a batch: one arriving after the stop
    was requested is nacked, and anything un-acked is redelivered by the server anyway.

    Args:
        client: a :class:`Client`.
        consumer: the consumer's id or name.
        handler: called with the batch's records (e.g. ``lambda rs: sink.apply(conn, rs)``).
        batch_size: at most this many records per batch.
        wait_for_ms: long-poll time of each pull; it bounds how long a stop takes.
        stop: set it to stop after the batch in hand.
        install_signal_handlers: SIGINT and SIGTERM set ``stop`` (main thread only); a second
            signal gets the previous handler (e.g. KeyboardInterrupt).
        backoff: delays after failures (default 0.5 s doubling up to 30 s).
        idle_s: pause between empty pulls when ``wait_for_ms`` is below 100.
    """
    stop = stop or threading.Event()
    stats = WorkerStats()
    steps = _worker_steps(
        consumer, wait_for_ms=wait_for_ms, idle_s=idle_s, backoff=backoff or Backoff(), stats=stats
    )
    with _signals_stop(stop, install_signal_handlers):
        action: _Action | None = next(steps)
        while action is not None:
            if isinstance(action, _Pull | _Sleep) and stop.is_set():
                break
            try:
                if isinstance(action, _Handle) and stop.is_set():
                    raise _Stopping
                result = _perform(client, consumer, handler, action, batch_size, wait_for_ms, stop)
            except Exception as e:
                action = _throw(steps, e)
            else:
                action = _send(steps, result)
    return stats


def _perform(
    client: Client,
    consumer: str,
    handler: Handler,
    action: _Action,
    batch_size: int,
    wait_for_ms: int,
    stop: threading.Event,
) -> Any:
    if isinstance(action, _Pull):
        return client.next(consumer, batch_size=batch_size, wait_for_ms=wait_for_ms)
    if isinstance(action, _Handle):
        handler(action.records)
        return None
    if isinstance(action, _Ack):
        return client.ack(consumer, action.tokens)
    if isinstance(action, _Nack):
        return client.nack(consumer, action.tokens)
    stop.wait(action.seconds)
    return None


def _send(steps: Generator[_Action, Any, None], value: Any) -> _Action | None:
    try:
        return steps.send(value)
    except StopIteration:
        return None


def _throw(steps: Generator[_Action, Any, None], exc: Exception) -> _Action | None:
    try:
        return steps.throw(exc)
    except StopIteration:
        return None


class _StopNow(Exception):
    """The stop event fired while a call was in flight; the call was cancelled."""


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise _StopNow
    return task.result()


async def _perform_async(
    client: AsyncClient,
    consumer: str,
    handler: AsyncHandler,
    action: _Action,
    batch_size: int,
    wait_for_ms: int,
    stop: asyncio.Event,
) -> Any:
    if isinstance(action, _Pull):
        # a long poll cancelled here loses nothing: its messages return after their ack window
        pull = client.next(consumer, batch_size=batch_size, wait_for_ms=wait_for_ms)
        return await _unless_stopped(pull, stop)
    if isinstance(action, _Handle):
        result = handler(action.records)
        if inspect.isawaitable(result):
            await result
        return None
    if isinstance(action, _Ack):
        return await client.ack(consumer, action.tokens)
    if isinstance(action, _Nack):
        return await client.nack(consumer, action.tokens)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), action.seconds)
    return None


async def run_worker_async(
    client: AsyncClient,
    consumer: str,
    handler: AsyncHandler,
    *,
    batch_size: int = 100,
    wait_for_ms: int = 5000,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = False,
    backoff: Backoff | None = None,
    idle_s: float = 1.0,
) -> WorkerStats:
    """:func:`run_worker` for asyncio: ``handler`` may be a coroutine function (a plain
    function runs on the event loop). Setting ``stop`` also cancels a long poll in flight."""
    stop = stop or asyncio.Event()
    stats = WorkerStats()
    steps = _worker_steps(
        consumer, wait_for_ms=wait_for_ms, idle_s=idle_s, backoff=backoff or Backoff(), stats=stats
    )
    with _async_signals_stop(stop, install_signal_handlers):
        action: _Action | None = next(steps)
        while action is not None:
            if isinstance(action, _Pull | _Sleep) and stop.is_set():
                break
            try:
                if isinstance(action, _Handle) and stop.is_set():
                    raise _Stopping
                result = await _perform_async(
                    client, consumer, handler, action, batch_size, wait_for_ms, stop
                )
            except _StopNow:
                break
            except Exception as e:
                action = _throw(steps, e)
            else:
                action = _send(steps, result)
    return stats


@contextlib.contextmanager
def _async_signals_stop(stop: asyncio.Event, install: bool) -> Iterator[None]:
    if not install:
        yield
        return
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM)

    def on_signal(sig: signal.Signals) -> None:
        log.info("upsync worker: %s received; stopping", sig.name)
        stop.set()
        for s in sigs:  # a second signal acts as if we were not here
            loop.remove_signal_handler(s)

    for sig in sigs:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def _signals_stop(stop: threading.Event, install: bool) -> Iterator[None]:
    if not install:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise ConfigurationError("install_signal_handlers=True only works in the main thread")
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in sigs}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info(
            "upsync worker: %s received; stopping after the batch in hand",
            signal.Signals(signum).name,
        )
        stop.set()
        for sig, handler in previous.items():  # a second signal acts as if we were not here
            signal.signal(sig, handler)

    for sig in sigs:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
