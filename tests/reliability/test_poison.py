"""Poison and drift (T6, T7): records that can never apply are dead-lettered, the rest lands.

Everything flows the way production does: snapshots are written into the stream, the engine's
managed table consumer (:func:`deliver_to_tables`, a consumer with ``max_deliver=2``) applies
them to the typed Stripe tables. A record Postgres or the mapping refuses is nacked, retried once,
then listed as a dead letter; every other record lands, and a newer good version of a poisoned
record lands too. JSON that Postgres can never store (``\\u0000``) is refused earlier, at the
stream write, with a ``RecordError`` naming the object.

The figures line: ``poison_records=… dead_lettered=… good_applied=… lost=0``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.engine.helpers import table_consumer_world
from tests.sinks._drivers import DRIVERS, Report, apply_once, report
from upsync.engine.consumers import TableTarget, deliver_to_tables
from upsync.errors import MappingError, RecordError, RowRejected
from upsync.records import Record, record_id
from upsync.sinks import Route, TableSink
from upsync.sinks.ddl import ensure_table_async
from upsync.stream import (
    list_dead_letters,
    write,
)
from upsync.stream.models import Consumer, DeadLetter, Sync, UpstreamObject

HUGE = 5_000_000


@dataclass
class Pipeline:
    pool: AsyncConnectionPool[Any]
    schema: str
    sync: Sync
    consumer: Consumer
    target: TableTarget
    refused: list[str] = field(default_factory=list)

    async def write(self, collection_id: str, *objects: UpstreamObject) -> None:
        async with self.pool.connection() as conn:
            await write(conn, self.sync, collection_id, objects, schema=self.schema)

    async def drain(self) -> None:
        """Deliver until nothing is deliverable: refused records use up their 2 attempts."""
        sink = self.target.sink()
        for _ in range(50):
            report = await deliver_to_tables(self.pool, self.consumer, sink, schema=self.schema)
            self.refused += [str(e) for e in report.refused]
            if not report.delivered:
                return
        raise AssertionError("the consumer never ran dry")

    async def dead(self) -> list[DeadLetter]:
        async with self.pool.connection() as conn:
            return await list_dead_letters(conn, self.consumer, schema=self.schema)

    async def rows(self, table: str, *columns: str) -> dict[str, tuple[Any, ...]]:
        query = sql.SQL("SELECT upstream_id, {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(self.target.schema, table),
        )
        async with self.pool.connection() as conn:
            cur = await conn.execute(query)
            return {r[0]: tuple(r[1:]) for r in await cur.fetchall()}


@pytest.fixture
async def pipeline(schema_dsn: str, schema: str) -> AsyncIterator[Pipeline]:
    async with table_consumer_world(schema_dsn, schema) as (pool, sync, consumer, target):
        yield Pipeline(pool, schema, sync, consumer, target)


def customer(n: int | str, version: int = 1, **data: Any) -> UpstreamObject:
    oid = f"cus_{n}"
    body = {"id": oid, "object": "customer", "email": f"{n}@x.io", "balance": 0, **data}
    return UpstreamObject(oid, body, version)


def charge(n: int | str, version: int = 1, **data: Any) -> UpstreamObject:
    oid = f"ch_{n}"
    body = {"id": oid, "object": "charge", "amount": 100, "currency": "usd", **data}
    return UpstreamObject(oid, body, version)


#: Records the typed tables can never take, each with the reason it must be refused for.
POISON = {
    "cus_p_type": customer("p_type", balance="lots"),  # bigint column
    "cus_p_decimal": customer("p_decimal", balance="12.5"),  # bigint column
    "cus_p_object": customer("p_object", balance={"amount": 5}),  # scalar column, JSON object
    "cus_p_bool": customer("p_bool", delinquent="maybe"),  # boolean column
    "ch_p_amount": charge("p_amount", amount=[1, 2]),  # scalar column, JSON array
    "ch_p_paid": charge("p_paid", paid="perhaps"),  # boolean column
}


def good_objects() -> list[tuple[str, UpstreamObject]]:
    out = [("stripe:customer", customer(n)) for n in range(20)]
    out += [("stripe:charge", charge(n, amount=100 + n)) for n in range(10)]
    # drift that must still land: new fields, removed fields, a jsonb field retyped to a string
    out.append(("stripe:customer", customer("new_field", brand_new={"nested": [1, 2]})))
    out.append(("stripe:customer", UpstreamObject("cus_removed", {"id": "cus_removed"}, 1)))
    out.append(("stripe:customer", customer("meta_str", metadata="a plain string")))
    out.append(("stripe:customer", customer("nulls", email=None, balance=None)))
    out.append(("stripe:customer", customer("huge", notes="x" * HUGE)))
    return out


async def test_poison_is_dead_lettered_and_everything_else_lands(pipeline: Pipeline) -> None:
    """Poison mixed into the same batches as good records: P dead letters, 100 % of the rest."""
    good = good_objects()
    for collection_id in ("stripe:customer", "stripe:charge"):
        batch = [o for c, o in good if c == collection_id]
        batch += [o for o in POISON.values() if o.upstream_id.startswith(collection_id[7:9])]
        await pipeline.write(collection_id, *batch)
    await pipeline.drain()

    dead = sorted(d.record.upstream_id for d in await pipeline.dead())
    assert dead == sorted(POISON)
    assert all(d.deliver_count == 2 for d in await pipeline.dead())
    customers = await pipeline.rows("customers", "email", "balance", "metadata")
    charges = await pipeline.rows("charges", "amount")
    landed = set(customers) | set(charges)
    expected_good = {o.upstream_id for _, o in good}
    lost = expected_good - landed
    assert not lost
    assert not (landed & set(POISON)), "a poisoned record landed"
    assert customers["cus_removed"] == (None, None, None)  # removed fields: NULL, not an error
    assert customers["cus_meta_str"][2] == "a plain string"  # jsonb takes the retyped value
    assert customers["cus_nulls"][:2] == (None, None)
    assert charges["ch_7"] == (107,)
    huge = await pipeline.rows("customers", "data")
    assert len(huge["cus_huge"][0]["notes"]) == HUGE  # the 5 MB payload, intact
    assert huge["cus_new_field"][0]["brand_new"] == {"nested": [1, 2]}
    # every refusal names the record and says why
    assert len(pipeline.refused) == 2 * len(POISON)
    ids = {record_id(pipeline.sync.id, f"stripe:{(k[:2] == 'ch' and 'charge') or 'customer'}", k)
           for k in POISON}  # fmt: skip
    assert {r.split("'")[1] for r in pipeline.refused} == ids
    print(
        f"\npoison_records={len(POISON)} dead_lettered={len(dead)} "
        f"good_applied={len(expected_good & landed)} lost={len(lost)}"
    )


async def test_a_newer_good_version_of_a_dead_letter_lands(pipeline: Pipeline) -> None:
    """Quarantine is per version: the fixed object applies, and the dead letter is gone."""
    await pipeline.write("stripe:customer", customer(1, 1, balance="lots"), customer(2, 1))
    await pipeline.drain()
    assert [d.record.upstream_id for d in await pipeline.dead()] == ["cus_1"]
    await pipeline.write("stripe:customer", customer(1, 2, balance=7))
    await pipeline.drain()
    assert await pipeline.dead() == []
    rows = await pipeline.rows("customers", "balance")
    assert rows == {"cus_1": (7,), "cus_2": (0,)}


async def test_a_poisoned_newer_version_keeps_the_older_row(pipeline: Pipeline) -> None:
    """The row stays at its last good version while the bad one waits in the dead letters."""
    await pipeline.write("stripe:customer", customer(1, 1, balance=3))
    await pipeline.drain()
    await pipeline.write("stripe:customer", customer(1, 2, balance="lots"))
    await pipeline.drain()
    assert (await pipeline.rows("customers", "balance")) == {"cus_1": (3,)}
    [dead] = await pipeline.dead()
    assert dead.record.data["balance"] == "lots"


async def test_ids_repeated_in_a_stream_batch_keep_the_newest(pipeline: Pipeline) -> None:
    """A batch repeating an id: only the newest snapshot counts, even when older ones are bad."""
    await pipeline.write(
        "stripe:customer",
        customer(1, 1, balance="bad"),
        customer(1, 3, balance=3),
        customer(1, 2, balance={"x": 1}),
        customer(1, 3, balance=3),
    )
    await pipeline.drain()
    assert await pipeline.dead() == []
    assert (await pipeline.rows("customers", "balance")) == {"cus_1": (3,)}


async def test_ids_repeated_in_a_sink_batch_reject_only_the_winning_bad_version(
    pipeline: Pipeline,
) -> None:
    """TableSink dedups a batch to each id's highest version; if that one is refused, it alone
    is rejected (an older version is not applied in its place) and the rest applies."""
    await pipeline.write("stripe:customer", customer(1, 1), customer(2, 1))
    async with pipeline.pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT data, updated_idx FROM {} ORDER BY upstream_id").format(
                sql.Identifier(pipeline.schema, "records")
            )
        )
        (d1, idx1), (d2, idx2) = await cur.fetchall()

    def rec(data: dict[str, Any], idx: int) -> Record:
        uid = data["id"]
        return Record(record_id(pipeline.sync.id, "stripe:customer", uid), uid, "stripe:customer",
                      idx, data)  # fmt: skip

    batch = [
        rec(d1, idx1),
        rec({**d1, "balance": "bad"}, idx1 + 10),
        rec(d1, idx1),
        rec(d2, idx2),
        rec(d2, idx2),
    ]
    sink = pipeline.target.sink()
    async with pipeline.pool.connection() as conn:
        result = await sink.apply_async(conn, batch)
    assert [type(e) for e in result.rejected] == [RowRejected]
    assert result.duplicates == 3 and result.inserted == 1
    assert (await pipeline.rows("customers", "balance")) == {"cus_2": (0,)}


async def test_nul_in_json_is_refused_at_the_stream_write_naming_the_object(
    pipeline: Pipeline,
) -> None:
    """Postgres jsonb can never hold ``\\u0000``: the write refuses it before writing anything."""
    bad = customer("nul", name="evil\x00name")
    with pytest.raises(RecordError) as caught:
        await pipeline.write("stripe:customer", customer(1), bad)
    error = caught.value
    assert (error.index, error.record_id, error.field) == (1, "cus_nul", "data")
    assert "cus_nul" in str(error) and "NUL" in str(error)
    async with pipeline.pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pipeline.schema, "records"))
        )
        assert await cur.fetchone() == (0,)  # nothing of the batch was written


async def test_nul_in_a_nested_key_is_refused_at_the_stream_write(pipeline: Pipeline) -> None:
    with pytest.raises(RecordError) as caught:
        await pipeline.write("stripe:customer", customer("k", metadata={"a\x00b": "v"}))
    assert caught.value.record_id == "cus_k"


async def test_nul_in_an_upstream_id_is_a_record_error(pipeline: Pipeline) -> None:
    """(Found by this suite: it used to fail inside COPY with a bare psycopg.DataError.)"""
    with pytest.raises(RecordError) as caught:
        await pipeline.write("stripe:customer", customer(1), UpstreamObject("cus_\x00", {}, 1))
    assert (caught.value.index, caught.value.field) == (1, "upstream_id")


async def test_drifted_fields_are_kept_in_the_data_column(pipeline: Pipeline) -> None:
    """(Found by this suite: the typed tables' data column used to stay NULL.)"""
    await pipeline.write("stripe:customer", customer(1, brand_new={"x": 1}))
    await pipeline.drain()
    [(data,)] = (await pipeline.rows("customers", "data")).values()
    assert data is not None and data["brand_new"] == {"x": 1}


async def test_a_dead_letter_lists_its_reason(pipeline: Pipeline) -> None:
    """(Found by this suite: the reason used to be only logged.)"""
    await pipeline.write("stripe:customer", customer(1, balance="lots"))
    await pipeline.drain()
    [dead] = await pipeline.dead()
    assert dead.reason and "bigint" in dead.reason
    assert dead.to_dict()["reason"] == dead.reason


async def test_a_custom_route_refusing_rows_does_not_block_other_routes(
    pipeline: Pipeline, schema: str
) -> None:
    """A user TableSink with a NOT NULL column: the row Postgres refuses is isolated."""
    route = Route("stripe:customer", "strict_customers", schema=schema,
                  columns={"email": "data.email"})  # fmt: skip
    async with pipeline.pool.connection() as conn:
        await ensure_table_async(conn, route)
        await conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN email SET NOT NULL").format(
                sql.Identifier(schema, "strict_customers")
            )
        )
    await pipeline.write("stripe:customer", customer(1), customer(2, email=None), customer(3))
    sink = TableSink([route])
    got_refused: list[str] = []
    for _ in range(10):
        report = await deliver_to_tables(pipeline.pool, pipeline.consumer, sink,
                                         schema=pipeline.schema)  # fmt: skip
        got_refused += [str(e) for e in report.refused]
        if not report.delivered:
            break
    assert [d.record.upstream_id for d in await pipeline.dead()] == ["cus_2"]
    assert got_refused and all("email" in r for r in got_refused)
    async with pipeline.pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT upstream_id FROM {} ORDER BY 1").format(
                sql.Identifier(schema, "strict_customers")
            )
        )
        assert [r[0] for r in await cur.fetchall()] == ["cus_1", "cus_3"]


#: What every driver says of each poison record (see ``tests/sinks/test_drivers.py``).
POISON_REPORTS: dict[str, tuple[type, str | None, str | None, str]] = {
    "cus_p_type": (RowRejected, None, "22P02", 'invalid input syntax for type bigint: "lots"'),
    "cus_p_decimal": (RowRejected, None, "22P02", 'invalid input syntax for type bigint: "12.5"'),
    "cus_p_object": (MappingError, "balance", None,
                     "value is a JSON object, but column 'balance' is not JSON"),
    "cus_p_bool": (RowRejected, None, "22P02", 'invalid input syntax for type boolean: "maybe"'),
    "ch_p_amount": (MappingError, "amount", None,
                    "value is a JSON array, but column 'amount' is not JSON"),
    "ch_p_paid": (RowRejected, None, "22P02", 'invalid input syntax for type boolean: "perhaps"'),
}  # fmt: skip


@pytest.mark.parametrize("driver", DRIVERS)
async def test_poison_gets_the_same_report_whatever_the_driver(
    pipeline: Pipeline, schema_dsn: str, driver: str
) -> None:
    """The poison records and the good ones, applied by the typed tables' TableSink through
    each driver: every poison record is refused with the same report, the rest lands."""

    def rec(collection_id: str, o: UpstreamObject) -> Record:
        rid = record_id(pipeline.sync.id, collection_id, o.upstream_id)
        return Record(rid, o.upstream_id, collection_id, o.source_version, o.data or {})

    collection = {"cus": "stripe:customer", "ch_": "stripe:charge"}
    batch = [rec(collection[k[:3]], o) for k, o in POISON.items()]
    batch += [rec(c, o) for c, o in good_objects() if o.upstream_id != "cus_huge"]
    result = await apply_once(driver, schema_dsn, pipeline.target.sink(), batch)
    expected: list[Report] = [
        (kind.__name__, record_id(pipeline.sync.id, collection[k[:3]], k), column, state, why)
        for k, (kind, column, state, why) in POISON_REPORTS.items()
    ]
    assert report(result.rejected) == sorted(expected, key=lambda r: r[1])
    assert result.inserted == len(batch) - len(POISON)
    customers = await pipeline.rows("customers", "balance")
    assert customers["cus_3"] == (0,) and not set(customers) & set(POISON)
