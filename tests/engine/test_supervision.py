"""Engine loops retry only transient errors; anything else stops the task, is logged once with
its traceback and shows in its health and ``/healthz`` (issue 10, item 4)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from tests.engine import test_engine
from tests.engine.helpers import Setup, customer
from tests.engine.test_engine import Up, eventually
from tests.world import stripe_sync
from upsync.engine.consumers import run_table_consumer
from upsync.engine.health import TaskHealth
from upsync.engine.supervision import Backoff, is_transient
from upsync.errors import ConfigurationError, Unauthorized, UpstreamUnavailable
from upsync.records import Record
from upsync.sinks.table import ApplyResult
from upsync.stream.consumers import create_consumer, update_consumer
from upsync.stream.delivery import info
from upsync.stream.notify import Notifier

standin = test_engine.standin  # the same stand-in and running engine as the engine suite
up = test_engine.up
NO_WAIT = Backoff(base_s=0.001, max_s=0.001)


class BuggySink:
    """A user's sink with a bug: it raises a programming error on its first ``fail`` calls."""

    def __init__(self, setup: Setup, error: Exception, fail: int = 1_000_000) -> None:
        self.real = setup.target.sink()
        self.error = error
        self.fail = fail
        self.calls = 0

    async def apply_async(self, conn: Any, records: Sequence[Record]) -> ApplyResult:
        self.calls += 1
        if self.calls <= self.fail:
            raise self.error
        return await self.real.apply_async(conn, records)


async def _run(
    setup: Setup, schema_dsn: str, sink: BuggySink, health: TaskHealth
) -> tuple[asyncio.Task[None], asyncio.Event, Notifier]:
    notifier = Notifier(schema_dsn, schema=setup.schema)
    await notifier.start()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_table_consumer(
            setup.pool, notifier, setup.consumer, sink, stop,
            schema=setup.schema, health=health, backoff=NO_WAIT, idle_wait=0.05,
        )
    )  # fmt: skip
    return task, stop, notifier


async def test_a_programming_error_stops_the_consumer_logged_once_with_its_traceback(
    setup: Setup, schema_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="upsync")
    await setup.write("stripe:customer", customer(1, 1), customer(2, 1))
    health = TaskHealth("consumer 'tables'")
    task, stop, notifier = await _run(
        setup, schema_dsn, BuggySink(setup, KeyError("colour")), health
    )
    try:
        await asyncio.wait_for(task, timeout=20)  # it returns: no silent retry loop
    finally:
        stop.set()
        await notifier.close()
    assert health.state == "stopped" and health.last_error == "KeyError: 'colour'"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "consumer 'tables' stopped: KeyError" in errors[0].getMessage()
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    async with setup.pool.connection() as conn:
        counts = await info(conn, setup.consumer, schema=setup.schema)
    assert counts.num_pending + counts.num_ack_pending == 2  # nothing acked, nothing lost


async def test_a_transient_database_error_is_retried_and_the_batch_lands(
    setup: Setup, schema_dsn: str
) -> None:
    await setup.write("stripe:customer", customer(1, 1), customer(2, 1))
    async with setup.pool.connection() as conn:  # a failed batch comes back after ack_wait
        setup.consumer = await update_consumer(
            conn, setup.consumer, ack_wait_ms=200, schema=setup.schema
        )
    health = TaskHealth("consumer 'tables'")
    failing = psycopg.errors.SerializationFailure("could not serialize access")
    sink = BuggySink(setup, failing, fail=1)  # the set-up's consumer has max_deliver=2
    task, stop, notifier = await _run(setup, schema_dsn, sink, health)
    try:

        async def landed() -> bool:
            return len(await setup.rows("customers", "email")) == 2

        await eventually(landed)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
        await notifier.close()
    assert sink.calls >= 2 and health.state == "running" and health.failures == 0


def test_what_counts_as_transient() -> None:
    assert is_transient(psycopg.errors.AdminShutdown("terminating connection"))
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert is_transient(UpstreamUnavailable("Stripe is down"))
    assert not is_transient(psycopg.errors.UndefinedTable("no such table"))
    assert not is_transient(Unauthorized("bad key"))
    assert not is_transient(ConfigurationError("bad"))
    assert not is_transient(KeyError("bug"))


async def _healthz(up: Up) -> dict[str, Any]:
    response = await up.api.get("/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_managed_consumer_that_cannot_start_is_stopped_shown_and_not_restarted(
    up: Up, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="upsync")
    stream = (await up.api.post("/v1/streams", json={"name": "other"})).json()
    # Postgres refuses schema names starting with pg_ (42939): no retry can fix that
    bad = await create_consumer(
        up.db, stream_id=stream["id"], name="reserved", kind="table",
        metadata={"schema": "pg_upsync_reserved"}, schema=up.schema,
    )  # fmt: skip

    async def degraded() -> bool:
        return bool((await _healthz(up))["status"] == "degraded")

    await eventually(degraded)
    (task,) = (await _healthz(up))["tasks"]
    assert task["task"] == f"consumer 'reserved' ({bad.id})" and task["state"] == "stopped"
    assert "ReservedName" in task["last_error"]
    await up.create_sync()  # a good sync and its consumer run on, over many supervisor ticks
    await eventually(up.table_matches_standin)
    logged = [r for r in caplog.records if "consumer 'reserved'" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR and logged[0].exc_info

    await update_consumer(up.db, bad, metadata={"schema": f"{up.tables}_fixed"}, schema=up.schema)

    async def healthy() -> bool:
        return (await _healthz(up)) == {"status": "ok", "database": "ok", "tasks": []}

    await eventually(healthy)
    await up.db.execute(f'DROP SCHEMA IF EXISTS "{up.tables}_fixed" CASCADE')


async def test_a_sync_whose_key_is_refused_stops_and_shows_in_healthz(up: Up) -> None:
    stream = (await up.api.post("/v1/streams", json={"name": "badkey"})).json()
    sync = await stripe_sync(
        up.db,
        up.schema,
        stream["id"],
        name="badkey",
        collection_ids=["stripe:customer"],
        api_key="sk_live_notacceptedhere",
    )

    async def degraded() -> bool:
        return bool((await _healthz(up))["status"] == "degraded")

    await eventually(degraded)
    (task,) = (await _healthz(up))["tasks"]
    assert task["task"] == f"sync 'badkey' ({sync.id})" and "Unauthorized" in task["last_error"]
    assert "sk_live_notacceptedhere" not in str(task)
    health = (await up.sync(sync.id))["health"]
    assert health["status"] == "error" and health["stopped"] is True
    assert health["restarts"] == 0
