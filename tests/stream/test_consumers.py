"""Consumers: settings, filters, deliver policies, race-free back-fill, rewind, CRUD."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from upsync.errors import ConfigurationError, NotFound
from upsync.stream import (
    ManualClock,
    Stream,
    Sync,
    UpstreamObject,
    claim,
    create_consumer,
    create_sync,
    delete_consumer,
    get_consumer,
    list_consumers,
    rewind,
    update_consumer,
    write,
)
from upsync.stream.models import Consumer

from .helpers import table

AConn = psycopg.AsyncConnection[Any]
U = UpstreamObject


async def drain(conn: AConn, consumer: Consumer, schema: str, **kw: Any) -> list[str]:
    """Claim everything available (without acking); upstream ids in delivery order."""
    got = await claim(conn, consumer, 1000, schema=schema, **kw)
    return [m.record.upstream_id for m in got.messages]


async def test_a_consumer_has_the_one_set_of_defaults(
    db: AConn, schema: str, stream: Stream
) -> None:
    c = await create_consumer(db, stream_id=stream.id, name="c", schema=schema)
    # Sequin's, except max_deliver: 10 rather than unlimited, so a poison record dead-letters
    assert (c.deliver_policy, c.ack_wait_ms, c.max_deliver, c.max_ack_pending) == (
        "all",
        30000,
        10,
        1000,
    )
    assert c.filters.to_dict() == {"provider": "*", "sync_id": "*", "collection_id": "*"}
    assert c.to_dict()["stream_id"] == stream.id


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"deliver_policy": "2h"}, "deliver_policy"),
        ({"ack_wait_ms": 0}, "ack_wait_ms"),
        ({"max_deliver": 0}, "max_deliver"),
        ({"max_ack_pending": -1}, "max_ack_pending"),
        ({"filters": {"resource": "*"}}, "filters"),
        ({"filters": {"sync_id": "nope"}}, "filters.sync_id"),
    ],
)
async def test_invalid_settings_are_refused_naming_the_field(
    db: AConn, schema: str, stream: Stream, settings: dict[str, Any], field: str
) -> None:
    with pytest.raises((ConfigurationError, NotFound), match=field):
        await create_consumer(db, stream_id=stream.id, name="c", schema=schema, **settings)


async def test_names_are_unique_per_stream(db: AConn, schema: str, stream: Stream) -> None:
    await create_consumer(db, stream_id=stream.id, name="c", schema=schema)
    with pytest.raises(ConfigurationError, match="already exists"):
        await create_consumer(db, stream_id=stream.id, name="c", schema=schema)


async def test_filters_must_all_match_and_star_matches_anything(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    other = await create_sync(
        db, stream_id=stream.id, provider="stripe", name="b", collection_ids=[], schema=schema
    )
    mk = {
        "subs": {"collection_id": "stripe:subscription"},
        "sync_a_customers": {"sync_id": sync.id, "collection_id": "stripe:customer"},
        "stripe": {"provider": "stripe"},
        "hubspot": {"provider": "hubspot"},
    }
    consumers = {
        name: await create_consumer(db, stream_id=stream.id, name=name, filters=f, schema=schema)
        for name, f in mk.items()
    }
    await write(db, sync, "stripe:customer", [U("cus_a", {}, 1)], schema=schema)
    await write(db, other, "stripe:customer", [U("cus_b", {}, 1)], schema=schema)
    await write(db, sync, "stripe:subscription", [U("sub_a", {}, 1)], schema=schema)
    got = {name: sorted(await drain(db, c, schema)) for name, c in consumers.items()}
    assert got == {
        "subs": ["sub_a"],
        "sync_a_customers": ["cus_a"],
        "stripe": ["cus_a", "cus_b", "sub_a"],
        "hubspot": [],
    }


async def _three_records(db: AConn, schema: str, sync: Sync) -> None:
    for i in range(3):
        await write(db, sync, "stripe:customer", [U(f"old_{i}", {}, 1)], schema=schema)


async def test_deliver_policy_all_starts_at_the_beginning(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    await _three_records(db, schema, sync)
    c = await create_consumer(db, stream_id=stream.id, name="c", schema=schema)
    await write(db, sync, "stripe:customer", [U("new", {}, 1)], schema=schema)
    assert await drain(db, c, schema) == ["old_0", "old_1", "old_2", "new"]


async def test_deliver_policy_new_starts_after_creation(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    await _three_records(db, schema, sync)
    c = await create_consumer(
        db, stream_id=stream.id, name="c", deliver_policy="new", schema=schema
    )
    await write(
        db, sync, "stripe:customer", [U("new", {}, 1), U("old_0", {"x": 1}, 2)], schema=schema
    )
    assert await drain(db, c, schema) == ["new", "old_0"]


async def test_deliver_policy_last_starts_with_the_latest_matching_record(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    await _three_records(db, schema, sync)
    await write(db, sync, "stripe:subscription", [U("sub", {}, 1)], schema=schema)
    c = await create_consumer(
        db,
        stream_id=stream.id,
        name="c",
        deliver_policy="last",
        filters={"collection_id": "stripe:customer"},
        schema=schema,
    )
    await write(db, sync, "stripe:customer", [U("new", {}, 1)], schema=schema)
    assert await drain(db, c, schema) == ["old_2", "new"]


async def test_deliver_policy_1h_starts_with_records_written_in_the_last_hour(
    db: AConn, schema: str, stream: Stream, sync: Sync, clock: ManualClock
) -> None:
    await write(
        db, sync, "stripe:customer", [U("two_hours_ago", {}, 1)], schema=schema, clock=clock
    )
    clock.advance(hours=1.5)
    await write(
        db, sync, "stripe:customer", [U("half_hour_ago", {}, 1)], schema=schema, clock=clock
    )
    clock.advance(hours=0.5)
    c = await create_consumer(
        db, stream_id=stream.id, name="c", deliver_policy="1h", schema=schema, clock=clock
    )
    assert await drain(db, c, schema, clock=clock) == ["half_hour_ago"]


async def test_creating_a_consumer_waits_for_an_open_write_and_then_includes_it(
    db: AConn, other_conn: AConn, schema: str, stream: Stream, sync: Sync, pg_dsn: str
) -> None:
    """Back-fill vs. a concurrent writer: the record must be seen by one of the two."""
    await db.execute("SELECT 1")
    await write(db, sync, "stripe:customer", [U("in_flight", {}, 1)], schema=schema)
    creating = asyncio.create_task(
        create_consumer(other_conn, stream_id=stream.id, name="c", schema=schema)
    )
    await _until_blocked_on_lock(pg_dsn, other_conn)
    assert not creating.done()
    await db.commit()
    consumer = await creating
    assert await drain(other_conn, consumer, schema) == ["in_flight"]


async def _until_blocked_on_lock(pg_dsn: str, conn: AConn) -> None:
    pid = conn.info.backend_pid
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as admin:
        for _ in range(500):
            cur = await admin.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
            )
            row = await cur.fetchone()
            if row and row[0] == "Lock":
                return
            await asyncio.sleep(0.01)  # polling a condition with a deadline: nothing to LISTEN to
    raise AssertionError("the consumer creation never waited for the writer's lock")


async def test_get_list_update_delete(db: AConn, schema: str, stream: Stream, sync: Sync) -> None:
    c = await create_consumer(
        db, stream_id=stream.id, name="c", metadata={"team": "x"}, schema=schema
    )
    await create_consumer(db, stream_id=stream.id, name="d", schema=schema)
    assert (await get_consumer(db, "c", schema=schema)).id == c.id
    assert (await get_consumer(db, c.id, schema=schema)).name == "c"
    assert [x.name for x in await list_consumers(db, metadata={"team": "x"}, schema=schema)] == [
        "c"
    ]
    changed = await update_consumer(db, c, ack_wait_ms=5, max_deliver=3, name="c2", schema=schema)
    assert (changed.ack_wait_ms, changed.max_deliver, changed.name) == (5, 3, "c2")
    await write(db, sync, "stripe:customer", [U("x", {}, 1)], schema=schema)
    await delete_consumer(db, changed, schema=schema)
    with pytest.raises(NotFound):
        await get_consumer(db, c.id, schema=schema)
    left = {str(r["consumer_id"]) for r in await table(db, schema, "consumer_messages")}
    assert c.id not in left


async def test_rewind_replays_from_a_position_and_from_the_start(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    await _three_records(db, schema, sync)
    c = await create_consumer(db, stream_id=stream.id, name="c", schema=schema)
    first = await claim(db, c, 10, schema=schema)
    from upsync.stream import ack

    await ack(db, c, [m.ack_token for m in first.messages], schema=schema)
    assert await drain(db, c, schema) == []
    second_idx = first.messages[1].record.updated_idx
    assert await rewind(db, c, after_idx=second_idx, schema=schema) == 1
    got = await claim(db, c, 10, schema=schema)
    assert [m.record.upstream_id for m in got.messages] == ["old_2"]
    await ack(db, c, [m.ack_token for m in got.messages], schema=schema)
    assert await rewind(db, c, schema=schema) == 3
    assert await drain(db, c, schema) == ["old_0", "old_1", "old_2"]


async def test_a_rewind_ahead_of_the_cursor_skips_nothing(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    await _three_records(db, schema, sync)
    c = await create_consumer(db, stream_id=stream.id, name="c", schema=schema)
    first = await claim(db, c, 1, schema=schema)
    assert [m.record.upstream_id for m in first.messages] == ["old_0"]
    top = max(r["updated_idx"] for r in await table(db, schema, "records"))
    assert await rewind(db, c, after_idx=top, schema=schema) == 0
    # old_0 is still held by its delivery; the two the cursor had not reached still come
    assert await drain(db, c, schema) == ["old_1", "old_2"]


async def test_changed_filters_apply_to_records_written_afterwards(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    c = await create_consumer(
        db,
        stream_id=stream.id,
        name="c",
        filters={"collection_id": "stripe:customer"},
        schema=schema,
    )
    c = await update_consumer(
        db, c, filters={"collection_id": "stripe:subscription"}, schema=schema
    )
    await write(db, sync, "stripe:customer", [U("cus", {}, 1)], schema=schema)
    await write(db, sync, "stripe:subscription", [U("sub", {}, 1)], schema=schema)
    assert await drain(db, c, schema) == ["sub"]


async def test_deliver_policy_cannot_change_after_creation(
    db: AConn, schema: str, stream: Stream
) -> None:
    c = await create_consumer(db, stream_id=stream.id, name="c", schema=schema)
    with pytest.raises(ConfigurationError, match="deliver_policy"):
        await update_consumer(db, c, deliver_policy="new", schema=schema)
    assert (await update_consumer(db, c, deliver_policy="all", schema=schema)).name == "c"
