"""Delivery: claim, ack, nack, tokens, redelivery, dead letters, counters, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from upsync.errors import InvalidAckToken
from upsync.stream import (
    ManualClock,
    Stream,
    Sync,
    UpstreamObject,
    ack,
    claim,
    create_consumer,
    info,
    list_dead_letters,
    nack,
    replay_dead_letters,
    write,
)
from upsync.stream.models import Consumer

from .helpers import table

AConn = psycopg.AsyncConnection[Any]
U = UpstreamObject
COL = "stripe:customer"


async def _consumer(db: AConn, schema: str, stream: Stream, **settings: Any) -> Consumer:
    return await create_consumer(db, stream_id=stream.id, name="c", schema=schema, **settings)


async def _put(db: AConn, schema: str, sync: Sync, *ids: str, version: int = 1, **kw: Any) -> None:
    await write(db, sync, COL, [U(i, {"v": version}, version) for i in ids], schema=schema, **kw)


@pytest.mark.smoke
async def test_next_delivers_sequin_shaped_records_and_ack_completes_them(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, "cus_1", "cus_2", "cus_3")
    got = await claim(db, c, 2, schema=schema)
    assert [m.record.upstream_id for m in got.messages] == ["cus_1", "cus_2"]
    wire = got.messages[0].record.to_dict()
    assert wire["sync"] == {"id": sync.id, "external_id": "org_1", "metadata": {"plan": "gold"}}
    assert wire["collection_id"] == COL and wire["stream_id"] == stream.id
    assert wire["data"] == {"v": 1} and wire["deleted"] is False
    assert (got.info.num_pending, got.info.num_ack_pending) == (1, 2)
    assert await ack(db, c, [m.ack_token for m in got.messages], schema=schema) == 2
    assert await info(db, c, schema=schema) == type(got.info)(1, 0, 0)
    # acked messages leave nothing behind; cus_3 waits in the stream, beyond the cursor
    assert await table(db, schema, "consumer_messages") == []
    rest = await claim(db, c, 5, schema=schema)
    assert [m.record.upstream_id for m in rest.messages] == ["cus_3"]


async def test_batch_size_bounds_each_delivery(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, *[f"cus_{i}" for i in range(7)])
    sizes = [len((await claim(db, c, 3, schema=schema)).messages) for _ in range(4)]
    assert sizes == [3, 3, 1, 0]


async def test_a_token_of_another_consumer_is_refused_and_changes_nothing(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    a = await _consumer(db, schema, stream)
    b = await create_consumer(db, stream_id=stream.id, name="b", schema=schema)
    await _put(db, schema, sync, "cus_1")
    token_a = (await claim(db, a, 1, schema=schema)).messages[0].ack_token
    token_b = (await claim(db, b, 1, schema=schema)).messages[0].ack_token
    with pytest.raises(InvalidAckToken, match="another consumer"):
        await ack(db, b, [token_b, token_a], schema=schema)
    assert (await info(db, b, schema=schema)).num_ack_pending == 1
    assert await ack(db, b, [token_b], schema=schema) == 1


@pytest.mark.parametrize("token", ["", "garbage!", "AAAA", "x" * 400])
async def test_a_garbled_token_is_refused_with_a_clear_message(
    db: AConn, schema: str, stream: Stream, sync: Sync, token: str
) -> None:
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, "cus_1")
    good = (await claim(db, c, 1, schema=schema)).messages[0].ack_token
    with pytest.raises(InvalidAckToken, match=r"ack_tokens\[1\].*nothing was acked"):
        await ack(db, c, [good, token], schema=schema)
    assert (await info(db, c, schema=schema)).num_ack_pending == 1


async def test_an_expired_token_is_refused_after_redelivery_and_changes_nothing(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock
) -> None:
    c = await _consumer(db, schema, stream, ack_wait_ms=1000)
    await _put(db, schema, sync, "cus_1", "cus_2")
    first = await claim(db, c, 2, schema=schema, clock=clock)
    clock.advance(ms=1001)
    again = await claim(db, c, 1, schema=schema, clock=clock)
    assert again.messages[0].record.upstream_id == "cus_1"
    with pytest.raises(InvalidAckToken, match="expired or already used"):
        await ack(db, c, [m.ack_token for m in first.messages], schema=schema)
    assert await ack(db, c, [again.messages[0].ack_token], schema=schema) == 1
    with pytest.raises(InvalidAckToken, match="expired or already used"):
        await ack(db, c, [again.messages[0].ack_token], schema=schema)  # twice


async def test_a_late_ack_is_accepted_while_nobody_else_took_the_message(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock
) -> None:
    c = await _consumer(db, schema, stream, ack_wait_ms=1000)
    await _put(db, schema, sync, "cus_1")
    token = (await claim(db, c, 1, schema=schema, clock=clock)).messages[0].ack_token
    clock.advance(seconds=5)
    assert await ack(db, c, [token], schema=schema) == 1


async def test_acking_an_old_delivery_keeps_the_newer_version_pending(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, "cus_1", version=1)
    old = (await claim(db, c, 1, schema=schema)).messages[0]
    await _put(db, schema, sync, "cus_1", version=2)
    # held by a worker: the newer version is not handed to a second worker meanwhile
    assert (await claim(db, c, 1, schema=schema)).messages == ()
    assert await ack(db, c, [old.ack_token], schema=schema) == 0
    new = (await claim(db, c, 1, schema=schema)).messages[0]
    assert new.record.data == {"v": 2} and new.record.updated_idx > old.record.updated_idx
    assert await ack(db, c, [new.ack_token], schema=schema) == 1
    assert await info(db, c, schema=schema) == type((await claim(db, c, schema=schema)).info)(
        0, 0, 0
    )


async def test_an_unacked_message_is_redelivered_after_ack_wait(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock
) -> None:
    c = await _consumer(db, schema, stream, ack_wait_ms=30000)
    await _put(db, schema, sync, "cus_1")
    await claim(db, c, 1, schema=schema, clock=clock)
    clock.advance(ms=29999)
    assert (await claim(db, c, 1, schema=schema, clock=clock)).messages == ()
    clock.advance(ms=1)
    again = await claim(db, c, 1, schema=schema, clock=clock)
    assert [m.record.upstream_id for m in again.messages] == ["cus_1"]


async def test_nack_redelivers_now(db: AConn, schema: str, stream: Stream, sync: Sync) -> None:
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, "cus_1")
    first = (await claim(db, c, 1, schema=schema)).messages[0]
    assert await nack(db, c, [first.ack_token], schema=schema) == 0
    second = (await claim(db, c, 1, schema=schema)).messages[0]
    assert second.record.id == first.record.id and second.ack_token != first.ack_token


async def test_after_max_deliver_attempts_a_message_is_dead_listed_and_replayable(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock
) -> None:
    c = await _consumer(db, schema, stream, max_deliver=3, ack_wait_ms=100)
    await _put(db, schema, sync, "poison", "fine")
    for attempt in range(3):
        got = await claim(db, c, 2, schema=schema, clock=clock)
        poison = [m for m in got.messages if m.record.upstream_id == "poison"]
        assert len(poison) == 1, attempt
        await ack(db, c, [m.ack_token for m in got.messages if m not in poison], schema=schema)
        if attempt == 0:
            await nack(db, c, [poison[0].ack_token], schema=schema, clock=clock)
        else:
            clock.advance(ms=100)  # the third attempt times out
    assert (await claim(db, c, 2, schema=schema, clock=clock)).messages == ()
    dead = await list_dead_letters(db, c, schema=schema, clock=clock)
    assert [(d.record.upstream_id, d.deliver_count) for d in dead] == [("poison", 3)]
    assert (await info(db, c, schema=schema, clock=clock)).num_dead == 1
    assert await replay_dead_letters(db, c, schema=schema) == 1
    got = await claim(db, c, 2, schema=schema, clock=clock)
    assert [m.record.upstream_id for m in got.messages] == ["poison"]


async def test_nack_on_the_last_attempt_dead_letters_at_once(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream, max_deliver=1)
    await _put(db, schema, sync, "poison")
    token = (await claim(db, c, 1, schema=schema)).messages[0].ack_token
    assert await nack(db, c, [token], schema=schema) == 1
    assert [d.record.upstream_id for d in await list_dead_letters(db, c, schema=schema)] == [
        "poison"
    ]


async def test_a_newer_version_revives_a_dead_letter(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream, max_deliver=1)
    await _put(db, schema, sync, "cus_1", version=1)
    await nack(db, c, [(await claim(db, c, 1, schema=schema)).messages[0].ack_token], schema=schema)
    await _put(db, schema, sync, "cus_1", version=2)
    got = (await claim(db, c, 1, schema=schema)).messages
    assert [m.record.data for m in got] == [{"v": 2}]


async def test_info_counts_pending_and_ack_pending(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock
) -> None:
    c = await _consumer(db, schema, stream, ack_wait_ms=1000)
    await _put(db, schema, sync, *[f"cus_{i}" for i in range(5)])
    assert (await info(db, c, schema=schema, clock=clock)).to_dict() == {
        "num_pending": 5,
        "num_ack_pending": 0,
        "num_dead": 0,
    }
    await claim(db, c, 2, schema=schema, clock=clock)
    assert (await info(db, c, schema=schema, clock=clock)).num_ack_pending == 2
    clock.advance(seconds=1)
    assert (await info(db, c, schema=schema, clock=clock)).num_pending == 5


async def test_max_ack_pending_stops_delivery_until_acks(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream, max_ack_pending=3)
    await _put(db, schema, sync, *[f"cus_{i}" for i in range(5)])
    first = await claim(db, c, 10, schema=schema)
    assert len(first.messages) == 3
    assert (await claim(db, c, 10, schema=schema)).messages == ()
    await ack(db, c, [first.messages[0].ack_token], schema=schema)
    assert len((await claim(db, c, 10, schema=schema)).messages) == 1


async def test_concurrent_workers_never_hold_the_same_message(
    db: AConn, schema: str, stream: Stream, sync: Sync, schema_dsn: str
) -> None:
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, *[f"cus_{i}" for i in range(200)])

    async def worker() -> list[str]:
        taken: list[str] = []
        async with await psycopg.AsyncConnection.connect(schema_dsn) as conn:
            while got := (await claim(conn, c, 7, schema=schema)).messages:
                taken += [m.record.id for m in got]
        return taken

    results = await asyncio.gather(*(worker() for _ in range(4)))
    everything = [rid for r in results for rid in r]
    assert len(everything) == len(set(everything)) == 200


async def test_a_record_committed_out_of_order_is_still_delivered(
    db: AConn, other_conn: AConn, schema: str, stream: Stream, sync: Sync, schema_dsn: str
) -> None:
    """Invariant 4: A takes a lower updated_idx, B a higher one and commits first; the
    consumer reads (and acks) B; then A commits: A must still be delivered."""
    c = await _consumer(db, schema, stream)
    await db.execute("SELECT 1")  # A: an open transaction
    await write(db, sync, "stripe:customer", [U("from_a", {}, 1)], schema=schema)
    await write(other_conn, sync, "stripe:subscription", [U("from_b", {}, 1)], schema=schema)
    async with await psycopg.AsyncConnection.connect(schema_dsn) as reader:
        first = await claim(reader, c, 10, schema=schema)
        assert [m.record.upstream_id for m in first.messages] == ["from_b"]
        await ack(reader, c, [m.ack_token for m in first.messages], schema=schema)
        await db.commit()  # A commits last, with the lower updated_idx
        second = await claim(reader, c, 10, schema=schema)
    assert [m.record.upstream_id for m in second.messages] == ["from_a"]
    assert second.messages[0].record.updated_idx < first.messages[0].record.updated_idx


async def test_tombstones_are_delivered_like_any_version(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await _consumer(db, schema, stream)
    await write(db, sync, COL, [U("cus_1", {"n": 1}, 1)], schema=schema)
    await write(db, sync, COL, [U("cus_1", None, 2, deleted=True)], schema=schema)
    got = (await claim(db, c, 5, schema=schema)).messages
    assert [(m.record.deleted, m.record.data) for m in got] == [(True, {"n": 1})]


async def test_next_counts_stop_at_a_cap_while_info_is_exact(
    db: AConn, schema: str, stream: Stream, sync: Sync, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    monkeypatch.setattr(importlib.import_module("upsync.stream.delivery"), "INFO_CAP", 3)
    c = await _consumer(db, schema, stream)
    await _put(db, schema, sync, *[f"cus_{i}" for i in range(10)])
    got = await claim(db, c, 1, schema=schema)
    assert got.info.num_pending == 3
    assert (await info(db, c, schema=schema)).num_pending == 9
