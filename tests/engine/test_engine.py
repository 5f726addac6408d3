"""The engine end to end against the Stripe stand-in: a sync and a managed table consumer
created over the HTTP API, backfill, changes, signed webhooks, status, metrics and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql

from upsync.api import create_app, create_token
from upsync.api.sync_health import SyncHealth, health_block
from upsync.engine.server import Engine, EngineConfig
from upsync.sources.stripe.listing import Slice
from upsync.sources.stripe.source import CollectionProgress
from upsync.stream.consumers import create_consumer
from upsync.stream.models import Sync
from upsync.testing.stripe import sign
from upsync.testing.stripe.server import RunningStandin, run_standin

CUSTOMERS = 12
AConn = psycopg.AsyncConnection[Any]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds (polled with a deadline: the engine has no event to await)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@dataclass
class Up:
    """A running engine on the test's schema, an API client, and the stand-in it syncs."""

    engine: Engine
    stop: asyncio.Event
    task: asyncio.Task[None]
    url: str
    api: httpx.AsyncClient
    db: AConn
    schema: str
    tables: str
    standin: RunningStandin
    stripe: httpx.AsyncClient

    async def create_sync(self, **extra: Any) -> dict[str, Any]:
        """A stream, a Stripe sync over the stand-in's key, and a kind="table" consumer."""
        stream = (await self.api.post("/v1/streams", json={"name": "main"})).json()
        key = {"kind": "stripe_key", "secret": self.standin.api_key, "test": True}
        body = {
            "provider": "stripe",
            "stream_id": stream["id"],
            "name": "acme",
            "collection_ids": ["stripe:customer"],
            "credential": {"properties": key},
            "external_id": "acme",
            **extra,
        }
        response = await self.api.post("/v1/syncs", json=body)
        assert response.status_code == 200, response.text
        await create_consumer(
            self.db,
            stream_id=stream["id"],
            name="tables",
            kind="table",
            metadata={"schema": self.tables},
            schema=self.schema,
        )
        sync: dict[str, Any] = response.json()
        return sync

    async def sync(self, sync_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/syncs/{sync_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def table(self) -> dict[str, tuple[str | None, bool]]:
        """The managed ``customers`` table: upstream id → (email, deleted)."""
        query = sql.SQL("SELECT upstream_id, email, deleted FROM {}").format(
            sql.Identifier(self.tables, "customers")
        )
        try:
            cur = await self.db.execute(query)
        except psycopg.errors.UndefinedTable:
            return {}
        return {r[0]: (r[1], r[2]) for r in await cur.fetchall()}

    async def table_matches_standin(self) -> bool:
        live = {c["id"]: c["email"] for c in self.standin.store.live("customer")}
        rows = {k: email for k, (email, deleted) in (await self.table()).items() if not deleted}
        return rows == live

    async def versions_written(self) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, "events"))
        row = await (await self.db.execute(query)).fetchone()
        assert row is not None
        return int(row[0])

    async def metrics(self) -> str:
        return (await self.api.get("/metrics")).text


@pytest.fixture
def standin() -> Iterator[RunningStandin]:
    with run_standin(rate_limit=None, seed=7) as s:
        for n in range(CUSTOMERS):
            s.store.create("customer", {"email": f"c{n}@example.com", "name": f"C {n}"})
        yield s


@contextlib.asynccontextmanager
async def running_engine(
    pg_dsn: str, schema: str, standin: RunningStandin, *, poll_interval: float
) -> AsyncIterator[Up]:
    port = _free_port()
    config = EngineConfig(
        pg_dsn,
        schema=schema,
        port=port,
        stripe_base_url=standin.url,
        poll_interval=poll_interval,
        refresh_every=0.2,
        reconcile_every=None,
    )
    engine, stop = Engine(config), asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    tables = f"{schema}_tables"
    url = f"http://127.0.0.1:{port}"
    try:
        ready = asyncio.ensure_future(engine.ready.wait())
        await asyncio.wait([ready, task], timeout=30, return_when="FIRST_COMPLETED")
        assert engine.ready.is_set(), task.exception() if task.done() else "engine not ready"
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as db:
            token = await create_token(db, "tests", schema=schema)
            headers = {"Authorization": f"Bearer {token}"}
            stripe_headers = {"Authorization": f"Bearer {standin.api_key}"}
            async with (
                httpx.AsyncClient(base_url=url, headers=headers, trust_env=False) as api,
                httpx.AsyncClient(
                    base_url=standin.url, headers=stripe_headers, trust_env=False
                ) as stripe,
            ):
                yield Up(engine, stop, task, url, api, db, schema, tables, standin, stripe)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as admin:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tables))
            await admin.execute(drop)


@pytest.fixture
async def up(pg_dsn: str, schema: str, standin: RunningStandin) -> AsyncIterator[Up]:
    async with running_engine(pg_dsn, schema, standin, poll_interval=0.2) as running:
        yield running


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the ``name`` sample whose labels include ``labels``."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if m and m[1] == name:
            got = dict(re.findall(r'(\w+)="([^"]*)"', m[2] or ""))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(m[3])
    raise AssertionError(f"no sample {name} {labels}")


@pytest.mark.smoke
async def test_a_sync_created_over_the_api_backfills_and_follows_changes_into_a_table(
    up: Up,
) -> None:
    sync = await up.create_sync()
    assert sync["credential"]["properties"]["secret"] == "****"
    await eventually(up.table_matches_standin)
    assert len(await up.table()) == CUSTOMERS

    first, second = [c["id"] for c in up.standin.store.live("customer")][:2]
    up.standin.store.update("customer", first, {"email": "changed@example.com"})
    up.standin.store.delete("customer", second)
    await eventually(up.table_matches_standin)
    rows = await up.table()
    assert rows[first] == ("changed@example.com", False)
    assert rows[second][1] is True  # a tombstone row, as the managed table keeps them

    health = (await up.sync(sync["id"]))["health"]
    assert health["source"] == "engine" and health["status"] == "healthy"
    assert health["backfill"]["collections"] == {
        "stripe:customer": {"objects": CUSTOMERS, "done": True}
    }
    assert health["backfill"]["completed_at"] is not None
    assert health["events"]["processed"] >= 2 and health["events"]["last_poll_at"] is not None
    assert health["events"]["lag_seconds"] is not None
    assert health["last_error"] is None and health["errors"] == 0 and health["drift"] == 0
    listed = (await up.api.get("/v1/syncs")).json()["data"]
    assert [s["health"]["source"] for s in listed] == ["engine"]


async def test_metrics_report_backfill_lag_drift_errors_and_webhooks_per_sync(up: Up) -> None:
    sync = await up.create_sync()
    await eventually(up.table_matches_standin)
    await up.api.post(f"/v1/syncs/{sync['id']}/webhook", content=b"{}")  # unsigned: refused
    text = await up.metrics()
    labels = {"sync": "acme", "sync_id": sync["id"]}
    customer = {**labels, "collection": "stripe:customer"}
    assert _sample(text, "upsync_sync_backfilled_objects", **customer) == CUSTOMERS
    assert _sample(text, "upsync_sync_backfill_done", **customer) == 1
    assert _sample(text, "upsync_sync_drift_total", **labels) == 0
    assert _sample(text, "upsync_sync_errors_total", **labels) == 0
    assert _sample(text, "upsync_sync_webhooks_total", **labels, outcome="refused") == 1
    assert _sample(text, "upsync_sync_webhooks_total", **labels, outcome="accepted") == 0


async def _with_webhooks(up: Up) -> tuple[dict[str, Any], str]:
    """A sync whose stand-in webhook endpoint is registered and whose secret is stored.

    The documented order: create the sync disabled (its id makes the URL), register the URL at
    Stripe, store the signing secret as a credential, reference it and activate the sync.
    """
    sync = await up.create_sync(status="disabled")
    endpoint = await up.stripe.post(
        "/v1/webhook_endpoints",
        data={
            "url": f"{up.url}/v1/syncs/{sync['id']}/webhook",
            "enabled_events[]": ["customer.updated", "customer.deleted"],
        },
    )
    assert endpoint.status_code == 200, endpoint.text
    secret = endpoint.json()["secret"]
    props = {"kind": "stripe_webhook_secret", "secret": secret}
    cred = (await up.api.post("/v1/credentials", json={"properties": props})).json()
    assert cred["provider"] == "stripe" and cred["properties"]["secret"] == "****"
    response = await up.api.patch(
        f"/v1/syncs/{sync['id']}",
        json={"status": "active", "metadata": {"webhook_credential_id": cred["id"]}},
    )
    assert response.status_code == 200, response.text
    assert secret not in response.text
    await eventually(up.table_matches_standin)
    return sync, secret


async def test_a_signed_webhook_makes_a_change_visible_before_the_next_poll(
    pg_dsn: str, schema: str, standin: RunningStandin
) -> None:
    # polls are a minute apart: within this test only the webhook can explain a change
    async with running_engine(pg_dsn, schema, standin, poll_interval=60) as up:
        sync, _ = await _with_webhooks(up)
        health = up.engine.syncs.health(sync["id"]) if up.engine.syncs else None
        assert health is not None
        await eventually(lambda: _true(health.last_poll_at is not None))
        polled_at, processed = health.last_poll_at, health.events_processed

        target = next(iter(up.standin.store.live("customer")))["id"]
        response = await up.stripe.post(
            f"/v1/customers/{target}", data={"email": "hooked@example.com"}
        )
        assert response.status_code == 200
        await eventually(lambda: _has_email(up, target, "hooked@example.com"), timeout=10)

        assert (health.last_poll_at, health.events_processed) == (polled_at, processed)
        deliveries = await asyncio.to_thread(up.standin.webhooks.wait_for, 1)
        assert [d.status for d in deliveries] == [200]
        shown = (await up.sync(sync["id"]))["health"]
        assert shown["webhooks"] == {"accepted": 1, "refused": 0}


async def test_an_invalid_webhook_gets_400_and_writes_nothing(
    pg_dsn: str, schema: str, standin: RunningStandin
) -> None:
    async with running_engine(pg_dsn, schema, standin, poll_interval=60) as up:
        sync, secret = await _with_webhooks(up)
        target = next(iter(up.standin.store.live("customer")))["id"]
        with up.standin.store.quiet():  # a real change upstream, but no event and no delivery
            up.standin.store.update("customer", target, {"email": "sneaky@example.com"})
        event = {
            "id": "evt_forged",
            "object": "event",
            "type": "customer.updated",
            "created": int(time.time()),
            "data": {"object": {"id": target, "object": "customer"}},
        }
        body = orjson.dumps(event)
        now = int(time.time())
        path = f"/v1/syncs/{sync['id']}/webhook"
        written = await up.versions_written()
        attempts = {
            "no signature": {},
            "wrong secret": {"Stripe-Signature": sign(body, "whsec_wrong", now)},
            "too old": {"Stripe-Signature": sign(body, secret, now - 3600)},
            "tampered": {"Stripe-Signature": sign(body + b" ", secret, now)},
        }
        for case, headers in attempts.items():
            response = await up.api.post(path, content=body, headers=headers)
            assert response.status_code == 400, (case, response.text)
            assert secret not in response.text
        assert await up.versions_written() == written
        assert (await up.table())[target][0] != "sneaky@example.com"
        shown = (await up.sync(sync["id"]))["health"]
        assert shown["webhooks"] == {"accepted": 0, "refused": len(attempts)}

        # the same delivery, correctly signed, is applied (and shows the guard was the signature)
        signed = {"Stripe-Signature": sign(body, secret, now)}
        response = await up.api.post(path, content=body, headers=signed)
        assert response.status_code == 200, response.text
        await eventually(lambda: _has_email(up, target, "sneaky@example.com"), timeout=10)


async def test_the_engine_stops_cleanly_and_the_api_alone_shows_stored_status(
    pg_dsn: str, schema: str, standin: RunningStandin
) -> None:
    async with running_engine(pg_dsn, schema, standin, poll_interval=0.2) as up:
        sync = await up.create_sync()
        await eventually(up.table_matches_standin)
        up.stop.set()
        await asyncio.wait_for(up.task, timeout=15)
        assert up.task.exception() is None
        assert up.engine.syncs is not None and up.engine.syncs.running == {}
        assert all(t.done() for t in up.engine.consumers.values())
        with pytest.raises(httpx.ConnectError):
            await up.api.get("/healthz")

    app = create_app(pg_dsn, schema=schema, pool_size=2)
    async with (
        app.router.lifespan_context(app),
        await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as db,
    ):
        token = await create_token(db, "alone", schema=schema)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://upsync.test",
            headers={"Authorization": f"Bearer {token}"},
        ) as api:
            health = (await api.get(f"/v1/syncs/{sync['id']}")).json()["health"]
    assert health["source"] == "database" and health["status"] == "healthy"
    assert health["backfill"]["collections"] == {
        "stripe:customer": {"objects": CUSTOMERS, "done": True}
    }
    assert health["backfill"]["completed_at"] is not None
    assert health["events"]["cursor_at"] is not None


async def _true(value: bool) -> bool:
    return value


async def _has_email(up: Up, upstream_id: str, email: str) -> bool:
    return (await up.table()).get(upstream_id, (None, False))[0] == email


async def test_a_failing_source_shows_error_health_and_recovers(up: Up) -> None:
    sync = await up.create_sync()
    await eventually(up.table_matches_standin)
    # every request now gets a 429 with Retry-After: 1; a 429 is always retried, so a poll gives
    # up only after its attempts are used (about 8 s), and then health must say so
    up.standin.faults.configure(rate_limit=0.001, retry_after=1)
    try:
        await eventually(lambda: _status_is(up, sync["id"], "error"), timeout=40.0)
        health = (await up.sync(sync["id"]))["health"]
        assert health["errors"] >= 1 and health["last_error_at"] is not None
        assert "429" in health["last_error"] or "rate" in health["last_error"].lower()
        assert up.standin.api_key not in str(health)
        labels = {"sync": "acme", "sync_id": sync["id"]}
        assert _sample(await up.metrics(), "upsync_sync_errors_total", **labels) >= 1
    finally:
        up.standin.faults.configure(rate_limit=None, retry_after=None)
    await eventually(lambda: _status_is(up, sync["id"], "healthy"), timeout=40.0)
    assert (await up.sync(sync["id"]))["health"]["last_error"] is None


async def _status_is(up: Up, sync_id: str, status: str) -> bool:
    return bool((await up.sync(sync_id))["health"]["status"] == status)


def _sync_row(**changes: Any) -> Sync:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": "5b4c1f0e-0000-4000-8000-000000000001",
        "stream_id": "5b4c1f0e-0000-4000-8000-000000000002",
        "provider": "stripe",
        "name": "acme",
        "collection_ids": ("stripe:customer",),
        "external_id": None,
        "metadata": {},
        "status": "active",
        "cursors": {},
        "initial_backfill_completed_at": now,
        "rate_limit": None,
        "credential_id": None,
        "max_age_days": None,
        "created_at": now,
        "updated_at": now,
        **changes,
    }
    return Sync(**fields)


def _backfilled(count: int) -> dict[str, CollectionProgress]:
    piece = Slice(gte=0, count=count, done=True)
    return {"stripe:customer": CollectionProgress("stripe:customer", {0: piece})}


def test_health_warns_when_polling_stopped_after_the_backfill() -> None:
    now = 1_800_000_000.0
    live = SyncHealth(backfill=_backfilled(3), last_poll_at=now - 3600)
    block = health_block(_sync_row(), live, poll_interval=0.5, now=now)
    assert block["status"] == "warn" and "3600 s ago" in block["notes"][0]
    live.last_poll_at = now - 1
    assert health_block(_sync_row(), live, poll_interval=0.5, now=now)["status"] == "healthy"


def test_health_counts_errors_and_redacts_them() -> None:
    live = SyncHealth(backfill=_backfilled(1))
    live.last_error = "UpstreamRejected: key sk_test_abc123 refused"
    live.last_error = None  # the next good poll clears the message, not the count
    live.last_error = "again with whsec_abc"
    block = health_block(_sync_row(), live, poll_interval=0.5)
    assert block["status"] == "error" and block["errors"] == 2
    assert "whsec_abc" not in str(block) and "****" in block["last_error"]


def test_health_while_backfilling_is_healthy_with_a_note() -> None:
    progress = {"stripe:customer": CollectionProgress("stripe:customer", {0: Slice(count=5)})}
    live = SyncHealth(backfill=progress)
    sync = _sync_row(initial_backfill_completed_at=None)
    block = health_block(sync, live, poll_interval=0.5)
    assert block["status"] == "healthy" and block["notes"] == ["backfilling 1 of 1 collection(s)"]
    assert block["backfill"]["collections"]["stripe:customer"] == {"objects": 5, "done": False}
