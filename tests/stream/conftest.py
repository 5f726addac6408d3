"""Fixtures for the stream tests: a migrated schema, a stream with a sync, a service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from tests.world import stripe_sync
from upsync.stream import (
    ManualClock,
    Stream,
    StreamService,
    Sync,
    create_stream,
    migrate,
)

AConn = psycopg.AsyncConnection[Any]


@pytest.fixture
async def db(aconn: AConn, schema: str) -> AConn:
    """``aconn`` with upsync's tables migrated into the test's schema."""
    await aconn.commit()
    await migrate(aconn, schema=schema)
    return aconn


@pytest.fixture
async def stream(db: AConn, schema: str) -> Stream:
    s = await create_stream(db, "main", schema=schema)
    await db.commit()
    return s


@pytest.fixture
async def sync(db: AConn, schema: str, stream: Stream) -> Sync:
    s = await stripe_sync(db, schema, stream.id, external_id="org_1", metadata={"plan": "gold"})
    await db.commit()
    return s


@pytest.fixture
async def other_conn(schema_dsn: str) -> AsyncIterator[AConn]:
    """A second connection, for concurrent writers and workers."""
    async with await psycopg.AsyncConnection.connect(schema_dsn) as c:
        yield c


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def service(db: AConn, pg_dsn: str, schema: str) -> AsyncIterator[StreamService]:
    """A StreamService on the test's schema, with the database's clock."""
    svc = await StreamService.open(pg_dsn, schema=schema, min_size=1, max_size=4)
    try:
        yield svc
    finally:
        await svc.close()
