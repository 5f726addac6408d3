"""Managed table consumers: a consumer's records applied to the user's tables by the engine.

Each batch is claimed, applied with a :class:`~upsync.sinks.TableSink` and acked in ONE
transaction on the stream's database, so the rows and the ack commit together (invariant 8).
A record the sink cannot store (Postgres refused its row, or a mapping failed) is not acked
with the rest: it is nacked, retried, and after the consumer's ``max_deliver`` attempts it
becomes a dead letter that lists its reason — never silently dropped (invariant 9).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from upsync.crashpoints import crash_point
from upsync.engine.fastpath import FastPath
from upsync.engine.health import TaskHealth
from upsync.engine.supervision import DB_BACKOFF, Backoff, supervise
from upsync.errors import UpsyncError
from upsync.pgerrors import ROW_FAULT, classify
from upsync.records import Message, Record
from upsync.redact import redact
from upsync.schema import collection_route, column_types
from upsync.sinks.ddl import create_table_sql
from upsync.sinks.table import ApplyResult, TableSink
from upsync.sources.stripe.collections import COLLECTIONS
from upsync.stream.delivery import ack, claim, nack, record_errors
from upsync.stream.managed import Apply, create_managed_table, managed_table_apply
from upsync.stream.models import Consumer
from upsync.stream.notify import Notifier
from upsync.stream.tables import DEFAULT_SCHEMA

__all__ = [
    "BatchReport",
    "SingleTableSink",
    "SingleTableTarget",
    "Sink",
    "TableTarget",
    "deliver_to_tables",
    "run_table_consumer",
    "target_of",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableTarget:
    """Typed tables (``upsync schema``'s shape) for every Stripe collection, in ``schema``.

    Records of collections upsync has no typed table for land in ``<schema>.upsync_raw_records``.
    """

    schema: str = "stripe"
    hard_delete: bool = False

    def sink(self) -> TableSink:
        """The sink that writes to these tables."""
        routes = [
            collection_route(c.collection_id, schema=self.schema) for c in COLLECTIONS.values()
        ]
        return TableSink(
            routes,
            unrouted="raw",
            raw_table=(self.schema, "upsync_raw_records"),
            hard_delete=self.hard_delete,
        )

    async def create_tables(self, pool: AsyncConnectionPool[Any]) -> None:
        """Create the schema and every table that does not exist yet (lz4 where supported)."""
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            lz4 = await _supports_lz4(conn)
            for coll in COLLECTIONS.values():
                route = collection_route(coll.collection_id, schema=self.schema)
                types = column_types(coll.collection_id)
                await conn.execute(create_table_sql(route, column_types=types, lz4=lz4))
            # the raw table, for collections with no typed table (created up front, so the
            # SQL-only path can write to it too)
            raw = self.sink().raw_route
            await conn.execute(create_table_sql(raw, raw=True, lz4=lz4))


async def _supports_lz4(conn: Any) -> bool:
    if conn.info.server_version < 140000:
        return False
    cur = await conn.execute(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class SingleTableTarget:
    """Sequin's managed Postgres consumer: every record of every collection in ONE table.

    Columns: ``sequin_id`` (the record id), ``sync_id``, ``sync_external_id``,
    ``sync_metadata``, ``collection_id``, ``upstream_id``, ``data``, ``deleted``,
    ``updated_idx``, ``upstream_created_at``, ``upstream_updated_at``, ``inserted_at``.
    """

    schema: str = "public"
    table: str = "sequin_records"

    def sink(self) -> SingleTableSink:
        """The sink that writes to this table."""
        return SingleTableSink(managed_table_apply((self.schema, self.table)))

    async def create_tables(self, pool: AsyncConnectionPool[Any]) -> None:
        """Create the schema and the table if missing."""
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            await create_managed_table(conn, (self.schema, self.table))


@dataclass(frozen=True)
class SingleTableSink:
    """Adapts the single managed table's guarded upsert to the sink interface used here.

    Every column is untyped JSON or text, so Postgres refuses no row for its values; a failure
    is a database error, which fails (and retries) the whole batch.
    """

    upsert: Apply

    async def apply_async(self, conn: Any, records: Sequence[Record]) -> ApplyResult:
        written = await self.upsert(conn, records)
        return ApplyResult(inserted=int(written) if isinstance(written, int) else 0)


class Sink(Protocol):
    """What a managed consumer writes with: :class:`TableSink` or :class:`SingleTableSink`."""

    async def apply_async(self, conn: Any, records: Sequence[Record]) -> ApplyResult: ...


@dataclass
class BatchReport:
    """What one delivered batch did."""

    delivered: int = 0
    acked: int = 0
    refused: list[UpsyncError] = field(default_factory=list)
    result: ApplyResult | None = None
    next_deadline_s: float | None = None


async def deliver_to_tables(
    pool: AsyncConnectionPool[Any],
    consumer: Consumer,
    sink: Sink,
    *,
    batch_size: int = 500,
    schema: str = DEFAULT_SCHEMA,
) -> BatchReport:
    """Claim one batch, apply it and ack what landed, in one transaction; nack the refused."""
    async with pool.connection() as conn:
        got = await claim(conn, consumer, batch_size, schema=schema)
        if not got.messages:
            return BatchReport(next_deadline_s=got.next_deadline_s)
        crash_point("consumer.claimed")
        async with conn.transaction():
            result = await sink.apply_async(conn, [m.record for m in got.messages])
            refused_ids = {getattr(e, "record_id", None) for e in result.rejected}
            good, bad = _split(got.messages, refused_ids)
            acked = await ack(conn, consumer, [m.ack_token for m in good], schema=schema)
            crash_point("consumer.before_commit")
        crash_point("consumer.after_commit")
        if bad:
            reasons = {
                str(rid): redact(str(e))
                for e in result.rejected
                if (rid := getattr(e, "record_id", None)) is not None
            }
            await record_errors(conn, consumer, reasons, schema=schema)
            await nack(conn, consumer, [m.ack_token for m in bad], schema=schema)
            for error in result.rejected:
                _log.warning("consumer %s: record refused: %s", consumer.name, error)
    return BatchReport(len(got.messages), acked, list(result.rejected), result)


def _split(messages: Sequence[Message], refused: set[Any]) -> tuple[list[Message], list[Message]]:
    good = [m for m in messages if m.record.id not in refused]
    bad = [m for m in messages if m.record.id in refused]
    return good, bad


async def run_table_consumer(
    pool: AsyncConnectionPool[Any],
    notifier: Notifier,
    consumer: Consumer,
    sink: Sink,
    stop: asyncio.Event,
    *,
    schema: str = DEFAULT_SCHEMA,
    batch_size: int = 500,
    idle_wait: float = 5.0,
    on_batch: Callable[[BatchReport], None] | None = None,
    fast: FastPath | None = None,
    health: TaskHealth | None = None,
    backoff: Backoff = DB_BACKOFF,
) -> None:
    """Deliver ``consumer``'s records into tables until ``stop`` is set, or until it fails for good.

    Woken by new records (LISTEN/NOTIFY through ``notifier``), by the earliest ack deadline, or
    after ``idle_wait`` seconds at the latest. A transient error (see
    :mod:`upsync.engine.supervision`: the database restarting, a deadlock) is retried after a
    growing pause — nothing was acked, so the batch is delivered again. Any other error stops
    the consumer: it is logged once with its traceback, ``health`` says ``stopped``, and this
    function returns. With ``fast`` (tables in the stream's database, see
    :mod:`upsync.engine.fastpath`) batches are delivered with SQL only; a batch the fast path
    cannot apply because of a row (a value or constraint Postgres refuses) is retried once on
    the Python path, which isolates and dead-letters the rows Postgres refuses.
    """
    health = health or TaskHealth(f"consumer {consumer.name!r}")
    python_next = False

    async def one_round() -> bool:
        nonlocal python_next
        with notifier.subscribe(consumer.stream_id) as wake:  # subscribe before looking
            try:
                if fast is not None and not python_next:
                    report = await _fast_batch(fast, pool, consumer, batch_size)
                else:
                    report = await deliver_to_tables(
                        pool, consumer, sink, batch_size=batch_size, schema=schema
                    )
                    python_next = False
            except Exception as e:
                if fast is None or python_next or classify(e) != ROW_FAULT:
                    raise
                python_next = True  # let the Python path isolate the row at fault
                _log.info("consumer %s: batch refused by SQL (%s); isolating", consumer.name, e)
                return True
            if on_batch is not None and report.delivered:
                on_batch(report)
            if not report.delivered:
                await _idle(stop, wake, report.next_deadline_s, idle_wait)
        return True

    await supervise(one_round, stop=stop, health=health, log=_log, backoff=backoff)


async def _idle(stop: asyncio.Event, wake: Any, deadline_s: float | None, idle_wait: float) -> None:
    """Wait for new records, the earliest ack deadline, ``idle_wait`` seconds or ``stop``."""
    timeout = idle_wait if deadline_s is None else min(idle_wait, max(deadline_s, 0.01))
    stopper = asyncio.ensure_future(stop.wait())
    waiter = asyncio.ensure_future(wake.wait(timeout))
    await asyncio.wait([stopper, waiter], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    waiter.cancel()


async def _fast_batch(
    fast: FastPath, pool: AsyncConnectionPool[Any], consumer: Consumer, batch_size: int
) -> BatchReport:
    delivered = await fast.deliver(pool, consumer.id, batch_size)
    return BatchReport(delivered=delivered, acked=delivered)


def target_of(consumer: Consumer) -> TableTarget | SingleTableTarget | None:
    """Where a managed consumer writes, from its kind and metadata; ``None`` if not managed.

    ``kind="table"``: typed tables in ``metadata["schema"]`` (default ``stripe``).
    ``kind="postgres"``: Sequin's single table ``metadata["table"]`` (``schema.table``, default
    ``public.sequin_records``).
    """
    if consumer.kind == "table":
        return TableTarget(schema=str(consumer.metadata.get("schema") or "stripe"))
    if consumer.kind == "postgres":
        schema, _, table = str(
            consumer.metadata.get("table") or "public.sequin_records"
        ).rpartition(".")
        return SingleTableTarget(schema=schema or "public", table=table)
    return None
