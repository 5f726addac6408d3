"""Managed consumers: batches applied to tables and acked in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from psycopg import sql

from upsync.errors import InvalidAckToken
from upsync.records import Record
from upsync.stream import (
    Stream,
    Sync,
    UpstreamObject,
    create_consumer,
    create_managed_table,
    deletion,
    deliver_batch,
    info,
    list_dead_letters,
    managed_table_apply,
    nack,
    write,
)
from upsync.stream.models import Consumer

from .helpers import records, table

AConn = psycopg.AsyncConnection[Any]
U = UpstreamObject
COL = "stripe:customer"


async def _run_until_empty(db: AConn, consumer: Consumer, apply: Any, schema: str) -> None:
    while (await deliver_batch(db, consumer, apply, batch_size=3, schema=schema)).delivered:
        pass


@pytest.mark.smoke
async def test_the_managed_table_ends_equal_to_the_stream(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    target = (schema, "sequin_records")
    await create_managed_table(db, target)
    await db.commit()
    consumer = await create_consumer(db, stream_id=stream.id, name="pg", schema=schema)
    apply = managed_table_apply(target)
    await write(db, sync, COL, [U(f"cus_{i}", {"i": i}, 1) for i in range(5)], schema=schema)
    await _run_until_empty(db, consumer, apply, schema)
    await write(db, sync, COL, [U("cus_1", {"i": 10}, 2), deletion("cus_2", 2)], schema=schema)
    await _run_until_empty(db, consumer, apply, schema)
    rows = {r["upstream_id"]: r for r in await table(db, schema, "sequin_records")}
    stream_rows = await records(db, schema)
    assert set(rows) == set(stream_rows)
    for upstream_id, rec in stream_rows.items():
        row = rows[upstream_id]
        assert (row["sequin_id"], row["updated_idx"], row["deleted"], row["data"]) == (
            rec["id"],
            rec["updated_idx"],
            rec["deleted"],
            rec["data"],
        )
        assert row["sync_external_id"] == "org_1" and row["sync_metadata"] == {"plan": "gold"}
    assert (await info(db, consumer, schema=schema)).to_dict() == {
        "num_pending": 0,
        "num_ack_pending": 0,
        "num_dead": 0,
    }


async def test_a_failing_apply_writes_nothing_and_the_batch_is_retried_then_dead(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    consumer = await create_consumer(
        db, stream_id=stream.id, name="pg", max_deliver=2, schema=schema
    )
    await write(db, sync, COL, [U("cus_1", {}, 1)], schema=schema)

    async def broken(conn: AConn, batch: Any) -> None:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(schema, "half"))
        )
        raise RuntimeError("handler failed")

    first = await deliver_batch(db, consumer, broken, schema=schema)
    assert isinstance(first.failed, RuntimeError) and first.acked == 0 and first.dead == 0
    second = await deliver_batch(db, consumer, broken, schema=schema)
    assert second.dead == 1
    assert [d.record.upstream_id for d in await list_dead_letters(db, consumer, schema=schema)] == [
        "cus_1"
    ]
    cur = await db.execute("SELECT to_regclass(%s)", [f'"{schema}".half'])
    assert (await cur.fetchone()) == (None,)  # the handler's writes rolled back with it


async def test_when_the_ack_fails_the_table_write_rolls_back_with_it(
    db: AConn, other_conn: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    target = (schema, "sequin_records")
    await create_managed_table(db, target)
    await db.commit()
    consumer = await create_consumer(db, stream_id=stream.id, name="pg", schema=schema)
    await write(db, sync, COL, [U("cus_1", {}, 1)], schema=schema)
    upsert = managed_table_apply(target)

    async def apply_then_lose_the_delivery(conn: AConn, batch: Sequence[Record]) -> None:
        await upsert(conn, batch)
        # another actor takes the message away before the ack (as an expiry + redelivery would)
        tokens = await _current_tokens(other_conn, schema, consumer)
        await nack(other_conn, consumer, tokens, schema=schema)

    outcome = await deliver_batch(db, consumer, apply_then_lose_the_delivery, schema=schema)
    assert isinstance(outcome.failed, InvalidAckToken)
    assert await table(db, schema, "sequin_records") == []


async def _current_tokens(conn: AConn, schema: str, consumer: Consumer) -> list[str]:
    from upsync.stream.tokens import AckToken

    rows = await table(conn, schema, "consumer_messages")
    return [
        AckToken(consumer.id, str(r["record_id"]), r["delivery_id"], r["delivered_idx"]).encode()
        for r in rows
        if r["state"] == "delivered"
    ]


async def test_a_table_sink_can_be_the_managed_consumers_handler(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    from upsync.sinks.routes import Route
    from upsync.sinks.table import TableSink

    await db.execute(
        sql.SQL(
            "CREATE TABLE {} (id uuid PRIMARY KEY, upstream_id text, deleted boolean, "
            "updated_idx bigint, name text)"
        ).format(sql.Identifier(schema, "customers"))
    )
    await db.commit()
    sink = TableSink([Route(COL, "customers", schema=schema, columns={"name": "data.name"})])
    consumer = await create_consumer(db, stream_id=stream.id, name="sink", schema=schema)
    await write(
        db, sync, COL, [U("cus_1", {"name": "a"}, 1), U("cus_2", {"name": "b"}, 1)], schema=schema
    )
    await write(db, sync, COL, [U("cus_1", {"name": "a2"}, 2)], schema=schema)
    await _run_until_empty(db, consumer, sink.apply_async, schema)
    rows = {r["upstream_id"]: r["name"] for r in await table(db, schema, "customers")}
    assert rows == {"cus_1": "a2", "cus_2": "b"}
