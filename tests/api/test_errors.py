"""Every error is ``{"error": {"type", "message"}}`` with a message that says what was wrong."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import Source, create_consumer, error_of


async def test_unknown_consumer_is_a_404_naming_it(http: httpx.AsyncClient) -> None:
    for method, path in (
        ("POST", "/v1/http-consumers/ghost/next"),
        ("GET", "/v1/http-consumers/ghost"),
        ("POST", "/v1/http-consumers/ghost/rewind"),
    ):
        response = await http.request(method, path)
        assert response.status_code == 404, response.text
        error = error_of(response)
        assert error["type"] == "not_found" and "'ghost'" in error["message"]


async def test_unknown_route_and_wrong_method_get_the_same_json_shape(
    http: httpx.AsyncClient,
) -> None:
    missing = await http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert error_of(missing)["message"] == "no route GET /v1/nothing-here"
    wrong = await http.delete("/v1/records")
    assert wrong.status_code == 405 and error_of(wrong)["type"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"batch_size": "ten"}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"wait_for": -5}, "wait_for"),
        ({"batch_sise": 10}, "batch_sise"),
    ],
    ids=["not-an-int", "zero", "negative-wait", "typo"],
)
async def test_invalid_next_body_is_a_422_naming_the_field(
    http: httpx.AsyncClient, source: Source, body: dict[str, object], field: str
) -> None:
    await create_consumer(http, source.stream.id)
    response = await http.post("/v1/http-consumers/workers/next", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "invalid_request" and field in error["message"]
    assert [f["field"] for f in error["fields"]] == [field]
    assert "Traceback" not in response.text


async def test_missing_required_field_and_bad_json_are_422s(
    http: httpx.AsyncClient, source: Source
) -> None:
    missing = await http.post("/v1/http-consumers", json={"name": "x"})
    assert missing.status_code == 422
    assert "stream_id: Field required" in error_of(missing)["message"]
    garbled = await http.post(
        "/v1/streams", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbled.status_code == 422 and "invalid JSON" in error_of(garbled)["message"]


async def test_invalid_settings_from_the_library_are_422s_naming_the_setting(
    http: httpx.AsyncClient, source: Source
) -> None:
    for settings, needle in (
        ({"deliver_policy": "sometimes"}, "deliver_policy"),
        ({"max_deliver": 0}, "max_deliver"),
        ({"filters": {"colour": "red"}}, "filters"),
    ):
        response = await http.post(
            "/v1/http-consumers", json={"stream_id": source.stream.id, "name": "c", **settings}
        )
        assert response.status_code == 422, response.text
        assert needle in error_of(response)["message"]


async def test_duplicate_names_are_refused_clearly(http: httpx.AsyncClient, source: Source) -> None:
    await create_consumer(http, source.stream.id)
    again = await http.post(
        "/v1/http-consumers", json={"stream_id": source.stream.id, "name": "workers"}
    )
    assert again.status_code == 409 and "already exists" in error_of(again)["message"]


async def test_wait_for_above_the_server_limit_is_refused(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    response = await http.post("/v1/http-consumers/workers/next", json={"wait_for": 3_600_000})
    assert response.status_code == 422 and "wait_for" in error_of(response)["message"]


async def test_healthz_reports_503_when_the_database_is_gone(app: FastAPI) -> None:
    await app.state.upsync.pool.close()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/healthz")
    assert response.status_code == 503 and error_of(response)["type"] == "unavailable"
