"""A first end-to-end pass: create a consumer, write, next, ack."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Source


@pytest.mark.smoke
async def test_consumer_created_over_http_delivers_written_records_and_acks_them(
    http: httpx.AsyncClient, source: Source
) -> None:
    created = await http.post(
        "/v1/http-consumers", json={"stream_id": source.stream.id, "name": "workers"}
    )
    assert created.status_code == 200, created.text
    await source.put("stripe:customer", {"id": "cus_1", "email": "a@example.com"})
    got = await http.post("/v1/http-consumers/workers/next", json={"batch_size": 10})
    assert got.status_code == 200, got.text
    body = got.json()
    assert [m["record"]["upstream_id"] for m in body["data"]] == ["cus_1"]
    assert body["info"]["num_ack_pending"] == 1
    tokens = [m["ack_token"] for m in body["data"]]
    acked = await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": tokens})
    assert acked.status_code == 204, acked.text
    info = (await http.get("/v1/http-consumers/workers/info")).json()["info"]
    assert info["num_pending"] == 0 and info["num_ack_pending"] == 0
