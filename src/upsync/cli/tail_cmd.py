"""``upsync tail CONSUMER``: print a consumer's records as JSON lines as they arrive.

Each batch is acked after it was printed, so a record is lost to nobody: if ``tail`` dies
between printing and acking, the batch is delivered again after the consumer's ack window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from typing import Any

import click
from psycopg_pool import AsyncConnectionPool

from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import run_async
from upsync.errors import ConfigurationError
from upsync.stream.models import Batch
from upsync.stream.service import StreamService

POLL_MS = 10_000


@main.command()
@click.argument("consumer")
@click.option("--max", "max_records", type=click.IntRange(min=1), help="Stop after N records.")
@click.option(
    "--batch-size", type=click.IntRange(1, 1000), default=100, show_default=True, hidden=True
)
@pass_ctx
def tail(ctx: Context, consumer: str, max_records: int | None, batch_size: int) -> None:
    """Print CONSUMER's records as they arrive (JSON lines), acking each batch once printed.

    Stops on Ctrl-C, or after --max records. Use an http consumer of its own: records tail
    acks are done for that consumer.
    """
    schema = ctx.settings.schema

    async def work(dsn: str) -> None:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn, min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
        )
        await pool.open()
        # the service without start(): tail reads, it does not migrate
        service = StreamService(pool, schema=schema)
        try:
            await service.notifier.start()
            await _follow(service, consumer, max_records, batch_size)
        finally:
            await service.close()

    run_async(ctx.settings, work)


async def _follow(
    service: StreamService, consumer: str, max_records: int | None, batch_size: int
) -> None:
    found = await service.get_consumer(consumer)
    if found.kind != "http":
        # its records belong to the engine, which writes them into tables: do not take them
        raise ConfigurationError(
            f"consumer {found.name!r} is a {found.kind} consumer run by `upsync server`; "
            "tail an http consumer (`upsync consumers create NAME`)"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    printed = 0
    while not stop.is_set() and (max_records is None or printed < max_records):
        size = batch_size if max_records is None else min(batch_size, max_records - printed)
        batch = await _next_or_stop(service, consumer, size, stop)
        if batch is None:
            return
        for message in batch.messages:
            click.echo(json.dumps(message.record.to_dict(), default=str))
        await service.ack(consumer, [m.ack_token for m in batch.messages])
        printed += len(batch.messages)


async def _next_or_stop(
    service: StreamService, consumer: str, size: int, stop: asyncio.Event
) -> Batch | None:
    """The next batch (long poll), or ``None`` once ``stop`` is set."""
    pulling = asyncio.create_task(service.next(consumer, batch_size=size, wait_for_ms=POLL_MS))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([pulling, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if pulling.done():
        return pulling.result()
    # a batch claimed while being cancelled comes back after its ack window: at least once
    pulling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pulling
    return None
