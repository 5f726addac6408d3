"""The worker loops, `run_worker` and `run_worker_async`, against a live API (see conftest)."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading

import psycopg
import pytest

from tests.client._server import (
    Server,
    create_customers_table,
    customer_rows,
    setup_consumer,
    until_long_polling,
    write_customers,
)
from upsync.client import AsyncClient, Backoff, Client, run_worker, run_worker_async
from upsync.records import Record
from upsync.sinks import Route, TableSink


def test_worker_applies_batches_to_a_table_with_table_sink_and_acks(
    server: Server, rng: random.Random
) -> None:
    create_customers_table(server)
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
        sync_id, consumer = setup_consumer(client)
        write_customers(server, sync_id, 1, *({"id": k, "email": v} for k, v in expected.items()))

        def handler(records: list[Record]) -> None:
            sink.apply(conn, records)
            if len(customer_rows(server)) == len(expected):
                stop.set()

        stats = run_worker(
            client, consumer, handler, batch_size=rng.randint(1, 7), wait_for_ms=2000, stop=stop
        )
        assert customer_rows(server) == expected
        assert stats.records == len(expected) and stats.failures == 0
        info = client.info(consumer)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)


def test_worker_nacks_a_failed_batch_and_applies_it_on_redelivery(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    create_customers_table(server)
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
        sync_id, consumer = setup_consumer(client)
        write_customers(server, sync_id, 1, {"id": "cus_1", "email": "a@x.io"}, {"id": "cus_2"})

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
        assert customer_rows(server) == {"cus_1": "a@x.io", "cus_2": None}
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
        await until_long_polling(server, stream["id"])
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
        sync_id, consumer = setup_consumer(client)
        write_customers(server, sync_id, 1, {"id": "cus_1"}, {"id": "cus_2"})

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
        await until_long_polling(server, stream["id"])
        signal.raise_signal(signal.SIGINT)
        stats = await asyncio.wait_for(worker, timeout=5)
        assert stats.batches == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
