"""Many syncs (tenants) in one stream run concurrently and stay isolated."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.world import stripe_sync
from upsync.records import record_id
from upsync.sources.port import PostgresPort
from upsync.sources.stripe.client import StripeHTTP
from upsync.sources.stripe.ratelimit import RateLimiter
from upsync.sources.stripe.source import StripeSource
from upsync.stream.catalog import create_stream
from upsync.stream.migrations import migrate
from upsync.stream.models import Sync
from upsync.testing.stripe import RunningStandin, Store, generate, run_standin

COLLECTIONS = ["stripe:customer", "stripe:subscription"]


async def _sync(
    pool: AsyncConnectionPool[Any], schema: str, stream_id: str, name: str, key: str
) -> Sync:
    async with pool.connection() as conn:
        return await stripe_sync(
            conn,
            schema,
            stream_id,
            name=name,
            collection_ids=COLLECTIONS,
            api_key=key,
            external_id=name,
        )


async def _records(pool: AsyncConnectionPool[Any], schema: str) -> list[tuple[Any, ...]]:
    query = sql.SQL(
        "SELECT id::text, sync_id::text, upstream_id, deleted FROM {} "
        "WHERE collection_id = 'stripe:customer'"
    ).format(sql.Identifier(schema, "records"))
    async with pool.connection() as conn:
        cur = await conn.execute(query)
        return list(await cur.fetchall())


async def test_two_accounts_with_colliding_ids_stay_apart(schema_dsn: str, schema: str) -> None:
    # both accounts come from the same seed: their customer ids are identical
    with (
        run_standin(Store(seed=5), rate_limit=None) as a,
        run_standin(Store(seed=5), rate_limit=None) as b,
    ):
        generate(a.store, customers=30, seed=5, days=10)
        generate(b.store, customers=30, seed=5, days=10)
        shared = {c["id"] for c in a.store.live("customer")} & {
            c["id"] for c in b.store.live("customer")
        }
        assert shared, "the two accounts were meant to share upstream ids"
        async with AsyncConnectionPool(schema_dsn, min_size=1, max_size=6, open=False) as pool:
            async with pool.connection() as conn:
                await migrate(conn, schema=schema)
                stream = await create_stream(conn, "tenants", schema=schema)
            syncs = {
                "acme": (await _sync(pool, schema, stream.id, "acme", a.api_key), a),
                "globex": (await _sync(pool, schema, stream.id, "globex", b.api_key), b),
            }
            sources = [_source(pool, schema, sync, standin) for sync, standin in syncs.values()]
            await asyncio.gather(*(_backfill(s) for s in sources))
            victim = sorted(shared)[0]
            _delete(b, f"/v1/customers/{victim}")  # only globex deletes it
            await asyncio.gather(*(s.poll_once() for s in sources))
            rows = await _records(pool, schema)
            for source in sources:
                await source.http.aclose()
    by_sync: dict[str, dict[str, tuple[str, bool]]] = {}
    for rid, sync_id, upstream_id, deleted in rows:
        by_sync.setdefault(sync_id, {})[upstream_id] = (rid, deleted)
    acme, globex = syncs["acme"][0], syncs["globex"][0]
    assert len(by_sync[acme.id]) == a.store.count("customer")
    assert len(by_sync[globex.id]) == b.store.count("customer") + 1  # + the tombstone
    assert by_sync[acme.id][victim] == (record_id(acme.id, "stripe:customer", victim), False)
    assert by_sync[globex.id][victim] == (record_id(globex.id, "stripe:customer", victim), True)


def _source(
    pool: AsyncConnectionPool[Any], schema: str, sync: Sync, standin: RunningStandin
) -> StripeSource:
    http = StripeHTTP(standin.api_key, base_url=standin.url, limiter=RateLimiter(500))
    return StripeSource(http, PostgresPort(pool, sync, schema=schema), COLLECTIONS)


async def _backfill(source: StripeSource) -> None:
    await source.start()
    await source.backfill()


def _delete(standin: RunningStandin, path: str) -> None:
    headers = {"Authorization": f"Bearer {standin.api_key}"}
    assert httpx.delete(standin.url + path, headers=headers).status_code == 200
