"""The cursor-paged Stream APIs: ``GET /v1/records`` and ``GET /v1/events``.

Pages run in ``updated_idx`` order (an event's position is the ``updated_idx`` its change
created) and never skip a committed row, even though writers commit out of order (a writer that
took a lower ``updated_idx`` may commit after a page with higher ones was read).

The opaque cursor carries the position of the last row returned *and* the Postgres snapshot the
page was read in. The next page first returns the "late" rows: those at or below that position
whose writing transaction (the ``xid`` column) was still in progress in that snapshot, then the
rows after the position. Both halves are read by one statement, so in one snapshot. If the late
rows alone fill a page, the cursor keeps the old snapshot and remembers how far it got through
them. A row can therefore appear in two pages (once as late), never in none.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from upsync.errors import ConfigurationError
from upsync.stream.cursor import Cursor, is_uuid, next_cursor, page_sql
from upsync.stream.delivery import record_from_row
from upsync.stream.models import Event, EventPage, RecordPage
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, q

MAX_LIMIT = 1000

_RECORDS = page_sql(
    "r.*, s.external_id AS sync_external_id, s.metadata AS sync_metadata",
    "{records} r LEFT JOIN {syncs} s ON s.id = r.sync_id",
    "r.updated_idx",
)
_EVENTS = page_sql("r.*", "{events} r", "r.seq")


def _params(
    after_cursor: str | None,
    limit: int,
    stream_id: str | None,
    sync_id: str | None,
    provider: str | None,
    collection_id: str | None,
) -> tuple[Cursor, dict[str, Any]]:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise ConfigurationError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    cursor = Cursor.decode(after_cursor)
    for name, value in (("stream_id", stream_id), ("sync_id", sync_id)):
        if value is not None and not is_uuid(value):
            raise ConfigurationError(f"{name}: expected an id (a UUID), got {value[:60]!r}")
    return cursor, {
        "after": cursor.after,
        "late_after": cursor.late_after,
        "snap": cursor.snapshot,
        "limit": limit,
        "stream": stream_id,
        "sync": sync_id,
        "provider": provider,
        "collection": collection_id,
    }


async def _page(
    conn: AConn, query: str, params: dict[str, Any], schema: str
) -> tuple[list[dict[str, Any]], str]:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q(schema, query), params)
        rows = await cur.fetchall()
    return [r for r in rows if r["position"] is not None], rows[0]["page_snapshot"]


async def records_page(
    conn: AConn,
    *,
    after_cursor: str | None = None,
    limit: int = 100,
    stream_id: str | None = None,
    sync_id: str | None = None,
    provider: str | None = None,
    collection_id: str | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> RecordPage:
    """One page of records (each at its latest version), and the cursor to resume from."""
    cursor, params = _params(after_cursor, limit, stream_id, sync_id, provider, collection_id)
    rows, snapshot = await _page(conn, _RECORDS, params, schema)
    records = tuple(record_from_row(r) for r in rows)
    return RecordPage(records, next_cursor(cursor, rows, limit, snapshot).encode())


async def events_page(
    conn: AConn,
    *,
    after_cursor: str | None = None,
    limit: int = 100,
    stream_id: str | None = None,
    sync_id: str | None = None,
    provider: str | None = None,
    collection_id: str | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> EventPage:
    """One page of change events, oldest first, and the cursor to resume from."""
    cursor, params = _params(after_cursor, limit, stream_id, sync_id, provider, collection_id)
    rows, snapshot = await _page(conn, _EVENTS, params, schema)
    events = tuple(
        Event(
            event_id=str(r["event_id"]),
            seq=r["seq"],
            event=r["event"],
            record_id=str(r["record_id"]),
            stream_id=str(r["stream_id"]),
            sync_id=str(r["sync_id"]),
            provider=r["provider"],
            collection_id=r["collection_id"],
            upstream_id=r["upstream_id"],
            data=r["data"],
            changes=r["changes"],
            upstream_updated_at=r["upstream_updated_at"],
            event_inserted_at=r["inserted_at"],
        )
        for r in rows
    )
    return EventPage(events, next_cursor(cursor, rows, limit, snapshot).encode())
