"""How fast TableSink writes, as ratios to raw COPY on the same table shape, in one run.

Phases, each on Stripe-like records with ~1 KB of ``data`` (jsonb, lz4 where available), in
batches of ``--batch`` records, one transaction per batch:

* ``copy``      raw ``COPY`` into an empty identical table: the ceiling (rows built from the
                records by a hand-written tuple, JSON by orjson, as cheap as a loader gets);
* ``insert``    the sink on all-new rows;
* ``update``    the sink on the same ids, one version newer;
* ``stale``     half stale replays (older versions), half newer versions;
* ``rowbyrow``  the naive ORM loop: one guarded ``INSERT … ON CONFLICT`` and one commit per
                record (a sample of ``--rowbyrow`` records, scaled to rows/s).

The phases run ``--rounds`` times on fresh tables; each ratio is the median over the rounds of
(phase rate / that round's COPY rate), so a noisy neighbour skews one round, not the result.
Client memory is sampled (RSS) after every batch; it should not grow with the batch count.
Usage: python bench/sink.py [--rows N] [--batch B] [--rounds R] [--dsn DSN]
(DSN default: UPSYNC_BENCH_DSN, else UPSYNC_TEST_DSN, else an embedded Postgres).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from upsync.records import Record, SyncRef, record_id
from upsync.sinks import Route, TableSink, create_table_sql, supports_lz4
from upsync.sinks import sql as q

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


def timed(label: str, rows: int, fn: Callable[[], object]) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    wall = time.perf_counter() - start
    client_us = (time.process_time() - cpu) / rows * 1e6
    print(f"{label:<34}{rows / wall:>10,.0f} rows/s   client CPU {client_us:5.1f} us/row")
    return rows / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rowbyrow", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    dsn = args.dsn or os.environ.get("UPSYNC_BENCH_DSN") or os.environ.get("UPSYNC_TEST_DSN")
    server = None
    if not dsn:
        from upsync.embedded import start_embedded

        server = start_embedded(Path(tempfile.mkdtemp()) / "pgdata")
        dsn = server.dsn
    try:
        run(dsn, args)
    finally:
        if server is not None:
            server.stop()


def run(dsn: str, args: argparse.Namespace) -> None:
    rnd = random.Random(7)
    n = args.rows
    v1 = [subscription(i, 1, rnd) for i in range(n)]
    v2 = [subscription(i, 2, rnd) for i in range(n)]
    # half stale (version 1 < the table's 2), half newer (version 3), interleaved by key
    mixed = [v1[i] if i % 2 else subscription(i, 3, rnd) for i in range(n)]
    # the three pre-built data sets are millions of objects that a real consumer would not hold
    # at once; keep the cyclic GC from rescanning them during every measured phase
    gc.collect()
    gc.freeze()
    size = len(orjson.dumps(v1[0].data))
    name = f"upsync_bench_{os.getpid()}"
    schema = sql.Identifier(name)
    ratios: dict[str, list[float]] = {"insert": [], "update": [], "stale": []}
    rowbyrow = copy_best = 0.0
    rss: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        lz4 = supports_lz4(conn)
        print(
            f"rows={n} batch={args.batch} data_bytes~{size} lz4={lz4} "
            f"server={conn.info.server_version} rounds={args.rounds} "
            f"(ratios: median over rounds of each phase vs that round's COPY)"
        )
        try:
            for round_ in range(args.rounds):
                print(f"-- round {round_ + 1}")
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}").format(schema)
                )
                for table in ("copy_target", "sink_target", "rowbyrow_target"):
                    conn.execute(
                        create_table_sql(route(table, name), column_types=COLUMN_TYPES, lz4=lz4)
                    )
                rates = phases(conn, name, args, (v1, v2, mixed), rss, rowbyrow=round_ == 0)
                for k, values in ratios.items():
                    values.append(rates[k] / rates["copy"])
                copy_best = max(copy_best, rates["copy"])
                if "rowbyrow" in rates:
                    rowbyrow = rates["insert"] / rates["rowbyrow"]
        finally:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
    growth = max(rss[len(rss) // 2 :]) - rss[1] if len(rss) > 2 else 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client RSS across {len(rss)} batches: 2nd {rss[1]:.0f} MB, last {rss[-1]:.0f} MB")
    figures = {
        "sink_vs_copy_insert": f"{statistics.median(ratios['insert']):.2f}",
        "sink_vs_copy_update": f"{statistics.median(ratios['update']):.2f}",
        "sink_vs_rowbyrow": f"{rowbyrow:.1f}",
        "stale_vs_copy": f"{statistics.median(ratios['stale']):.2f}",
        "copy_rows_per_s": f"{copy_best:.0f}",
        "rss_growth_mb": f"{growth:.1f}",
        "peak_rss_mb": f"{peak:.0f}",
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


def phases(
    conn: psycopg.Connection[Any],
    schema: str,
    args: argparse.Namespace,
    data: tuple[list[Record], list[Record], list[Record]],
    rss: list[float],
    *,
    rowbyrow: bool,
) -> dict[str, float]:
    v1, v2, mixed = data
    n = len(v1)
    copy_stmt = q.copy_text_statement((schema, "copy_target"), COPY_COLUMNS)

    def raw_copy() -> None:
        for part in batches(v1, args.batch):
            with conn.transaction(), conn.cursor().copy(copy_stmt) as cp:
                for r in part:
                    cp.write_row(copy_row(r))

    sink = TableSink([route("sink_target", schema)])

    def apply_all(records: list[Record], expect: str) -> Callable[[], None]:
        def go() -> None:
            for part in batches(records, args.batch):
                result = sink.apply(conn, part)
                assert getattr(result, expect) > 0, result
                rss.append(rss_mb())

        return go

    rates = {
        "copy": timed("raw COPY (ceiling)", n, raw_copy),
        "insert": timed("sink: all new rows", n, apply_all(v1, "inserted")),
        "update": timed("sink: all updates", n, apply_all(v2, "updated")),
        "stale": timed("sink: half stale, half newer", n, apply_all(mixed, "stale")),
    }
    if rowbyrow:
        sample = v1[: args.rowbyrow]
        rates["rowbyrow"] = timed(
            "row by row, commit each", len(sample), lambda: row_by_row(conn, schema, sample)
        )
    check(conn, schema, n)
    return rates


def row_by_row(conn: psycopg.Connection[Any], schema: str, records: Sequence[Record]) -> None:
    target = route("rowbyrow_target", schema)
    stmt = q.upsert_statement(target, COPY_COLUMNS, returning=False).as_string(conn)
    for r in records:
        with conn.transaction():
            conn.execute(stmt, copy_row(r))


def check(conn: psycopg.Connection[Any], schema: str, n: int) -> None:
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE updated_idx = 3), "
            "count(*) FILTER (WHERE updated_idx = 2) FROM {}"
        ).format(sql.Identifier(schema, "sink_target"))
    ).fetchone()
    assert row == (n, (n + 1) // 2, n // 2), row


if __name__ == "__main__":
    main()
