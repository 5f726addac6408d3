"""Stream APIs: ``GET /v1/records`` and ``GET /v1/events`` cursor pages."""

from __future__ import annotations

import random
from typing import Any

import httpx

from tests.api.conftest import Source, error_of


async def _pages(http: httpx.AsyncClient, path: str, key: str, **params: Any) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor = None
    while True:
        query = {**params, **({"after_cursor": cursor} if cursor else {})}
        response = await http.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {key, "cursor"}
        if not body[key]:
            return pages
        pages.append(body[key])
        cursor = body["cursor"]


async def test_records_pages_follow_the_cursor_in_updated_idx_order(
    http: httpx.AsyncClient, source: Source, rng: random.Random
) -> None:
    count, limit = rng.randint(5, 30), rng.randint(1, 7)
    await source.put("stripe:customer", *({"id": f"cus_{i}"} for i in range(count)))
    await source.put("stripe:subscription", {"id": "sub_1"})
    pages = await _pages(http, "/v1/records", "records", limit=limit)
    records = [r for page in pages for r in page]
    assert all(len(page) <= limit for page in pages)
    assert len(records) == count + 1
    idx = [r["updated_idx"] for r in records]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    only_subs = await _pages(http, "/v1/records", "records", collection_id="stripe:subscription")
    assert [r["upstream_id"] for page in only_subs for r in page] == ["sub_1"]
    assert await _pages(http, "/v1/records", "records", provider="hubspot") == []


async def test_events_pages_show_created_updated_and_changes(
    http: httpx.AsyncClient, source: Source
) -> None:
    await source.put("stripe:customer", {"id": "cus_1", "email": "old@x.io"})
    await source.put("stripe:customer", {"id": "cus_1", "email": "new@x.io"})
    pages = await _pages(http, "/v1/events", "events", limit=1, sync_id=source.sync.id)
    events = [e for page in pages for e in page]
    assert [e["event"] for e in events] == ["created", "updated"]
    assert events[1]["changes"] == {"email": "old@x.io"}
    assert events[1]["data"]["email"] == "new@x.io"


async def test_a_cursor_not_from_this_api_is_a_422(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/records", params={"after_cursor": "!!!"})
    assert response.status_code == 422 and "after_cursor" in error_of(response)["message"]
    too_big = await http.get("/v1/records", params={"limit": 100_000})
    assert too_big.status_code == 422 and "limit" in error_of(too_big)["message"]
    for name in ("stream_id", "sync_id"):
        not_an_id = await http.get("/v1/events", params={name: "acme'; --"})
        assert not_an_id.status_code == 422 and name in error_of(not_an_id)["message"]
