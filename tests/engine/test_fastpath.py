"""The SQL-only delivery path gives exactly the rows the Python path gives."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.engine.helpers import Setup, customer
from upsync.engine.consumers import TableTarget, deliver_to_tables
from upsync.engine.fastpath import column_expression, compile_target
from upsync.sinks import Route, TableSink
from upsync.stream.consumers import create_consumer
from upsync.stream.delivery import claim, list_dead_letters, nack
from upsync.stream.models import UpstreamObject
from upsync.stream.write import write


def charge(n: int, version: int, **data: Any) -> UpstreamObject:
    body = {
        "id": f"ch_{n}",
        "object": "charge",
        "amount": 100 * n,
        "currency": "usd",
        "paid": n % 2 == 0,
        "customer": f"cus_{n}",
        "created": 1700000000 + n,
        "metadata": {"n": str(n)},
        **data,
    }
    return UpstreamObject(f"ch_{n}", body, version)


async def rows(setup: Setup, schema: str, table: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(schema, table))
    async with setup.pool.connection() as conn:
        return list(await (await conn.execute(query)).fetchall())


async def test_fast_path_rows_equal_python_path_rows(setup: Setup) -> None:
    await setup.write("stripe:customer", *(customer(n, 1) for n in range(6)))
    await setup.write("stripe:charge", *(charge(n, 1) for n in range(6)))
    await setup.write("stripe:customer", customer(2, 2, email="v2@x.io"))
    await setup.write("stripe:customer", UpstreamObject("cus_3", None, 3, deleted=True))
    await setup.write(
        "stripe:refund", UpstreamObject("re_1", {"id": "re_1", "object": "refund", "amount": 7}, 1)
    )
    # no typed table: lands in the raw table
    await setup.write("stripe:account", UpstreamObject("acct_1", {"id": "acct_1"}, 1))
    # a second consumer on the same stream, delivered by the Python path into other tables
    async with setup.pool.connection() as conn:
        twin = await create_consumer(
            conn, stream_id=setup.consumer.stream_id, name="twin", schema=setup.schema
        )
    python_target = TableTarget(schema=f"{setup.target.schema}_py")
    await python_target.create_tables(setup.pool)
    try:
        fast = await compile_target(setup.pool, setup.target.sink(), setup.schema)
        assert fast is not None
        delivered = 0
        while n := await fast.deliver(setup.pool, setup.consumer.id, 4):
            delivered += n
        assert delivered == 14
        sink = python_target.sink()
        while (await deliver_to_tables(setup.pool, twin, sink, schema=setup.schema)).delivered:
            pass
        for table in ("customers", "charges", "refunds", "upsync_raw_records"):
            fast_rows = await rows(setup, setup.target.schema, table)
            python_rows = await rows(setup, python_target.schema, table)
            assert fast_rows == python_rows, table
            assert fast_rows, table
        assert len(await rows(setup, setup.target.schema, "customers")) == 6
    finally:
        async with setup.pool.connection() as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(python_target.schema))
            )


async def test_a_refused_batch_changes_nothing(setup: Setup) -> None:
    await setup.write("stripe:charge", charge(1, 1), charge(2, 1, amount="lots"))
    fast = await compile_target(setup.pool, setup.target.sink(), setup.schema)
    assert fast is not None
    with pytest.raises(psycopg.errors.DataError):
        await fast.deliver(setup.pool, setup.consumer.id, 10)
    assert await rows(setup, setup.target.schema, "charges") == []
    # the Python path then isolates the bad row and delivers the good one
    report = await deliver_to_tables(
        setup.pool, setup.consumer, setup.target.sink(), schema=setup.schema
    )
    assert report.delivered == 2 and report.acked == 1
    assert [r[0] for r in await rows(setup, setup.target.schema, "charges")] != []


async def test_what_sql_cannot_express_uses_the_python_path(setup: Setup) -> None:
    hard = TableSink(setup.target.sink().routes.values(), hard_delete=True)
    assert await compile_target(setup.pool, hard, setup.schema) is None
    with_callable = TableSink(
        [
            Route(
                "stripe:customer",
                "customers",
                schema=setup.target.schema,
                columns={"email": lambda r: r.data.get("email")},
            )
        ]
    )
    assert await compile_target(setup.pool, with_callable, setup.schema) is None
    assert column_expression("data.a", "text; drop table x") is None


async def test_a_record_committed_out_of_order_is_still_delivered(setup: Setup) -> None:
    """Invariant 4 on the SQL-only path: A takes the lower updated_idx, B commits first and is
    delivered (the cursor moves past it), then A commits: A must still reach its table."""
    fast = await compile_target(setup.pool, setup.target.sink(), setup.schema)
    assert fast is not None
    async with setup.pool.connection() as a:
        await a.execute("SELECT 1")  # an open transaction
        await write(a, setup.sync, "stripe:customer", [customer(1, 1)], schema=setup.schema)
        # (another collection: writers of one (sync, collection) wait for each other)
        await setup.write("stripe:charge", charge(2, 1))
        assert await fast.deliver(setup.pool, setup.consumer.id, 10) == 1
        assert list(await setup.rows("charges", "amount")) == ["ch_2"]
        await a.commit()
    assert await fast.deliver(setup.pool, setup.consumer.id, 10) == 1
    assert list(await setup.rows("customers", "email")) == ["cus_1"]
    assert await fast.deliver(setup.pool, setup.consumer.id, 10) == 0


async def test_messages_waiting_for_a_retry_go_first_and_newer_versions_supersede_them(
    setup: Setup,
) -> None:
    fast = await compile_target(setup.pool, setup.target.sink(), setup.schema)
    assert fast is not None
    # a charge Postgres refuses twice (max_deliver=2) becomes a dead letter on the Python path
    await setup.write("stripe:charge", charge(1, 1, amount="lots"))
    for _ in range(2):
        await deliver_to_tables(
            setup.pool, setup.consumer, setup.target.sink(), schema=setup.schema
        )
    async with setup.pool.connection() as conn:
        dead = await list_dead_letters(conn, setup.consumer, schema=setup.schema)
    assert [d.record.upstream_id for d in dead] == ["ch_1"]
    # a nacked customer waits as a message; the fast path takes it before the stream's next
    await setup.write("stripe:customer", customer(1, 1))
    async with setup.pool.connection() as conn:
        got = await claim(conn, setup.consumer, 1, schema=setup.schema)
        await nack(conn, setup.consumer, [m.ack_token for m in got.messages], schema=setup.schema)
    await setup.write("stripe:customer", customer(2, 1))
    assert await fast.deliver(setup.pool, setup.consumer.id, 10) == 1
    assert list(await setup.rows("customers", "email")) == ["cus_1"]
    # a valid new version of the dead charge is delivered and takes its dead letter away
    await setup.write("stripe:charge", charge(1, 2))
    while await fast.deliver(setup.pool, setup.consumer.id, 10):
        pass
    assert sorted(await setup.rows("customers", "email")) == ["cus_1", "cus_2"]
    assert list(await setup.rows("charges", "amount")) == ["ch_1"]
    async with setup.pool.connection() as conn:
        assert await list_dead_letters(conn, setup.consumer, schema=setup.schema) == []
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(setup.schema, "consumer_messages")
            )
        )
        assert await cur.fetchone() == (0,)
