"""How fast TableSink writes, as ratios to hand-written SQL on the same table shape.

Phases, each on Stripe-like records with ~1 KB of ``data`` (jsonb, lz4 where available), in
batches of ``--batch`` records, one transaction per batch:

* ``copy``        raw ``COPY`` into an empty identical table: the insert ceiling (rows built from
                  the records by a hand-written tuple, JSON by orjson, as cheap as a loader gets);
* ``insert``      the sink on the same rows, all new;
* ``raw update``  the same ids one version newer, applied to the COPY's table by the fastest
                  hand-written SQL found (``--raw-update``; no version guard): the update bar;
* ``update``      the sink on that same update batch (guarded upsert);
* ``stale``       half stale replays (older versions), half newer versions;
* ``rowbyrow``    the naive ORM loop: one guarded ``INSERT … ON CONFLICT`` and one commit per
                  record (a sample of ``--rowbyrow`` records, scaled to rows/s).

``copy`` and ``insert`` alternate batch by batch, as do ``raw update`` and ``update`` (the one
that goes first alternates too), so each pair sees the same load on a shared machine. Every
round starts on fresh tables and its ratios are taken against its own baselines; the last line
holds their medians (``bench/harness.py``). Client memory is sampled after every sink batch.

Usage: python bench/sink.py [--rows N] [--batch B] [--rounds R] [--dsn DSN]
(DSN default: $UPSYNC_BENCH_DSN, else a fresh embedded Postgres).
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import random
import resource
import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import sql

from harness import Rounds, Stopwatch, run_bench, server_info
from upsync.records import Record, SyncRef, record_id
from upsync.sinks import Route, TableSink, create_table_sql, supports_lz4
from upsync.sinks import sql as q

Conn = psycopg.Connection[Any]

COLUMN_TYPES = {
    "stripe_customer_id": "text",
    "plan_id": "text",
    "quantity": "integer",
    "internal_id": "text",
}


def route(table: str, schema: str) -> Route:
    """The guide's subscription route, plus the whole object in ``data``."""
    return Route(
        "stripe:subscription",
        table,
        schema=schema,
        columns={
            "stripe_customer_id": "data.customer",
            "plan_id": "data.items.data[0].price.id",
            "quantity": "data.quantity",
            "internal_id": "sync.external_id",
            "data": "data",
        },
    )


def subscription(i: int, version: int, rnd: random.Random) -> Record:
    upstream = f"sub_{i:014d}"
    data: dict[str, Any] = {
        "id": upstream,
        "object": "subscription",
        "customer": f"cus_{i % 9973:08d}",
        "status": rnd.choice(["active", "trialing", "past_due", "canceled"]),
        "created": 1700000000 + i,
        "current_period_start": 1700000000 + version,
        "current_period_end": 1702592000 + version,
        "cancel_at_period_end": False,
        "collection_method": "charge_automatically",
        "currency": "usd",
        "latest_invoice": f"in_{i:014d}{version}",
        "livemode": False,
        "metadata": {"order": str(i), "version": str(version)},
        "quantity": 1 + (i + version) % 5,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{i:014d}",
                    "object": "subscription_item",
                    "price": {
                        "id": f"price_{i % 50}",
                        "object": "price",
                        "currency": "usd",
                        "unit_amount": 1000 + i % 900,
                        "recurring": {"interval": "month", "interval_count": 1},
                        "product": f"prod_{i % 20:08d}",
                    },
                    "quantity": 1 + i % 5,
                }
            ],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={upstream}",
        },
        "description": "".join(rnd.choices("abcdefghij klmnop", k=300)),
    }
    return Record(
        id=record_id("sync_bench", "stripe:subscription", upstream),
        upstream_id=upstream,
        collection_id="stripe:subscription",
        updated_idx=version,
        data=data,
        sync=SyncRef("sync_bench", "acme", {"plan": "gold"}),
    )


def copy_row(r: Record) -> tuple[Any, ...]:
    """The row a hand-written loader would COPY (same columns as the sink writes)."""
    d = r.data
    return (
        r.id,
        r.upstream_id,
        r.deleted,
        r.updated_idx,
        r.sync.id,
        r.sync.external_id,
        orjson.dumps(r.sync.metadata).decode(),
        r.upstream_created_at,
        r.upstream_updated_at,
        d.get("customer"),
        d["items"]["data"][0]["price"]["id"],
        d.get("quantity"),
        r.sync.external_id,
        orjson.dumps(d).decode(),
    )


COPY_COLUMNS = [
    "id",
    "upstream_id",
    "deleted",
    "updated_idx",
    "sync_id",
    "sync_external_id",
    "sync_metadata",
    "upstream_created_at",
    "upstream_updated_at",
    "stripe_customer_id",
    "plan_id",
    "quantity",
    "internal_id",
    "data",
]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def batches(items: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the hand-written baselines -------------------------------------------------------------


def raw_copy(conn: Conn, schema: str, part: Sequence[Record]) -> None:
    with conn.transaction(), conn.cursor().copy(_copy_into((schema, "copy_target"))) as cp:
        for r in part:
            cp.write_row(copy_row(r))


def _copy_into(target: Sequence[str]) -> sql.Composed:
    return q.copy_text_statement(target, COPY_COLUMNS)


def _stage(conn: Conn, schema: str, part: Sequence[Record]) -> None:
    """COPY ``part`` into the session's temporary ``raw_stage`` (emptied at commit)."""
    conn.execute(q.staging_statement("raw_stage", (schema, "copy_target"), COPY_COLUMNS))
    with conn.cursor().copy(_copy_into(("raw_stage",))) as cp:
        for r in part:
            cp.write_row(copy_row(r))


def _sets(source: str) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{0} = {1}.{0}").format(sql.Identifier(c), sql.Identifier(source))
        for c in COPY_COLUMNS[1:]
    )


def update_from_stage(
    conn: Conn, schema: str, part: Sequence[Record], *, index_join: bool = False
) -> None:
    """COPY into a temporary table, then one ``UPDATE … FROM`` it.

    ``index_join``: forbid hash and merge joins, so the update finds each row by its key instead
    of scanning the whole table (the planner has no statistics on the fresh temporary table).
    """
    with conn.transaction():
        if index_join:
            conn.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        _stage(conn, schema, part)
        conn.execute(
            sql.SQL("UPDATE {} AS t SET {} FROM pg_temp.raw_stage AS s WHERE t.id = s.id").format(
                sql.Identifier(schema, "copy_target"), _sets("s")
            )
        )


def upsert_from_stage(conn: Conn, schema: str, part: Sequence[Record]) -> None:
    """COPY into a temporary table, then ``INSERT … SELECT … ON CONFLICT DO UPDATE`` (no guard)."""
    with conn.transaction():
        _stage(conn, schema, part)
        cols = sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS))
        conn.execute(
            sql.SQL(
                "INSERT INTO {} AS t ({cols}) SELECT {cols} FROM pg_temp.raw_stage "
                "ON CONFLICT (id) DO UPDATE SET {}"
            ).format(sql.Identifier(schema, "copy_target"), _sets("excluded"), cols=cols)
        )


RAW_UPDATES: dict[str, Callable[[Conn, str, Sequence[Record]], None]] = {
    "upsert-from-stage": upsert_from_stage,
    "update-from-stage": update_from_stage,
    "update-from-stage-nestloop": functools.partial(update_from_stage, index_join=True),
}
"""The hand-written updates tried (docs/performance.md has their figures); the first is the
fastest and the default. A fourth, one ``UPDATE … FROM unnest(%s::text[], …)`` with every column
bound as a text array, ran at a quarter of these and was dropped."""


def row_by_row(conn: Conn, schema: str, records: Sequence[Record]) -> None:
    target = route("rowbyrow_target", schema)
    stmt = q.upsert_statement(target, COPY_COLUMNS, returning=False).as_string(conn)
    for r in records:
        with conn.transaction():
            conn.execute(stmt, copy_row(r))


# -- the run --------------------------------------------------------------------------------

Step = tuple[str, Callable[[Sequence[Record]], object]]


def interleaved(watch: Stopwatch, records: Sequence[Record], size: int, steps: list[Step]) -> None:
    """Each batch through every step in turn, the first step alternating between batches."""
    for i, part in enumerate(batches(records, size)):
        for label, fn in steps if i % 2 == 0 else steps[::-1]:
            with watch.time(label):
                fn(part)


def one_round(
    conn: Conn,
    schema: str,
    args: argparse.Namespace,
    data: tuple[list[Record], list[Record], list[Record]],
    rss: list[float],
) -> tuple[dict[str, float], float]:
    """One round on fresh tables: its ratios and its COPY rate."""
    v1, v2, mixed = data
    n, size = len(v1), args.batch
    sink = TableSink([route("sink_target", schema)])
    raw_update = RAW_UPDATES[args.raw_update]

    def sink_apply(expect: str) -> Callable[[Sequence[Record]], object]:
        def go(part: Sequence[Record]) -> None:
            result = sink.apply(conn, part)
            assert getattr(result, expect) > 0, result
            rss.append(rss_mb())

        return go

    watch = Stopwatch()
    interleaved(
        watch,
        v1,
        size,
        [
            ("raw COPY (insert ceiling)", lambda p: raw_copy(conn, schema, p)),
            ("sink: all new rows", sink_apply("inserted")),
        ],
    )
    interleaved(
        watch,
        v2,
        size,
        [
            (f"raw update ({args.raw_update})", lambda p: raw_update(conn, schema, p)),
            ("sink: all updates", sink_apply("updated")),
        ],
    )
    interleaved(watch, mixed, size, [("sink: half stale, half newer", sink_apply("stale"))])
    sample = v1[: args.rowbyrow]
    with watch.time("row by row, commit each"):
        row_by_row(conn, schema, sample)
    for label in watch.wall:
        print(watch.line(label, len(sample) if label.startswith("row by") else n))
    check(conn, schema, n)
    rate = {label.split(" (")[0]: watch.rate(label, n) for label in watch.wall}
    rate["row by row, commit each"] = watch.rate("row by row, commit each", len(sample))
    copy, insert = rate["raw COPY"], rate["sink: all new rows"]
    update = rate["sink: all updates"]
    return {
        "sink_vs_copy_insert": insert / copy,
        "sink_vs_raw_update": update / rate["raw update"],
        "sink_vs_rowbyrow": insert / rate["row by row, commit each"],
        "sink_vs_copy_update": update / copy,
        "stale_vs_copy": rate["sink: half stale, half newer"] / copy,
        "raw_update_vs_copy": rate["raw update"] / copy,
    }, copy


def check(conn: Conn, schema: str, n: int) -> None:
    """Both tables hold what their phases wrote (the raw update updated every row)."""
    count = sql.SQL(
        "SELECT count(*), count(*) FILTER (WHERE updated_idx = 3), "
        "count(*) FILTER (WHERE updated_idx = 2) FROM {}"
    )
    row = conn.execute(count.format(sql.Identifier(schema, "sink_target"))).fetchone()
    assert row == (n, (n + 1) // 2, n // 2), row
    row = conn.execute(count.format(sql.Identifier(schema, "copy_target"))).fetchone()
    assert row == (n, 0, n), row


def run(dsn: str, args: argparse.Namespace) -> None:
    rnd = random.Random(7)
    n = args.rows
    v1 = [subscription(i, 1, rnd) for i in range(n)]
    v2 = [subscription(i, 2, rnd) for i in range(n)]
    # half stale (version 1 < the table's 2), half newer (version 3), interleaved by key
    mixed = [v1[i] if i % 2 else subscription(i, 3, rnd) for i in range(n)]
    # the pre-built data sets are millions of objects that a real consumer would not hold at
    # once; keep the cyclic GC from rescanning them during every measured phase
    gc.collect()
    gc.freeze()
    size = len(orjson.dumps(v1[0].data))
    name = f"upsync_bench_{os.getpid()}"
    schema = sql.Identifier(name)
    rounds, copy_rates, rss = Rounds(), list[float](), list[float]()
    with psycopg.connect(dsn, autocommit=True) as conn:
        lz4 = supports_lz4(conn)
        print(
            f"rows={n} batch={args.batch} data_bytes~{size} lz4={lz4} {server_info(conn)} "
            f"rounds={args.rounds} raw_update={args.raw_update}"
        )
        try:
            for _ in range(args.rounds):
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}").format(schema)
                )
                for table in ("copy_target", "sink_target", "rowbyrow_target"):
                    conn.execute(
                        create_table_sql(route(table, name), column_types=COLUMN_TYPES, lz4=lz4)
                    )
                ratios, copy_rate = one_round(conn, name, args, (v1, v2, mixed), rss)
                copy_rates.append(copy_rate)
                rounds.add(ratios)
        finally:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
    growth = max(rss[len(rss) // 2 :]) - rss[1] if len(rss) > 2 else 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client RSS across {len(rss)} batches: 2nd {rss[1]:.0f} MB, last {rss[-1]:.0f} MB")
    rounds.report(
        {
            "copy_rows_per_s": f"{statistics.median(copy_rates):.0f}",
            "rss_growth_mb": f"{growth:.1f}",
            "peak_rss_mb": f"{peak:.0f}",
            "rows": n,
            "batch": args.batch,
            "raw_update": args.raw_update,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rowbyrow", type=int, default=1_000, help="records of the naive loop")
    parser.add_argument(
        "--raw-update", choices=sorted(RAW_UPDATES), default=next(iter(RAW_UPDATES))
    )
    run_bench(parser, run)


if __name__ == "__main__":
    main()
