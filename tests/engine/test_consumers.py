"""Managed table consumers: the stream lands in typed tables; refused rows are dead-lettered."""

from __future__ import annotations

import pytest
from psycopg import sql

from tests.engine.helpers import Setup, customer
from upsync.engine.consumers import SingleTableTarget, TableTarget, deliver_to_tables, target_of
from upsync.records import record_id
from upsync.stream.delivery import list_dead_letters
from upsync.stream.models import UpstreamObject


@pytest.mark.smoke
async def test_stream_lands_in_typed_tables_with_updates_and_deletes(setup: Setup) -> None:
    await setup.write("stripe:customer", *(customer(n, 1) for n in range(5)))
    assert await setup.drain() == 5
    await setup.write("stripe:customer", customer(1, 2, email="new@x.io"))
    await setup.write("stripe:customer", UpstreamObject("cus_2", None, 3, deleted=True))
    assert await setup.drain() == 2
    rows = await setup.rows("customers", "email", "deleted", "sync_external_id", "id")
    assert rows["cus_1"][:3] == ("new@x.io", False, "acme")
    assert rows["cus_2"][1] is True
    assert rows["cus_0"][3] == record_id(setup.sync.id, "stripe:customer", "cus_0")
    assert len(rows) == 5


async def test_a_refused_row_is_dead_lettered_and_the_rest_land(setup: Setup) -> None:
    good = {"id": "ch_1", "object": "charge", "amount": 500, "created": 1}
    bad = {"id": "ch_2", "object": "charge", "amount": "lots", "created": 1}  # bigint column
    await setup.write(
        "stripe:charge", UpstreamObject("ch_1", good, 1), UpstreamObject("ch_2", bad, 1)
    )
    await setup.drain()
    await setup.drain()  # second attempt of the refused one; max_deliver=2
    rows = await setup.rows("charges", "amount")
    assert rows == {"ch_1": (500,)}
    async with setup.pool.connection() as conn:
        dead = await list_dead_letters(conn, setup.consumer, schema=setup.schema)
    assert [d.record.upstream_id for d in dead] == ["ch_2"]


async def test_tables_are_created_idempotently(setup: Setup) -> None:
    await setup.target.create_tables(setup.pool)
    async with setup.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
            [setup.target.schema],
        )
        row = await cur.fetchone()
    assert row is not None and row[0] >= 18


async def test_sequins_single_managed_table(setup: Setup) -> None:
    single = SingleTableTarget(schema=setup.target.schema, table="sequin_records")
    await single.create_tables(setup.pool)
    await setup.write("stripe:customer", customer(1, 1), customer(2, 1))
    await setup.write("stripe:charge", UpstreamObject("ch_1", {"id": "ch_1", "amount": 5}, 1))
    await setup.write("stripe:customer", customer(1, 2, email="v2@x.io"))
    sink = single.sink()
    while (
        await deliver_to_tables(setup.pool, setup.consumer, sink, schema=setup.schema)
    ).delivered:
        pass
    query = sql.SQL(
        "SELECT upstream_id, collection_id, data->>'email', sync_external_id FROM {}"
    ).format(sql.Identifier(single.schema, single.table))
    async with setup.pool.connection() as conn:
        rows = {r[0]: r[1:] for r in await (await conn.execute(query)).fetchall()}
    assert rows == {
        "cus_1": ("stripe:customer", "v2@x.io", "acme"),
        "cus_2": ("stripe:customer", "2@x.io", "acme"),
        "ch_1": ("stripe:charge", None, "acme"),
    }


def test_targets_follow_the_consumers_kind(setup: Setup) -> None:
    from dataclasses import replace

    assert target_of(replace(setup.consumer, kind="http")) is None
    table = target_of(replace(setup.consumer, kind="table", metadata={"schema": "billing"}))
    assert table == TableTarget(schema="billing")
    single = target_of(replace(setup.consumer, kind="postgres", metadata={"table": "app.sequin"}))
    assert single == SingleTableTarget(schema="app", table="sequin")
