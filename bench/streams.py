"""The stream the stream benchmarks write into: its objects, its stream and its syncs."""

from __future__ import annotations

import random
from typing import Any

import psycopg

from upsync.stream import Sync, UpstreamObject, create_stream, create_sync, migrate
from upsync.testing.records import stripe_customer

__all__ = ["customers", "new_stream", "new_sync"]


def customers(n: int, seed: int = 42) -> list[UpstreamObject]:
    """``n`` Stripe-shaped customers (~1 KB of JSON each), the same for the same ``seed``."""
    rnd = random.Random(seed)
    return [
        UpstreamObject(f"cus_{i:014d}", stripe_customer(i, rnd), 1_700_000_000_000 + i)
        for i in range(n)
    ]


async def new_stream(conn: psycopg.AsyncConnection[Any], schema: str) -> str:
    """Migrate ``schema`` and create one stream in it; its id."""
    await migrate(conn, schema=schema)
    return (await create_stream(conn, "bench", schema=schema)).id


async def new_sync(
    conn: psycopg.AsyncConnection[Any],
    schema: str,
    stream_id: str,
    name: str,
    collection: str = "stripe:customer",
    external_id: str | None = None,
) -> Sync:
    """A Stripe sync of one collection into ``stream_id``."""
    return await create_sync(
        conn,
        stream_id=stream_id,
        provider="stripe",
        name=name,
        collection_ids=[collection],
        external_id=external_id,
        schema=schema,
    )
