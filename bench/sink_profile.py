"""Where a record's time goes in TableSink: client CPU by function, server time by statement.

Fills a fresh table with ``--rows`` Stripe-like subscriptions (``bench/sink.py``'s records and
table), then applies them again one version newer, batch by batch, and reports for that update
phase (``--phase insert`` profiles the first fill instead; ``--phase raw-update`` the same update
by ``bench/sink.py``'s fastest hand-written SQL, on a table filled by COPY, for comparison):

* the wall time and client CPU per record;
* every statement the sink ran, with its plan, ``EXPLAIN (ANALYZE, BUFFERS)``-style, as
  ``auto_explain`` logs it (``LOAD`` needs a superuser; ``COPY`` has no plan and shows only in
  the wall time), summed per statement text;
* with ``--pyinstrument``, the client's call tree.

``--work-mem`` sets the session's ``work_mem`` first (e.g. ``64MB``), to see what the upsert's
sort of the staged rows costs when it spills to disk.

Usage: python bench/sink_profile.py [--rows N] [--batch B] [--phase update|insert|raw-update]
[--pyinstrument] [--work-mem SIZE] [--dsn DSN]
(DSN default: $UPSYNC_BENCH_DSN, else an embedded Postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from harness import run_bench, server_info
from sink import COLUMN_TYPES, RAW_UPDATES, batches, raw_copy, route, subscription
from upsync.records import Record
from upsync.sinks import TableSink, create_table_sql, supports_lz4

_DURATION = re.compile(r"duration: ([0-9.]+) ms\s+plan:\s*Query Text: (.*?)\n(.*)", re.S)


@contextlib.contextmanager
def explained(conn: psycopg.Connection[Any]) -> Iterator[list[tuple[float, str, str]]]:
    """Collect ``(ms, statement, plan)`` of every statement ``conn`` runs in the block."""
    plans: list[tuple[float, str, str]] = []

    def collect(diag: psycopg.errors.Diagnostic) -> None:
        match = _DURATION.search(diag.message_primary or "")
        if match:
            plans.append((float(match[1]), match[2].strip(), match[3].rstrip()))

    conn.execute("LOAD 'auto_explain'")
    conn.execute(
        "SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on; "
        "SET auto_explain.log_buffers = on; SET auto_explain.log_timing = on; "
        "SET client_min_messages = log"
    )
    conn.add_notice_handler(collect)
    try:
        yield plans
    finally:
        conn.remove_notice_handler(collect)
        conn.execute("RESET client_min_messages; SET auto_explain.log_min_duration = -1")


def run(dsn: str, args: argparse.Namespace) -> None:
    rnd = random.Random(7)
    v1 = [subscription(i, 1, rnd) for i in range(args.rows)]
    v2 = [subscription(i, 2, rnd) for i in range(args.rows)]
    name = f"upsync_profile_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        print(f"rows={args.rows} batch={args.batch} phase={args.phase} {server_info(conn)}")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        if args.work_mem:
            conn.execute("SELECT set_config('work_mem', %s, false)", [args.work_mem])
        try:
            table = "copy_target" if args.phase == "raw-update" else "sink_target"
            conn.execute(
                create_table_sql(
                    route(table, name), column_types=COLUMN_TYPES, lz4=supports_lz4(conn)
                )
            )
            sink = TableSink([route(table, name)])
            apply: Callable[[Sequence[Record]], object] = functools.partial(sink.apply, conn)
            if args.phase == "raw-update":
                apply = functools.partial(next(iter(RAW_UPDATES.values())), conn, name)
                for part in batches(v1, args.batch):
                    raw_copy(conn, name, part)
            elif args.phase == "update":
                for part in batches(v1, args.batch):
                    sink.apply(conn, part)
            profile(conn, apply, v1 if args.phase == "insert" else v2, args)
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def profile(
    conn: psycopg.Connection[Any],
    apply: Callable[[Sequence[Record]], object],
    records: list[Record],
    args: argparse.Namespace,
) -> None:
    profiler: Any = None
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler()
    with explained(conn) as plans:
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.start()
        for part in batches(records, args.batch):
            apply(part)
        if profiler:
            profiler.stop()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(records)
    print(f"wall {wall / n * 1e6:.1f} us/record, client CPU {cpu / n * 1e6:.1f} us/record")
    by_text: dict[str, list[float]] = {}
    for ms, text, _ in plans:
        by_text.setdefault(text, []).append(ms)
    for text, times in sorted(by_text.items(), key=lambda kv: -sum(kv[1])):
        print(f"{sum(times) * 1000 / n:8.1f} us/record in {len(times):3d} runs of: {text[:150]}")
    slowest = max(plans, default=None)
    if slowest:
        print(f"\nslowest statement ({slowest[0]:.1f} ms):\n{slowest[1]}\n{slowest[2]}")
    if profiler:
        print(profiler.output_text(unicode=False, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--phase", choices=["update", "insert", "raw-update"], default="update")
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument("--work-mem", default=None, help="the session's work_mem, e.g. 64MB")
    run_bench(parser, run)


if __name__ == "__main__":
    main()
