"""Planner statistics of the stream tables are refreshed when missing or outgrown."""

from __future__ import annotations

from psycopg import sql

from upsync.stream import Sync, write
from upsync.stream import UpstreamObject as U
from upsync.stream.maintenance import refresh_statistics
from upsync.stream.tables import AConn

COL = "stripe:customer"


async def _flush_stats(db: AConn) -> None:
    # counters reach pg_stat_user_tables when a backend flushes them; force it (PG 15+)
    await db.execute("SELECT pg_stat_force_next_flush()")
    await db.commit()
    await db.execute("SELECT pg_stat_clear_snapshot()")
    await db.commit()


async def _reltuples(db: AConn, schema: str) -> float:
    cur = await db.execute(
        "SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
        [sql.Identifier(schema, "records").as_string(db)],
    )
    row = await cur.fetchone()
    assert row is not None
    return float(row[0])


async def test_a_grown_stream_is_analysed_once_then_left_alone(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U(f"cus_{i}", {"i": i}, 1) for i in range(1500)], schema=schema)
    await _flush_stats(db)
    assert await _reltuples(db, schema) < 0  # never analysed: the planner guesses
    analysed = await refresh_statistics(db, schema=schema)
    await db.commit()
    assert "records" in analysed
    assert await _reltuples(db, schema) == 1500
    await _flush_stats(db)
    assert await refresh_statistics(db, schema=schema) == []  # fresh: one catalog query
    # a few more rows (under the floor and under the table's size) are autovacuum's business
    await write(db, sync, COL, [U(f"cus_x{i}", {"i": i}, 1) for i in range(200)], schema=schema)
    await _flush_stats(db)
    assert await refresh_statistics(db, schema=schema) == []
