"""How fast the stream takes writes: against raw COPY of the same rows, and two writers vs one.

Each round, in a fresh schema with one stream and one consumer (which costs a write nothing:
consumers read through a cursor):

* ``stream_write_vs_copy``: ``--objects`` Stripe-like customers (~1 KB of JSON each) written by
  ``upsync.stream.write`` in batches of ``--batch``, and the same rows (id, upstream id, data,
  deleted, version) COPYed into a plain table with a primary key; the two alternate batch by
  batch (the first of the pair alternating too), so both see the same load on a shared machine.
  The ratio is COPY time / write time.
* ``two_writers_vs_one``: ``--concurrent`` objects written by one sync, alone; then two syncs
  of the same stream, each with its own collection, each writing that many objects at the same
  time on its own connection (two asyncio tasks in one process, as the engine runs its syncs).
  The ratio is the two writers' objects per second over the one writer's: 2.0 is perfect
  scaling, 1.0 means the writes serialise. The order of the two phases alternates by round.

Rounds, medians and the Postgres choice are ``bench/harness.py``'s; the last line is
machine-readable. Usage: python bench/stream_write.py [--objects N] [--concurrent M]
[--batch B] [--rounds R] [--dsn DSN] (DSN default: $UPSYNC_BENCH_DSN, else an embedded Postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import orjson
import psycopg
from psycopg import sql

from harness import Rounds, Stopwatch, run_bench, server_info
from streams import customers, new_stream, new_sync
from upsync.records import record_id
from upsync.stream import Sync, UpstreamObject, create_consumer, write

AConn = psycopg.AsyncConnection[Any]


async def copy_batch(
    conn: AConn, table: sql.Identifier, sync_id: str, batch: list[UpstreamObject]
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


async def write_batches(
    conn: AConn, schema: str, sync: Sync, objects: list[UpstreamObject], size: int
) -> None:
    """Write ``objects`` into the stream through ``sync``, ``size`` per transaction."""
    collection = sync.collection_ids[0]
    for start in range(0, len(objects), size):
        batch = objects[start : start + size]
        result = await write(conn, sync, collection, batch, schema=schema)
        assert result.created == len(batch), result


async def write_vs_copy(
    dsn: str, schema: str, sync: Sync, objects: list[UpstreamObject], size: int
) -> Stopwatch:
    """Alternate one COPY batch and one stream batch; the time of each."""
    table = sql.Identifier(schema, "raw_copy")
    watch = Stopwatch()
    async with await AConn.connect(dsn) as raw, await AConn.connect(dsn) as conn:
        await raw.execute(
            sql.SQL(
                "CREATE TABLE {} (id uuid PRIMARY KEY, upstream_id text NOT NULL, "
                "data jsonb NOT NULL, deleted boolean NOT NULL, source_version bigint NOT NULL)"
            ).format(table)
        )
        await raw.commit()
        for i, start in enumerate(range(0, len(objects), size)):
            batch = objects[start : start + size]
            steps = [("copy", raw), ("write", conn)]
            for label, c in steps if i % 2 == 0 else steps[::-1]:
                with watch.time(label):
                    if label == "copy":
                        await copy_batch(c, table, sync.id, batch)
                    else:
                        await write_batches(c, schema, sync, batch, size)
    return watch


async def writers_at_once(
    dsn: str, schema: str, syncs: list[Sync], objects: list[UpstreamObject], size: int
) -> float:
    """Seconds for every sync of ``syncs`` to write ``objects``, all at once (connected first)."""
    conns = [await AConn.connect(dsn) for _ in syncs]
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(write_batches(c, schema, s, objects, size) for c, s in zip(conns, syncs, strict=True))
        )
        return time.perf_counter() - start
    finally:
        for c in conns:
            await c.close()


async def one_round(
    dsn: str, args: argparse.Namespace, objects: list[UpstreamObject], number: int
) -> tuple[dict[str, float], float, float]:
    """One round in a fresh schema: its ratios, its stream and COPY rates."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    async with await AConn.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        stream = await new_stream(conn, schema)
        await create_consumer(conn, stream_id=stream, name="all", schema=schema)
        main = await new_sync(conn, schema, stream, "bench")
        solo = await new_sync(conn, schema, stream, "solo")
        pair = [
            await new_sync(conn, schema, stream, "a", "stripe:customer"),
            await new_sync(conn, schema, stream, "b", "stripe:product"),
        ]
    try:
        n = len(objects)
        watch = await write_vs_copy(dsn, schema, main, objects, args.batch)
        print(watch.line("copy", n), watch.line("write", n, "objects"), sep="\n")
        few = objects[: args.concurrent]
        one = two = 0.0
        for phase in ("one", "two") if number % 2 else ("two", "one"):
            if phase == "one":
                one = await writers_at_once(dsn, schema, [solo], few, args.batch)
            else:
                two = await writers_at_once(dsn, schema, pair, few, args.batch)
        print(
            f"  one writer: {len(few) / one:,.0f} objects/s; "
            f"two writers at once: {2 * len(few) / two:,.0f} objects/s together"
        )
    finally:
        async with await AConn.connect(dsn, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    ratios = {
        "stream_write_vs_copy": watch.wall["copy"] / watch.wall["write"],
        "two_writers_vs_one": 2 * one / two,
    }
    return ratios, watch.rate("write", n), watch.rate("copy", n)


async def run(dsn: str, args: argparse.Namespace) -> None:
    objects = customers(max(args.objects, args.concurrent))
    size = sum(len(orjson.dumps(o.data)) for o in objects[:1000]) / min(1000, len(objects))
    async with await AConn.connect(dsn) as conn:
        where = server_info(conn)
    print(
        f"objects={args.objects} concurrent={args.concurrent} ~{size:.0f} bytes of JSON each, "
        f"batches of {args.batch}, 1 consumer, {where}, rounds={args.rounds}"
    )
    rounds, writes, copies = Rounds(), [], []
    for number in range(1, args.rounds + 1):
        ratios, write_rate, copy_rate = await one_round(dsn, args, objects[: args.objects], number)
        writes.append(write_rate)
        copies.append(copy_rate)
        rounds.add(ratios)
    rounds.report(
        {
            "objects_per_s": f"{statistics.median(writes):.0f}",
            "copy_rows_per_s": f"{statistics.median(copies):.0f}",
            "objects": args.objects,
            "concurrent": args.concurrent,
            "batch": args.batch,
            "consumers": 1,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=50_000)
    parser.add_argument("--concurrent", type=int, default=25_000, help="objects per writer")
    parser.add_argument("--batch", type=int, default=5_000)
    run_bench(parser, lambda dsn, args: asyncio.run(run(dsn, args)))


if __name__ == "__main__":
    main()
