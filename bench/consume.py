"""How fast the stream reaches a user's table: a managed table consumer against raw COPY.

N Stripe-like customers (~1 KB of JSON each) are written into a stream (``upsync.stream.write``)
in batches, and after each batch a managed table consumer (``deliver_to_tables`` with the typed
``TableTarget`` tables) claims, applies and acks everything pending into ``customers``. The same
rows (read back from that table, untimed) are then COPYed into an identical empty table
(``CREATE TABLE … (LIKE … INCLUDING ALL)``), one transaction per batch: the ceiling. The three
steps alternate batch by batch so that all of them see the same load on a shared machine.

Ratios (higher is better, 1.0 = as fast as COPY):

* ``write_vs_copy``: COPY time / stream write time, the stream's own cost;
* ``consume_vs_copy``: COPY time / consumer time (cursor pull + apply, plus the engine's
  statistics refresh), the delivery path;
* ``e2e_vs_copy``: COPY time / (stream write + consumer) time, what a record costs end to end.
  Every record is stored twice on this path (once in the stream, once in the user's table): two
  COPYs' worth of work give 0.5. Only the delivery half can beat COPY (it moves binary ``jsonb``
  server-side instead of parsing JSON text), so the ratio's practical ceiling is a little above.

Then the Consume API's round trip over loopback: ``upsync.api.create_app`` served by uvicorn on
127.0.0.1, an ``upsync.Client``, ``next`` + ``ack`` of 1 and of 100 messages, with the 100k
records pending on an HTTP consumer: p50 and p99 in milliseconds.

Each of ``--rounds`` rounds does all of this in fresh schemas (dropped at its end) and prints
its figures; each ratio is taken against that round's own COPY, and the last line, machine-readable,
holds the medians over the rounds (``bench/harness.py``).

Usage: python bench/consume.py [--records N] [--batch B] [--rounds R] [--dsn DSN] [--profile]
(DSN default: $UPSYNC_BENCH_DSN, else a fresh embedded Postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import psycopg
import uvicorn
from psycopg import sql
from psycopg.types.json import set_json_loads
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool

from harness import Rounds, run_bench, server_info
from streams import customers, new_stream, new_sync
from upsync.api import create_app, create_token
from upsync.client import Client
from upsync.engine import consumers as managed
from upsync.engine.consumers import TableTarget, deliver_to_tables
from upsync.engine.fastpath import FastPath, compile_target
from upsync.records import record_id
from upsync.sinks import TableSink
from upsync.stream import Consumer, Sync, UpstreamObject, create_consumer, write
from upsync.stream.maintenance import refresh_statistics

T = TypeVar("T")


@dataclass
class Timings:
    write_s: float = 0.0
    consume_s: float = 0.0
    copy_s: float = 0.0
    delivered: int = 0
    analysed: int = 0
    """ANALYZE runs of the stream's tables (``refresh_statistics``), timed with the consumer."""
    round_trips: dict[int, list[float]] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    """Seconds inside the consumer's claim, apply and ack calls."""


def _timed(steps: dict[str, float], name: str, fn: Callable[..., Awaitable[T]]) -> Any:
    async def timed(*args: Any, **kwargs: Any) -> T:
        t0 = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            steps[name] = steps.get(name, 0.0) + time.perf_counter() - t0

    return timed


@contextlib.contextmanager
def _step_timers(steps: dict[str, float]) -> Iterator[None]:
    """Time the table consumer's steps by wrapping the functions it calls (bench-only)."""
    targets: list[tuple[Any, str, str]] = [
        (managed, "claim", "claim"),
        (managed, "ack", "ack"),
        (managed, "nack", "nack"),
        (TableSink, "apply_async", "apply"),
    ]
    saved = [getattr(owner, name) for owner, name, _ in targets]
    for (owner, name, label), fn in zip(targets, saved, strict=True):
        setattr(owner, name, _timed(steps, label, fn))
    try:
        yield
    finally:
        for (owner, name, _), fn in zip(targets, saved, strict=True):
            setattr(owner, name, fn)


@dataclass
class Bench:
    dsn: str
    schema: str
    records: int
    batch: int
    profile: bool
    fast_json: bool = False
    path: str = "sql"
    timings: Timings = field(default_factory=Timings)

    @property
    def target(self) -> TableTarget:
        return TableTarget(schema=f"{self.schema}_dest")

    async def prepare(self, conn: psycopg.AsyncConnection[Any]) -> tuple[Sync, Consumer]:
        stream = await new_stream(conn, self.schema)
        sync = await new_sync(conn, self.schema, stream, "bench", external_id="org_bench")
        consumer = await create_consumer(
            conn,
            stream_id=stream,
            name="tables",
            kind="table",
            max_ack_pending=max(1000, self.batch),
            schema=self.schema,
        )
        return sync, consumer

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self.fast_json:
            set_json_loads(orjson.loads, conn)

    async def run_consume(self) -> None:
        """Write, deliver and COPY batch by batch."""
        objects = customers(self.records)
        async with (
            AsyncConnectionPool(
                self.dsn, min_size=2, max_size=4, open=False, configure=self._configure
            ) as pool,
            await psycopg.AsyncConnection.connect(self.dsn) as raw,
        ):
            async with pool.connection() as conn:
                sync, consumer = await self.prepare(conn)
            await self.target.create_tables(pool)
            dest = sql.Identifier(self.target.schema, "customers")
            ceiling = sql.Identifier(self.schema, "copy_customers")
            await raw.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(ceiling, dest)
            )
            await raw.commit()
            raw.adapters.register_loader("jsonb", TextLoader)  # COPY gets the JSON text back
            sink: TableSink | FastPath | None = self.target.sink()
            if self.path == "sql":  # what the engine uses when the tables share the database
                sink = await compile_target(pool, self.target.sink(), self.schema)
                assert sink is not None, "the typed tables should compile to SQL"
            with _profiler(self.profile), _step_timers(self.timings.steps):
                for start in range(0, len(objects), self.batch):
                    chunk = objects[start : start + self.batch]
                    await self._one_batch(pool, raw, sync, consumer, sink, chunk, dest, ceiling)

    async def _one_batch(
        self,
        pool: AsyncConnectionPool[Any],
        raw: psycopg.AsyncConnection[Any],
        sync: Sync,
        consumer: Consumer,
        sink: Any,
        chunk: list[UpstreamObject],
        dest: sql.Identifier,
        ceiling: sql.Identifier,
    ) -> None:
        t = self.timings
        t0 = time.perf_counter()
        async with pool.connection() as conn:
            await write(conn, sync, "stripe:customer", chunk, schema=self.schema)
        t.write_s += time.perf_counter() - t0
        t1 = time.perf_counter()
        async with pool.connection() as conn:  # timed: the engine does it every few seconds
            t.analysed += len(await refresh_statistics(conn, schema=self.schema))
        if isinstance(sink, FastPath):
            while n := await sink.deliver(pool, consumer.id, self.batch):
                t.delivered += n
        else:
            while (
                report := await deliver_to_tables(
                    pool, consumer, sink, batch_size=self.batch, schema=self.schema
                )
            ).delivered:
                assert report.acked == report.delivered, report.refused[:1]
                t.delivered += report.delivered
        t2 = time.perf_counter()
        ids = [record_id(sync.id, "stripe:customer", o.upstream_id) for o in chunk]
        cur = await raw.execute(
            sql.SQL("SELECT * FROM {} WHERE id = ANY(%s::text[])").format(dest), [ids]
        )
        rows = await cur.fetchall()
        assert len(rows) == len(chunk)
        t3 = time.perf_counter()
        async with raw.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(ceiling)) as copy:
            for row in rows:
                await copy.write_row(row)
        await raw.commit()
        t4 = time.perf_counter()
        t.consume_s += t2 - t1
        t.copy_s += t4 - t3

    def run_round_trips(self, samples: dict[int, int]) -> None:
        """next + ack over loopback HTTP with an upsync.Client, for each batch size."""
        token, consumer = asyncio.run(self._http_consumer())
        with _serve(self.dsn, self.schema) as url, Client(url, token) as client:
            client.healthz()  # warm-up: the app's pool is open, the route compiled
            for batch_size, n in samples.items():
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    batch = client.next(consumer, batch_size=batch_size)
                    client.ack(consumer, [m.ack_token for m in batch.messages])
                    times.append((time.perf_counter() - t0) * 1000)
                    assert len(batch.messages) == batch_size
                self.timings.round_trips[batch_size] = times

    async def _http_consumer(self) -> tuple[str, str]:
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            token = await create_token(conn, "bench", schema=self.schema)
            stream_cur = await conn.execute(
                sql.SQL("SELECT id::text FROM {}").format(sql.Identifier(self.schema, "streams"))
            )
            row = await stream_cur.fetchone()
            assert row is not None
            consumer = await create_consumer(
                conn, stream_id=row[0], name="http-bench", schema=self.schema
            )
            await refresh_statistics(conn, schema=self.schema)
        return token, consumer.name


@contextlib.contextmanager
def _profiler(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))


@contextlib.contextmanager
def _serve(dsn: str, schema: str) -> Iterator[str]:
    """The HTTP API on 127.0.0.1 in a thread; its URL."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so (else every
    # response waits ~40 ms for a delayed ACK); listening before uvicorn starts, so early
    # requests wait in the backlog
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = create_app(dsn, schema=schema, pool_size=4)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _report(bench: Bench) -> dict[str, float]:
    """Print one round's figures; its ratios and latencies."""
    t = bench.timings
    n = bench.records
    print(f"  stream write:             {t.write_s:6.2f} s ({n / t.write_s:,.0f} records/s)")
    print(f"  table consumer (deliver): {t.consume_s:6.2f} s ({n / t.consume_s:,.0f} records/s)")
    steps = "".join(f"{k} {v:.2f} s, " for k, v in t.steps.items())  # none on the SQL path
    print(f"    of which: {steps}{t.analysed} ANALYZE runs of the stream's tables")
    print(f"  raw COPY (ceiling):       {t.copy_s:6.2f} s ({n / t.copy_s:,.0f} rows/s)")
    for size, times in t.round_trips.items():
        print(
            f"  next+ack batch_size={size}: p50 {statistics.median(times):.2f} ms, "
            f"p99 {_pct(times, 0.99):.2f} ms over {len(times)} round trips"
        )
    one, hundred = t.round_trips[1], t.round_trips[100]
    return {
        "write_vs_copy": t.copy_s / t.write_s,
        "consume_vs_copy": t.copy_s / t.consume_s,
        "e2e_vs_copy": t.copy_s / (t.write_s + t.consume_s),
        "next_ack_p50_ms": statistics.median(one),
        "next_ack_p99_ms": _pct(one, 0.99),
        "next_ack100_p50_ms": statistics.median(hundred),
        "next_ack100_p99_ms": _pct(hundred, 0.99),
    }


def _drop(dsn: str, *schemas: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        for name in schemas:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def one_round(dsn: str, args: argparse.Namespace) -> dict[str, float]:
    """Write, deliver and COPY, then the HTTP round trips, in fresh schemas; the figures."""
    bench = Bench(
        dsn,
        f"bench_{uuid.uuid4().hex[:8]}",
        args.records,
        args.batch,
        args.profile,
        args.orjson,
        args.path,
    )
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(bench.schema)))
    try:
        asyncio.run(bench.run_consume())
        samples = {1: args.samples, 100: max(1, min(args.samples // 5, args.records // 200))}
        bench.run_round_trips(samples)
    finally:
        _drop(dsn, bench.schema, bench.target.schema)
    return _report(bench)


def run(dsn: str, args: argparse.Namespace) -> None:
    size = sum(len(orjson.dumps(o.data)) for o in customers(1000))
    with psycopg.connect(dsn) as conn:
        where = server_info(conn)
    print(
        f"records={args.records} ~{size // 1000} bytes of JSON each, batches of {args.batch}, "
        f"path={args.path}, {where}, rounds={args.rounds}"
    )
    rounds = Rounds()
    for _ in range(args.rounds):
        rounds.add(one_round(dsn, args))
    rounds.report({"records": args.records, "batch": args.batch, "path": args.path})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=300, help="round trips of 1 message")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the consume phase")
    parser.add_argument(
        "--orjson", action="store_true", help="decode jsonb with orjson on the consumer's pool"
    )
    parser.add_argument(
        "--path",
        choices=["sql", "python"],
        default="sql",
        help="the table consumer's path: SQL only (the engine's, tables in the same database) "
        "or through Python (tables elsewhere, or routes with callables)",
    )
    run_bench(parser, run)


if __name__ == "__main__":
    main()
