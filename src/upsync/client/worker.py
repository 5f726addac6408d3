"""The worker loop: pull a batch, hand it to your code, ack after it succeeded, nack what the
sink rejected, nack with backoff when it failed, stop cleanly on a signal.

One protocol, two drivers: :func:`_worker_steps` decides (a generator of actions, free of I/O:
requests as :mod:`upsync.client._calls` builds them, the handler call, sleeps); ``run_worker``
and ``run_worker_async`` only perform those actions, blocking or with asyncio."""

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
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from upsync.client._calls import T, _Call, _calls
from upsync.client.http import AsyncClient, Client
from upsync.errors import (
    ConfigurationError,
    InvalidAckToken,
    MappingError,
    RowRejected,
    TransientError,
)
from upsync.records import Message, Record
from upsync.redact import redact
from upsync.sinks import ApplyResult
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
    """Batches the handler returned from (their records acked, but for rejected ones)."""
    records: int = 0
    """Records acked."""
    rejected: int = 0
    """Records the handler's :class:`~upsync.sinks.ApplyResult` listed as rejected: nacked,
    not acked (redelivered; dead letters after the consumer's ``max_deliver`` attempts)."""
    failures: int = 0
    """Batches whose handler raised (they were nacked)."""
    errors: int = 0
    """Failed calls to the API (next, ack or nack)."""


# -- the protocol: what to do next, free of I/O ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pull:
    """Claim a batch (a long poll: skipped once stopping, cancelled by the async driver)."""

    call: _Call[Any]


@dataclass(frozen=True, slots=True)
class _Request:
    """An ack or a nack."""

    call: _Call[Any]


@dataclass(frozen=True, slots=True)
class _Handle:
    """Hand the records to the handler; the driver sends back what it returned."""

    records: list[Record]


@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float


_Action = _Pull | _Request | _Handle | _Sleep


class _Stopping(Exception):
    """Thrown into the worker steps when a batch arrives after the stop was requested."""


@dataclass(frozen=True, slots=True)
class _Settings:
    consumer: str
    batch_size: int
    wait_for_ms: int
    idle_s: float


def _worker_steps(
    cfg: _Settings, backoff: Backoff, stats: WorkerStats
) -> Generator[_Action, Any, None]:
    """The worker's decisions, free of I/O: yields what to do, receives the outcome (or is
    thrown the exception). Shared by the blocking and the asyncio drivers."""
    consumer = cfg.consumer
    while True:
        try:
            batch: Batch = yield _Pull(
                _calls.next(consumer, batch_size=cfg.batch_size, wait_for_ms=cfg.wait_for_ms)
            )
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
            if cfg.wait_for_ms < 100:  # no long poll to pace us: do not spin
                yield _Sleep(cfg.idle_s)
            continue
        try:
            outcome = yield _Handle([m.record for m in batch.messages])
        except _Stopping:
            yield from _give_back(consumer, _tokens(batch.messages), stats, "stopping")
            return
        except Exception as e:
            stats.failures += 1
            delay = backoff.next_delay()
            log.error(
                "upsync worker %r: handler failed on %d record(s): %s; nacked, next pull in %.1fs",
                consumer,
                len(batch.messages),
                redact(f"{type(e).__name__}: {e}"),
                delay,
            )
            yield from _give_back(consumer, _tokens(batch.messages), stats, "handler failed")
            yield _Sleep(delay)
            continue
        stats.batches += 1
        applied, rejected = _split(batch.messages, outcome)
        if applied:
            yield from _ack(consumer, _tokens(applied), stats)
        if not rejected:
            backoff.reset()
            continue
        stats.rejected += len(rejected)
        # nothing stored: pace the retries like a failure; else they come back with later batches
        pause = None if applied else backoff.next_delay()
        log.error("%s", _rejected_line(consumer, len(batch.messages), rejected, pause))
        nacks = [m.ack_token for m, _ in rejected]
        yield from _give_back(consumer, nacks, stats, "the sink rejected records")
        if pause is None:
            backoff.reset()
        else:
            yield _Sleep(pause)


def _tokens(messages: Iterable[Message]) -> list[str]:
    return [m.ack_token for m in messages]


def _ack(consumer: str, tokens: list[str], stats: WorkerStats) -> Generator[_Action, Any, None]:
    try:
        yield _Request(_calls.ack(consumer, tokens))
    except (TransientError, InvalidAckToken) as e:
        # the batch was applied; it will be redelivered and re-applied (idempotently)
        stats.errors += 1
        log.warning(
            "upsync worker %r: ack failed (%s); the batch will be redelivered",
            consumer,
            redact(str(e)),
        )
    else:
        stats.records += len(tokens)


def _give_back(
    consumer: str, tokens: list[str], stats: WorkerStats, why: str
) -> Generator[_Action, Any, None]:
    try:
        yield _Request(_calls.nack(consumer, tokens))
    except (TransientError, InvalidAckToken) as e:
        # not lost: the messages come back once their ack window expires
        stats.errors += 1
        log.warning("upsync worker %r: nack after %s failed (%s)", consumer, why, redact(str(e)))


# -- records the sink rejected -----------------------------------------------------------------

#: Log at most this many distinct reasons, and this many record ids for each, per batch.
_LOG_REASONS = 5
_LOG_IDS = 20
_LOG_REASON_CHARS = 300


def _split(
    messages: Sequence[Message], outcome: object
) -> tuple[list[Message], list[tuple[Message, str]]]:
    """The messages to ack, and those to nack with the reason the sink gave.

    Only an :class:`ApplyResult` says what was rejected; any other return value means the
    whole batch was handled. A rejection naming no record of the batch rejects all of it:
    nothing is acked that might not have been stored."""
    if not isinstance(outcome, ApplyResult) or not outcome.rejected:
        return list(messages), []
    reasons: dict[str, str] = {}
    unplaced: str | None = None
    ids = {m.record.id for m in messages}
    for error in outcome.rejected:
        record_id = getattr(error, "record_id", None)
        if isinstance(record_id, str) and record_id in ids:
            reasons.setdefault(record_id, _why(error))
        elif unplaced is None:
            unplaced = _why(error)
    if unplaced is not None:
        return [], [(m, reasons.get(m.record.id, unplaced)) for m in messages]
    applied = [m for m in messages if m.record.id not in reasons]
    return applied, [(m, reasons[m.record.id]) for m in messages if m.record.id in reasons]


def _why(error: Exception) -> str:
    """The reason of a rejection, without the record id (grouped by it in the log)."""
    if isinstance(error, RowRejected):
        text = f"table {error.table}: {error.reason}"
    elif isinstance(error, MappingError):
        where = ", ".join(
            f"{label} {value}"
            for label, value in (("collection", error.collection_id), ("column", error.column))
            if value is not None
        )
        text = f"{where}: {error.reason}" if where else error.reason
    else:
        text = f"{type(error).__name__}: {error}"
    return redact(text)[:_LOG_REASON_CHARS]


def _rejected_line(
    consumer: str, size: int, rejected: list[tuple[Message, str]], delay: float | None
) -> str:
    """One log line for a batch's rejections: each reason with the record ids it hit."""
    by_reason: dict[str, list[str]] = {}
    for message, reason in rejected:
        by_reason.setdefault(reason, []).append(message.record.id)
    parts = []
    for reason, ids in list(by_reason.items())[:_LOG_REASONS]:
        more = f", … {len(ids) - _LOG_IDS} more" if len(ids) > _LOG_IDS else ""
        parts.append(f"{reason} [record ids: {', '.join(ids[:_LOG_IDS])}{more}]")
    if len(by_reason) > _LOG_REASONS:
        parts.append(f"… {len(by_reason) - _LOG_REASONS} more reason(s)")
    pace = "" if delay is None else f"; next pull in {delay:.1f}s"
    return (
        f"upsync worker {consumer!r}: the sink rejected {len(rejected)} of {size} record(s); "
        f"nacked, not acked (redelivered; dead letters after the consumer's max_deliver "
        f"attempts): {'; '.join(parts)}{pace}"
    )


# -- the drivers: perform the actions, blocking or with asyncio --------------------------------


class _Steps:
    """The protocol as the drivers step through it; ``None`` means the loop is over."""

    def __init__(self, cfg: _Settings, backoff: Backoff | None, stats: WorkerStats) -> None:
        self._gen = _worker_steps(cfg, backoff or Backoff(), stats)

    def start(self) -> _Action | None:
        return self.send(None)

    def send(self, value: Any) -> _Action | None:
        try:
            return self._gen.send(value)
        except StopIteration:
            return None

    def throw(self, exc: Exception) -> _Action | None:
        try:
            return self._gen.throw(exc)
        except StopIteration:
            return None

    def gate(self, action: _Action | None, stopping: bool) -> _Action | None:
        """``action``, or what replaces it once a stop was requested: no more pulls or
        sleeps; a batch in hand but not yet handled is given back."""
        if not stopping or action is None:
            return action
        if isinstance(action, _Pull | _Sleep):
            return None
        if isinstance(action, _Handle):
            return self.throw(_Stopping())
        return action


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

    Records the sink could not store are never acked: when ``handler`` returns an
    :class:`~upsync.sinks.ApplyResult` (as ``lambda rs: sink.apply(conn, rs)`` does), the
    records in its ``rejected`` list are nacked instead, logged once per batch (record ids and
    reasons) and counted in :attr:`WorkerStats.rejected`; the rest of the batch is acked. They
    come back until they are stored or, after the consumer's ``max_deliver`` attempts, become
    dead letters (list them with ``client.dead_letters``, retry with
    ``client.replay_dead_letters``). A batch with nothing stored waits the backoff, like a
    failure. Any other return value means the whole batch was handled.

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
    steps = _Steps(_Settings(consumer, batch_size, wait_for_ms, idle_s), backoff, stats)
    with _signals_stop(stop, install_signal_handlers):
        action = steps.start()
        while (action := steps.gate(action, stop.is_set())) is not None:
            try:
                outcome = _perform(client, handler, action, stop)
            except Exception as e:
                action = steps.throw(e)
            else:
                action = steps.send(outcome)
    return stats


def _perform(client: Client, handler: Handler, action: _Action, stop: threading.Event) -> Any:
    if isinstance(action, _Handle):
        return handler(action.records)
    if isinstance(action, _Sleep):
        stop.wait(action.seconds)
        return None
    return client._run(action.call)


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
    function runs on the event loop). Setting ``stop`` also cancels a long poll in flight.
    Rejected records are nacked, logged and counted exactly as :func:`run_worker` does."""
    stop = stop or asyncio.Event()
    stats = WorkerStats()
    steps = _Steps(_Settings(consumer, batch_size, wait_for_ms, idle_s), backoff, stats)
    with _async_signals_stop(stop, install_signal_handlers):
        action = steps.start()
        while (action := steps.gate(action, stop.is_set())) is not None:
            try:
                outcome = await _perform_async(client, handler, action, stop)
            except _StopNow:
                break
            except Exception as e:
                action = steps.throw(e)
            else:
                action = steps.send(outcome)
    return stats


class _StopNow(Exception):
    """The stop event fired while a long poll was in flight; the poll was cancelled."""


async def _perform_async(
    client: AsyncClient, handler: AsyncHandler, action: _Action, stop: asyncio.Event
) -> Any:
    if isinstance(action, _Handle):
        result = handler(action.records)
        return (await result) if inspect.isawaitable(result) else result
    if isinstance(action, _Sleep):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), action.seconds)
        return None
    if isinstance(action, _Pull):
        # a long poll cancelled here loses nothing: its messages return after their ack window
        return await _unless_stopped(client._run(action.call), stop)
    return await client._run(action.call)


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
