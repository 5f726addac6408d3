"""How fast the stream takes writes: upsync.stream.write against raw COPY of the same rows.

Writes N Stripe-like objects (~1 KB of JSON each) into a fresh stream with one consumer (which
costs the write nothing: consumers read through a cursor), in batches, and COPYs the same rows
(id, upstream id, data, version) into
a plain table with a primary key, in the same run (batch by batch, alternating, so that both see
the same load on a shared machine). The last line is machine-readable:
``stream_write_vs_copy=<ratio> objects_per_s=<n> copy_rows_per_s=<n> ...``.

Usage: python bench/stream_write.py [--objects N] [--batch B] [--dsn DSN]
(DSN defaults to $UPSYNC_BENCH_DSN, then $UPSYNC_TEST_DSN, then the local server.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from typing import Any

import orjson
import psycopg
from psycopg import sql

from upsync.records import record_id
from upsync.stream import (
    Sync,
    UpstreamObject,
    create_consumer,
    create_stream,
    create_sync,
    migrate,
    write,
)
from upsync.testing.records import stripe_customer


async def _prepare_stream(conn: psycopg.AsyncConnection[Any], schema: str) -> Sync:
    await migrate(conn, schema=schema)
    stream = await create_stream(conn, "bench", schema=schema)
    sync = await create_sync(
        conn,
        stream_id=stream.id,
        provider="stripe",
        name="bench",
        collection_ids=["stripe:customer"],
        schema=schema,
    )
    await create_consumer(conn, stream_id=stream.id, name="all", schema=schema)
    return sync


async def _copy_batch(
    conn: psycopg.AsyncConnection[Any],
    table: sql.Identifier,
    sync_id: str,
    batch: list[UpstreamObject],
) -> None:
    async with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
        for o in batch:
            await copy.write_row(
                (
                    record_id(sync_id, "stripe:customer", o.upstream_id),
                    o.upstream_id,
                    orjson.dumps(o.data).decode(),
                    o.deleted,
                    o.source_version,
                )
            )
    await conn.commit()


async def run(
    dsn: str, schema: str, objects: list[UpstreamObject], size: int
) -> tuple[float, float]:
    """Alternate one COPY batch and one stream batch, so both see the same machine load."""
    table = sql.Identifier(schema, "raw_copy")
    async with (
        await psycopg.AsyncConnection.connect(dsn) as raw,
        await psycopg.AsyncConnection.connect(dsn) as conn,
    ):
        await raw.execute(
            sql.SQL(
                "CREATE TABLE {} (id uuid PRIMARY KEY, upstream_id text NOT NULL, "
                "data jsonb NOT NULL, deleted boolean NOT NULL, source_version bigint NOT NULL)"
            ).format(table)
        )
        await raw.commit()
        sync = await _prepare_stream(conn, schema)
        copy_s = stream_s = 0.0
        for start in range(0, len(objects), size):
            batch = objects[start : start + size]
            t0 = time.perf_counter()
            await _copy_batch(raw, table, sync.id, batch)
            t1 = time.perf_counter()
            result = await write(conn, sync, "stripe:customer", batch, schema=schema)
            t2 = time.perf_counter()
            assert result.created == len(batch)
            copy_s += t1 - t0
            stream_s += t2 - t1
        return copy_s, stream_s


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "UPSYNC_BENCH_DSN",
            os.environ.get("UPSYNC_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        ),
    )
    args = parser.parse_args()
    rnd = random.Random(42)
    objects = [
        UpstreamObject(f"cus_{i:014d}", stripe_customer(i, rnd), 1_700_000_000_000 + i)
        for i in range(args.objects)
    ]
    size = sum(len(orjson.dumps(o.data)) for o in objects[:1000]) / 1000
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        copy_s, stream_s = await run(args.dsn, schema, objects, args.batch)
    finally:
        async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as admin:
            await admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    n = len(objects)
    print(f"objects: {n}, ~{size:.0f} bytes of JSON each, batches of {args.batch}, 1 consumer")
    print(f"raw COPY into a plain table: {copy_s:.2f} s ({n / copy_s:,.0f} rows/s)")
    print(f"upsync.stream.write:         {stream_s:.2f} s ({n / stream_s:,.0f} objects/s)")
    print(
        f"stream_write_vs_copy={copy_s / stream_s:.2f} objects_per_s={n / stream_s:.0f} "
        f"copy_rows_per_s={n / copy_s:.0f} objects={n} batch={args.batch} consumers=1"
    )


if __name__ == "__main__":
    asyncio.run(main())
