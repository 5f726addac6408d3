"""The engine lives through a restart of its Postgres and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.world import stream_world
from upsync.embedded import EmbeddedPostgres, start_embedded
from upsync.engine.server import Engine, EngineConfig
from upsync.stream.tables import DEFAULT_SCHEMA
from upsync.testing.stripe import RunningStandin, generate, run_standin


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A Postgres of this test's own, so restarting it disturbs nobody else."""
    server = start_embedded(tmp_path / "pgdata")
    yield server
    server.stop()


def stop_fast(data_dir: Path) -> None:
    """Shut Postgres down the way a crash-restart looks to clients (fast shutdown)."""
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while (data_dir / "postmaster.pid").exists():
        assert time.monotonic() < deadline, "postgres did not stop"
        time.sleep(0.05)  # waiting for another process to exit: nothing to wait on but the file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)  # the engine works on its own; the test only watches


def emails(dsn: str) -> dict[str, str]:
    # before the consumer starts (or while Postgres is down) there is nothing to read yet
    with (
        contextlib.suppress(psycopg.OperationalError, psycopg.errors.UndefinedTable),
        psycopg.connect(dsn) as conn,
    ):
        query = sql.SQL("SELECT upstream_id, email FROM {} WHERE NOT deleted").format(
            sql.Identifier("stripe", "customers")
        )
        return {r[0]: r[1] for r in conn.execute(query)}
    return {}


def upstream_emails(standin: RunningStandin) -> dict[str, str]:
    return {c["id"]: c["email"] for c in standin.store.live("customer")}


async def test_engine_survives_a_postgres_restart(own_postgres: EmbeddedPostgres) -> None:
    dsn = own_postgres.dsn
    with run_standin(rate_limit=None) as standin:
        generate(standin.store, customers=40, seed=3, days=10)
        engine = Engine(
            EngineConfig(
                dsn,
                port=free_port(),
                stripe_base_url=standin.url,
                poll_interval=0.1,
                refresh_every=0.2,
            )
        )
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            world = await stream_world(
                conn, DEFAULT_SCHEMA, collection_ids=["stripe:customer"], api_key=standin.api_key
            )
            await world.consumer(conn, "tables", kind="table", metadata={"schema": "stripe"})
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop))
        try:
            await eventually(
                lambda: _same(dsn, standin), "the backfill to reach the table", within=60
            )
            await asyncio.to_thread(stop_fast, own_postgres.data_dir)
            for customer in list(standin.store.live("customer"))[:10]:  # changes while it is down
                standin.store.update(
                    "customer", customer["id"], {"email": f"new-{customer['id']}@x.io"}
                )
            await asyncio.to_thread(start_embedded, own_postgres.data_dir)
            await eventually(
                lambda: _same(dsn, standin), "the changes made during the outage", within=60
            )
            assert not running.done(), "the engine stopped instead of reconnecting"
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=30)


async def _same(dsn: str, standin: RunningStandin) -> bool:
    return await asyncio.to_thread(emails, dsn) == upstream_emails(standin)
