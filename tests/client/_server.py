"""Helpers for tests against a live API (see ``conftest.server``): write records as a sync
would, set up a stream + sync + consumer, read the user's table."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from psycopg import sql

from upsync.client import Client
from upsync.sinks import Route, TableSink
from upsync.stream import catalog
from upsync.stream.models import UpstreamObject
from upsync.stream.write import write


@dataclass
class Server:
    url: str
    token: str
    dsn: str
    schema: str
    app: FastAPI


def write_customers(srv: Server, sync_id: str, version: int, *objects: dict[str, Any]) -> None:
    """Write customer snapshots into the stream, as a sync would."""

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(srv.dsn, autocommit=True) as conn:
            sync = await catalog.get_sync(conn, sync_id, schema=srv.schema)
            snaps = [UpstreamObject(o["id"], o, version) for o in objects]
            await write(conn, sync, "stripe:customer", snaps, schema=srv.schema)

    asyncio.run(go())


def setup_consumer(client: Client, name: str = "workers", **settings: Any) -> tuple[str, str]:
    """A stream, a sync (with an inline credential) and a consumer: (sync id, consumer name)."""
    stream = client.create_stream("main")
    sync = client.create_sync(
        provider="stripe",
        stream_id=stream["id"],
        name="acme",
        collection_ids=["stripe:customer"],
        credential={"properties": {"kind": "stripe_key", "secret": "sk_test_abc123"}},
    )
    client.create_consumer(stream["id"], name, **settings)
    return sync["id"], name


def create_customers_table(srv: Server) -> None:
    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, upstream_id text, deleted boolean, "
                "updated_idx bigint, email text)"
            ).format(sql.Identifier(srv.schema, "customers"))
        )


def customers_sink(srv: Server) -> TableSink:
    """A sink of ``stripe:customer`` records into the customers table (``email`` mapped)."""
    route = Route(
        "stripe:customer", "customers", schema=srv.schema, columns={"email": "data.email"}
    )
    return TableSink([route])


def customer_rows(srv: Server) -> dict[str, str | None]:
    """``{upstream_id: email}`` of the customers table."""
    with psycopg.connect(srv.dsn) as conn:
        query = sql.SQL("SELECT upstream_id, email FROM {}").format(
            sql.Identifier(srv.schema, "customers")
        )
        return dict(conn.execute(query).fetchall())


async def metrics_text(server: Server) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get("/metrics")).text


async def until_long_polling(server: Server, stream_id: str) -> None:
    """Until a long poll waits on the stream's notifications (no public hook exists)."""
    waiters = server.app.state.upsync.service.notifier._waiters
    async with asyncio.timeout(10):
        while not waiters.get(stream_id):
            await asyncio.sleep(0.005)
