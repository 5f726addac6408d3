"""``upsync demo``: Stripe-shaped data flowing into real Postgres tables, with no setup.

It starts (or reuses) the database, a local Stripe stand-in with generated history, and the
engine in this process; creates a sync and a managed table consumer; shows the backfill per
collection; lets live traffic (creates, updates, deletes) flow for ``--duration`` seconds;
then checks that every table equals the stand-in's state and prints a summary with SQL to try.

Safety: the demo keeps its own state in the schema ``upsync_demo`` (recreated each run) and
writes typed tables into ``stripe`` only if that schema does not exist yet or was created by a
previous demo; otherwise into ``stripe_demo``. It never touches anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from upsync import ops
from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import database_dsn, embedded_dir
from upsync.config import Settings
from upsync.engine.server import Engine, EngineConfig
from upsync.ops.demo import STATE_SCHEMA, compare_tables, prepare_schemas
from upsync.redact import redact
from upsync.stream.delivery import info
from upsync.stream.migrations import migrate
from upsync.testing.stripe import LiveTraffic, Store, generate, run_standin

COLLECTIONS = ("customer", "product", "price", "subscription", "invoice", "charge")


@dataclass
class DemoOptions:
    """What the demo does."""

    duration: float = 20.0
    customers: int = 300
    live_rate: float = 10.0
    seed: int = 1
    keep: bool = False


@dataclass
class DemoResult:
    """What the summary shows."""

    dsn: str
    tables_schema: str
    backfill_objects: int = 0
    backfill_seconds: float = 0.0
    live_changes: int = 0
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)


@main.command()
@click.option("--duration", default=20.0, show_default=True, help="Seconds of live traffic.")
@click.option("--customers", default=300, show_default=True, help="Customers to generate.")
@click.option("--live-rate", default=10.0, show_default=True, help="Live changes per second.")
@click.option("--seed", default=1, show_default=True, help="Seed of the generated data.")
@click.option("--keep", is_flag=True, help="Keep everything running until Ctrl-C.")
@pass_ctx
def demo(
    ctx: Context, duration: float, customers: int, live_rate: float, seed: int, keep: bool
) -> None:
    """Sync a generated Stripe account into Postgres tables and watch changes flow.

    No setup needed: without UPSYNC_DATABASE_URL it runs an embedded Postgres.
    """
    console = Console()
    options = DemoOptions(duration, customers, live_rate, seed, keep)
    dsn = _database(ctx.settings, console)
    result = asyncio.run(run_demo(dsn, options, console))
    show_summary(result, console)
    if result.mismatches:
        raise click.ClickException(
            "the tables do not match the stand-in: " + "; ".join(result.mismatches)
        )


async def run_demo(dsn: str, options: DemoOptions, console: Console) -> DemoResult:
    """Run the whole demo; returns the figures for the summary."""
    tables_schema = _prepare_schemas(dsn)
    result = DemoResult(dsn=dsn, tables_schema=tables_schema)
    store = Store(seed=options.seed)
    with console.status("Generating a Stripe account…"):
        generate(store, customers=options.customers, seed=options.seed, days=90)
    with run_standin(store, rate_limit=25.0) as standin:
        console.print(f"Stripe stand-in on {standin.url} (test mode, 25 requests/s)")
        engine = Engine(
            EngineConfig(
                dsn,
                schema=STATE_SCHEMA,
                port=_free_port(),
                stripe_base_url=standin.url,
                poll_interval=0.5,
                refresh_every=0.5,
            )
        )
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop))
        try:
            await _wait_ready(engine, running)
            sync_id, consumer = await _create_sync(engine, standin.api_key, tables_schema)
            await _backfill(engine, sync_id, store, result, console)
            await _drain(engine, consumer)
            await _live(engine, store, options, result, console)
            await _converge(dsn, tables_schema, store, result, engine, consumer)
            if options.keep:
                console.print(f"API on http://127.0.0.1:{engine.config.port} — Ctrl-C to stop")
                await _forever()
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await running
    return result


def _prepare_schemas(dsn: str) -> str:
    chosen = prepare_schemas(dsn)
    if chosen is None:
        raise click.ClickException(
            "schemas 'stripe' and 'stripe_demo' both exist and were not made by the demo; "
            "run the demo against another database (UPSYNC_DATABASE_URL)"
        )
    return chosen


async def _wait_ready(engine: Engine, running: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(engine.ready.wait())
    await asyncio.wait([waiter, running], return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        waiter.cancel()
        running.result()  # raises what stopped the engine


async def _create_sync(engine: Engine, api_key: str, tables_schema: str) -> tuple[str, Any]:
    assert engine.pool is not None
    async with engine.pool.connection() as conn:
        await migrate(conn, schema=STATE_SCHEMA)
        await ops.streams.create_stream(conn, "demo", schema=STATE_SCHEMA)
        new_sync = ops.NewSync(
            provider="stripe",
            stream="demo",
            collection_ids=COLLECTIONS,
            name="demo",
            api_key=api_key,
            credential_name="stand-in",
            external_id="demo-tenant",
            metadata={"plan": "demo"},
        )
        sync = (await ops.syncs.create_sync(conn, new_sync, schema=STATE_SCHEMA)).sync
        tables = ops.NewConsumer(
            stream="demo", name="tables", kind="table", metadata={"schema": tables_schema}
        )
        consumer = (await ops.consumers.create_consumer(conn, tables, schema=STATE_SCHEMA)).consumer
    assert engine.syncs is not None
    engine.syncs.refresh()
    return sync.id, consumer


async def _backfill(
    engine: Engine, sync_id: str, store: Store, result: DemoResult, console: Console
) -> None:
    totals = {f"stripe:{c}": store.count(c) for c in COLLECTIONS}
    started = time.monotonic()
    with _progress(console) as progress:
        bars = {cid: progress.add_task(cid, total=n) for cid, n in totals.items()}
        while True:
            source = engine.syncs.source(sync_id) if engine.syncs else None
            status = source.status.backfill if source else {}
            for cid, bar in bars.items():
                done = cid in status and status[cid].done
                count = status[cid].count if cid in status else 0
                progress.update(bar, completed=totals[cid] if done else min(count, totals[cid]))
            if status and all(p.done for p in status.values()):
                break
            if source is not None and source.status.last_error:
                console.print(f"[yellow]sync: {redact(source.status.last_error)}")
            await asyncio.sleep(0.2)  # redraw pace of the progress bars
    result.backfill_seconds = time.monotonic() - started
    result.backfill_objects = sum(totals.values())


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def _drain(engine: Engine, consumer: Any, timeout: float = 60.0) -> None:
    """Wait until the table consumer has nothing pending or held."""
    assert engine.pool is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.pool.connection() as conn:
            counts = await info(conn, consumer, schema=STATE_SCHEMA)
        if counts.num_pending == 0 and counts.num_ack_pending == 0:
            return
        await asyncio.sleep(0.2)  # the consumer works on its own; this only watches
    raise click.ClickException("the table consumer did not catch up within a minute")


async def _live(
    engine: Engine, store: Store, options: DemoOptions, result: DemoResult, console: Console
) -> None:
    if options.duration <= 0:
        return
    traffic = LiveTraffic(
        store, rate=options.live_rate, duration=options.duration, seed=options.seed
    )
    traffic.start()
    with console.status("") as status:
        end = time.monotonic() + options.duration
        while time.monotonic() < end:
            status.update(
                f"Live traffic: {traffic.operations} changes in Stripe so far "
                f"({max(0.0, end - time.monotonic()):.0f}s left)"
            )
            await asyncio.sleep(0.25)
    traffic.stop()
    result.live_changes = traffic.operations


async def _converge(
    dsn: str,
    tables_schema: str,
    store: Store,
    result: DemoResult,
    engine: Engine,
    consumer: Any,
    timeout: float = 30.0,
) -> None:
    """Wait until every table holds exactly the stand-in's live objects (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        await _drain(engine, consumer)
        expected = {name: store.live_ids(name) for name in COLLECTIONS}
        result.rows, result.mismatches = compare_tables(dsn, tables_schema, expected)
        if not result.mismatches or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)  # the next event poll brings the last changes


def show_summary(result: DemoResult, console: Console) -> None:
    """The closing table, the check, and SQL to paste into psql."""
    table = Table(title="Your Postgres now holds")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("deleted (tombstones)", justify="right")
    for name, (live, deleted) in result.rows.items():
        table.add_row(f"{result.tables_schema}.{name}", str(live), str(deleted))
    console.print(table)
    rate = result.backfill_objects / result.backfill_seconds if result.backfill_seconds else 0.0
    console.print(
        f"Backfill: {result.backfill_objects} objects in {result.backfill_seconds:.1f}s "
        f"({rate:,.0f}/s under a 25 requests/s budget); live changes: {result.live_changes}"
    )
    if result.mismatches:
        console.print("[red]✗ tables differ from Stripe: " + "; ".join(result.mismatches))
    else:
        console.print("[green]✓ every table equals the Stripe stand-in's state")
    schema = result.tables_schema
    console.print(f"\nTry it:  psql '{redact(result.dsn)}'")
    # printed for a person to paste, never executed; schema is "stripe" or "stripe_demo"
    console.print(
        f"  select status, count(*) from {schema}.subscriptions group by status;\n"  # noqa: S608
        f"  select email, name from {schema}.customers where not deleted limit 5;\n"
        f"  select c.email, s.status, s.plan_id from {schema}.subscriptions s\n"
        f"    join {schema}.customers c on c.upstream_id = s.customer_id limit 5;"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _forever() -> None:
    await asyncio.Event().wait()


def _database(settings: Settings, console: Console) -> str:
    """The same database every command uses, saying which one."""
    if settings.database_url:
        console.print(f"Postgres: {redact(settings.database_url)}")
        return settings.database_url
    with console.status("Starting the embedded Postgres…"):
        dsn = database_dsn(settings)
    console.print(f"Postgres: embedded, data in {embedded_dir(settings)}")
    return dsn
