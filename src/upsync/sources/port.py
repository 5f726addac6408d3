"""The stream as a source sees it: writes with their cursor in one transaction, and its cursors.

:class:`PostgresPort` implements :class:`upsync.sources.stripe.source.StreamPort` on upsync's
own schema. A write and the cursor that covers it commit together (invariant 8): after a crash
the source resumes from the last durable cursor, and re-writing what it had already written is
harmless (unchanged snapshots change nothing; older ones are stale).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from upsync.crashpoints import crash_point
from upsync.errors import ConfigurationError, RecordError
from upsync.records import record_id
from upsync.sources.stripe.snapshots import CursorUpdate, Snapshot
from upsync.stream.catalog import get_sync
from upsync.stream.models import Sync, UpstreamObject
from upsync.stream.tables import DEFAULT_SCHEMA, q
from upsync.stream.write import write as stream_write

__all__ = ["PostgresPort"]

_log = logging.getLogger(__name__)

_SET_TOP = """
UPDATE {syncs} SET cursors = cursors || jsonb_build_object(%(top)s::text, %(value)s::jsonb),
    updated_at = now()
WHERE id = %(sync)s
"""
_SET_NESTED = """
UPDATE {syncs} SET cursors = cursors || jsonb_build_object(
        %(top)s::text,
        coalesce(cursors -> %(top)s, '{{}}'::jsonb)
            || jsonb_build_object(%(sub)s::text, %(value)s::jsonb)
    ),
    updated_at = now()
WHERE id = %(sync)s
"""
_LIVE_IDS = """
SELECT upstream_id FROM {records}
WHERE sync_id = %(sync)s AND collection_id = %(collection)s
  AND NOT deleted AND source_version < %(below)s
"""
_HELD_IDS = "SELECT id FROM {records} WHERE id = ANY(%(ids)s::uuid[])"
_BACKFILLED = """
UPDATE {syncs}
SET initial_backfill_completed_at = coalesce(initial_backfill_completed_at, now()),
    updated_at = now()
WHERE id = %(sync)s
"""


class PostgresPort:
    """One sync's view of the stream, over a connection pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], sync: Sync, *, schema: str = DEFAULT_SCHEMA):
        self.pool = pool
        self.sync = sync
        self.schema = schema
        self.written = 0
        """records created, updated or deleted by this port (for metrics)"""

    async def write(
        self, collection_id: str, snapshots: Sequence[Snapshot], cursor: CursorUpdate | None = None
    ) -> int:
        """Write snapshots and the cursor covering them in one transaction; returns changes."""
        objects = [_upstream_object(s) for s in snapshots]
        try:
            return await self._write(collection_id, objects, cursor)
        except RecordError as e:
            if "NUL" not in e.reason:
                raise
            where = f"{collection_id} {e.record_id}"
        # Postgres cannot store U+0000 in text or jsonb: rather than let one upstream object
        # block its page forever, write it with U+FFFD in its place (and say so)
        _log.warning("%s: replacing NUL characters, which Postgres cannot store", where)
        return await self._write(collection_id, [_without_nul(o) for o in objects], cursor)

    async def _write(
        self, collection_id: str, objects: list[UpstreamObject], cursor: CursorUpdate | None
    ) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            result = await stream_write(conn, self.sync, collection_id, objects, schema=self.schema)
            crash_point("port.before_commit")
            if cursor is not None:
                await self._set_cursor(conn, cursor)
        crash_point("port.after_commit")
        self.written += result.changed
        return result.changed

    async def save_cursor(self, *cursors: CursorUpdate) -> None:
        """Store cursors on their own, all in one transaction."""
        async with self.pool.connection() as conn, conn.transaction():
            for cursor in cursors:
                await self._set_cursor(conn, cursor)

    async def _set_cursor(self, conn: Any, cursor: CursorUpdate) -> None:
        path, value = cursor
        params: dict[str, Any] = {"sync": self.sync.id, "top": path[0], "value": Jsonb(value)}
        if len(path) == 1:
            await conn.execute(q(self.schema, _SET_TOP), params)
        elif len(path) == 2:
            await conn.execute(q(self.schema, _SET_NESTED), {**params, "sub": path[1]})
        else:
            raise ConfigurationError(f"cursor paths have one or two parts, got {path!r}")

    async def load_cursors(self) -> dict[str, Any]:
        """The sync's stored cursors."""
        async with self.pool.connection() as conn:
            sync = await get_sync(conn, self.sync.id, schema=self.schema)
        return dict(sync.cursors)

    async def live_upstream_ids(self, collection_id: str, below_version: int) -> set[str]:
        """Live records of this sync and collection whose version is below ``below_version``."""
        params = {"sync": self.sync.id, "collection": collection_id, "below": below_version}
        async with self.pool.connection() as conn:
            cur = await conn.execute(q(self.schema, _LIVE_IDS), params)
            return {row[0] for row in await cur.fetchall()}

    async def held_upstream_ids(self, collection_id: str, upstream_ids: Iterable[str]) -> set[str]:
        """Which of ``upstream_ids`` this sync's stream holds a record of (live or deleted)."""
        wanted = {record_id(self.sync.id, collection_id, u): u for u in upstream_ids}
        if not wanted:
            return set()
        async with self.pool.connection() as conn:
            cur = await conn.execute(q(self.schema, _HELD_IDS), {"ids": list(wanted)})
            return {wanted[str(row[0])] for row in await cur.fetchall()}

    async def backfill_completed(self) -> None:
        """Set the sync's ``initial_backfill_completed_at`` (once)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(q(self.schema, _BACKFILLED), {"sync": self.sync.id})


def _without_nul(obj: UpstreamObject) -> UpstreamObject:
    return dataclasses.replace(
        obj,
        upstream_id=obj.upstream_id.replace("\x00", "\ufffd"),
        data=None if obj.data is None else _clean(obj.data),
    )


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _upstream_object(s: Snapshot) -> UpstreamObject:
    # a tombstone without a last known state keeps the stored data (data=None)
    data = s.data if (s.data or not s.deleted) else None
    return UpstreamObject(
        upstream_id=s.upstream_id,
        data=data,
        source_version=s.version,
        deleted=s.deleted,
        upstream_created_at=s.upstream_created_at,
        upstream_updated_at=s.upstream_updated_at,
    )
