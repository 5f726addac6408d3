"""Fixtures for engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.engine.helpers import Setup
from upsync.engine.consumers import TableTarget
from upsync.stream.catalog import create_stream, create_sync
from upsync.stream.consumers import create_consumer
from upsync.stream.migrations import migrate


@pytest.fixture
async def setup(schema_dsn: str, schema: str) -> AsyncIterator[Setup]:
    target = TableTarget(schema=f"{schema}_dest")
    async with AsyncConnectionPool(schema_dsn, min_size=1, max_size=4, open=False) as pool:
        async with pool.connection() as conn:
            await migrate(conn, schema=schema)
            stream = await create_stream(conn, "s", schema=schema)
            sync = await create_sync(
                conn,
                stream_id=stream.id,
                provider="stripe",
                name="acme",
                collection_ids=["stripe:customer", "stripe:charge"],
                external_id="acme",
                schema=schema,
            )
            consumer = await create_consumer(
                conn, stream_id=stream.id, name="tables", max_deliver=2, schema=schema
            )
        await target.create_tables(pool)
        yield Setup(pool, schema, sync, consumer, target)
        async with pool.connection() as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(target.schema))
            )
