"""Security suite (T8): webhook signatures, identifier fuzzing, API auth, and a secret scan.

- **Webhooks**: the signature matrix (valid, wrong secret, tampered body, re-serialised JSON,
  stale and future timestamps, missing or malformed header, ``v0`` only, two ``v1`` during a
  rotation, a replayed event) through the Stripe source's ``handle_webhook`` and through the real
  engine's HTTP intake; every refused delivery writes nothing (the stream's records and events are
  compared before and after). The forged events are ``customer.deleted``: accepted, they would
  write a tombstone at once, so a miss would show.
- **Identifiers**: quotes, ``;``, unicode, ``%``, NUL and names over 63 bytes as table, column,
  schema, collection and consumer names: each is either refused with a clear upsync error or used
  exactly as given, quoted; never an SQL error caused by the text, never a table created under
  another name, and the decoy table ``victims`` survives.
- **API auth**: no token, malformed header, wrong token, revoked token, and a token of another
  app instance (another schema, "tenant") on the same database cannot see the first's consumers.
- **Secret scan**: every captured log line (DEBUG), API response body and header, and error
  message of the suite is searched for every secret it created (``sk_test_…``, ``rk_live_…``,
  ``whsec_…``, bearer tokens, a database password) and for their patterns.

The figures line: ``security_cases=… secrets_leaked=0 injections=0``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.world import pooled_world, stream_world
from upsync.api import create_app, create_token
from upsync.engine.server import Engine, EngineConfig
from upsync.errors import UpsyncError, WebhookSignatureError
from upsync.ops.tokens import revoke_token
from upsync.records import Record
from upsync.sinks import Route, TableSink
from upsync.sinks.ddl import ensure_table_async
from upsync.sources.port import PostgresPort
from upsync.sources.stripe.client import StripeHTTP
from upsync.sources.stripe.ratelimit import RateLimiter
from upsync.sources.stripe.signature import sign
from upsync.sources.stripe.source import StripeSource
from upsync.stream import (
    claim,
    create_credential,
    create_stream,
    migrate,
    write,
)
from upsync.stream.models import Sync, UpstreamObject
from upsync.testing.stripe.server import RunningStandin, run_standin

AConn = psycopg.AsyncConnection[Any]

WHSEC_OLD = "whsec_oldSigningSecret0123456789abcdef"
WHSEC_NEW = "whsec_newSigningSecret9876543210fedcba"
DB_PASSWORD = "pw_Sup3rS3cretDbPassw0rd"
SECRET_PATTERNS = re.compile(
    r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{6,}|\bwhsec_[A-Za-z0-9]{6,}|upsync_tok_[A-Za-z0-9_-]{6,}"
)


@dataclass
class Audit:
    """Everything the suite produced, the secrets it made, and the figures."""

    secrets: set[str] = field(default_factory=lambda: {WHSEC_OLD, WHSEC_NEW, DB_PASSWORD})
    transcript: list[str] = field(default_factory=list)
    cases: int = 0
    leaked: list[str] = field(default_factory=list)
    injections: list[str] = field(default_factory=list)

    def secret(self, value: str) -> str:
        self.secrets.add(value)
        return value

    def scan(self, texts: list[str]) -> list[str]:
        hits = []
        for text in texts:
            hits += [s for s in self.secrets if s in text]
            hits += SECRET_PATTERNS.findall(text)
        return hits


AUDIT = Audit()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    leaked = len(AUDIT.scan(AUDIT.transcript))
    print(
        f"\nsecurity_cases={AUDIT.cases} secrets_leaked={leaked} "
        f"injections={len(AUDIT.injections)} scanned_texts={len(AUDIT.transcript)}"
    )


@pytest.fixture(autouse=True)
def scanned(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every log line at DEBUG; after the test, none may hold a secret."""
    caplog.set_level(logging.DEBUG)
    yield
    lines = [r.getMessage() for r in caplog.records] + [caplog.text]
    AUDIT.transcript += lines
    hits = AUDIT.scan(lines)
    AUDIT.leaked += hits
    assert not hits, f"secrets in the logs: {hits}"


async def _record_response(response: httpx.Response) -> None:
    await response.aread()
    AUDIT.transcript.append(f"{response.status_code} {dict(response.headers)} {response.text}")


def api_client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://upsync.test",
        headers=headers,
        event_hooks={"response": [_record_response]},
    )


# webhooks


@dataclass
class Hooked:
    """A stand-in Stripe with customers, a backfilled sync and its source."""

    standin: RunningStandin
    pool: AsyncConnectionPool[Any]
    schema: str
    sync: Sync
    source: StripeSource
    customers: list[str]

    async def state(self) -> tuple[dict[str, tuple[int, bool]], int]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT upstream_id, updated_idx, deleted FROM {} WHERE sync_id = %s"
                ).format(sql.Identifier(self.schema, "records")),
                [self.sync.id],
            )
            records = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, "events"))
            )
            row = await cur.fetchone()
        assert row is not None
        return records, int(row[0])


def deleted_event(customer: str, event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:12]}",
        "object": "event",
        "type": "customer.deleted",
        "created": int(time.time()),
        "data": {"object": {"id": customer, "object": "customer", "deleted": True}},
    }
    return orjson.dumps(event)


def make_customers(standin: RunningStandin, n: int) -> list[str]:
    headers = {"Authorization": f"Bearer {standin.api_key}"}
    with httpx.Client(base_url=standin.url, headers=headers) as up:
        out = []
        for i in range(n):
            response = up.post("/v1/customers", data={"email": f"c{i}@example.com"})
            assert response.status_code == 200, response.text
            out.append(str(response.json()["id"]))
    return out


@pytest.fixture
def standin() -> Iterator[RunningStandin]:
    with run_standin(rate_limit=None) as s:
        AUDIT.secret(s.api_key)
        yield s


@pytest.fixture
async def hooked(schema_dsn: str, schema: str, standin: RunningStandin) -> AsyncIterator[Hooked]:
    customers = make_customers(standin, 3)
    key = standin.api_key
    async with pooled_world(
        schema_dsn, schema, stream="s", collection_ids=["stripe:customer"], api_key=key
    ) as (pool, world):
        sync = world.sync
        http = StripeHTTP(standin.api_key, base_url=standin.url, limiter=RateLimiter(500))
        source = StripeSource(
            http,
            PostgresPort(pool, sync, schema=schema),
            ["stripe:customer"],
            webhook_secrets=[WHSEC_NEW],
        )
        await source.start()
        await source.backfill()
        yield Hooked(standin, pool, schema, sync, source, customers)
        await http.aclose()


def _reserialised(body: bytes) -> bytes:
    return json.dumps(json.loads(body), indent=2).encode()


def invalid_deliveries(victim: str, now: int) -> dict[str, tuple[bytes, str | None]]:
    """Deliveries that must all be refused: name → (body, Stripe-Signature header)."""
    body = deleted_event(victim)
    good_sig = sign(body, WHSEC_NEW, now).split("v1=")[1]
    tampered = body.replace(b'"deleted":true', b'"deleted":false ')
    return {
        "wrong_secret": (body, sign(body, "whsec_notTheRightSecret000", now)),
        "tampered_body": (tampered, sign(body, WHSEC_NEW, now)),
        "reserialised_json": (_reserialised(body), sign(body, WHSEC_NEW, now)),
        "stale_timestamp": (body, sign(body, WHSEC_NEW, now - 301)),
        "future_timestamp": (
            body,
            sign(body, WHSEC_NEW, now + 330),
        ),  # margin: the engine reads its own clock later
        "missing_header": (body, None),
        "empty_header": (body, ""),
        "no_timestamp": (body, f"v1={good_sig}"),
        "bad_timestamp": (body, f"t=abc,v1={good_sig}"),
        "v0_only": (body, f"t={now},v0={good_sig}"),
        "signature_of_other_time": (body, f"t={now - 1},v1={good_sig}"),
        "old_secret_only": (body, sign(body, WHSEC_OLD, now)),
        "empty_v1": (body, f"t={now},v1="),
        "garbage": (body, "\x00;DROP TABLE records;--"),
    }


async def test_webhook_signature_matrix_refuses_every_invalid_delivery(hooked: Hooked) -> None:
    """Nothing of a refused webhook reaches the stream; each refusal says why, without secrets."""
    victim = hooked.customers[0]
    before = await hooked.state()
    now = int(time.time())
    for name, (body, header) in invalid_deliveries(victim, now).items():
        with pytest.raises(WebhookSignatureError) as caught:
            await hooked.source.handle_webhook(body, header, now=now)
        AUDIT.transcript.append(str(caught.value))
        assert await hooked.state() == before, f"{name}: the stream changed"
        AUDIT.cases += 1
    assert not before[0][victim][1]


async def test_valid_rotated_and_replayed_webhooks(hooked: Hooked) -> None:
    """A valid delivery applies at once; two v1 (rotation) pass; a replay changes nothing."""
    first, second, third = hooked.customers
    now = int(time.time())
    body = deleted_event(first)
    assert await hooked.source.handle_webhook(body, sign(body, WHSEC_NEW, now), now=now)
    records, events = await hooked.state()
    assert records[first][1] is True
    AUDIT.cases += 1

    # a replay (same bytes, same signature, within the tolerance) is absorbed
    assert not await hooked.source.handle_webhook(body, sign(body, WHSEC_NEW, now), now=now)
    assert await hooked.state() == (records, events)
    AUDIT.cases += 1

    # Stripe rolling the endpoint's secret sends two v1: one per active secret
    body = deleted_event(second)
    old, new = sign(body, WHSEC_OLD, now), sign(body, WHSEC_NEW, now).split(",")[1]
    assert await hooked.source.handle_webhook(body, f"{old},{new}", now=now)
    AUDIT.cases += 1

    # rotation on our side: either configured secret verifies
    hooked.source.webhook_secrets = [WHSEC_OLD, WHSEC_NEW]
    body = deleted_event(third)
    assert await hooked.source.handle_webhook(body, sign(body, WHSEC_OLD, now), now=now)
    AUDIT.cases += 1
    records, _ = await hooked.state()
    assert all(records[c][1] for c in hooked.customers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningEngine:
    engine: Engine
    url: str
    sync: Sync
    customers: list[str]
    schema_dsn: str
    schema: str

    async def ready(self, customers: list[str]) -> bool:
        syncs = self.engine.syncs
        if syncs is None or syncs.source(self.sync.id) is None:
            return False
        return all([await self.deleted(c) is not None for c in customers])

    async def deleted(self, customer: str) -> bool | None:
        async with await psycopg.AsyncConnection.connect(self.schema_dsn) as conn:
            cur = await conn.execute(
                sql.SQL("SELECT deleted FROM {} WHERE upstream_id = %s").format(
                    sql.Identifier(self.schema, "records")
                ),
                [customer],
            )
            row = await cur.fetchone()
        return None if row is None else bool(row[0])


@pytest.fixture
async def engine(
    schema_dsn: str, schema: str, standin: RunningStandin
) -> AsyncIterator[RunningEngine]:
    """The real engine (API, sync runner, webhook intake) on a loopback port, with one sync
    whose credential and metadata carry the webhook signing secret."""
    customers = make_customers(standin, 2)
    async with await psycopg.AsyncConnection.connect(schema_dsn, autocommit=True) as conn:
        await migrate(conn, schema=schema)
        # the endpoint's signing secrets while Stripe rolls them: the old one and the new one
        hooks = [
            await create_credential(
                conn, provider="stripe", kind="stripe_webhook_secret", secret=w, schema=schema
            )
            for w in (WHSEC_OLD, WHSEC_NEW)
        ]
        world = await stream_world(
            conn,
            schema,
            stream="s",
            collection_ids=["stripe:customer"],
            api_key=standin.api_key,
            metadata={"webhook_credential_id": [h.id for h in hooks]},
        )
        sync = world.sync
    port = _free_port()
    config = EngineConfig(
        schema_dsn, schema=schema, port=port, stripe_base_url=standin.url, refresh_every=0.2
    )
    eng = Engine(config)
    stop = asyncio.Event()
    running = asyncio.create_task(eng.run(stop))
    try:
        await asyncio.wait_for(eng.ready.wait(), timeout=20)
        started = RunningEngine(
            eng, f"http://127.0.0.1:{port}", sync, customers, schema_dsn, schema
        )
        deadline = time.monotonic() + 20
        # waiting on a condition, not on time: the source is up and every customer is in
        while not await started.ready(customers):
            assert time.monotonic() < deadline, "the engine's sync never backfilled"
            assert not running.done(), running
            await asyncio.sleep(0.05)
        yield started
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)


async def _post_webhook(engine: RunningEngine, sync_id: str, body: bytes, header: str | None
                        ) -> httpx.Response:  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    async with httpx.AsyncClient(event_hooks={"response": [_record_response]}) as client:
        return await client.post(
            f"{engine.url}/v1/syncs/{sync_id}/webhook", content=body, headers=headers
        )


async def test_engine_intake_refuses_invalid_webhooks(engine: RunningEngine) -> None:
    victim = engine.customers[0]
    now = int(time.time())
    for name, (body, header) in invalid_deliveries(victim, now).items():
        if header is not None and "\x00" in header:
            continue  # not a legal HTTP header value; the client refuses to send it
        if name == "old_secret_only":
            continue  # the engine's sync holds both secrets (a roll in progress)
        response = await _post_webhook(engine, engine.sync.id, body, header)
        assert response.status_code == 400, (name, response.text)
        assert "webhook refused" in response.json()["error"]["message"]
        AUDIT.cases += 1
    unknown = await _post_webhook(engine, str(uuid.uuid4()), b"{}", "t=1,v1=00")
    assert unknown.status_code == 404
    assert await engine.deleted(victim) is False


async def test_engine_intake_applies_valid_and_rotated_webhooks(engine: RunningEngine) -> None:
    """Signed with either secret of the sync's webhook credentials, a delivery applies at once.
    (Found by this suite: the engine used to configure no secret and refuse every webhook.)"""
    first, victim = engine.customers
    body = deleted_event(first)
    response = await _post_webhook(
        engine, engine.sync.id, body, sign(body, WHSEC_OLD, int(time.time()))
    )
    assert response.status_code == 200, response.text
    assert await engine.deleted(first) is True
    AUDIT.cases += 1
    body = deleted_event(victim)
    response = await _post_webhook(
        engine, engine.sync.id, body, sign(body, WHSEC_NEW, int(time.time()))
    )
    assert response.status_code == 200, response.text
    assert await engine.deleted(victim) is True
    AUDIT.cases += 1


# identifiers

#: Hostile names that quoting handles: each must be used exactly as given.
HOSTILE = {
    "double_quote": 'we"ird',
    "injection": "x'; DROP TABLE victims; --",
    "semicolon": "semi;colon",
    "unicode": "ünïcødé_表_🙂",
    "upper_and_space": "Mixed Case",
    "backslash": "back\\slash",
    "braces": "{}",
    "dollar": "$1",
    "exactly_63_bytes": "b" * 63,
}
#: Names Postgres cannot store as given (NUL cuts, over 63 bytes truncates) or a driver would
#: misread (``%``): each must be refused with a clear error before any SQL runs. Found by this
#: suite: they used to create tables under other names, or fail with SQL errors.
REFUSED = {
    "percent_s": "%s",
    "percent_named": "%(x)s",
    "nul": "nul\x00byte",
    "over_63_bytes": "a" * 64,
    "over_63_bytes_utf8": "é" * 32,
}


async def _relations(conn: AConn, near: str) -> set[tuple[str, str]]:
    """Tables in schemas named like ``near`` (equal, or either a prefix of the other: what a
    truncated or cut name would give). Other helpers share the database, so not all schemas."""
    cur = await conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'"
        " AND (n.nspname = %(n)s OR starts_with(%(n)s, n.nspname)"
        "      OR starts_with(n.nspname, left(%(n)s, 8)))",
        {"n": near},
    )
    return {(r[0], r[1]) for r in await cur.fetchall()}


async def _columns(conn: AConn, schema: str, table: str) -> set[str]:
    cur = await conn.execute(
        "SELECT attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        [schema, table],
    )
    return {r[0] for r in await cur.fetchall()}


@pytest.fixture
async def db(schema_dsn: str, schema: str) -> AsyncIterator[AConn]:
    async with await psycopg.AsyncConnection.connect(schema_dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (n int); INSERT INTO {} VALUES (1)").format(
                sql.Identifier(schema, "victims"), sql.Identifier(schema, "victims")
            )
        )
        yield conn
        cur = await conn.execute(
            sql.SQL("SELECT n FROM {}").format(sql.Identifier(schema, "victims"))
        )
        assert await cur.fetchall() == [(1,)], "the decoy table was touched"


async def _route_outcome(
    conn: AConn, schema: str, table: str, column: str, *, near: str | None = None
) -> str:
    """Create and fill a table named ``table`` with a column ``column``; "refused" (a clear
    upsync error) or "exact" (the table and column exist under exactly these names, with the
    row); anything else is recorded as an injection and fails. ``near``: where to look for
    tables that should not appear (default: ``schema``)."""
    found = AUDIT.injections
    near = schema if near is None else near
    before = await _relations(conn, near)
    record = Record(str(uuid.uuid4()), "cus_1", "stripe:customer", 7, {"email": "e@x.io"})
    try:
        route = Route("stripe:customer", table, schema=schema, columns={column: "data.email"})
        await ensure_table_async(conn, route)
        result = await TableSink([route]).apply_async(conn, [record])
    except UpsyncError as e:
        AUDIT.transcript.append(str(e))
        assert await _relations(conn, near) == before, "refused, but something was created"
        return "refused"
    except psycopg.Error as e:
        found.append(f"{table!r}/{column!r}: {e}")
        raise AssertionError(f"SQL error from the name {table!r}/{column!r}: {e}") from e
    created = await _relations(conn, near) - before
    problems = [str(e) for e in result.rejected]
    if created != {(schema, table)} or result.inserted != 1 or problems:
        found.append(f"{table!r}/{column!r}: created {created}, {problems}")
        raise AssertionError(f"name {table!r}/{column!r}: created {created}, rejected {problems}")
    assert column in await _columns(conn, schema, table)
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), sql.Identifier(schema, table))
    )
    assert await cur.fetchall() == [("e@x.io",)]
    return "exact"


@pytest.mark.parametrize("name", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_table_and_column_names_are_used_exactly(
    db: AConn, schema: str, name: str
) -> None:
    assert await _route_outcome(db, schema, name, name) == "exact"
    AUDIT.cases += 1


@pytest.mark.parametrize("name", list(REFUSED.values()), ids=list(REFUSED))
@pytest.mark.parametrize("where", ["table", "column", "schema"])
async def test_unstorable_names_are_refused_before_any_sql(
    db: AConn, schema: str, name: str, where: str
) -> None:
    table, column, target = {
        "table": (name, "email", schema),
        "column": ("t", name, schema),
        "schema": ("t", "email", name),
    }[where]
    assert await _route_outcome(db, target, table, column, near=schema) == "refused"
    AUDIT.cases += 1


@pytest.mark.parametrize("name", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_stream_schema_and_collection_names(
    db: AConn, pg_dsn: str, name: str
) -> None:
    """upsync's own schema, a collection id and a consumer filter carrying hostile text."""
    before = await _relations(db, name)
    collection = f"stripe:{name}"
    try:
        world = await stream_world(db, name, stream=name, name=name, collection_ids=[collection])
        consumer = await world.consumer(db, name, filters={"collection_id": collection})
        sync = world.sync
        await write(db, sync, collection, [UpstreamObject(name, {"id": name}, 1)], schema=name)
        got = await claim(db, consumer, 10, schema=name)
        assert [m.record.upstream_id for m in got.messages] == [name]
        assert got.messages[0].record.collection_id == collection
        created = await _relations(db, name) - before
        assert created and {s for s, _ in created} == {name}, created
    except psycopg.Error as e:
        AUDIT.injections.append(f"schema {name!r}: {e}")
        raise
    finally:
        await db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    AUDIT.cases += 1


@pytest.mark.parametrize("name", list(REFUSED.values()), ids=list(REFUSED))
async def test_unstorable_upsync_schema_names_are_refused(db: AConn, name: str) -> None:
    try:
        with pytest.raises(UpsyncError):
            await migrate(db, schema=name)
    finally:
        for n in {name, name.encode()[:63].decode(errors="ignore")}:
            if "\x00" not in n:
                await db.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(n))
                )


# the API: consumer names, auth, tenants


@dataclass
class Tenant:
    app: FastAPI
    schema: str
    token: str
    stream_id: str


@pytest.fixture
async def tenants(pg_dsn: str, schema: str) -> AsyncIterator[tuple[Tenant, Tenant]]:
    """Two app instances ("tenants") on the same database, each in its own schema; the DSN
    carries a password (ignored by trust auth) that must never show."""
    host = urllib.parse.urlsplit(pg_dsn)
    dsn = pg_dsn.replace(f"{host.username}@", f"{host.username}:{DB_PASSWORD}@", 1)
    other = f"{schema}_b"
    out: list[Tenant] = []
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(other)))
        try:
            apps = [create_app(dsn, schema=s, pool_size=2) for s in (schema, other)]
            async with (
                apps[0].router.lifespan_context(apps[0]),
                apps[1].router.lifespan_context(apps[1]),
            ):
                for app, s in zip(apps, (schema, other), strict=True):
                    token = AUDIT.secret(await create_token(conn, "ops", schema=s))
                    stream = await create_stream(conn, "main", schema=s)
                    out.append(Tenant(app, s, token, stream.id))
                yield out[0], out[1]
        finally:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(other)))


async def test_hostile_consumer_names_over_the_api(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    async with api_client(a.app, a.token) as http:
        for name in [*HOSTILE.values(), "%s", "x" * 300, "../../etc", "a/b"]:
            response = await http.post(
                "/v1/http-consumers", json={"stream_id": a.stream_id, "name": name}
            )
            assert response.status_code < 500, (name, response.text)
            AUDIT.cases += 1
            if response.status_code != 200:
                assert response.json()["error"]["message"], name
                continue
            assert response.json()["name"] == name
            got = await http.get(f"/v1/http-consumers/{urllib.parse.quote(name, safe='')}")
            if "/" not in name:
                assert got.status_code == 200 and got.json()["name"] == name, (name, got.text)


async def test_a_nul_in_a_consumer_name_is_a_clear_error(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    async with api_client(a.app, a.token) as http:
        response = await http.post(
            "/v1/http-consumers", json={"stream_id": a.stream_id, "name": "nul\x00byte"}
        )
    AUDIT.cases += 1
    if response.status_code >= 500:
        AUDIT.injections.append(f"consumer name with NUL: {response.text}")
    # found by this suite: it used to be a 500 "database error (DataError)"
    assert response.status_code == 422, response.text
    assert "name" in response.json()["error"]["message"]


async def test_api_auth_refuses_missing_wrong_revoked_and_foreign_tokens(
    tenants: tuple[Tenant, Tenant], pg_dsn: str
) -> None:
    a, b = tenants
    async with api_client(a.app, a.token) as http:
        created = await http.post("/v1/http-consumers", json={"stream_id": a.stream_id,
                                                               "name": "billing"})  # fmt: skip
        assert created.status_code == 200, created.text
        consumer_id = created.json()["id"]
    paths = [
        ("GET", "/v1/http-consumers"),
        ("GET", f"/v1/http-consumers/{consumer_id}"),
        ("GET", "/v1/http-consumers/billing"),
        ("POST", "/v1/http-consumers/billing/next"),
        ("POST", "/v1/http-consumers/billing/ack"),
        ("GET", "/v1/http-consumers/billing/dead-letters"),
        ("GET", "/v1/streams"),
        ("GET", "/v1/credentials"),
        ("GET", "/v1/syncs"),
        ("GET", "/v1/records"),
        ("GET", "/v1/events"),
    ]
    wrong = "upsync_tok_" + "A" * 43
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        revoked = AUDIT.secret(await create_token(conn, "leaver", schema=a.schema))
        await revoke_token(conn, "leaver", schema=a.schema)
    headers: dict[str, dict[str, str]] = {
        "none": {},
        "not_bearer": {"Authorization": f"Basic {a.token}"},
        "empty_bearer": {"Authorization": "Bearer "},
        "wrong": {"Authorization": f"Bearer {wrong}"},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "other_tenant": {"Authorization": f"Bearer {b.token}"},
    }
    async with api_client(a.app) as http:
        for case, h in headers.items():
            for method, path in paths:
                response = await http.request(method, path, headers=h, json={"ack_tokens": []})
                assert response.status_code == 401, (case, method, path, response.text)
                assert "billing" not in response.text
                AUDIT.cases += 1
    # the other tenant's own API cannot see the first tenant's consumer either
    async with api_client(b.app, b.token) as http:
        assert (await http.get(f"/v1/http-consumers/{consumer_id}")).status_code == 404
        assert (await http.get("/v1/http-consumers/billing")).status_code == 404
        listed = await http.get("/v1/http-consumers")
        assert listed.status_code == 200 and "billing" not in listed.text
        AUDIT.cases += 3


async def test_secrets_never_come_back_from_the_api(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    key = AUDIT.secret("rk_live_" + uuid.uuid4().hex)
    async with api_client(a.app, a.token) as http:
        created = await http.post(
            "/v1/credentials", json={"properties": {"kind": "stripe_key", "secret": key}}
        )
        assert created.status_code == 200, created.text
        assert created.json()["properties"]["secret"] == "****"
        for path in ("/v1/credentials", f"/v1/credentials/{created.json()['id']}", "/v1/syncs"):
            response = await http.get(path)
            assert response.status_code == 200 and key not in response.text
            AUDIT.cases += 1
        # an invalid request echoing the secret back would leak it
        bad = await http.post("/v1/credentials", json={"properties": {"secret": key}})
        assert bad.status_code == 422 and key not in bad.text
        AUDIT.cases += 1
    assert not AUDIT.scan(AUDIT.transcript)


async def test_a_database_password_never_shows_in_errors() -> None:
    """An unreachable database: the failure (and the pool's log lines) omit the password."""
    dsn = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{_free_port()}/test?connect_timeout=1"
    async with AsyncConnectionPool(dsn, min_size=1, open=False, timeout=1.5) as pool:
        app = create_app(pool, schema="upsync")
        with pytest.raises(Exception) as caught:  # whatever the pool raises
            async with app.router.lifespan_context(app):
                pass
    text = f"{caught.value!r} {caught.value}"
    AUDIT.transcript.append(text)
    AUDIT.cases += 1
    assert DB_PASSWORD not in text


def test_the_scan_finds_planted_secrets() -> None:
    """The scan is not vacuous: known secrets and secret-shaped strings are found."""
    planted = [
        "log: key=sk_test_abcDEF123456 sent",
        f"header {WHSEC_NEW}",
        "Bearer upsync_tok_x1y2z3w4",
    ]
    assert len(AUDIT.scan(planted)) >= 3
    assert AUDIT.scan(["nothing here: sk_test_… (a placeholder)", "whsec_"]) == []
