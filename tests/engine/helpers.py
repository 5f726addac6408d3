"""Helpers for engine tests: the stream/sync/consumer set-up and Stripe-like objects."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.world import pooled_world
from upsync.engine.consumers import TableTarget, deliver_to_tables
from upsync.stream.models import Consumer, Sync, UpstreamObject
from upsync.stream.write import write


@dataclass
class Setup:
    pool: AsyncConnectionPool[Any]
    schema: str
    sync: Sync
    consumer: Consumer
    target: TableTarget

    async def write(self, collection_id: str, *objects: UpstreamObject) -> None:
        async with self.pool.connection() as conn:
            await write(conn, self.sync, collection_id, objects, schema=self.schema)

    async def drain(self) -> int:
        sink = self.target.sink()
        total = 0
        while (
            report := await deliver_to_tables(self.pool, self.consumer, sink, schema=self.schema)
        ).delivered:
            total += report.delivered
        return total

    async def rows(self, table: str, *columns: str) -> dict[str, tuple[Any, ...]]:
        query = sql.SQL("SELECT upstream_id, {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(self.target.schema, table),
        )
        async with self.pool.connection() as conn:
            cur = await conn.execute(query)
            return {r[0]: tuple(r[1:]) for r in await cur.fetchall()}


def customer(n: int, version: int, **data: Any) -> UpstreamObject:
    body = {"id": f"cus_{n}", "object": "customer", "email": f"{n}@x.io", "created": 1, **data}
    return UpstreamObject(f"cus_{n}", body, version)


@contextlib.asynccontextmanager
async def table_consumer_world(
    schema_dsn: str, schema: str
) -> AsyncIterator[tuple[AsyncConnectionPool[Any], Sync, Consumer, TableTarget]]:
    """A stream with a sync (customers, charges) and a table consumer (max_deliver=2) whose
    typed tables live in ``<schema>_dest``; the tables' schema is dropped afterwards."""
    target = TableTarget(schema=f"{schema}_dest")
    options = {"collection_ids": ["stripe:customer", "stripe:charge"], "external_id": "acme"}
    async with pooled_world(schema_dsn, schema, stream="s", **options) as (pool, world):
        async with pool.connection() as conn:
            consumer = await world.consumer(conn, "tables", max_deliver=2)
        await target.create_tables(pool)
        yield pool, world.sync, consumer, target
        async with pool.connection() as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(target.schema))
            )
