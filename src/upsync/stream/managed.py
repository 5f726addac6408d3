"""Managed consumers, library side: a consumer's batches applied to tables, acked atomically.

:func:`deliver_batch` claims a batch (committed on its own, so attempts count towards
``max_deliver``), then calls ``apply(conn, records)`` and acks **in one transaction** on the
stream's connection: the destination rows and the ack commit together or not at all. If
``apply`` raises, that transaction rolls back and the batch is nacked, to be retried (and
dead-lettered after ``max_deliver`` attempts). :func:`apply_managed_table` is the ``apply`` of
Sequin's managed Postgres consumer: one table for every collection.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from psycopg import sql
from psycopg.types.json import Jsonb

from upsync.errors import InvalidAckToken, UpsyncError
from upsync.records import Record
from upsync.stream.clock import Clock, db_clock
from upsync.stream.delivery import ack, claim, nack
from upsync.stream.models import Consumer
from upsync.stream.tables import DEFAULT_SCHEMA, AConn

Apply = Callable[[AConn, Sequence[Record]], Awaitable[object]]
"""Writes records on the given connection, inside the caller's transaction; must be idempotent
under redelivery (a guarded upsert is)."""

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    sequin_id uuid PRIMARY KEY,
    sync_id uuid NOT NULL,
    sync_external_id text,
    sync_metadata jsonb NOT NULL,
    collection_id text NOT NULL,
    upstream_id text NOT NULL,
    data jsonb NOT NULL,
    deleted boolean NOT NULL,
    updated_idx bigint NOT NULL,
    upstream_created_at timestamptz,
    upstream_updated_at timestamptz,
    inserted_at timestamptz NOT NULL
)
"""

_UPSERT = """
INSERT INTO {table} AS t (sequin_id, sync_id, sync_external_id, sync_metadata, collection_id,
    upstream_id, data, deleted, updated_idx, upstream_created_at, upstream_updated_at, inserted_at)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::jsonb[], %s::text[], %s::text[],
    %s::jsonb[], %s::boolean[], %s::bigint[], %s::timestamptz[], %s::timestamptz[],
    %s::timestamptz[]) AS u
ORDER BY 1
ON CONFLICT (sequin_id) DO UPDATE SET
    sync_id = excluded.sync_id,
    sync_external_id = excluded.sync_external_id,
    sync_metadata = excluded.sync_metadata,
    collection_id = excluded.collection_id,
    upstream_id = excluded.upstream_id,
    data = excluded.data,
    deleted = excluded.deleted,
    updated_idx = excluded.updated_idx,
    upstream_created_at = excluded.upstream_created_at,
    upstream_updated_at = excluded.upstream_updated_at
WHERE t.updated_idx < excluded.updated_idx
"""


def _table(table: tuple[str, str] | str) -> sql.Identifier:
    return sql.Identifier(*table) if isinstance(table, tuple) else sql.Identifier(table)


async def create_managed_table(conn: AConn, table: tuple[str, str] | str) -> None:
    """Create Sequin's single managed table (``(schema, name)`` or a name) if missing."""
    await conn.execute(sql.SQL(_DDL).format(table=_table(table)))


def latest_versions(records: Sequence[Record]) -> list[Record]:
    """One record per id, the highest ``updated_idx``, sorted by id (no deadlocks)."""
    best: dict[str, Record] = {}
    for r in records:
        if r.id not in best or best[r.id].updated_idx < r.updated_idx:
            best[r.id] = r
    return [best[k] for k in sorted(best)]


def managed_table_apply(table: tuple[str, str] | str) -> Apply:
    """The ``apply`` that upserts records into a managed table, guarded by ``updated_idx``."""
    query = sql.SQL(_UPSERT).format(table=_table(table))

    async def apply(conn: AConn, records: Sequence[Record]) -> int:
        rows = latest_versions(records)
        if not rows:
            return 0
        columns = [
            [uuid.UUID(r.id) for r in rows],
            [uuid.UUID(r.sync.id) if r.sync.id else None for r in rows],
            [r.sync.external_id for r in rows],
            [Jsonb(dict(r.sync.metadata)) for r in rows],
            [r.collection_id for r in rows],
            [r.upstream_id for r in rows],
            [Jsonb(r.data) for r in rows],
            [r.deleted for r in rows],
            [r.updated_idx for r in rows],
            [r.upstream_created_at for r in rows],
            [r.upstream_updated_at for r in rows],
            [r.inserted_at for r in rows],
        ]
        cur = await conn.execute(query, columns)
        return cur.rowcount

    return apply


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one :func:`deliver_batch` did."""

    delivered: int
    acked: int
    failed: UpsyncError | Exception | None = None
    dead: int = 0


async def deliver_batch(
    conn: AConn,
    consumer: Consumer,
    apply: Apply,
    *,
    batch_size: int = 100,
    schema: str = DEFAULT_SCHEMA,
    clock: Clock = db_clock,
) -> BatchOutcome:
    """Claim a batch, ``apply`` it and ack it in one transaction on ``conn``.

    ``conn`` must be idle (no transaction open). A failure of ``apply`` is returned (not
    raised) after the batch was nacked; errors of upsync's own database calls propagate.
    """
    got = await claim(conn, consumer, batch_size, schema=schema, clock=clock)
    if not got.messages:
        return BatchOutcome(0, 0)
    tokens = [m.ack_token for m in got.messages]
    try:
        async with conn.transaction():
            await apply(conn, [m.record for m in got.messages])
            acked = await ack(conn, consumer, tokens, schema=schema)
    except Exception as e:  # the handler's failure is data for the caller, not a crash
        dead = await _nack_current(conn, consumer, tokens, schema=schema, clock=clock)
        return BatchOutcome(len(tokens), 0, e, dead)
    return BatchOutcome(len(tokens), acked)


async def _nack_current(
    conn: AConn, consumer: Consumer, tokens: Sequence[str], *, schema: str, clock: Clock
) -> int:
    """Nack what is still ours; a token whose delivery expired meanwhile is someone else's."""
    try:
        return await nack(conn, consumer, tokens, schema=schema, clock=clock)
    except InvalidAckToken:
        dead = 0
        for token in tokens:
            try:
                dead += await nack(conn, consumer, [token], schema=schema, clock=clock)
            except InvalidAckToken:
                continue
        return dead
