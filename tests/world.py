"""The one test set-up most suites share: a migrated upsync schema, a stream, a Stripe sync
writing into it, and (on demand) consumers of that stream.

Every suite that needs "a stream with a sync" builds it here, so the catalogue calls and their
defaults are written once. Arguments that a suite's assertions depend on (stream name, sync
name, collections, external id, credential) are explicit keywords.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from upsync.stream.catalog import create_credential, create_stream, create_sync
from upsync.stream.consumers import create_consumer
from upsync.stream.migrations import migrate
from upsync.stream.models import Consumer, Stream, Sync

AConn = psycopg.AsyncConnection[Any]

COLLECTIONS = ("stripe:customer", "stripe:subscription")


@dataclass(frozen=True)
class World:
    """A stream and a Stripe sync writing into it, in ``schema``."""

    schema: str
    stream: Stream
    sync: Sync

    async def consumer(self, conn: AConn, name: str, **settings: Any) -> Consumer:
        """Create a consumer of this world's stream (``settings`` as ``create_consumer``)."""
        return await create_consumer(
            conn, stream_id=self.stream.id, name=name, schema=self.schema, **settings
        )


async def stripe_sync(
    conn: AConn,
    schema: str,
    stream_id: str,
    *,
    name: str = "acme",
    collection_ids: Sequence[str] = COLLECTIONS,
    api_key: str | None = None,
    **fields: Any,
) -> Sync:
    """Create a Stripe sync into the stream ``stream_id``; with ``api_key``, its credential
    is stored first.

    ``fields`` are the other ``create_sync`` keywords (``external_id``, ``metadata``, ...).
    """
    if api_key is not None:
        cred = await create_credential(
            conn, provider="stripe", kind="stripe_key", secret=api_key, schema=schema
        )
        fields["credential_id"] = cred.id
    return await create_sync(
        conn,
        stream_id=stream_id,
        provider="stripe",
        name=name,
        collection_ids=list(collection_ids),
        schema=schema,
        **fields,
    )


async def stream_world(
    conn: AConn, schema: str, *, stream: str = "main", **sync_options: Any
) -> World:
    """Migrate ``schema``, then create a stream named ``stream`` and a Stripe sync into it.

    ``sync_options`` go to :func:`stripe_sync`. Migrating an already migrated schema is a no-op,
    so suites whose connection fixture migrates may call this too.
    """
    await migrate(conn, schema=schema)
    made = await create_stream(conn, stream, schema=schema)
    sync = await stripe_sync(conn, schema, made.id, **sync_options)
    return World(schema, made, sync)


@contextlib.asynccontextmanager
async def pooled_world(
    schema_dsn: str, schema: str, **options: Any
) -> AsyncIterator[tuple[AsyncConnectionPool[Any], World]]:
    """A pool (1 to 4 connections) on ``schema_dsn`` and a :func:`stream_world` built through
    it with ``options``; the pool is closed afterwards."""
    async with AsyncConnectionPool(schema_dsn, min_size=1, max_size=4, open=False) as pool:
        async with pool.connection() as conn:
            world = await stream_world(conn, schema, **options)
        yield pool, world
