"""Liveness: a consumer with pending records is always handed one, and counts each record once.

Issue #16: a nacked (or expired) message whose record then got a newer version stalled a
consumer for good when ``batch_size`` was no larger than the number of such messages, while
``num_pending`` counted the record twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.engine.helpers import customer, table_consumer_world
from upsync.engine.consumers import deliver_to_tables
from upsync.engine.fastpath import compile_target
from upsync.records import Record
from upsync.stream import (
    ManualClock,
    Stream,
    StreamService,
    Sync,
    UpstreamObject,
    ack,
    claim,
    create_consumer,
    deliver_batch,
    info,
    nack,
    write,
)
from upsync.stream.models import Consumer, ConsumerInfo

AConn = psycopg.AsyncConnection[Any]
U = UpstreamObject
COL = "stripe:customer"


async def _consumer(db: AConn, schema: str, stream: Stream, **settings: Any) -> Consumer:
    return await create_consumer(db, stream_id=stream.id, name="c", schema=schema, **settings)


async def _put(db: AConn, schema: str, sync: Sync, *ids: str, version: int = 1, **kw: Any) -> None:
    await write(db, sync, COL, [U(i, {"v": version}, version) for i in ids], schema=schema, **kw)


async def _drain_one_by_one(
    db: AConn, c: Consumer, schema: str, clock: ManualClock | None = None
) -> list[tuple[str, Any]]:
    """Claim batches of one and ack them until ``next`` hands out nothing; every empty answer
    must come with ``num_pending == 0``."""
    kw: dict[str, Any] = {} if clock is None else {"clock": clock}
    seen: list[tuple[str, Any]] = []
    for _ in range(20):
        got = await claim(db, c, 1, schema=schema, **kw)
        if not got.messages:
            assert got.info.num_pending == 0, f"next gave nothing with {got.info} after {seen}"
            return seen
        m = got.messages[0]
        seen.append((m.record.upstream_id, m.record.data))
        await ack(db, c, [m.ack_token], schema=schema)
    raise AssertionError(f"the consumer never ran dry: {seen}")


async def test_the_issue_16_repro_through_the_stream_service(service: StreamService) -> None:
    """3 records; next(1); nack; a newer version of that record; next(1) hands out a record
    each time, and num_pending counts 3 records, not 4."""
    stream = await service.create_stream("s")
    sync = await service.create_sync(
        stream_id=stream.id, provider="stripe", name="acme", collection_ids=[COL]
    )
    await service.create_consumer(stream_id=stream.id, name="c", ack_wait_ms=60000)
    await service.write(sync.id, COL, [U(f"cus_{i}", {"v": 1}, 1) for i in range(3)])
    first = await service.next("c", batch_size=1)
    await service.nack("c", [m.ack_token for m in first.messages])
    await service.write(sync.id, COL, [U(first.messages[0].record.upstream_id, {"v": 2}, 2)])
    pending = (await service.info("c")).num_pending
    handed: list[tuple[str, Any]] = []
    for _ in range(3):
        batch = await service.next("c", batch_size=1, wait_for_ms=1000)
        assert len(batch.messages) == 1, f"stalled after {handed}: {batch.info}"
        handed += [(m.record.upstream_id, m.record.data) for m in batch.messages]
        await service.ack("c", [m.ack_token for m in batch.messages])
    assert sorted(handed) == [("cus_0", {"v": 2}), ("cus_1", {"v": 1}), ("cus_2", {"v": 1})]
    assert await service.info("c") == ConsumerInfo(0, 0, 0)
    assert pending == 3, "the outdated retry and its newer version were both counted"


@pytest.mark.parametrize("how", ["nack", "expiry"])
async def test_a_retry_whose_record_got_a_newer_version_never_stalls_batches_of_one(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock, how: str
) -> None:
    c = await _consumer(db, schema, stream, ack_wait_ms=1000, clock=clock)
    await _put(db, schema, sync, "cus_1", "cus_2", "cus_3", clock=clock)
    token = (await claim(db, c, 1, schema=schema, clock=clock)).messages[0].ack_token
    if how == "nack":
        await nack(db, c, [token], schema=schema, clock=clock)
    else:
        clock.advance(ms=1001)
    await _put(db, schema, sync, "cus_1", version=2, clock=clock)
    pending = (await info(db, c, schema=schema, clock=clock)).num_pending
    handed = await _drain_one_by_one(db, c, schema, clock)
    assert handed == [("cus_2", {"v": 1}), ("cus_3", {"v": 1}), ("cus_1", {"v": 2})]
    assert await info(db, c, schema=schema, clock=clock) == ConsumerInfo(0, 0, 0)
    assert pending == 3


async def test_more_outdated_retries_than_the_batch_size_still_deliver(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    """Three nacked messages all outdated by newer versions, batches of two: each claim
    hands out two records, the newest versions, each record once."""
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, "cus_1", "cus_2", "cus_3", "cus_4")
    got = await claim(db, c, 3, schema=schema)
    await nack(db, c, [m.ack_token for m in got.messages], schema=schema)
    await _put(db, schema, sync, "cus_1", "cus_2", "cus_3", version=2)
    pending = (await info(db, c, schema=schema)).num_pending
    sizes, handed = [], []
    while batch := (await claim(db, c, 2, schema=schema)).messages:
        sizes.append(len(batch))
        handed += [(m.record.upstream_id, m.record.data["v"]) for m in batch]
        await ack(db, c, [m.ack_token for m in batch], schema=schema)
    assert sorted(handed) == [("cus_1", 2), ("cus_2", 2), ("cus_3", 2), ("cus_4", 1)]
    assert sizes == [2, 2]
    assert pending == 4


async def test_a_held_record_with_a_newer_version_does_not_block_the_records_behind_it(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    """The newer version of a record a worker holds waits for that hold; ``next`` hands out
    the next record instead of an empty batch, and says when only the held one is left."""
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, "cus_1", "cus_2")
    held = (await claim(db, c, 1, schema=schema)).messages[0]
    await _put(db, schema, sync, "cus_1", "cus_3", version=2)
    got = await claim(db, c, 1, schema=schema)
    assert [m.record.upstream_id for m in got.messages] == ["cus_2"]
    await ack(db, c, [got.messages[0].ack_token], schema=schema)
    got = await claim(db, c, 1, schema=schema)
    assert [m.record.upstream_id for m in got.messages] == ["cus_3"]
    await ack(db, c, [got.messages[0].ack_token], schema=schema)
    empty = await claim(db, c, 1, schema=schema)
    assert empty.messages == () and empty.info == ConsumerInfo(0, 1, 0)
    assert await ack(db, c, [held.ack_token], schema=schema) == 0
    assert await _drain_one_by_one(db, c, schema) == [("cus_1", {"v": 2})]


async def test_the_managed_consumer_with_batches_of_one_gets_past_a_retried_record(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream)
    applied: list[tuple[str, Any]] = []
    fail = ["cus_1"]

    async def apply(conn: AConn, records: Sequence[Record]) -> None:
        if fail and records[0].upstream_id in fail:
            fail.clear()
            raise RuntimeError("the table is busy")
        applied.extend((r.upstream_id, r.data) for r in records)

    await _put(db, schema, sync, "cus_1", "cus_2", "cus_3")
    assert (await deliver_batch(db, c, apply, batch_size=1, schema=schema)).failed is not None
    await _put(db, schema, sync, "cus_1", version=2)
    for _ in range(3):
        assert (await deliver_batch(db, c, apply, batch_size=1, schema=schema)).acked == 1
    assert sorted(applied) == [("cus_1", {"v": 2}), ("cus_2", {"v": 1}), ("cus_3", {"v": 1})]
    assert await info(db, c, schema=schema) == ConsumerInfo(0, 0, 0)


@pytest.mark.parametrize("path", ["sql", "python"])
async def test_the_table_consumer_with_batches_of_one_gets_past_a_retried_record(
    schema_dsn: str, schema: str, path: str
) -> None:
    """The engine's table consumer, on the SQL-only path and on the Python path: a record
    nacked and then updated neither stalls the consumer nor lands at its older version."""
    async with table_consumer_world(schema_dsn, schema) as (pool, sync, consumer, target):
        async with pool.connection() as conn:
            await write(conn, sync, COL, [customer(n, 1) for n in range(3)], schema=schema)
            got = await claim(conn, consumer, 1, schema=schema)
            await nack(conn, consumer, [m.ack_token for m in got.messages], schema=schema)
            await write(conn, sync, COL, [customer(0, 2, email="new@x.io")], schema=schema)
        sink = target.sink()
        fast = await compile_target(pool, sink, schema) if path == "sql" else None
        assert path == "python" or fast is not None
        for _ in range(3):
            if fast is not None:
                delivered = await fast.deliver(pool, consumer.id, 1)
            else:
                report = await deliver_to_tables(pool, consumer, sink, batch_size=1, schema=schema)
                delivered = report.acked
            assert delivered == 1
        async with pool.connection() as conn:
            query = sql.SQL("SELECT upstream_id, email FROM {} ORDER BY 1")
            cur = await conn.execute(query.format(sql.Identifier(target.schema, "customers")))
            assert await cur.fetchall() == [("cus_0", "new@x.io"), ("cus_1", "1@x.io"),
                                            ("cus_2", "2@x.io")]  # fmt: skip
            assert await info(conn, consumer, schema=schema) == ConsumerInfo(0, 0, 0)
