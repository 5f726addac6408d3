"""The Stream APIs: records and events pages with cursors and filters."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from upsync.errors import ConfigurationError
from upsync.stream import Stream, Sync, UpstreamObject, deletion, events_page, records_page, write

AConn = psycopg.AsyncConnection[Any]
U = UpstreamObject


async def test_records_page_in_updated_idx_order_and_resume_from_the_cursor(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(
        db, sync, "stripe:customer", [U(f"cus_{i}", {}, 1) for i in range(5)], schema=schema
    )
    first = await records_page(db, limit=3, schema=schema)
    assert [r.upstream_id for r in first.records] == ["cus_0", "cus_1", "cus_2"]
    await write(db, sync, "stripe:customer", [U("cus_0", {"moved": True}, 2)], schema=schema)
    second = await records_page(db, after_cursor=first.cursor, limit=3, schema=schema)
    # compacted: an updated record moves to the tail of the stream
    assert [r.upstream_id for r in second.records] == ["cus_3", "cus_4", "cus_0"]
    third = await records_page(db, after_cursor=second.cursor, schema=schema)
    assert third.records == ()
    await write(db, sync, "stripe:customer", [U("cus_5", {}, 1)], schema=schema)
    fourth = await records_page(db, after_cursor=third.cursor, schema=schema)
    assert [r.upstream_id for r in fourth.records] == ["cus_5"]


async def test_records_page_filters(db: AConn, schema: str, stream: Stream, sync: Sync) -> None:
    await write(db, sync, "stripe:customer", [U("cus", {}, 1)], schema=schema)
    await write(db, sync, "stripe:subscription", [U("sub", {}, 1)], schema=schema)
    page = await records_page(db, collection_id="stripe:subscription", schema=schema)
    assert [r.upstream_id for r in page.records] == ["sub"]
    page = await records_page(
        db, sync_id=sync.id, stream_id=stream.id, provider="stripe", schema=schema
    )
    assert len(page.records) == 2
    assert (await records_page(db, provider="hubspot", schema=schema)).records == ()


async def test_events_page_lists_changes_with_previous_values(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, "stripe:customer", [U("cus", {"a": 1}, 1)], schema=schema)
    await write(db, sync, "stripe:customer", [U("cus", {"a": 2}, 2)], schema=schema)
    await write(db, sync, "stripe:customer", [deletion("cus", 3)], schema=schema)
    page = await events_page(db, limit=2, schema=schema)
    assert [e.event for e in page.events] == ["created", "updated"]
    assert page.events[1].to_dict()["changes"] == {"a": 1}
    rest = await events_page(db, after_cursor=page.cursor, schema=schema)
    assert [(e.event, e.data) for e in rest.events] == [("deleted", {"a": 2})]


@pytest.mark.parametrize("cursor", ["%%%", "bm90LWEtbnVtYmVy", "LTE", "MS4yLjM6NDo", "MS4wLng"])
async def test_a_bad_cursor_is_refused_naming_it(db: AConn, schema: str, cursor: str) -> None:
    with pytest.raises(ConfigurationError, match="after_cursor"):
        await records_page(db, after_cursor=cursor, schema=schema)


async def test_limit_is_bounded(db: AConn, schema: str) -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        await events_page(db, limit=0, schema=schema)


async def test_a_record_committed_out_of_order_is_on_a_later_page(
    db: AConn, other_conn: AConn, schema: str, sync: Sync
) -> None:
    """A takes lower updated_idx values and commits after a page with B's higher ones was read."""
    await db.execute("SELECT 1")
    await write(db, sync, "stripe:customer", [U(f"a_{i}", {}, 1) for i in range(3)], schema=schema)
    await write(other_conn, sync, "stripe:subscription", [U("b", {}, 1)], schema=schema)
    first = await records_page(other_conn, schema=schema)
    assert [r.upstream_id for r in first.records] == ["b"]
    await db.commit()
    await write(other_conn, sync, "stripe:subscription", [U("c", {}, 1)], schema=schema)
    # the late rows come first, two per page, then what follows the cursor
    seen: list[str] = []
    cursor = first.cursor
    for _ in range(4):
        page = await records_page(other_conn, after_cursor=cursor, limit=2, schema=schema)
        seen += [r.upstream_id for r in page.records]
        cursor = page.cursor
    assert seen == ["a_0", "a_1", "a_2", "c"]


async def test_an_event_committed_out_of_order_is_on_a_later_page(
    db: AConn, other_conn: AConn, schema: str, sync: Sync
) -> None:
    await db.execute("SELECT 1")
    await write(db, sync, "stripe:customer", [U("a", {}, 1)], schema=schema)
    await write(other_conn, sync, "stripe:subscription", [U("b", {}, 1)], schema=schema)
    first = await events_page(other_conn, schema=schema)
    await db.commit()
    second = await events_page(other_conn, after_cursor=first.cursor, schema=schema)
    assert [e.upstream_id for e in first.events + second.events] == ["b", "a"]
