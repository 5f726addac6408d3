"""``upsync.Client`` / ``AsyncClient`` and the worker loops, against a live uvicorn on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from psycopg import sql

from upsync.api import create_app, create_token_sync, ensure_api_schema_sync
from upsync.client import (
    ApiUnavailable,
    AsyncClient,
    Backoff,
    Client,
    run_worker,
    run_worker_async,
)
from upsync.errors import ConfigurationError, InvalidAckToken, NotFound, Unauthorized
from upsync.records import Record
from upsync.sinks import Route, TableSink
from upsync.stream import catalog
from upsync.stream.models import UpstreamObject
from upsync.stream.write import write


@dataclass
class Server:
    url: str
    token: str
    dsn: str
    schema: str
    app: FastAPI


@pytest.fixture
def server(pg_dsn: str, schema: str) -> Iterator[Server]:
    """The API served by uvicorn on 127.0.0.1 (a free port), in a thread; stopped afterwards."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        ensure_api_schema_sync(conn, schema=schema)
        token = create_token_sync(conn, "client-tests", schema=schema)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so (else every
    # response waits ~40 ms for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    # listening before uvicorn starts: early requests wait in the backlog, no readiness polling
    sock.listen(64)
    port = sock.getsockname()[1]
    app = create_app(pg_dsn, schema=schema, pool_size=4)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", token, pg_dsn, schema, app)
    finally:
        uv.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive()


def _write(srv: Server, sync_id: str, version: int, *objects: dict[str, Any]) -> None:
    """Write customer snapshots into the stream, as a sync would."""

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(srv.dsn, autocommit=True) as conn:
            sync = await catalog.get_sync(conn, sync_id, schema=srv.schema)
            snaps = [UpstreamObject(o["id"], o, version) for o in objects]
            await write(conn, sync, "stripe:customer", snaps, schema=srv.schema)

    asyncio.run(go())


def _setup(client: Client, name: str = "workers", **settings: Any) -> tuple[str, str]:
    """A stream, a sync (with an inline credential) and a consumer: (sync id, consumer name)."""
    stream = client.create_stream("main")
    sync = client.create_sync(
        provider="stripe",
        stream_id=stream["id"],
        name="acme",
        collection_ids=["stripe:customer"],
        credential={"properties": {"kind": "stripe_key", "secret": "sk_test_abc123"}},
    )
    client.create_consumer(stream["id"], name, **settings)
    return sync["id"], name


@pytest.mark.smoke
def test_client_round_trip_next_ack_against_live_server(server: Server) -> None:
    with Client(server.url, server.token) as client:
        sync_id, consumer = _setup(client)
        _write(server, sync_id, 1, {"id": "cus_1", "email": "a@x.io"}, {"id": "cus_2"})
        batch = client.next(consumer, batch_size=10)
        assert sorted(m.record.upstream_id for m in batch.messages) == ["cus_1", "cus_2"]
        assert all(isinstance(m.record, Record) for m in batch.messages)
        assert batch.info.num_ack_pending == 2
        client.ack(consumer, [m.ack_token for m in batch.messages])
        info = client.info(consumer)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
        assert client.get_sync(sync_id)["credential"]["properties"]["secret"] == "****"


def test_client_maps_http_errors_to_upsync_errors_without_leaking_the_token(
    server: Server,
) -> None:
    with Client(server.url, "upsync_tok_not-a-real-token") as bad:
        with pytest.raises(Unauthorized) as unauthorized:
            bad.list_streams()
        assert "upsync_tok_" not in str(unauthorized.value)
        assert "upsync_tok_" not in repr(bad)
    with Client(server.url, server.token) as client:
        assert server.token not in repr(client)
        with pytest.raises(NotFound, match="nobody"):
            client.next("nobody")
        sync_id, consumer = _setup(client)
        client.create_consumer(client.list_streams()[0]["id"], "other")
        _write(server, sync_id, 1, {"id": "cus_1"})
        token = client.next(consumer).messages[0].ack_token
        with pytest.raises(InvalidAckToken, match="another consumer"):
            client.ack("other", [token])
        assert client.info(consumer).num_ack_pending == 1  # nothing changed


def test_client_raises_transient_error_when_server_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with (
            Client(f"http://127.0.0.1:{port}", "upsync_tok_x", timeout=2) as client,
            pytest.raises(ApiUnavailable),
        ):
            client.healthz()


def _customers_table(srv: Server) -> None:
    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, upstream_id text, deleted boolean, "
                "updated_idx bigint, email text)"
            ).format(sql.Identifier(srv.schema, "customers"))
        )


def _rows(srv: Server) -> dict[str, str | None]:
    with psycopg.connect(srv.dsn) as conn:
        query = sql.SQL("SELECT upstream_id, email FROM {}").format(
            sql.Identifier(srv.schema, "customers")
        )
        return dict(conn.execute(query).fetchall())


def test_worker_applies_batches_to_a_table_with_table_sink_and_acks(
    server: Server, rng: random.Random
) -> None:
    _customers_table(server)
    sink = TableSink(
        [
            Route(
                "stripe:customer",
                "customers",
                schema=server.schema,
                columns={"email": "data.email"},
            )
        ]
    )
    expected = {f"cus_{i}": f"{i}@x.io" for i in range(rng.randint(5, 40))}
    stop = threading.Event()
    with Client(server.url, server.token) as client, psycopg.connect(server.dsn) as conn:
        sync_id, consumer = _setup(client)
        _write(server, sync_id, 1, *({"id": k, "email": v} for k, v in expected.items()))

        def handler(records: list[Record]) -> None:
            sink.apply(conn, records)
            if len(_rows(server)) == len(expected):
                stop.set()

        stats = run_worker(
            client, consumer, handler, batch_size=rng.randint(1, 7), wait_for_ms=2000, stop=stop
        )
        assert _rows(server) == expected
        assert stats.records == len(expected) and stats.failures == 0
        info = client.info(consumer)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)


def test_worker_nacks_a_failed_batch_and_applies_it_on_redelivery(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    _customers_table(server)
    sink = TableSink(
        [
            Route(
                "stripe:customer",
                "customers",
                schema=server.schema,
                columns={"email": "data.email"},
            )
        ]
    )
    stop = threading.Event()
    seen: list[list[str]] = []
    with Client(server.url, server.token) as client, psycopg.connect(server.dsn) as conn:
        sync_id, consumer = _setup(client)
        _write(server, sync_id, 1, {"id": "cus_1", "email": "a@x.io"}, {"id": "cus_2"})

        def handler(records: list[Record]) -> None:
            seen.append(sorted(r.upstream_id for r in records))
            if len(seen) == 1:
                raise RuntimeError("database said no to sk_live_secret123")
            sink.apply(conn, records)
            stop.set()

        with caplog.at_level(logging.ERROR, logger="upsync.client"):
            stats = run_worker(
                client,
                consumer,
                handler,
                batch_size=10,
                wait_for_ms=2000,
                stop=stop,
                backoff=Backoff(base_s=0.01, cap_s=0.05),
            )
        assert seen == [["cus_1", "cus_2"], ["cus_1", "cus_2"]]
        assert stats.failures == 1 and stats.batches == 1
        assert _rows(server) == {"cus_1": "a@x.io", "cus_2": None}
        assert "handler failed" in caplog.text and "sk_live_secret123" not in caplog.text
        assert client.info(consumer).num_pending == 0


async def test_async_worker_stops_promptly_while_long_polling(server: Server) -> None:
    stop = asyncio.Event()
    async with AsyncClient(server.url, server.token) as client:
        stream = await client.create_stream("main")
        await client.create_consumer(stream["id"], "idle")

        async def handler(records: list[Record]) -> None:
            raise AssertionError("nothing was written")

        worker = asyncio.create_task(
            run_worker_async(client, "idle", handler, wait_for_ms=30_000, stop=stop)
        )
        await _until_long_polling(server, stream["id"])
        stop.set()
        stats = await asyncio.wait_for(worker, timeout=5)
        assert stats.batches == 0 and stats.errors == 0


def test_backoff_grows_exponentially_within_bounds_with_jitter(rng: random.Random) -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0, rng=rng)
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**i) for i in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_sigterm_stops_the_worker_after_acking_the_batch_in_hand(server: Server) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    handled: list[str] = []
    with Client(server.url, server.token) as client:
        sync_id, consumer = _setup(client)
        _write(server, sync_id, 1, {"id": "cus_1"}, {"id": "cus_2"})

        def handler(records: list[Record]) -> None:
            handled.extend(r.upstream_id for r in records)
            signal.raise_signal(signal.SIGTERM)  # as if the orchestrator stopped us now

        stats = run_worker(
            client, consumer, handler, batch_size=1, wait_for_ms=2000, install_signal_handlers=True
        )
        assert handled == ["cus_1"] or handled == ["cus_2"]
        assert stats.batches == 1
        info = client.info(consumer)
        assert (info.num_pending, info.num_ack_pending) == (1, 0)  # acked one, the other waits
    assert signal.getsignal(signal.SIGTERM) == previous


async def test_sigint_stops_the_async_worker_and_restores_the_default_handling(
    server: Server,
) -> None:
    async with AsyncClient(server.url, server.token) as client:
        stream = await client.create_stream("main")
        await client.create_consumer(stream["id"], "idle")
        worker = asyncio.create_task(
            run_worker_async(
                client, "idle", lambda rs: None, wait_for_ms=30_000, install_signal_handlers=True
            )
        )
        await _until_long_polling(server, stream["id"])
        signal.raise_signal(signal.SIGINT)
        stats = await asyncio.wait_for(worker, timeout=5)
        assert stats.batches == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_server_abandons_a_long_poll_whose_client_went_away(server: Server) -> None:
    async with AsyncClient(server.url, server.token) as client:
        stream = await client.create_stream("main")
        await client.create_consumer(stream["id"], "idle")
        poll = asyncio.create_task(client.next("idle", wait_for_ms=30_000))
        await _until_long_polling(server, stream["id"])
        poll.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
        async with asyncio.timeout(10):  # the server answers 499 and stops waiting
            while 'status="499"' not in await _metrics(server):
                await asyncio.sleep(0.01)
    assert not server.app.state.upsync.service.notifier._waiters.get(stream["id"])


async def _metrics(server: Server) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get("/metrics")).text


async def _until_long_polling(server: Server, stream_id: str) -> None:
    """Until a long poll waits on the stream's notifications (no public hook exists)."""
    waiters = server.app.state.upsync.service.notifier._waiters
    async with asyncio.timeout(10):
        while not waiters.get(stream_id):
            await asyncio.sleep(0.005)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": {"type": "unauthorized", "message": "bad token"}}, Unauthorized),
        (404, {"error": {"type": "not_found", "message": "consumer 'x'"}}, NotFound),
        (400, {"error": {"type": "invalid_ack_token", "message": "expired"}}, InvalidAckToken),
        (422, {"error": {"type": "invalid_request", "message": "batch_size"}}, ConfigurationError),
        (409, {"error": {"type": "conflict", "message": "managed"}}, ConfigurationError),
        (429, {"error": {"type": "rate_limited", "message": "slow down"}}, ApiUnavailable),
        (503, {"error": {"type": "unavailable", "message": "db"}}, ApiUnavailable),
        (502, "<html>bad gateway</html>", ApiUnavailable),
    ],
    ids=["401", "404", "400-ack", "422", "409", "429", "503", "502-html"],
)
def test_http_errors_become_upsync_errors(status: int, body: Any, error: type[Exception]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer upsync_tok_secret"
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    transport = httpx.MockTransport(answer)
    with (
        Client("http://upsync.test", "upsync_tok_secret", transport=transport) as client,
        pytest.raises(error) as raised,
    ):
        client.ack("x", ["t"])
    message = str(raised.value)
    assert message.startswith(f"POST /v1/http-consumers/x/ack: {status}")
    assert "upsync_tok_secret" not in message and "upsync_tok_secret" not in repr(raised.value)
