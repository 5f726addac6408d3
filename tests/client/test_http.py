"""``upsync.Client`` / ``AsyncClient`` against a live uvicorn on loopback (see ``conftest``), and
their error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import httpx
import pytest

from tests.client._server import (
    Server,
    metrics_text,
    setup_consumer,
    until_long_polling,
    write_customers,
)
from upsync.client import ApiUnavailable, AsyncClient, Client
from upsync.errors import ConfigurationError, InvalidAckToken, NotFound, Unauthorized
from upsync.records import Record


@pytest.mark.smoke
def test_client_round_trip_next_ack_against_live_server(server: Server) -> None:
    with Client(server.url, server.token) as client:
        sync_id, consumer = setup_consumer(client)
        write_customers(server, sync_id, 1, {"id": "cus_1", "email": "a@x.io"}, {"id": "cus_2"})
        batch = client.next(consumer, batch_size=10)
        assert sorted(m.record.upstream_id for m in batch.messages) == ["cus_1", "cus_2"]
        assert all(isinstance(m.record, Record) for m in batch.messages)
        assert batch.info.num_ack_pending == 2
        client.ack(consumer, [m.ack_token for m in batch.messages])
        info = client.info(consumer)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
        assert client.get_sync(sync_id)["credential"]["properties"]["secret"] == "****"


def test_client_maps_http_errors_to_upsync_errors_without_leaking_the_token(
    server: Server,
) -> None:
    with Client(server.url, "upsync_tok_not-a-real-token") as bad:
        with pytest.raises(Unauthorized) as unauthorized:
            bad.list_streams()
        assert "upsync_tok_" not in str(unauthorized.value)
        assert "upsync_tok_" not in repr(bad)
    with Client(server.url, server.token) as client:
        assert server.token not in repr(client)
        with pytest.raises(NotFound, match="nobody"):
            client.next("nobody")
        sync_id, consumer = setup_consumer(client)
        client.create_consumer(client.list_streams()[0]["id"], "other")
        write_customers(server, sync_id, 1, {"id": "cus_1"})
        token = client.next(consumer).messages[0].ack_token
        with pytest.raises(InvalidAckToken, match="another consumer"):
            client.ack("other", [token])
        assert client.info(consumer).num_ack_pending == 1  # nothing changed


def test_client_raises_transient_error_when_server_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with (
            Client(f"http://127.0.0.1:{port}", "upsync_tok_x", timeout=2) as client,
            pytest.raises(ApiUnavailable),
        ):
            client.healthz()


async def test_server_abandons_a_long_poll_whose_client_went_away(server: Server) -> None:
    async with AsyncClient(server.url, server.token) as client:
        stream = await client.create_stream("main")
        await client.create_consumer(stream["id"], "idle")
        poll = asyncio.create_task(client.next("idle", wait_for_ms=30_000))
        await until_long_polling(server, stream["id"])
        poll.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
        async with asyncio.timeout(10):  # the server answers 499 and stops waiting
            while 'status="499"' not in await metrics_text(server):
                await asyncio.sleep(0.01)
    assert not server.app.state.upsync.service.notifier._waiters.get(stream["id"])


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": {"type": "unauthorized", "message": "bad token"}}, Unauthorized),
        (404, {"error": {"type": "not_found", "message": "consumer 'x'"}}, NotFound),
        (400, {"error": {"type": "invalid_ack_token", "message": "expired"}}, InvalidAckToken),
        (422, {"error": {"type": "invalid_request", "message": "batch_size"}}, ConfigurationError),
        (409, {"error": {"type": "conflict", "message": "managed"}}, ConfigurationError),
        (429, {"error": {"type": "rate_limited", "message": "slow down"}}, ApiUnavailable),
        (503, {"error": {"type": "unavailable", "message": "db"}}, ApiUnavailable),
        (502, "<html>bad gateway</html>", ApiUnavailable),
    ],
    ids=["401", "404", "400-ack", "422", "409", "429", "503", "502-html"],
)
def test_http_errors_become_upsync_errors(status: int, body: Any, error: type[Exception]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer upsync_tok_secret"
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    transport = httpx.MockTransport(answer)
    with (
        Client("http://upsync.test", "upsync_tok_secret", transport=transport) as client,
        pytest.raises(error) as raised,
    ):
        client.ack("x", ["t"])
    message = str(raised.value)
    assert message.startswith(f"POST /v1/http-consumers/x/ack: {status}")
    assert "upsync_tok_secret" not in message and "upsync_tok_secret" not in repr(raised.value)


# -- get-or-create, and updates that send only what was given ---------------------------------


def test_create_consumer_with_exist_ok_returns_the_same_consumer_when_a_worker_starts_again(
    server: Server,
) -> None:
    with Client(server.url, server.token) as client:
        stream = client.create_stream("main")

        def start_worker() -> dict[str, Any]:  # the set-up a worker runs on every start
            return client.create_consumer(
                stream["id"],
                "workers",
                max_deliver=3,
                filters={"collection_id": "stripe:customer"},
                exist_ok=True,
            )

        first, again = start_worker(), start_worker()
        assert again["id"] == first["id"] and again["max_deliver"] == 3
        assert [c["id"] for c in client.list_consumers()] == [first["id"]]
        with pytest.raises(ConfigurationError, match="max_deliver") as differs:
            client.create_consumer(stream["id"], "workers", max_deliver=5, exist_ok=True)
        assert "409" in str(differs.value)
        with pytest.raises(ConfigurationError, match="already exists"):
            client.create_consumer(stream["id"], "workers", max_deliver=3)
        assert client.get_consumer("workers")["max_deliver"] == 3


async def test_async_create_consumer_with_exist_ok_is_idempotent(server: Server) -> None:
    async with AsyncClient(server.url, server.token) as client:
        stream = await client.create_stream("main")
        first = await client.create_consumer(stream["id"], "workers", exist_ok=True)
        again = await client.create_consumer(stream["id"], "workers", exist_ok=True)
        assert again["id"] == first["id"]


def test_update_sends_exactly_the_settings_given_and_none_where_given() -> None:
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, json={})

    transport = httpx.MockTransport(answer)
    with Client("http://upsync.test", "upsync_tok_x", transport=transport) as client:
        client.update_consumer("workers", max_deliver=5)
        client.update_consumer("workers", filters=None)
        client.update_sync("s1", external_id=None, collection_ids=("stripe:customer",))
        client.create_consumer("main", "workers")
    assert [json.loads(b) for b in bodies] == [
        {"max_deliver": 5},
        {"filters": None},
        {"external_id": None, "collection_ids": ["stripe:customer"]},
        {"stream_id": "main", "name": "workers"},
    ]
