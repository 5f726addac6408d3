"""StreamService: the pooled API an HTTP layer maps onto, long polls woken by NOTIFY."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from upsync.errors import ConfigurationError, InvalidAckToken, NotFound
from upsync.stream import StreamService, UpstreamObject, write

AConn = psycopg.AsyncConnection[Any]
U = UpstreamObject


async def _setup(service: StreamService) -> tuple[str, Any]:
    stream = await service.create_stream("s")
    sync = await service.create_sync(
        stream_id=stream.id, provider="stripe", name="acme", collection_ids=["stripe:customer"]
    )
    return stream.id, sync


@pytest.mark.smoke
async def test_write_next_ack_end_to_end(service: StreamService) -> None:
    stream_id, sync = await _setup(service)
    consumer = await service.create_consumer(stream_id=stream_id, name="c", ack_wait_ms=60000)
    result = await service.write(sync.id, "stripe:customer", [U("cus_1", {"n": 1}, 1)])
    assert result.created == 1
    batch = await service.next("c", batch_size=10)
    body = batch.to_dict()
    assert [m["record"]["upstream_id"] for m in body["data"]] == ["cus_1"]
    assert body["info"] == {"num_pending": 0, "num_ack_pending": 1, "num_dead": 0}
    assert await service.ack(consumer.id, [m.ack_token for m in batch.messages]) == 1
    assert (await service.info("c")).num_ack_pending == 0


async def test_a_long_poll_is_woken_promptly_by_a_write_from_another_connection(
    service: StreamService, schema_dsn: str, schema: str
) -> None:
    stream_id, sync = await _setup(service)
    await service.create_consumer(stream_id=stream_id, name="c")
    started = time.monotonic()
    waiting = asyncio.create_task(service.next("c", batch_size=5, wait_for_ms=20000))
    await _until_waiting(service, stream_id)
    async with await psycopg.AsyncConnection.connect(schema_dsn) as writer:
        await write(writer, sync, "stripe:customer", [U("cus_1", {}, 1)], schema=schema)
    batch = await waiting
    assert [m.record.upstream_id for m in batch.messages] == ["cus_1"]
    assert time.monotonic() - started < 5  # woken, not timed out after 20 s


async def _until_waiting(service: StreamService, stream_id: str) -> None:
    for _ in range(500):
        if service.notifier._waiters.get(stream_id):
            return
        await asyncio.sleep(0.01)  # a condition with a deadline: the waiter registering itself
    raise AssertionError("next() never started waiting")


async def test_a_long_poll_returns_empty_when_wait_for_passes(service: StreamService) -> None:
    stream_id, _ = await _setup(service)
    await service.create_consumer(stream_id=stream_id, name="c")
    started = time.monotonic()
    batch = await service.next("c", wait_for_ms=200)
    assert batch.messages == () and time.monotonic() - started >= 0.2


async def test_a_long_poll_is_woken_by_a_nack_of_another_worker(service: StreamService) -> None:
    stream_id, sync = await _setup(service)
    await service.create_consumer(stream_id=stream_id, name="c")
    await service.write(sync, "stripe:customer", [U("cus_1", {}, 1)])
    held = await service.next("c")
    waiting = asyncio.create_task(service.next("c", wait_for_ms=20000))
    await _until_waiting(service, stream_id)
    await service.nack("c", [held.messages[0].ack_token])
    again = await asyncio.wait_for(waiting, 10)
    assert [m.record.upstream_id for m in again.messages] == ["cus_1"]


async def test_a_long_poll_wakes_up_for_redelivery_at_the_ack_deadline(
    service: StreamService,
) -> None:
    stream_id, sync = await _setup(service)
    await service.create_consumer(stream_id=stream_id, name="c", ack_wait_ms=300)
    await service.write(sync, "stripe:customer", [U("cus_1", {}, 1)])
    await service.next("c")
    again = await service.next("c", wait_for_ms=10000)
    assert [m.record.upstream_id for m in again.messages] == ["cus_1"]


async def test_errors_name_what_was_wrong(service: StreamService) -> None:
    stream_id, _ = await _setup(service)
    with pytest.raises(NotFound, match="consumer 'nope'"):
        await service.next("nope")
    await service.create_consumer(stream_id=stream_id, name="c")
    with pytest.raises(ConfigurationError, match="batch_size"):
        await service.next("c", batch_size=0)
    with pytest.raises(InvalidAckToken):
        await service.ack("c", ["not-a-token"])


async def test_credentials_never_return_the_secret(service: StreamService) -> None:
    cred = await service.create_credential(
        provider="stripe", kind="stripe_key", secret="sk_test_123", name="k"
    )
    assert "sk_test_123" not in repr(cred) and "sk_test_123" not in str(cred.to_dict())
    assert cred.to_dict()["properties"]["secret"] == "****"
    assert "sk_test_123" not in str([c.to_dict() for c in await service.list_credentials()])


async def test_syncs_can_be_listed_filtered_and_updated(service: StreamService) -> None:
    stream_id, sync = await _setup(service)
    await service.create_sync(
        stream_id=stream_id, provider="stripe", name="other", collection_ids=[], metadata={"a": 1}
    )
    assert [s.name for s in await service.list_syncs(metadata={"a": 1})] == ["other"]
    changed = await service.update_sync(sync.id, cursors={"events": "evt_1"}, status="disabled")
    assert changed.cursors == {"events": "evt_1"} and changed.status == "disabled"
    with pytest.raises(ConfigurationError, match="collection_ids"):
        await service.update_sync(sync.id, collection_ids=["hubspot:contact"])


async def test_long_polls_still_wake_after_the_listening_connection_was_killed(
    service: StreamService, pg_dsn: str
) -> None:
    stream_id, sync = await _setup(service)
    await service.create_consumer(stream_id=stream_id, name="c")
    killed = service.notifier.backend_pid
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [killed])
    for _ in range(1000):  # a condition with a deadline: the notifier reconnecting
        if service.notifier.backend_pid not in (None, killed):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the notifier never reconnected")
    waiting = asyncio.create_task(service.next("c", wait_for_ms=20000))
    await _until_waiting(service, stream_id)
    await service.write(sync, "stripe:customer", [U("cus_1", {}, 1)])
    batch = await asyncio.wait_for(waiting, 5)
    assert [m.record.upstream_id for m in batch.messages] == ["cus_1"]
