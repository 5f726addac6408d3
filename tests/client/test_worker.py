"""The worker loops, `run_worker` and `run_worker_async`, against a live API (see conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.client._server import (
    Server,
    create_customers_table,
    customer_rows,
    customers_sink,
    setup_consumer,
    until_long_polling,
    write_customers,
)
from upsync.client import (
    AsyncClient,
    Backoff,
    Client,
    WorkerStats,
    run_worker,
    run_worker_async,
)
from upsync.errors import MappingError
from upsync.records import Record
from upsync.sinks import ApplyResult
from upsync.stream.models import ConsumerInfo


def test_worker_applies_batches_to_a_table_with_table_sink_and_acks(
    server: Server, rng: random.Random
) -> None:
    create_customers_table(server)
    sink = customers_sink(server)
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
    sink = customers_sink(server)
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


# -- records the sink rejected (#16 item 3) ---------------------------------------------------

_MAX_DELIVER = 3
_FAST = Backoff(base_s=0.001, cap_s=0.01)


#: A bound on a worker run that should stop by itself (a broken worker fails, not hangs).
_DEADLINE_S = 60.0


@contextlib.contextmanager
def _deadline(stop: threading.Event) -> Iterator[None]:
    guard = threading.Timer(_DEADLINE_S, stop.set)
    guard.start()
    try:
        yield
    finally:
        guard.cancel()


def _customers(rng: random.Random) -> dict[str, str]:
    return {f"cus_{i}": f"{i}@x.io" for i in range(rng.randint(3, 12))}


@dataclass
class _Rejections:
    """What the handler saw: deliveries per upstream id, and the record ids of each batch."""

    expected: dict[str, str]
    seen: Counter[str] = field(default_factory=Counter)
    batches: list[set[str]] = field(default_factory=list)

    def saw(self, records: list[Record]) -> bool:
        """Count a batch; whether every record has now had its ``_MAX_DELIVER`` attempts."""
        self.seen.update(r.upstream_id for r in records)
        self.batches.append({r.id for r in records})
        return all(self.seen[k] == _MAX_DELIVER for k in self.expected)

    def check(self, stats: WorkerStats, info: ConsumerInfo, dead: list[dict[str, Any]]) -> None:
        assert stats.rejected == _MAX_DELIVER * len(self.expected), stats
        assert (stats.records, stats.failures) == (0, 0), stats
        assert (info.num_pending, info.num_ack_pending, info.num_dead) == (
            0,
            0,
            len(self.expected),
        )
        assert sorted(d["record"]["upstream_id"] for d in dead) == sorted(self.expected)
        assert all(d["deliver_count"] == _MAX_DELIVER for d in dead)

    def check_log(self, caplog: pytest.LogCaptureFixture) -> None:
        """One warning per batch, naming each record id of the batch and the reason."""
        lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
        assert len(lines) == len(self.batches)
        for line, ids in zip(lines, self.batches, strict=True):
            assert all(i in line for i in ids), line
            assert "does not exist" in line and "nacked" in line, line


def test_worker_nacks_records_the_sink_rejected_until_they_become_dead_letters(
    server: Server, rng: random.Random, caplog: pytest.LogCaptureFixture
) -> None:
    seen = _Rejections(_customers(rng))
    sink = customers_sink(server)  # its table does not exist yet: every record is rejected
    stop = threading.Event()
    with Client(server.url, server.token) as client, psycopg.connect(server.dsn) as conn:
        sync_id, consumer = setup_consumer(client, max_deliver=_MAX_DELIVER)
        write_customers(
            server, sync_id, 1, *({"id": k, "email": v} for k, v in seen.expected.items())
        )

        def handler(records: list[Record]) -> ApplyResult:
            result = sink.apply(conn, records)
            assert len(result.rejected) == len(records)
            if seen.saw(records):
                stop.set()
            return result

        with caplog.at_level(logging.WARNING, logger="upsync.client"), _deadline(stop):
            stats = run_worker(
                client,
                consumer,
                handler,
                batch_size=rng.randint(1, 5),
                wait_for_ms=2000,
                stop=stop,
                backoff=_FAST,
            )
        seen.check(stats, client.info(consumer), client.dead_letters(consumer))
        seen.check_log(caplog)

        # with the table there, the replayed dead letters are applied and acked
        create_customers_table(server)
        assert client.replay_dead_letters(consumer) == len(seen.expected)
        stop.clear()

        def apply(records: list[Record]) -> ApplyResult:
            result = sink.apply(conn, records)
            if len(customer_rows(server)) == len(seen.expected):
                stop.set()
            return result

        stats = run_worker(client, consumer, apply, batch_size=3, wait_for_ms=2000, stop=stop)
        assert customer_rows(server) == seen.expected
        assert (stats.records, stats.rejected) == (len(seen.expected), 0)
        info = client.info(consumer)
        assert (info.num_pending, info.num_ack_pending, info.num_dead) == (0, 0, 0)


async def test_async_worker_nacks_records_the_sink_rejected_until_they_become_dead_letters(
    server: Server, rng: random.Random, caplog: pytest.LogCaptureFixture
) -> None:
    seen = _Rejections(_customers(rng))
    sink = customers_sink(server)
    stop = asyncio.Event()
    async with (
        AsyncClient(server.url, server.token) as client,
        await psycopg.AsyncConnection.connect(server.dsn) as conn,
    ):
        stream = await client.create_stream("main")
        sync = await client.create_sync(
            provider="stripe",
            stream_id=stream["id"],
            name="acme",
            collection_ids=["stripe:customer"],
            credential={"properties": {"kind": "stripe_key", "secret": "sk_test_abc123"}},
        )
        await client.create_consumer(stream["id"], "workers", max_deliver=_MAX_DELIVER)
        customers = ({"id": k, "email": v} for k, v in seen.expected.items())
        await asyncio.to_thread(write_customers, server, sync["id"], 1, *customers)

        async def handler(records: list[Record]) -> ApplyResult:
            result = await sink.apply_async(conn, records)
            if seen.saw(records):
                stop.set()
            return result

        with caplog.at_level(logging.WARNING, logger="upsync.client"):
            worker = run_worker_async(
                client,
                "workers",
                handler,
                batch_size=rng.randint(1, 5),
                wait_for_ms=2000,
                stop=stop,
                backoff=_FAST,
            )
            stats = await asyncio.wait_for(worker, _DEADLINE_S)
        seen.check(stats, await client.info("workers"), await client.dead_letters("workers"))
        seen.check_log(caplog)

        create_customers_table(server)
        assert await client.replay_dead_letters("workers") == len(seen.expected)
        stop.clear()

        async def apply(records: list[Record]) -> ApplyResult:
            result = await sink.apply_async(conn, records)
            if len(customer_rows(server)) == len(seen.expected):
                stop.set()
            return result

        stats = await run_worker_async(
            client, "workers", apply, batch_size=3, wait_for_ms=2000, stop=stop
        )
        assert customer_rows(server) == seen.expected
        assert (stats.records, stats.rejected) == (len(seen.expected), 0)
        info = await client.info("workers")
        assert (info.num_pending, info.num_ack_pending, info.num_dead) == (0, 0, 0)


def test_worker_acks_the_applied_records_of_a_batch_and_nacks_only_the_rejected_ones(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    create_customers_table(server)
    # a CHECK the bad record breaks: Postgres refuses its row, the sink isolates it
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER TABLE {} ADD CHECK (email NOT LIKE 'sk_live_%')").format(
                sql.Identifier(server.schema, "customers")
            )
        )
    sink = customers_sink(server)
    stop = threading.Event()
    batches: list[list[Record]] = []
    with Client(server.url, server.token) as client, psycopg.connect(server.dsn) as conn:
        sync_id, consumer = setup_consumer(client, max_deliver=2)
        write_customers(
            server,
            sync_id,
            1,
            {"id": "cus_1", "email": "a@x.io"},
            {"id": "cus_2", "email": "sk_live_secret123"},  # Postgres's reason quotes the row
        )

        def handler(records: list[Record]) -> ApplyResult:
            batches.append(sorted(records, key=lambda r: r.upstream_id))
            if len(batches) == 2:
                stop.set()
            return sink.apply(conn, records)

        with caplog.at_level(logging.WARNING, logger="upsync.client"), _deadline(stop):
            stats = run_worker(
                client, consumer, handler, batch_size=10, wait_for_ms=2000, stop=stop, backoff=_FAST
            )
        assert [[r.upstream_id for r in b] for b in batches] == [["cus_1", "cus_2"], ["cus_2"]]
        assert (stats.records, stats.rejected) == (1, 2)
        assert customer_rows(server) == {"cus_1": "a@x.io"}
        info = client.info(consumer)
        assert (info.num_pending, info.num_ack_pending, info.num_dead) == (0, 0, 1)
        good, bad = batches[0]
        assert "check constraint" in caplog.text and "sk_live_secret123" not in caplog.text
        assert bad.id in caplog.text and good.id not in caplog.text


def test_worker_acks_nothing_of_a_batch_when_a_rejection_names_no_record_of_it(
    server: Server,
) -> None:
    stop = threading.Event()
    batches: list[list[str]] = []
    with Client(server.url, server.token) as client:
        sync_id, consumer = setup_consumer(client)
        write_customers(server, sync_id, 1, {"id": "cus_1"}, {"id": "cus_2"})

        def handler(records: list[Record]) -> ApplyResult | None:
            batches.append(sorted(r.upstream_id for r in records))
            if len(batches) == 1:  # a sink that cannot say which record it left out
                return ApplyResult(inserted=1, rejected=[MappingError("left one out")])
            stop.set()
            return None

        with _deadline(stop):
            stats = run_worker(
                client, consumer, handler, batch_size=10, wait_for_ms=2000, stop=stop, backoff=_FAST
            )
        assert batches == [["cus_1", "cus_2"], ["cus_1", "cus_2"]]
        assert (stats.rejected, stats.records) == (2, 2)
        assert client.info(consumer).num_pending == 0
