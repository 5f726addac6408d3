"""Management API: streams, credentials, syncs and HTTP consumers over HTTP."""

from __future__ import annotations

import json

import httpx
from psycopg import sql

from tests.api.conftest import AConn, Source, create_consumer, error_of

SECRET = "sk_test_51Hsecretvalue"


async def test_stream_create_list_get_by_id_or_name_and_delete(http: httpx.AsyncClient) -> None:
    created = (await http.post("/v1/streams", json={"name": "prod", "metadata": {"a": 1}})).json()
    assert created["name"] == "prod" and created["metadata"] == {"a": 1}
    assert (await http.get("/v1/streams")).json()["data"] == [created]
    assert (await http.get(f"/v1/streams/{created['id']}")).json() == created
    assert (await http.get("/v1/streams/prod")).json() == created
    deleted = await http.delete(f"/v1/streams/{created['id']}")
    assert deleted.json() == {"id": created["id"], "deleted": True}
    assert (await http.get("/v1/streams")).json()["data"] == []


async def test_credential_secret_is_stored_but_never_in_any_response(
    http: httpx.AsyncClient, db: AConn, schema: str
) -> None:
    body = {"properties": {"kind": "stripe_key", "secret_key": SECRET, "name": "live"}}
    created = await http.post("/v1/credentials", json=body)
    assert created.status_code == 200, created.text
    cred = created.json()
    assert cred["provider"] == "stripe"
    assert cred["properties"] == {
        "kind": "stripe_key",
        "name": "live",
        "secret": "****",
        "test": False,
    }
    listed = await http.get("/v1/credentials")
    got = await http.get(f"/v1/credentials/{cred['id']}")
    for response in (created, listed, got):
        assert SECRET not in response.text
    cur = await db.execute(
        sql.SQL("SELECT secret FROM {}").format(sql.Identifier(schema, "credentials"))
    )
    assert await cur.fetchall() == [(SECRET,)]  # stored, for the sync to use


async def test_sync_with_inline_credential_crud_and_filters(
    http: httpx.AsyncClient, source: Source
) -> None:
    body = {
        "provider": "stripe",
        "stream_id": source.stream.id,
        "name": "Choam Corp",
        "collection_ids": ["stripe:customer", "stripe:invoice"],
        "credential": {"properties": {"kind": "stripe_key", "secret": SECRET, "test": True}},
        "metadata": {"tier": "gold", "n": 42},
        "external_id": "org_42",
        "rate_limit": {"allowed_requests": 100, "interval": 60},
    }
    created = await http.post("/v1/syncs", json=body)
    assert created.status_code == 200, created.text
    assert SECRET not in created.text
    sync = created.json()
    assert sync["credential"]["properties"]["secret"] == "****"
    assert sync["rate_limit"]["max_concurrent_requests"] == 0

    async def names(**params: str) -> list[str]:
        response = await http.get("/v1/syncs", params=params)
        assert response.status_code == 200, response.text
        return [s["name"] for s in response.json()["data"]]

    assert await names() == ["acme", "Choam Corp"]
    assert await names(name="Choam Corp") == ["Choam Corp"]
    assert await names(provider="hubspot") == []
    assert await names(metadata=json.dumps({"tier": "gold"})) == ["Choam Corp"]
    patched = await http.patch(f"/v1/syncs/{sync['id']}", json={"status": "disabled"})
    assert patched.json()["status"] == "disabled" and patched.json()["name"] == "Choam Corp"
    put = await http.put(f"/v1/syncs/{sync['id']}", json={"metadata": {"tier": "silver"}})
    assert put.json()["metadata"] == {"tier": "silver"} and put.json()["status"] == "disabled"
    assert (await http.get(f"/v1/syncs/{sync['id']}")).json() == put.json()
    assert (await http.delete(f"/v1/syncs/{sync['id']}")).json()["deleted"] is True
    assert (await http.get(f"/v1/syncs/{sync['id']}")).status_code == 404


async def test_consumer_crud_defaults_metadata_filter_and_lookup_by_name(
    http: httpx.AsyncClient, source: Source
) -> None:
    consumer = await create_consumer(
        http, source.stream.id, "primary", metadata={"custom_property": 42}, ack_wait=5000
    )
    assert consumer["deliver_policy"] == "all" and consumer["ack_wait_ms"] == 5000
    # one set of defaults for every door: a poison record dead-letters after 10 attempts
    assert (consumer["max_deliver"], consumer["max_ack_pending"]) == (10, 1000)
    other = await create_consumer(http, source.stream.id, "secondary")
    assert other["ack_wait_ms"] == 30000
    everyone = (await http.get("/v1/http-consumers")).json()["data"]
    assert [c["name"] for c in everyone] == ["primary", "secondary"]
    query = {"metadata": json.dumps({"custom_property": 42})}
    assert (await http.get("/v1/http-consumers", params=query)).json()["data"] == [consumer]
    assert (await http.get("/v1/http-consumers/primary")).json() == consumer
    assert (await http.get(f"/v1/http-consumers/{consumer['id']}")).json() == consumer
    for method in ("PATCH", "PUT"):
        response = await http.request(
            method, "/v1/http-consumers/primary", json={"max_ack_pending": 10}
        )
        assert response.status_code == 200, response.text
        assert response.json()["max_ack_pending"] == 10 and response.json()["ack_wait_ms"] == 5000
    filtered = await http.patch(
        "/v1/http-consumers/primary", json={"filters": {"collection_id": "stripe:customer"}}
    )
    assert filtered.json()["filters"]["collection_id"] == "stripe:customer"
    assert (await http.delete("/v1/http-consumers/primary")).json()["deleted"] is True
    missing = await http.get("/v1/http-consumers/primary")
    assert missing.status_code == 404 and "primary" in error_of(missing)["message"]


async def test_consumer_deliver_policy_cannot_be_patched(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    response = await http.patch("/v1/http-consumers/workers", json={"deliver_policy": "new"})
    assert response.status_code == 422
    assert "deliver_policy" in error_of(response)["message"]


async def test_credential_in_use_cannot_be_deleted(http: httpx.AsyncClient, source: Source) -> None:
    cred = (
        await http.post(
            "/v1/credentials", json={"properties": {"kind": "stripe_key", "secret": SECRET}}
        )
    ).json()
    await http.post(
        "/v1/syncs",
        json={
            "provider": "stripe",
            "stream_id": source.stream.id,
            "name": "s",
            "collection_ids": ["stripe:customer"],
            "credential_id": cred["id"],
        },
    )
    response = await http.delete(f"/v1/credentials/{cred['id']}")
    assert response.status_code == 422 and "used by 1 sync" in error_of(response)["message"]
    assert (await http.get(f"/v1/credentials/{cred['id']}")).status_code == 200


async def test_a_rejected_credential_body_does_not_echo_the_secret(
    http: httpx.AsyncClient,
) -> None:
    for properties in (
        {"kind": "stripe_key", "secret": SECRET, "test": "maybe"},
        {"kind": "stripe_key", "secrte": SECRET},
        {"secret": SECRET},
    ):
        response = await http.post("/v1/credentials", json={"properties": properties})
        assert response.status_code == 422, response.text
        assert SECRET not in response.text
    response = await http.post(
        "/v1/credentials", json={"properties": {"kind": "stripe_key", "secrte": SECRET}}
    )
    fields = {f["field"] for f in error_of(response)["fields"]}
    assert fields == {"properties.secret", "properties.secrte"}


async def test_a_failed_sync_creation_leaves_no_orphan_credential(
    http: httpx.AsyncClient, source: Source
) -> None:
    response = await http.post(
        "/v1/syncs",
        json={
            "provider": "stripe",
            "stream_id": source.stream.id,
            "name": "bad",
            "collection_ids": ["stripe:customer", "stripe:users"],  # unknown: refused
            "credential": {"properties": {"kind": "stripe_key", "secret": SECRET}},
        },
    )
    message = error_of(response)["message"]
    assert response.status_code == 422 and "collection_ids" in message and "stripe:users" in message
    assert (await http.get("/v1/credentials")).json()["data"] == []
