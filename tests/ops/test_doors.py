"""Each operation has one outcome, whichever door it came through (HTTP API or CLI).

The regressions of issue #16 items 2, 7 and 9 are pinned here: each failed on the code before
the operations layer (the API accepted unknown collections and providers, kept the credentials
of a deleted sync, needed a stream's uuid, took ``batch_size: true`` as 1 …).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.api.conftest import error_of
from tests.cli.conftest import Run, one_error_line
from upsync.api import create_app

AConn = psycopg.AsyncConnection[Any]
KEY = "sk_test_51Hdoorsdoorsdoors"


def _sync_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "provider": "stripe",
        "stream_id": "default",
        "name": "api-sync",
        "collection_ids": ["stripe:customer"],
        "credential": {"properties": {"kind": "stripe_key", "secret": KEY}},
    }
    return {**body, **overrides}


def _comparable(sync: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between two syncs made the same way through two doors."""
    keep = ("provider", "collection_ids", "status", "state", "backfill", "events_through")
    cred = sync["credential"]
    return {
        **{k: sync[k] for k in keep},
        "credential": {
            "provider": cred["provider"],
            **{k: cred["properties"][k] for k in ("kind", "secret", "test")},
            "owned": cred["metadata"].get("owned_by_sync"),
        },
    }


async def test_a_sync_made_and_deleted_through_either_door_leaves_the_same_state(
    http: httpx.AsyncClient, upsync: Run, ready: dict[str, str]
) -> None:
    made = await http.post("/v1/syncs", json=_sync_body())
    assert made.status_code == 200, made.text
    by_api = made.json()
    cli = upsync(
        "syncs", "create", "stripe", "--api-key-env", "K", "--collections", "customer",
        "--name", "cli-sync", "--json", env={**ready, "K": KEY},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    by_cli = (await http.get("/v1/syncs/cli-sync")).json()  # by name, like the CLI
    assert _comparable(by_api) == _comparable(by_cli)
    assert by_api["state"]["state"] == "not started" and "****" in json.dumps(by_api)
    shown = upsync("syncs", "show", "api-sync", "--json", env=ready)  # by name too
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == by_api["id"]

    assert (await http.delete("/v1/syncs/api-sync")).status_code == 200
    gone = upsync("syncs", "delete", "cli-sync", "--yes", env=ready)
    assert gone.returncode == 0, gone.stderr
    # both doors removed the credential created with the sync (the API used to keep it)
    assert (await http.get("/v1/credentials")).json()["data"] == []


async def test_a_credential_created_on_its_own_outlives_the_sync(
    http: httpx.AsyncClient, ready: dict[str, str]
) -> None:
    cred = await http.post(
        "/v1/credentials", json={"properties": {"kind": "stripe_key", "secret": KEY}}
    )
    assert cred.status_code == 200, cred.text
    body = _sync_body(credential=None, credential_id=cred.json()["id"])
    del body["credential"]
    sync = (await http.post("/v1/syncs", json=body)).json()
    assert (await http.delete(f"/v1/syncs/{sync['id']}")).status_code == 200
    assert [c["id"] for c in (await http.get("/v1/credentials")).json()["data"]] == [
        cred.json()["id"]
    ]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"collection_ids": ["stripe:users"]}, "unknown Stripe collection 'stripe:users'"),
        ({"collection_ids": ["stripe:subscriptions"]}, "did you mean stripe:subscription"),
        ({"provider": "hubspot"}, "provider: 'hubspot' is not supported"),
        (
            {"credential": {"properties": {"kind": "stripe_key", "secret": "pk_test_abc123"}}},
            "publishable key",
        ),
        (
            {"credential": {"properties": {"kind": "stripe_key", "secret": "hello world"}}},
            "does not look like a Stripe key",
        ),
        (
            {"credential": {"properties": {"kind": "stripe_key", "secret": "sk_live_…"}}},
            "looks truncated",
        ),
        ({"name": "n" * 300}, "name"),
    ],
)
async def test_a_bad_sync_is_refused_at_creation_naming_the_bad_value(
    http: httpx.AsyncClient, ready: dict[str, str], overrides: dict[str, Any], needle: str
) -> None:
    response = await http.post("/v1/syncs", json=_sync_body(**overrides))
    assert response.status_code == 422, response.text
    message = error_of(response)["message"]
    assert needle in message
    assert "hello world" not in message and "pk_test_abc123" not in message
    assert (await http.get("/v1/syncs")).json()["data"] == []
    assert (await http.get("/v1/credentials")).json()["data"] == []


def test_the_cli_refuses_the_same_keys_without_echoing_them(
    upsync: Run, ready: dict[str, str]
) -> None:
    for key, needle in (("pk_test_abc123", "publishable key"), ("sk_live_…", "looks truncated")):
        result = upsync(
            "syncs", "create", "stripe", "--api-key-env", "K", "--collections", "customer",
            env={**ready, "K": key},
        )  # fmt: skip
        line = one_error_line(result)
        assert needle in line and key not in line


async def test_consumers_get_one_set_of_defaults_and_take_the_stream_by_name(
    http: httpx.AsyncClient, upsync: Run, ready: dict[str, str]
) -> None:
    made = await http.post("/v1/http-consumers", json={"stream_id": "default", "name": "api"})
    assert made.status_code == 200, made.text
    cli = upsync("consumers", "create", "cli", "--json", env=ready)
    assert cli.returncode == 0, cli.stderr
    settings = ("deliver_policy", "ack_wait_ms", "max_deliver", "max_ack_pending", "filters")
    by_cli = json.loads(cli.stdout)
    assert {k: made.json()[k] for k in settings} == {k: by_cli[k] for k in settings}
    assert made.json()["max_deliver"] == 10


async def test_a_filter_with_a_typo_is_refused(
    http: httpx.AsyncClient, upsync: Run, ready: dict[str, str]
) -> None:
    body = {
        "stream_id": "default",
        "name": "c",
        "filters": {"collection_id": "stripe:subscriptions"},
    }
    response = await http.post("/v1/http-consumers", json=body)
    assert response.status_code == 422
    assert "did you mean stripe:subscription" in error_of(response)["message"]
    body["filters"] = {"sync_id": "00000000-0000-0000-0000-000000000000"}
    response = await http.post("/v1/http-consumers", json=body)
    assert response.status_code == 422 and "no sync" in error_of(response)["message"]
    cli = upsync("consumers", "create", "c", "--collection", "stripe:subscriptions", env=ready)
    assert "did you mean stripe:subscription" in one_error_line(cli)


async def test_exist_ok_returns_the_same_consumer_or_names_what_differs(
    http: httpx.AsyncClient, upsync: Run, ready: dict[str, str]
) -> None:
    body = {"stream_id": "default", "name": "w", "max_deliver": 5, "exist_ok": True}
    first = (await http.post("/v1/http-consumers", json=body)).json()
    again = await http.post("/v1/http-consumers", json=body)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    other = await http.post("/v1/http-consumers", json={**body, "max_deliver": 6})
    assert other.status_code == 409 and "max_deliver" in error_of(other)["message"]
    cli = upsync("consumers", "create", "w", "--max-deliver", "5", "--exist-ok", env=ready)
    assert cli.returncode == 0 and "Found existing" in cli.stdout, cli.stderr


async def test_webhook_consumers_from_either_door_show_their_delivery_state(
    http: httpx.AsyncClient, upsync: Run, ready: dict[str, str]
) -> None:
    body = {"stream_id": "default", "name": "hook", "url": "http://127.0.0.1:9/hook"}
    made = await http.post("/v1/webhook-consumers", json=body)
    assert made.status_code == 200, made.text
    assert made.json()["secret"].startswith("upsync_whk_")
    listed = (await http.get("/v1/consumers", params={"kind": "webhook"})).json()["data"]
    assert [c["name"] for c in listed] == ["hook"] and "secret" not in listed[0]
    assert listed[0]["webhook"]["consumer_id"] == made.json()["id"]
    cli = upsync(
        "consumers", "create", "hook2", "--kind", "webhook", "--url", "http://127.0.0.1:9/h",
        env=ready,
    )  # fmt: skip
    assert cli.returncode == 0 and "Signing secret" in cli.stdout, cli.stderr
    shown = upsync("consumers", "list", env=ready)
    assert "hook2" in shown.stdout and "webhook" in shown.stdout


async def test_requests_and_values_over_their_limits_are_refused(
    http: httpx.AsyncClient, ready: dict[str, str], pg_dsn: str, schema: str, token: str
) -> None:
    big = {"name": "s", "metadata": {"blob": "x" * 70_000}}
    response = await http.post("/v1/streams", json=big)
    assert response.status_code == 422 and "over the limit" in error_of(response)["message"]
    assert [s["name"] for s in (await http.get("/v1/streams")).json()["data"]] == ["default"]

    small: FastAPI = create_app(pg_dsn, schema=schema, pool_size=2, max_request_bytes=1000)
    async with small.router.lifespan_context(small):
        transport = httpx.ASGITransport(app=small)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as client:
            response = await client.post(
                "/v1/streams", json={"name": "s", "metadata": {"b": "x" * 2000}}
            )
    assert (
        response.status_code == 413 and "UPSYNC_MAX_REQUEST_BYTES" in error_of(response)["message"]
    )


async def test_malformed_bodies_get_messages_that_name_the_body_and_the_type(
    http: httpx.AsyncClient, ready: dict[str, str]
) -> None:
    await http.post("/v1/http-consumers", json={"stream_id": "default", "name": "n"})
    response = await http.post("/v1/http-consumers/n/next", json={"batch_size": True})
    assert response.status_code == 422 and "batch_size" in error_of(response)["message"]
    broken = await http.post(
        "/v1/http-consumers/n/next",
        content=b'{"batch_size": 1',
        headers={"content-type": "application/json"},
    )
    fields = error_of(broken)["fields"]
    assert broken.status_code == 422 and fields[0]["field"] == "body"
    assert "at character" in fields[0]["message"]


def test_a_long_consumer_name_gets_the_same_answer_from_the_cli(
    upsync: Run, ready: dict[str, str]
) -> None:
    line = one_error_line(upsync("consumers", "create", "n" * 300, env=ready))
    assert "300 characters is over the limit of 200" in line
