"""Consume API over HTTP: next / ack / nack, long polls, redelivery, dead letters, rewind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import AConn, Source, create_consumer, error_of
from upsync.api import create_app
from upsync.stream import create_consumer as library_create_consumer
from upsync.stream.clock import ManualClock

NEXT = "/v1/http-consumers/workers/next"


async def _next(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post(NEXT, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _ids(body: dict[str, Any]) -> list[str]:
    return sorted(m["record"]["upstream_id"] for m in body["data"])


def _tokens(body: dict[str, Any]) -> list[str]:
    return [m["ack_token"] for m in body["data"]]


async def test_next_returns_sequin_shaped_messages_with_batch_size_default_one(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    await source.put("stripe:customer", {"id": "cus_1"}, {"id": "cus_2"}, {"id": "cus_3"})
    first = await _next(http)
    assert len(first["data"]) == 1
    record = first["data"][0]["record"]
    assert record["collection_id"] == "stripe:customer" and record["provider"] == "stripe"
    assert record["sync"] == {"id": source.sync.id, "external_id": "org_1", "metadata": {}}
    assert first["info"]["num_pending"] == 2 and first["info"]["num_ack_pending"] == 1
    via_get = await http.get(NEXT, params={"batch_size": 5})
    assert via_get.status_code == 200 and len(via_get.json()["data"]) == 2


async def test_nack_redelivers_now_and_the_old_token_is_then_refused(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    await source.put("stripe:customer", {"id": "cus_1"})
    first = await _next(http)
    nacked = await http.post("/v1/http-consumers/workers/nack", json={"ack_tokens": _tokens(first)})
    assert nacked.status_code == 204 and nacked.content == b""
    again = await _next(http)
    assert _ids(again) == ["cus_1"] and _tokens(again) != _tokens(first)
    stale = await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": _tokens(first)})
    assert stale.status_code == 400
    error = error_of(stale)
    assert error["type"] == "invalid_ack_token" and "expired or already used" in error["message"]
    ok = await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": _tokens(again)})
    assert ok.status_code == 204


async def test_ack_with_another_consumers_token_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    await create_consumer(http, source.stream.id, "auditors")
    await source.put("stripe:customer", {"id": "cus_1"}, {"id": "cus_2"})
    mine = await _next(http, batch_size=2)
    theirs = (await http.post("/v1/http-consumers/auditors/next", json={"batch_size": 1})).json()
    mixed = [*_tokens(mine)[:1], *_tokens(theirs)]
    refused = await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": mixed})
    assert refused.status_code == 400
    assert "another consumer" in error_of(refused)["message"]
    info = (await http.get("/v1/http-consumers/workers/info")).json()["info"]
    assert info["num_ack_pending"] == 2  # not even the valid token was acked


async def test_long_poll_is_woken_by_a_write_from_another_connection(
    http: httpx.AsyncClient, app: FastAPI, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    poll = asyncio.create_task(http.post(NEXT, json={"batch_size": 10, "wait_for": 30_000}))
    await _until_waiting(app, source.stream.id)
    started = asyncio.get_running_loop().time()
    await source.put("stripe:customer", {"id": "cus_1"})
    response = await asyncio.wait_for(poll, timeout=10)
    assert _ids(response.json()) == ["cus_1"]
    assert asyncio.get_running_loop().time() - started < 10


async def _until_waiting(app: FastAPI, stream_id: str) -> None:
    """Until a long poll subscribed to the stream's notifications (no public hook exists)."""
    waiters = app.state.upsync.service.notifier._waiters
    async with asyncio.timeout(10):
        while not waiters.get(stream_id):
            await asyncio.sleep(0.005)


async def test_long_poll_times_out_with_an_empty_batch(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    body = await _next(http, wait_for=50)
    assert body == {"data": [], "info": {"num_pending": 0, "num_ack_pending": 0, "num_dead": 0}}


@pytest.fixture
async def clocked(
    pg_dsn: str, schema: str, token: str
) -> AsyncIterator[tuple[httpx.AsyncClient, ManualClock]]:
    """The API with a manual clock, so ack windows expire without waiting."""
    clock = ManualClock()
    application = create_app(pg_dsn, schema=schema, clock=clock, pool_size=2)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as client:
            yield client, clock


async def test_unacked_message_is_redelivered_after_ack_wait_and_then_dead_lettered(
    clocked: tuple[httpx.AsyncClient, ManualClock], source: Source
) -> None:
    http, clock = clocked
    await create_consumer(http, source.stream.id, ack_wait_ms=1000, max_deliver=2)
    await source.put("stripe:customer", {"id": "cus_1"})
    first = await _next(http)
    assert (await _next(http))["data"] == []  # held within its ack window
    clock.advance(ms=1001)
    second = await _next(http)
    assert _ids(second) == ["cus_1"] and _tokens(second) != _tokens(first)
    clock.advance(ms=1001)
    assert (await _next(http))["data"] == []  # max_deliver reached: dead, not redelivered
    dead = (await http.get("/v1/http-consumers/workers/dead-letters")).json()["data"]
    assert [(d["record"]["upstream_id"], d["deliver_count"]) for d in dead] == [("cus_1", 2)]
    replayed = await http.post("/v1/http-consumers/workers/dead-letters/replay", json={})
    assert replayed.json() == {"replayed": 1}
    assert _ids(await _next(http)) == ["cus_1"]


async def test_rewind_redelivers_acked_records(http: httpx.AsyncClient, source: Source) -> None:
    await create_consumer(http, source.stream.id)
    await source.put("stripe:customer", {"id": "cus_1"}, {"id": "cus_2"})
    batch = await _next(http, batch_size=10)
    await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": _tokens(batch)})
    assert (await _next(http))["data"] == []
    rewound = await http.post("/v1/http-consumers/workers/rewind")
    assert rewound.json() == {"queued": 2}
    assert _ids(await _next(http, batch_size=10)) == ["cus_1", "cus_2"]


async def test_a_managed_consumer_cannot_be_pulled_over_http(
    http: httpx.AsyncClient, source: Source, db: AConn, schema: str
) -> None:
    await library_create_consumer(
        db, stream_id=source.stream.id, name="tables", kind="table", schema=schema
    )
    response = await http.post("/v1/http-consumers/tables/next")
    assert response.status_code == 409 and "managed" in error_of(response)["message"]
    listed = (await http.get("/v1/http-consumers")).json()["data"]
    assert [c["name"] for c in listed] == []


async def test_rewind_after_a_records_cursor_or_an_updated_idx_redelivers_what_follows(
    http: httpx.AsyncClient, source: Source
) -> None:
    await create_consumer(http, source.stream.id)
    await source.put("stripe:customer", {"id": "cus_1"})
    await source.put("stripe:customer", {"id": "cus_2"})
    await source.put("stripe:customer", {"id": "cus_3"})
    batch = await _next(http, batch_size=10)
    await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": _tokens(batch)})
    page = (await http.get("/v1/records", params={"limit": 1})).json()
    assert [r["upstream_id"] for r in page["records"]] == ["cus_1"]
    after_cursor = await http.post(
        "/v1/http-consumers/workers/rewind", json={"after_cursor": page["cursor"]}
    )
    assert after_cursor.json() == {"queued": 2}
    assert _ids(await _next(http, batch_size=10)) == ["cus_2", "cus_3"]
    last_idx = max(m["record"]["updated_idx"] for m in batch["data"])
    none_after = await http.post("/v1/http-consumers/workers/rewind", json={"after_idx": last_idx})
    assert none_after.json() == {"queued": 0}
    both = await http.post(
        "/v1/http-consumers/workers/rewind", json={"after_idx": 1, "after_cursor": "x"}
    )
    assert both.status_code == 422 and "at most one" in error_of(both)["message"]


async def test_a_nacked_record_updated_meanwhile_never_stalls_next_with_the_default_batch(
    http: httpx.AsyncClient, source: Source
) -> None:
    """Issue #16: nack one of three records, the record changes upstream, then ``next`` (batch
    size 1) hands out a record each time, the newer version included; each counted once."""
    await create_consumer(http, source.stream.id)
    await source.put("stripe:customer", {"id": "cus_1"}, {"id": "cus_2"}, {"id": "cus_3"})
    first = await _next(http)
    await http.post("/v1/http-consumers/workers/nack", json={"ack_tokens": _tokens(first)})
    await source.put("stripe:customer", {"id": _ids(first)[0], "email": "new@x.io"})
    handed: list[dict[str, Any]] = []
    for _ in range(3):
        body = await _next(http, wait_for=1000)
        assert len(body["data"]) == 1, f"stalled after {handed}: {body['info']}"
        assert body["info"]["num_pending"] == 2 - len(handed)
        handed += [m["record"]["data"] for m in body["data"]]
        await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": _tokens(body)})
    assert sorted(d["id"] for d in handed) == ["cus_1", "cus_2", "cus_3"]
    assert {"id": _ids(first)[0], "email": "new@x.io"} in handed


async def test_an_expired_record_updated_meanwhile_never_stalls_next(
    clocked: tuple[httpx.AsyncClient, ManualClock], source: Source
) -> None:
    http, clock = clocked
    await create_consumer(http, source.stream.id, ack_wait_ms=1000)
    await source.put("stripe:customer", {"id": "cus_1"}, {"id": "cus_2"})
    await _next(http)
    clock.advance(ms=1001)
    await source.put("stripe:customer", {"id": "cus_1", "email": "new@x.io"})
    seen: list[dict[str, Any]] = []
    for _ in range(2):
        body = await _next(http)
        assert len(body["data"]) == 1, f"stalled after {seen}: {body['info']}"
        seen += [m["record"]["data"] for m in body["data"]]
        await http.post("/v1/http-consumers/workers/ack", json={"ack_tokens": _tokens(body)})
    assert seen == [{"id": "cus_2"}, {"id": "cus_1", "email": "new@x.io"}]
    assert (await _next(http))["info"] == {"num_pending": 0, "num_ack_pending": 0, "num_dead": 0}
