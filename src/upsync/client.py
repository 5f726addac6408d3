"""Python client for upsync's HTTP API (Sequin's Consume, Management and Stream APIs), and a
worker loop that pulls batches, hands them to your code and acks them.

Example::

    import psycopg
    import upsync
    from upsync.client import run_worker
    from upsync.sinks import Route, TableSink

    sink = TableSink([Route("stripe:subscription", "subscriptions")])
    with upsync.Client("http://127.0.0.1:7376", token) as client, psycopg.connect(dsn) as conn:
        run_worker(client, "my-consumer", lambda records: sink.apply(conn, records),
                   batch_size=100, wait_for_ms=5000, install_signal_handlers=True)

Every method exists twice with the same signature: on :class:`Client` (blocking) and on
:class:`AsyncClient` (``await`` it). Both are generated from one request builder per endpoint
(the ``_calls`` below), so they cannot drift apart. HTTP errors become upsync errors: 401
:class:`~upsync.errors.Unauthorized`, 404 :class:`~upsync.errors.NotFound`, a refused ack token
:class:`~upsync.errors.InvalidAckToken`, another 4xx :class:`~upsync.errors.ConfigurationError`,
429/5xx or no answer :class:`ApiUnavailable` (a :class:`~upsync.errors.TransientError`). The
bearer token never appears in a repr, an error or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import signal
import threading
import urllib.parse
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import httpx

from upsync.errors import (
    ApiUnavailable,
    ConfigurationError,
    InvalidAckToken,
    NotFound,
    TransientError,
    Unauthorized,
    UpsyncError,
)
from upsync.records import Record, decode_messages, decode_records
from upsync.redact import redact
from upsync.stream.models import Batch, ConsumerInfo, RecordPage

__all__ = [
    "ApiUnavailable",
    "AsyncClient",
    "Backoff",
    "Client",
    "WorkerStats",
    "run_worker",
    "run_worker_async",
]

log = logging.getLogger("upsync.client")

P = ParamSpec("P")
T = TypeVar("T")
Json = dict[str, Any]

#: Extra seconds a long poll may take on the wire beyond its ``wait_for``.
_POLL_SLACK_S = 10.0


# -- one request builder per endpoint ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    wait_s: float = 0.0
    """How long the server may legitimately hold the request (long poll)."""


def _json(response: httpx.Response) -> Json:
    body: Json = response.json()
    return body


def _items(response: httpx.Response) -> list[Json]:
    items: list[Json] = response.json()["data"]
    return items


def _nothing(response: httpx.Response) -> None:
    return None


def _batch(response: httpx.Response) -> Batch:
    body = response.json()
    info = body.get("info") or {}
    return Batch(
        tuple(decode_messages(body)),
        ConsumerInfo(
            int(info.get("num_pending", 0)),
            int(info.get("num_ack_pending", 0)),
            int(info.get("num_dead", 0)),
        ),
    )


def _record_page(response: httpx.Response) -> RecordPage:
    body = response.json()
    return RecordPage(tuple(decode_records(body["records"])), body.get("cursor"))


def _info(response: httpx.Response) -> ConsumerInfo:
    info = response.json()["info"]
    return ConsumerInfo(info["num_pending"], info["num_ack_pending"], info.get("num_dead", 0))


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _consumer(consumer: str, *rest: str) -> str:
    return "/".join(["/v1/http-consumers", _quote(consumer), *rest])


def _query(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _metadata(metadata: Mapping[str, Any] | None) -> str | None:
    return None if metadata is None else json.dumps(dict(metadata), separators=(",", ":"))


class _calls:
    @staticmethod
    def next(consumer: str, *, batch_size: int = 1, wait_for_ms: int = 0) -> _Call[Batch]:
        """Claim up to ``batch_size`` messages, waiting up to ``wait_for_ms`` for the first."""
        body = {"batch_size": batch_size, "wait_for": wait_for_ms}
        return _Call(
            "POST", _consumer(consumer, "next"), _batch, json=body, wait_s=wait_for_ms / 1000
        )

    @staticmethod
    def ack(consumer: str, ack_tokens: Sequence[str]) -> _Call[None]:
        """Acknowledge messages. Raises :class:`InvalidAckToken` (nothing acked) if any token
        is expired, already used or from another consumer."""
        return _Call(
            "POST", _consumer(consumer, "ack"), _nothing, json={"ack_tokens": list(ack_tokens)}
        )

    @staticmethod
    def nack(consumer: str, ack_tokens: Sequence[str]) -> _Call[None]:
        """Make messages available for redelivery now."""
        return _Call(
            "POST", _consumer(consumer, "nack"), _nothing, json={"ack_tokens": list(ack_tokens)}
        )

    @staticmethod
    def info(consumer: str) -> _Call[ConsumerInfo]:
        """The consumer's pending / ack-pending / dead counts."""
        return _Call("GET", _consumer(consumer, "info"), _info)

    @staticmethod
    def dead_letters(consumer: str, *, limit: int = 100) -> _Call[list[Json]]:
        """Dead letters, oldest first: ``{"record", "deliver_count", "dead_at"}`` each."""
        return _Call("GET", _consumer(consumer, "dead-letters"), _items, params={"limit": limit})

    @staticmethod
    def replay_dead_letters(consumer: str, record_ids: Sequence[str] | None = None) -> _Call[int]:
        """Make dead letters (all, or those of ``record_ids``) deliverable again; how many."""
        body = None if record_ids is None else {"record_ids": list(record_ids)}
        path = _consumer(consumer, "dead-letters", "replay")
        return _Call("POST", path, lambda r: int(r.json()["replayed"]), json=body)

    @staticmethod
    def rewind(
        consumer: str, *, after_idx: int | None = None, after_cursor: str | None = None
    ) -> _Call[int]:
        """Re-deliver records after a position (default: from the start); how many queued."""
        body = _query(after_idx=after_idx, after_cursor=after_cursor)
        return _Call(
            "POST", _consumer(consumer, "rewind"), lambda r: int(r.json()["queued"]), json=body
        )

    @staticmethod
    def create_consumer(stream_id: str, name: str, **settings: Any) -> _Call[Json]:
        """Create an HTTP consumer (``filters``, ``deliver_policy``, ``ack_wait_ms``, …)."""
        body = {"stream_id": stream_id, "name": name, **settings}
        return _Call("POST", "/v1/http-consumers", _json, json=body)

    @staticmethod
    def list_consumers(
        *, stream_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> _Call[list[Json]]:
        params = _query(stream_id=stream_id, metadata=_metadata(metadata))
        return _Call("GET", "/v1/http-consumers", _items, params=params)

    @staticmethod
    def get_consumer(consumer: str) -> _Call[Json]:
        return _Call("GET", _consumer(consumer), _json)

    @staticmethod
    def update_consumer(consumer: str, **changes: Any) -> _Call[Json]:
        """Change the given settings only."""
        return _Call("PATCH", _consumer(consumer), _json, json=changes)

    @staticmethod
    def delete_consumer(consumer: str) -> _Call[Json]:
        return _Call("DELETE", _consumer(consumer), _json)

    @staticmethod
    def create_stream(name: str, *, metadata: Mapping[str, Any] | None = None) -> _Call[Json]:
        return _Call(
            "POST", "/v1/streams", _json, json={"name": name, "metadata": dict(metadata or {})}
        )

    @staticmethod
    def list_streams() -> _Call[list[Json]]:
        return _Call("GET", "/v1/streams", _items)

    @staticmethod
    def get_stream(id_or_name: str) -> _Call[Json]:
        return _Call("GET", "/v1/streams/" + _quote(id_or_name), _json)

    @staticmethod
    def delete_stream(stream_id: str) -> _Call[Json]:
        return _Call("DELETE", "/v1/streams/" + _quote(stream_id), _json)

    @staticmethod
    def create_credential(
        kind: str,
        secret: str,
        *,
        provider: str | None = None,
        name: str | None = None,
        test: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> _Call[Json]:
        """Store an API key; the response (and every later one) shows it as ``"****"``."""
        props = {"kind": kind, "secret": secret, "name": name, "test": test}
        body = {"properties": props, "metadata": dict(metadata or {}), **_query(provider=provider)}
        return _Call("POST", "/v1/credentials", _json, json=body)

    @staticmethod
    def list_credentials() -> _Call[list[Json]]:
        return _Call("GET", "/v1/credentials", _items)

    @staticmethod
    def get_credential(credential_id: str) -> _Call[Json]:
        return _Call("GET", "/v1/credentials/" + _quote(credential_id), _json)

    @staticmethod
    def delete_credential(credential_id: str) -> _Call[Json]:
        return _Call("DELETE", "/v1/credentials/" + _quote(credential_id), _json)

    @staticmethod
    def create_sync(**fields: Any) -> _Call[Json]:
        """Create a sync: ``provider``, ``stream_id``, ``name``, ``collection_ids`` and
        ``credential`` or ``credential_id`` (see the Management API)."""
        return _Call("POST", "/v1/syncs", _json, json=fields)

    @staticmethod
    def list_syncs(
        *,
        provider: str | None = None,
        name: str | None = None,
        stream_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> _Call[list[Json]]:
        params = _query(
            provider=provider, name=name, stream_id=stream_id, metadata=_metadata(metadata)
        )
        return _Call("GET", "/v1/syncs", _items, params=params)

    @staticmethod
    def get_sync(sync_id: str) -> _Call[Json]:
        return _Call("GET", "/v1/syncs/" + _quote(sync_id), _json)

    @staticmethod
    def update_sync(sync_id: str, **changes: Any) -> _Call[Json]:
        return _Call("PATCH", "/v1/syncs/" + _quote(sync_id), _json, json=changes)

    @staticmethod
    def delete_sync(sync_id: str) -> _Call[Json]:
        return _Call("DELETE", "/v1/syncs/" + _quote(sync_id), _json)

    @staticmethod
    def records(
        *,
        after_cursor: str | None = None,
        limit: int = 100,
        stream_id: str | None = None,
        sync_id: str | None = None,
        provider: str | None = None,
        collection_id: str | None = None,
    ) -> _Call[RecordPage]:
        """One page of ``GET /v1/records``; pass its ``cursor`` as ``after_cursor`` next."""
        params = _query(
            after_cursor=after_cursor,
            limit=limit,
            stream_id=stream_id,
            sync_id=sync_id,
            provider=provider,
            collection_id=collection_id,
        )
        return _Call("GET", "/v1/records", _record_page, params=params)

    @staticmethod
    def events(
        *,
        after_cursor: str | None = None,
        limit: int = 100,
        stream_id: str | None = None,
        sync_id: str | None = None,
        provider: str | None = None,
        collection_id: str | None = None,
    ) -> _Call[Json]:
        """One page of ``GET /v1/events``: ``{"events": [...], "cursor": ...}``."""
        params = _query(
            after_cursor=after_cursor,
            limit=limit,
            stream_id=stream_id,
            sync_id=sync_id,
            provider=provider,
            collection_id=collection_id,
        )
        return _Call("GET", "/v1/events", _json, params=params)

    @staticmethod
    def healthz() -> _Call[Json]:
        return _Call("GET", "/healthz", _json)


# -- errors ----------------------------------------------------------------------------------


def _error_of(call: _Call[Any], response: httpx.Response) -> UpsyncError:
    """The upsync error for a non-2xx answer (pure: testable without a server)."""
    status = response.status_code
    kind, message = "", response.text[:300]
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        error = response.json()["error"]
        kind, message = str(error.get("type", "")), str(error["message"])
    text = redact(f"{call.method} {call.path}: {status} {message}")
    if status == 401:
        return Unauthorized(text)
    if status == 404:
        return NotFound(text)
    if kind == "invalid_ack_token":
        return InvalidAckToken(text)
    if status == 429 or status >= 500:
        return ApiUnavailable(text, status=status)
    return ConfigurationError(text)


def _transport_error(call: _Call[Any], exc: httpx.TransportError) -> ApiUnavailable:
    return ApiUnavailable(redact(f"{call.method} {call.path}: {type(exc).__name__}: {exc}"))


class _Bearer(httpx.Auth):
    """Adds the bearer token at send time; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ConfigurationError("token: expected a non-empty bearer token")
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "_Bearer('****')"


def _request_kwargs(call: _Call[Any], timeout: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"params": call.params}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.wait_s:
        kwargs["timeout"] = httpx.Timeout(timeout, read=timeout + call.wait_s + _POLL_SLACK_S)
    return kwargs


# -- the clients -----------------------------------------------------------------------------


def _sync(build: Callable[P, _Call[T]]) -> Callable[Concatenate[Client, P], T]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(*args, **kwargs))

    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    return method


def _async(
    build: Callable[P, _Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(*args, **kwargs))

    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    return method


class Client:
    """Blocking client of upsync's HTTP API.

    Args:
        base_url: e.g. ``"http://127.0.0.1:7376"``.
        token: a bearer token from ``upsync token create`` (or :func:`upsync.api.create_token`).
        timeout: seconds for connecting and for ordinary requests; long polls get their
            ``wait_for`` on top.
        transport: an ``httpx`` transport (e.g. ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=base_url, auth=_Bearer(token), timeout=timeout, transport=transport
        )

    def _run(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, **_request_kwargs(call, self._timeout)
            )
        except httpx.TransportError as e:
            raise _transport_error(call, e) from None
        if response.is_error:
            raise _error_of(call, response)
        return call.parse(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({redact(self.base_url)!r}, token='****')"

    next = _sync(_calls.next)
    ack = _sync(_calls.ack)
    nack = _sync(_calls.nack)
    info = _sync(_calls.info)
    dead_letters = _sync(_calls.dead_letters)
    replay_dead_letters = _sync(_calls.replay_dead_letters)
    rewind = _sync(_calls.rewind)
    create_consumer = _sync(_calls.create_consumer)
    list_consumers = _sync(_calls.list_consumers)
    get_consumer = _sync(_calls.get_consumer)
    update_consumer = _sync(_calls.update_consumer)
    delete_consumer = _sync(_calls.delete_consumer)
    create_stream = _sync(_calls.create_stream)
    list_streams = _sync(_calls.list_streams)
    get_stream = _sync(_calls.get_stream)
    delete_stream = _sync(_calls.delete_stream)
    create_credential = _sync(_calls.create_credential)
    list_credentials = _sync(_calls.list_credentials)
    get_credential = _sync(_calls.get_credential)
    delete_credential = _sync(_calls.delete_credential)
    create_sync = _sync(_calls.create_sync)
    list_syncs = _sync(_calls.list_syncs)
    get_sync = _sync(_calls.get_sync)
    update_sync = _sync(_calls.update_sync)
    delete_sync = _sync(_calls.delete_sync)
    records = _sync(_calls.records)
    events = _sync(_calls.events)
    healthz = _sync(_calls.healthz)


class AsyncClient:
    """:class:`Client` for asyncio: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url, auth=_Bearer(token), timeout=timeout, transport=transport
        )

    async def _run(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, **_request_kwargs(call, self._timeout)
            )
        except httpx.TransportError as e:
            raise _transport_error(call, e) from None
        if response.is_error:
            raise _error_of(call, response)
        return call.parse(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({redact(self.base_url)!r}, token='****')"

    next = _async(_calls.next)
    ack = _async(_calls.ack)
    nack = _async(_calls.nack)
    info = _async(_calls.info)
    dead_letters = _async(_calls.dead_letters)
    replay_dead_letters = _async(_calls.replay_dead_letters)
    rewind = _async(_calls.rewind)
    create_consumer = _async(_calls.create_consumer)
    list_consumers = _async(_calls.list_consumers)
    get_consumer = _async(_calls.get_consumer)
    update_consumer = _async(_calls.update_consumer)
    delete_consumer = _async(_calls.delete_consumer)
    create_stream = _async(_calls.create_stream)
    list_streams = _async(_calls.list_streams)
    get_stream = _async(_calls.get_stream)
    delete_stream = _async(_calls.delete_stream)
    create_credential = _async(_calls.create_credential)
    list_credentials = _async(_calls.list_credentials)
    get_credential = _async(_calls.get_credential)
    delete_credential = _async(_calls.delete_credential)
    create_sync = _async(_calls.create_sync)
    list_syncs = _async(_calls.list_syncs)
    get_sync = _async(_calls.get_sync)
    update_sync = _async(_calls.update_sync)
    delete_sync = _async(_calls.delete_sync)
    records = _async(_calls.records)
    events = _async(_calls.events)
    healthz = _async(_calls.healthz)


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
