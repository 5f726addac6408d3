"""Bearer-token auth: hashed storage, refusal of missing / wrong / revoked tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from psycopg import sql

from tests.api.conftest import AConn, error_of
from upsync.api import create_app, create_token, list_tokens, revoke_token
from upsync.errors import ConfigurationError, NotFound
from upsync.ops.tokens import TOKEN_PREFIX, hash_token


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://upsync.test") as client:
        yield client


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (None, "missing bearer token"),
        ("Bearer upsync_tok_wrong", "not recognised"),
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Bearer ", "malformed"),
    ],
    ids=["no-header", "wrong-token", "not-bearer", "empty-token"],
)
async def test_requests_without_a_valid_token_get_401(
    anonymous: httpx.AsyncClient, header: str | None, needle: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    for path in ("/v1/streams", "/v1/http-consumers/x/next", "/v1/records"):
        response = await anonymous.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        error = error_of(response)
        assert error["type"] == "unauthorized" and needle in error["message"]
        assert "upsync_tok_wrong" not in response.text


async def test_revoked_token_is_refused_and_a_new_one_with_that_name_works(
    anonymous: httpx.AsyncClient, db: AConn, schema: str
) -> None:
    token = await create_token(db, "ci", schema=schema)
    auth = {"Authorization": f"Bearer {token}"}
    assert (await anonymous.get("/v1/streams", headers=auth)).status_code == 200
    await revoke_token(db, "ci", schema=schema)
    assert (await anonymous.get("/v1/streams", headers=auth)).status_code == 401
    fresh = await create_token(db, "ci", schema=schema)
    ok = await anonymous.get("/v1/streams", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200
    listed = await list_tokens(db, schema=schema)
    assert [(t.name, t.revoked_at is not None) for t in listed] == [("ci", True), ("ci", False)]


async def test_tokens_are_random_and_stored_only_as_hashes(db: AConn, schema: str) -> None:
    tokens = [await create_token(db, f"t{i}", schema=schema) for i in range(3)]
    assert len(set(tokens)) == 3 and all(t.startswith(TOKEN_PREFIX) for t in tokens)
    assert all(len(t) >= len(TOKEN_PREFIX) + 40 for t in tokens)
    cur = await db.execute(
        sql.SQL("SELECT token_hash FROM {} ORDER BY name").format(
            sql.Identifier(schema, "api_tokens")
        )
    )
    assert [bytes(h) for (h,) in await cur.fetchall()] == [hash_token(t) for t in tokens]
    cur = await db.execute(
        sql.SQL("SELECT count(*) FROM {} t WHERE t::text LIKE %s").format(
            sql.Identifier(schema, "api_tokens")
        ),
        [f"%{tokens[0][len(TOKEN_PREFIX) :]}%"],
    )
    assert await cur.fetchone() == (0,)


async def test_token_names_are_unique_among_active_tokens(db: AConn, schema: str) -> None:
    await create_token(db, "deploy", schema=schema)
    with pytest.raises(ConfigurationError, match="already exists"):
        await create_token(db, "deploy", schema=schema)
    with pytest.raises(NotFound, match="no active token"):
        await revoke_token(db, "nobody", schema=schema)


async def test_healthz_and_metrics_need_no_token(anonymous: httpx.AsyncClient) -> None:
    health = await anonymous.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
    assert (await anonymous.get("/metrics")).status_code == 200


async def test_metrics_can_require_the_token(pg_dsn: str, schema: str, token: str) -> None:
    app = create_app(pg_dsn, schema=schema, metrics_auth=True, pool_size=2)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/metrics")).status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/metrics", headers=auth)).status_code == 200


async def test_openapi_lists_the_sequin_paths_and_the_bearer_scheme(
    anonymous: httpx.AsyncClient,
) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    for path in (
        "/v1/streams",
        "/v1/credentials",
        "/v1/syncs/{id_or_name}",
        "/v1/http-consumers",
        "/v1/http-consumers/{id_or_name}/next",
        "/v1/http-consumers/{id_or_name}/ack",
        "/v1/http-consumers/{id_or_name}/nack",
        "/v1/records",
        "/v1/events",
        "/healthz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert set(spec["paths"]["/v1/syncs/{id_or_name}"]) >= {"get", "put", "patch", "delete"}
