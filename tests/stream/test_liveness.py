"""Liveness: a consumer with pending records is always handed one, and counts each record once.

Issue #16: a nacked (or expired) message whose record then got a newer version stalled a
consumer for good when ``batch_size`` was no larger than the number of such messages, while
``num_pending`` counted the record twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
HOW = ("nack", "expiry")


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


@pytest.mark.parametrize("how", HOW)
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


@dataclass(frozen=True)
class Case:
    """Retries (outdated or current), records held with a newer version, fresh records."""

    outdated: int
    current: int
    held: int
    fresh: int
    how: str
    batch: int

    def __str__(self) -> str:
        return (
            f"outdated={self.outdated} current={self.current} held={self.held} "
            f"fresh={self.fresh} via {self.how}, batches of {self.batch}"
        )


CASES = [
    Case(*combo) for combo in itertools.product(range(3), range(3), range(2), range(2), HOW, (1, 3))
]


async def test_every_mix_of_retries_and_new_records_is_delivered_in_full_batches(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock
) -> None:
    """For every mix of outdated and current retries (nacked or expired), held records with a
    newer version and fresh records, and batch sizes 1 and 3: each claim is full until the
    stream is dry, each record is handed once at its newest version, the counts are exact."""
    for n, case in enumerate(CASES):
        consumer = await create_consumer(
            db, stream_id=stream.id, name=f"c{n}", deliver_policy="new", ack_wait_ms=1000,
            schema=schema, clock=clock,
        )  # fmt: skip
        await _run_case(db, schema, sync, clock, consumer, case, f"k{n}_")


async def _run_case(
    db: AConn, schema: str, sync: Sync, clock: ManualClock, c: Consumer, case: Case, p: str
) -> None:
    def keys(kind: str, count: int) -> list[str]:
        return [f"{p}{kind}{i}" for i in range(count)]

    held, outdated, current = (
        keys("h", case.held),
        keys("o", case.outdated),
        keys("c", case.current),
    )
    await _put(db, schema, sync, *held, *outdated, *current, clock=clock)
    kw: dict[str, Any] = {"schema": schema, "clock": clock}
    first = await claim(db, c, len(held + outdated + current) or 1, **kw)
    retried = [m.ack_token for m in first.messages if m.record.upstream_id not in held]
    holding = [m.ack_token for m in first.messages if m.record.upstream_id in held]
    if case.how == "nack":
        await nack(db, c, retried, **kw)
    elif first.messages:
        clock.advance(ms=1001)  # every delivery expires; the held ones are taken again
        if held:  # (the oldest first: they were written first)
            holding = [m.ack_token for m in (await claim(db, c, len(held), **kw)).messages]
    await _put(db, schema, sync, *held, *outdated, version=2, clock=clock)
    await _put(db, schema, sync, *keys("f", case.fresh), clock=clock)
    due = {*outdated, *current, *keys("f", case.fresh)}
    assert await info(db, c, **kw) == ConsumerInfo(len(due) + len(held), len(held)), case
    handed = await _drain(db, c, case, due, kw)
    assert handed == {k: 2 if k in outdated else 1 for k in due}, case
    assert (await info(db, c, **kw)) == ConsumerInfo(0, len(held)), case
    if holding:
        assert await ack(db, c, holding, schema=schema) == 0  # a newer version is due
        assert await _drain(db, c, case, set(held), kw) == dict.fromkeys(held, 2), case
    assert await info(db, c, **kw) == ConsumerInfo(0, 0), case


async def _drain(
    db: AConn, c: Consumer, case: Case, due: set[str], kw: dict[str, Any]
) -> dict[str, int]:
    """Claim and ack until ``next`` hands out nothing: every claim must be full unless fewer
    than a batch are due, and an empty one must report nothing pending."""
    handed: dict[str, int] = {}
    while True:
        got = await claim(db, c, case.batch, **kw)
        left = len(due) - len(handed)
        assert len(got.messages) == min(case.batch, left), (case, handed, got.info)
        if not got.messages:
            assert got.info.num_pending == 0, (case, got.info)
            return handed
        for m in got.messages:
            assert m.record.upstream_id not in handed, (case, "handed twice", m.record)
            handed[m.record.upstream_id] = m.record.data["v"]
        await ack(db, c, [m.ack_token for m in got.messages], schema=kw["schema"])


async def test_the_sql_path_leaves_no_outdated_message_behind(schema_dsn: str, schema: str) -> None:
    """A record a Python-path worker holds is delivered at a newer version by the SQL-only
    path: once that hold expires, the message is deliverable at the newer version (a harmless
    duplicate), never an outdated row that nothing delivers or counts."""
    async with table_consumer_world(schema_dsn, schema) as (pool, sync, consumer, target):
        fast = await compile_target(pool, target.sink(), schema)
        assert fast is not None
        async with pool.connection() as conn:
            await write(conn, sync, COL, [customer(0, 1)], schema=schema)
            held = await claim(conn, consumer, 1, schema=schema)
            await write(conn, sync, COL, [customer(0, 2, email="new@x.io")], schema=schema)
        assert await fast.deliver(pool, consumer.id, 1) == 1
        assert await fast.deliver(pool, consumer.id, 1) == 0
        async with pool.connection() as conn:
            later = ManualClock(datetime.now(UTC) + timedelta(hours=1))  # the hold has expired
            again = await claim(conn, consumer, 1, schema=schema, clock=later)
            assert [m.record.data["email"] for m in again.messages] == ["new@x.io"]
            assert held.messages[0].record.updated_idx < again.messages[0].record.updated_idx
            await ack(conn, consumer, [m.ack_token for m in again.messages], schema=schema)
            assert await info(conn, consumer, schema=schema, clock=later) == ConsumerInfo(0, 0)
