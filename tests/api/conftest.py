"""Fixtures for the HTTP API tests: the app on the test's schema, a token, and a stream with
a sync to write records into (through the stream library, as a sync would)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.world import stream_world
from upsync.api import create_app, create_token
from upsync.stream.models import Stream, Sync, UpstreamObject
from upsync.stream.write import write

AConn = psycopg.AsyncConnection[Any]


@pytest.fixture
async def app(pg_dsn: str, schema: str) -> AsyncIterator[FastAPI]:
    """The API over the test's schema, started (pool open, migrations applied)."""
    application = create_app(pg_dsn, schema=schema, pool_size=4)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def db(pg_dsn: str, app: FastAPI) -> AsyncIterator[AConn]:
    """An autocommit connection to the test database, for setup and for checking rows."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def token(db: AConn, schema: str) -> str:
    return await create_token(db, "tests", schema=schema)


@pytest.fixture
async def http(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the app in-process, with a valid bearer token."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://upsync.test", headers=headers
    ) as client:
        yield client


@dataclass
class Source:
    """A stream and a Stripe sync writing into it."""

    db: AConn
    schema: str
    stream: Stream
    sync: Sync
    version: int = 0

    async def put(self, collection_id: str, *objects: dict[str, Any]) -> None:
        """Write snapshots of ``objects`` (each with an ``id``) as a newer upstream state."""
        self.version += 1
        snaps = [UpstreamObject(o["id"], o, self.version) for o in objects]
        await write(self.db, self.sync, collection_id, snaps, schema=self.schema)


@pytest.fixture
async def source(db: AConn, schema: str) -> Source:
    world = await stream_world(db, schema, external_id="org_1")
    return Source(db, schema, world.stream, world.sync)


async def create_consumer(
    http: httpx.AsyncClient, stream_id: str, name: str = "workers", **settings: Any
) -> dict[str, Any]:
    """Create an HTTP consumer over the API; fails the test on any error."""
    response = await http.post(
        "/v1/http-consumers", json={"stream_id": stream_id, "name": name, **settings}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an error response (checking the one shape on the way)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["type"], str) and body["error"]["message"], body
    error: dict[str, Any] = body["error"]
    return error
