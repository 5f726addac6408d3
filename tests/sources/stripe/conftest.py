"""A stand-in Stripe, a stream in the test's schema, and a source wired between them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import stripe
from psycopg_pool import AsyncConnectionPool

from tests.world import pooled_world
from upsync.sources.port import PostgresPort
from upsync.sources.stripe.client import StripeHTTP
from upsync.sources.stripe.ratelimit import RateLimiter
from upsync.sources.stripe.source import StripeSource
from upsync.stream.models import Sync
from upsync.testing.stripe.server import RunningStandin, run_standin

COLLECTIONS = ["stripe:customer", "stripe:product", "stripe:price", "stripe:subscription"]


@pytest.fixture
def standin() -> Iterator[RunningStandin]:
    """A stand-in with no rate limit (tests that want one configure its faults)."""
    with run_standin(rate_limit=None) as s:
        yield s


class Upstream:
    """Changes made the way a Stripe user makes them: over the API."""

    def __init__(self, standin: RunningStandin) -> None:
        self.standin = standin
        self.http = httpx.Client(
            base_url=standin.url, headers={"Authorization": f"Bearer {standin.api_key}"}
        )
        self.sdk = stripe.StripeClient(
            standin.api_key, base_addresses={"api": standin.url}, max_network_retries=0
        )

    def post(self, path: str, **data: Any) -> dict[str, Any]:
        response = self.http.post(path, data=data)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def delete(self, path: str) -> None:
        response = self.http.delete(path)
        assert response.status_code == 200, response.text

    def state(self, collection_id: str) -> dict[str, dict[str, Any]]:
        """What Stripe holds, listed by the official SDK (all statuses)."""
        name = collection_id.removeprefix("stripe:")
        service = {
            "customer": self.sdk.v1.customers,
            "product": self.sdk.v1.products,
            "price": self.sdk.v1.prices,
            "subscription": self.sdk.v1.subscriptions,
        }[name]
        params: dict[str, Any] = {"limit": 100}
        if name == "subscription":
            params["status"] = "all"
        return {o.id: o.to_dict() for o in service.list(params=params).auto_paging_iter()}  # type: ignore[attr-defined]


@pytest.fixture
def upstream(standin: RunningStandin) -> Iterator[Upstream]:
    up = Upstream(standin)
    yield up
    up.http.close()


@dataclass
class Wired:
    pool: AsyncConnectionPool[Any]
    sync: Sync
    schema: str
    make_source: Callable[..., StripeSource]

    async def stream_state(self, collection_id: str) -> dict[str, dict[str, Any]]:
        """Live records of the collection in the stream: upstream id → data."""
        return {
            k: v for k, (v, deleted) in (await self.records(collection_id)).items() if not deleted
        }

    async def records(self, collection_id: str) -> dict[str, tuple[dict[str, Any], bool]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                psycopg.sql.SQL(
                    "SELECT upstream_id, data, deleted FROM {} "
                    "WHERE sync_id = %s AND collection_id = %s"
                ).format(psycopg.sql.Identifier(self.schema, "records")),
                [self.sync.id, collection_id],
            )
            return {r[0]: (r[1], r[2]) for r in await cur.fetchall()}


@pytest.fixture
async def wired(schema_dsn: str, schema: str, standin: RunningStandin) -> AsyncIterator[Wired]:
    async with pooled_world(
        schema_dsn,
        schema,
        stream="test",
        collection_ids=COLLECTIONS,
        api_key=standin.api_key,
        external_id="acme",
    ) as (pool, world):
        sync = world.sync
        made: list[StripeSource] = []

        def make_source(**options: Any) -> StripeSource:
            http = StripeHTTP(
                standin.api_key, base_url=standin.url, limiter=RateLimiter(options.pop("rate", 500))
            )
            source = StripeSource(
                http, PostgresPort(pool, sync, schema=schema), COLLECTIONS, **options
            )
            made.append(source)
            return source

        yield Wired(pool, sync, schema, make_source)
        for source in made:
            await source.http.aclose()
