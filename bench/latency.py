"""Change-to-visible latency: a change in (stand-in) Stripe until it is in the stream and a table.

The real engine runs in this process (``Engine(...).run(stop)``) with one Stripe sync (created
through the catalog with the stand-in's key) and one managed ``kind="table"`` consumer; the
stand-in runs in its own process. Each change updates one customer's email over the stand-in's
API; its latency is measured from just before that request until

- **stream**: the record with the new email is committed in upsync's ``records`` table, and
- **table**: the managed ``customers`` table has the new email.

Arrival is detected without polling: the benchmark adds row triggers (in its own schema, dropped
at the end) that ``pg_notify`` each committed version, and a thread LISTENing on its own
connection timestamps every notification as it arrives.

Two modes, one engine each (same sync and tables; polling runs first, so no webhook endpoint
exists yet to race with it):

- **poll**: the engine polls ``/v1/events`` every 0.5 s. Changes are made at random (Poisson,
  4/s) times, several in flight, so that they fall at every phase of the poll cycle.
- **webhook**: the engine's intake URL is registered at the stand-in (``/v1/webhook_endpoints``)
  and its signing secret stored as the sync's webhook credential; the stand-in delivers a signed
  ``customer.updated`` webhook, which the engine verifies and answers by re-reading the customer
  at once. Polling is set to 30 s so that only the webhook can explain an arrival. Changes are
  made one at a time, 20–60 ms apart, so the sync's request budget (25/s in test mode, one
  re-read per change) is not what gets measured.

Usage: python bench/latency.py [--changes 200] [--dsn DSN]
(DSN from UPSYNC_BENCH_DSN or UPSYNC_TEST_DSN, else an embedded Postgres.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from psycopg import sql

from upsync.api.metrics import Metrics
from upsync.embedded import start_embedded
from upsync.engine.server import Engine, EngineConfig
from upsync.stream.catalog import create_credential, create_stream, create_sync, update_sync
from upsync.stream.consumers import create_consumer
from upsync.stream.migrations import migrate

API_KEY = "sk_test_bench_latency"
POLL_INTERVAL = 0.5
WEBHOOK_MODE_POLL_INTERVAL = 30.0
ARRIVAL_TIMEOUT = 10.0
#: changes per second in poll mode: well under the sync's 25 requests/s test-mode budget (each
#: change costs one re-read, each poll one or more pages of events)
POLL_MODE_RATE = 4.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def standin() -> Iterator[str]:
    """A stand-in in its own process (no rate limit); yields its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "upsync.testing.stripe", "--port", str(port), "--rate-limit", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"})
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the stand-in did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# arrival detection: row triggers + a LISTENing thread


_TRIGGERS = """
CREATE OR REPLACE FUNCTION {fn_records}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        {channel}, 's|' || NEW.upstream_id || '|' || coalesce(NEW.data->>'email', ''));
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION {fn_table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify({channel}, 't|' || NEW.upstream_id || '|' || coalesce(NEW.email, ''));
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_arrival ON {records};
DROP TRIGGER IF EXISTS bench_arrival ON {customers};
CREATE TRIGGER bench_arrival AFTER INSERT OR UPDATE ON {records}
    FOR EACH ROW EXECUTE FUNCTION {fn_records}();
CREATE TRIGGER bench_arrival AFTER INSERT OR UPDATE ON {customers}
    FOR EACH ROW EXECUTE FUNCTION {fn_table}();
"""


@dataclass
class Watcher:
    """Timestamps (``perf_counter``) each committed version as its notification arrives."""

    dsn: str
    channel: str
    loop: asyncio.AbstractEventLoop
    seen: dict[tuple[str, str, str], float] = field(default_factory=dict)
    waiting: dict[tuple[str, str, str], asyncio.Future[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    listening: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.listening.set()
            while not self.stop.is_set():
                for note in conn.notifies(timeout=0.2):
                    at = time.perf_counter()
                    kind, upstream_id, email = note.payload.split("|", 2)
                    self._arrived((kind, upstream_id, email), at)

    def _arrived(self, key: tuple[str, str, str], at: float) -> None:
        with self.lock:
            self.seen.setdefault(key, at)
            future = self.waiting.pop(key, None)
        if future is not None:
            self.loop.call_soon_threadsafe(_resolve, future, at)

    def expect(self, kind: str, upstream_id: str, email: str) -> asyncio.Future[float]:
        """A future resolved with the arrival time of that version (at once if already seen)."""
        key = (kind, upstream_id, email)
        future: asyncio.Future[float] = self.loop.create_future()
        with self.lock:
            if key in self.seen:
                future.set_result(self.seen[key])
            else:
                self.waiting[key] = future
        return future


def _resolve(future: asyncio.Future[float], at: float) -> None:
    if not future.done():
        future.set_result(at)


@asynccontextmanager
async def watching(dsn: str, schema: str, tables: str) -> AsyncIterator[Watcher]:
    channel = f"bench_{schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(_TRIGGERS).format(
                fn_records=sql.Identifier(schema, "bench_records_arrival"),
                fn_table=sql.Identifier(schema, "bench_table_arrival"),
                channel=sql.Literal(channel),
                records=sql.Identifier(schema, "records"),
                customers=sql.Identifier(tables, "customers"),
            )
        )
    watcher = Watcher(dsn, channel, asyncio.get_running_loop())
    thread = threading.Thread(target=watcher.run, name="bench-watcher", daemon=True)
    thread.start()
    await asyncio.to_thread(watcher.listening.wait, 30)
    try:
        yield watcher
    finally:
        watcher.stop.set()
        await asyncio.to_thread(thread.join, 10)


# setup


@dataclass
class Setup:
    dsn: str
    schema: str
    tables: str
    url: str
    sync_id: str
    customers: list[str]


async def set_up(dsn: str, stripe: httpx.AsyncClient, changes: int) -> Setup:
    """Customers in the stand-in; a stream, a sync of them and a managed table consumer."""
    schema = f"bench_lat_{uuid.uuid4().hex[:8]}"
    tables = f"{schema}_tables"
    customers = []
    for n in range(changes):
        body = {"email": f"c{n}@bench.test", "name": f"Customer {n}"}
        customers.append((await stripe.post("/v1/customers", data=body)).json()["id"])
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await migrate(conn, schema=schema)
        stream = await create_stream(conn, "bench", schema=schema)
        key = await create_credential(
            conn, provider="stripe", kind="stripe_key", secret=API_KEY, schema=schema
        )
        sync = await create_sync(
            conn,
            stream_id=stream.id,
            provider="stripe",
            name="bench",
            collection_ids=["stripe:customer"],
            credential_id=key.id,
            schema=schema,
        )
        await create_consumer(
            conn,
            stream_id=stream.id,
            name="tables",
            kind="table",
            metadata={"schema": tables},
            schema=schema,
        )
    return Setup(dsn, schema, tables, str(stripe.base_url), sync.id, customers)


async def add_webhook(setup: Setup, stripe: httpx.AsyncClient, port: int) -> None:
    """Register the engine's intake (on ``port``) at the stand-in; store the signing secret."""
    endpoint = await stripe.post(
        "/v1/webhook_endpoints",
        data={
            "url": f"http://127.0.0.1:{port}/v1/syncs/{setup.sync_id}/webhook",
            "enabled_events[]": ["customer.updated"],
        },
    )
    endpoint.raise_for_status()
    async with await psycopg.AsyncConnection.connect(setup.dsn, autocommit=True) as conn:
        secret = await create_credential(
            conn,
            provider="stripe",
            kind="stripe_webhook_secret",
            secret=endpoint.json()["secret"],
            schema=setup.schema,
        )
        await update_sync(
            conn,
            setup.sync_id,
            metadata={"webhook_credential_id": secret.id},
            schema=setup.schema,
        )


@asynccontextmanager
async def engine_running(setup: Setup, port: int, poll_interval: float) -> AsyncIterator[Engine]:
    config = EngineConfig(
        setup.dsn,
        schema=setup.schema,
        port=port,
        stripe_base_url=setup.url,
        poll_interval=poll_interval,
        refresh_every=0.5,
        reconcile_every=None,
    )
    engine, stop = Engine(config), asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        ready = asyncio.ensure_future(engine.ready.wait())
        await asyncio.wait([ready, task], timeout=60, return_when="FIRST_COMPLETED")
        if not engine.ready.is_set():
            raise SystemExit(f"the engine did not start: {task.exception() if task.done() else ''}")
        await steady(engine, setup)
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def steady(engine: Engine, setup: Setup) -> None:
    """Wait (setup phase, polled) until the backfill landed and the source has polled once."""
    deadline = time.monotonic() + 120
    count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(setup.tables, "customers"))
    async with await psycopg.AsyncConnection.connect(setup.dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            health = engine.syncs.health(setup.sync_id) if engine.syncs else None
            rows = 0
            try:
                row = await (await conn.execute(count)).fetchone()
                rows = row[0] if row else 0
            except psycopg.errors.UndefinedTable:
                pass
            if health and health.last_poll_at and rows >= len(setup.customers):
                return
            await asyncio.sleep(0.05)
    raise SystemExit("the engine did not backfill within 2 minutes")


# measurement


@dataclass
class Sample:
    stream_ms: float
    table_ms: float


async def one_change(
    stripe: httpx.AsyncClient, watcher: Watcher, customer: str, email: str
) -> Sample:
    stream = watcher.expect("s", customer, email)
    table = watcher.expect("t", customer, email)
    started = time.perf_counter()
    response = await stripe.post(f"/v1/customers/{customer}", data={"email": email})
    response.raise_for_status()
    at_stream, at_table = await asyncio.wait_for(
        asyncio.gather(stream, table), timeout=ARRIVAL_TIMEOUT
    )
    return Sample((at_stream - started) * 1000, (at_table - started) * 1000)


async def webhook_mode(setup: Setup, watcher: Watcher, stripe: httpx.AsyncClient) -> list[Sample]:
    samples = []
    for i, customer in enumerate(setup.customers):
        samples.append(await one_change(stripe, watcher, customer, f"w{i}@bench.test"))
        await asyncio.sleep(random.uniform(0.02, 0.06))  # spacing, not synchronisation
    return samples


async def poll_mode(setup: Setup, watcher: Watcher, stripe: httpx.AsyncClient) -> list[Sample]:
    tasks = []
    for i, customer in enumerate(setup.customers):
        await asyncio.sleep(random.expovariate(POLL_MODE_RATE))  # Poisson arrivals
        tasks.append(asyncio.create_task(one_change(stripe, watcher, customer, f"p{i}@bench.test")))
    return list(await asyncio.gather(*tasks))


def pct(values: list[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def run(dsn: str, url: str, changes: int) -> dict[str, Any]:
    stripe = httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, trust_env=False
    )
    results: dict[str, Any] = {}
    async with stripe:
        setup = await set_up(dsn, stripe, changes)
        try:
            # polling first: its engine has no webhook endpoint to race with
            async with (
                engine_running(setup, free_port(), POLL_INTERVAL),
                watching(dsn, setup.schema, setup.tables) as watcher,
            ):
                print(f"poll mode: {changes} changes, Poisson arrivals…", flush=True)
                results["poll"] = await poll_mode(setup, watcher, stripe)
            port = free_port()
            await add_webhook(setup, stripe, port)
            async with (
                engine_running(setup, port, WEBHOOK_MODE_POLL_INTERVAL) as engine,
                watching(dsn, setup.schema, setup.tables) as watcher,
            ):
                print(f"webhook mode: {changes} changes, one at a time…", flush=True)
                results["webhook"] = await webhook_mode(setup, watcher, stripe)
                results["intake_ms"] = intake_mean_ms(engine)
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for name in (setup.schema, setup.tables):
                    drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                    conn.execute(drop.format(sql.Identifier(name)))
    return results


def intake_mean_ms(engine: Engine) -> float:
    """Mean time the engine spent in its webhook route (verify, re-read, stream write)."""
    assert engine.app is not None
    metrics: Metrics = engine.app.state.upsync.metrics
    route = "/v1/syncs/{sync_id}/webhook"
    total = count = 0.0
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.labels.get("route") != route:
                continue
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return 1000 * total / count if count else float("nan")


def report(results: dict[str, Any], changes: int) -> None:
    figures: dict[str, float] = {}
    print(f"{'mode':8} {'where':6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for mode in ("webhook", "poll"):
        samples: list[Sample] = results[mode]
        for where in ("stream", "table"):
            values = [getattr(s, f"{where}_ms") for s in samples]
            p50, p90, p99 = pct(values, 50), pct(values, 90), pct(values, 99)
            print(f"{mode:8} {where:6} {p50:8.1f} {p90:8.1f} {p99:8.1f} {max(values):8.1f}")
            prefix = mode if where == "stream" else f"table_{mode}"
            figures[f"{prefix}_p50_ms"], figures[f"{prefix}_p99_ms"] = p50, p99
    print(f"webhook intake (verify + re-read + stream write): mean {results['intake_ms']:.1f} ms")
    print(
        f"webhook_p50_ms={figures['webhook_p50_ms']:.1f} "
        f"webhook_p99_ms={figures['webhook_p99_ms']:.1f} "
        f"poll_p50_ms={figures['poll_p50_ms']:.1f} poll_p99_ms={figures['poll_p99_ms']:.1f} "
        f"table_webhook_p99_ms={figures['table_webhook_p99_ms']:.1f} changes={changes}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument(
        "--dsn", default=os.environ.get("UPSYNC_BENCH_DSN") or os.environ.get("UPSYNC_TEST_DSN")
    )
    args = parser.parse_args()
    dsn: str = args.dsn or start_embedded().dsn
    with standin() as url:
        results = asyncio.run(run(dsn, url, args.changes))
    report(results, args.changes)


if __name__ == "__main__":
    main()
