"""How a consumer reads the stream: a cursor over ``updated_idx`` that never skips a late commit.

Writers do not fan records out to consumers. Each consumer keeps a cursor on its row in
``consumers`` (``after_idx``, ``late_after``, ``cursor_snapshot``) and *pulls*: the next records
that match its filters are read in ``updated_idx`` order and the cursor moves past them, in the
transaction that hands them on (into ``consumer_messages`` for HTTP, webhook and Python-path
consumers, straight into the user's tables for the SQL-only table consumer). So a write costs the
same whatever the number of consumers, and a new consumer with ``deliver_policy=all`` starts at
once, without copying the stream.

Writers commit out of order (a transaction that took a lower ``updated_idx`` may commit after
one with higher ones was read), so ``idx > after`` alone would skip records (invariant 4). The
cursor uses the rule of the Stream API pages (:mod:`upsync.stream.pages`): it remembers the
Postgres snapshot of the pull that set it, and the next pull first takes the *late* rows, those
at or below ``after_idx`` written by a transaction that was still in progress in that snapshot,
then the rows after ``after_idx``; both in one statement, so in one snapshot. A record can be
pulled twice (at-least-once), never not at all.

The caller must hold the consumer's row lock (``FOR NO KEY UPDATE``) for the transaction: pulls
of one consumer never interleave.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upsync.errors import ConfigurationError
from upsync.stream.tables import AConn, q

_SNAPSHOT_RE = re.compile(r"\d+:\d+:[\d,]*")


def is_uuid(value: str) -> bool:
    """Whether ``value`` parses as a UUID (filters take ids; anything else is a client error)."""
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last position, the snapshot it was read in, and how far the
    next page already got through the late rows of that snapshot."""

    after: int = 0
    late_after: int = 0
    snapshot: str | None = None

    def encode(self) -> str:
        text = f"{self.after}.{self.late_after}.{self.snapshot or ''}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str | None) -> Cursor:
        """A cursor from this API (``None``: the start); :class:`ConfigurationError` if not."""
        if cursor is None:
            return cls()
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            after, late_after, snapshot = text.split(".")
            parsed = cls(int(after), int(late_after), snapshot or None)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ConfigurationError(
                f"after_cursor: {cursor[:40]!r} is not a cursor from this API"
            ) from None
        if (
            parsed.after < 0
            or not 0 <= parsed.late_after <= parsed.after
            or (parsed.snapshot is not None and not _SNAPSHOT_RE.fullmatch(parsed.snapshot))
        ):
            raise ConfigurationError(f"after_cursor: {cursor[:40]!r} is not a cursor from this API")
        return parsed


def next_cursor(cursor: Cursor, rows: list[dict[str, Any]], limit: int, snapshot: str) -> Cursor:
    """The cursor after a page (pure): see the module docstring."""
    late = [r["position"] for r in rows if r["late"]]
    if late and len(late) >= limit:  # late rows may remain: stay in the old snapshot
        return Cursor(cursor.after, late[-1], cursor.snapshot)
    fresh = [r["position"] for r in rows if not r["late"]]
    return Cursor(max([cursor.after, *fresh]), 0, snapshot)


# ids compared as uuid (not as text), so that the planner uses the column's statistics: a
# text comparison looks selective and turns capped, index-ordered reads into full scans
_FILTERS = """
    AND (%(stream)s::uuid IS NULL OR r.stream_id = %(stream)s::uuid)
    AND (%(sync)s::uuid IS NULL OR r.sync_id = %(sync)s::uuid)
    AND (%(provider)s::text IS NULL OR r.provider = %(provider)s)
    AND (%(collection)s::text IS NULL OR r.collection_id = %(collection)s)
"""

# a row written by a transaction still in progress in the cursor's snapshot (the xid index
# bounds the scan from below: such transactions started at or after the snapshot's xmin)
_LATE = """%(snap)s::pg_snapshot IS NOT NULL
        AND r.xid >= pg_snapshot_xmin(%(snap)s::pg_snapshot)::text::bigint
        AND NOT pg_visible_in_snapshot(r.xid::text::xid8, %(snap)s::pg_snapshot)"""

# {pos}: the position column; {cols}/{source}: what to select and from where
# one row even for an empty page (all NULL but page_snapshot): the snapshot must come from the
# same statement as the rows, or a late writer committing in between would be skipped
_PAGE = """
SELECT page.*, pg_current_snapshot()::text AS page_snapshot FROM (SELECT 1) one LEFT JOIN (
    (SELECT {cols}, true AS late FROM {source}
     WHERE {late} AND {pos} <= %(after)s AND {pos} > %(late_after)s
        {filters}
     ORDER BY {pos} LIMIT %(limit)s)
    UNION ALL
    (SELECT {cols}, false AS late FROM {source}
     WHERE {pos} > %(after)s
        {filters}
     ORDER BY {pos} LIMIT %(limit)s)
) page ON true
ORDER BY page.late DESC, page.position
LIMIT %(limit)s
"""


def page_sql(cols: str, source: str, pos: str) -> str:
    """The page statement over ``source`` (aliased ``r``) ordered by ``pos``."""
    return (
        _PAGE.replace("{cols}", f"{cols}, {pos} AS position")
        .replace("{source}", source)
        .replace("{pos}", pos)
        .replace("{filters}", _FILTERS)
        .replace("{late}", _LATE)
    )


# ids as text: they only go back to Postgres, and making uuid.UUID objects costs ~4 µs each
_PULL = page_sql("r.id::text, r.collection_id", "{records} r", "r.updated_idx")

_MOVE = """
UPDATE {consumers} SET after_idx = %(after)s, late_after = %(late_after)s,
    cursor_snapshot = %(snapshot)s
WHERE id = %(c)s
"""

#: how many matching records a cursor has not reached yet, up to ``%(cap)s`` (NULL: all)
BACKLOG = (
    (
        """
SELECT count(*) FROM (
    (SELECT 1 FROM {records} r
     WHERE {late} AND r.updated_idx <= %(after)s AND r.updated_idx > %(late_after)s
        {filters}
     LIMIT %(cap)s)
    UNION ALL
    -- in index order, so that a capped count stops early (a bitmap scan reads the whole range)
    (SELECT 1 FROM {records} r WHERE r.updated_idx > %(after)s {filters}
     ORDER BY r.updated_idx LIMIT %(cap)s)
    LIMIT %(cap)s
) backlog
"""
    )
    .replace("{filters}", _FILTERS)
    .replace("{late}", _LATE)
)

#: the columns of ``consumers k`` that :meth:`Reader.from_row` reads
READER_COLS = (
    "k.id AS reader_id, k.stream_id AS reader_stream_id, k.filter_provider, k.filter_sync_id, "
    "k.filter_collection_id, k.after_idx, k.late_after, k.cursor_snapshot"
)


@dataclass(frozen=True, slots=True)
class Reader:
    """A consumer's view of the stream: what it matches and where its cursor is."""

    consumer_id: str
    stream_id: str
    provider: str
    sync_id: str
    collection_id: str
    cursor: Cursor

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Reader:
        """From a row with the :data:`READER_COLS` columns."""
        return cls(
            str(row["reader_id"]),
            str(row["reader_stream_id"]),
            row["filter_provider"],
            row["filter_sync_id"],
            row["filter_collection_id"],
            Cursor(row["after_idx"], row["late_after"], row["cursor_snapshot"]),
        )

    def params(self) -> dict[str, Any]:
        """The page statements' parameters for this reader ('*' is no filter)."""
        return {
            "stream": self.stream_id,
            "provider": None if self.provider == "*" else self.provider,
            "sync": None if self.sync_id == "*" else self.sync_id,
            "collection": None if self.collection_id == "*" else self.collection_id,
            "after": self.cursor.after,
            "late_after": self.cursor.late_after,
            "snap": self.cursor.snapshot,
        }


_ENQUEUE = """
WITH moved AS (
    UPDATE {consumers} SET after_idx = %(after)s, late_after = %(late_after)s,
        cursor_snapshot = %(snapshot)s
    WHERE id = %(c)s
)
INSERT INTO {consumer_messages} AS m (consumer_id, record_id, updated_idx)
SELECT %(c)s, t.rid, t.idx FROM unnest(%(ids)s::uuid[], %(idxs)s::bigint[]) AS t(rid, idx)
ORDER BY t.rid
ON CONFLICT (consumer_id, record_id) DO UPDATE SET
    updated_idx = excluded.updated_idx,
    -- a message held by a worker stays held: acking that older delivery re-queues it
    state = CASE WHEN m.state = 'delivered' THEN 'delivered' ELSE 'pending' END,
    deliver_count = CASE WHEN m.state = 'delivered' THEN m.deliver_count ELSE 0 END,
    dead_at = NULL
-- equal: the same version pulled again after a rewind revives its dead letter
WHERE m.updated_idx <= excluded.updated_idx
"""


@dataclass(frozen=True, slots=True)
class Pulled:
    """Records a pull moved the cursor past (ids, and the ``updated_idx`` each was read at),
    and the cursor after them."""

    ids: list[str]
    positions: list[int]
    cursor: Cursor
    collections: frozenset[str] = frozenset()
    """the collections among them"""


async def _read(conn: AConn, reader: Reader, limit: int, schema: str) -> Pulled:
    limit = max(1, limit)
    cur = await conn.execute(q(schema, _PULL), {**reader.params(), "limit": limit})
    rows = await cur.fetchall()
    found = [r for r in rows if r[2] is not None]  # (id, collection_id, position, late, snapshot)
    page = [{"position": r[2], "late": r[3]} for r in found]
    moved = next_cursor(reader.cursor, page, limit, rows[0][4])
    return Pulled(
        [r[0] for r in found], [r[2] for r in found], moved, frozenset(r[1] for r in found)
    )


def _move_params(reader: Reader, pulled: Pulled) -> dict[str, Any]:
    return {
        "c": reader.consumer_id,
        "after": pulled.cursor.after,
        "late_after": pulled.cursor.late_after,
        "snapshot": pulled.cursor.snapshot,
    }


async def pull(conn: AConn, reader: Reader, limit: int, *, schema: str) -> Pulled:
    """Move the reader's cursor past up to ``limit`` matching records; return them.

    Runs in the caller's transaction, which must hold the consumer's row lock (the ``reader``
    was read under it): if the transaction rolls back, the cursor does not move.
    """
    pulled = await _read(conn, reader, limit, schema)
    await conn.execute(q(schema, _MOVE), _move_params(reader, pulled))
    return pulled


async def enqueue(conn: AConn, reader: Reader, limit: int, *, schema: str) -> Pulled:
    """:func:`pull` up to ``limit`` records into ``consumer_messages``, as pending messages."""
    pulled = await _read(conn, reader, limit, schema)
    params = {**_move_params(reader, pulled), "ids": pulled.ids, "idxs": pulled.positions}
    await conn.execute(q(schema, _ENQUEUE), params)
    return pulled


async def rewind_cursor(conn: AConn, consumer_id: str, after_idx: int, *, schema: str) -> None:
    """Move the consumer's cursor back to ``after_idx`` (never forward: what it has not read yet
    stays ahead of it). The snapshot stays: records whose writers were still in progress at the
    last pull, and are now below the new position, are still read as late rows."""
    await conn.execute(
        q(
            schema,
            "UPDATE {consumers} SET after_idx = least(after_idx, %(after)s), "
            "late_after = CASE WHEN %(after)s < after_idx THEN 0 ELSE late_after END "
            "WHERE id = %(c)s",
        ),
        {"c": consumer_id, "after": after_idx},
    )


async def set_cursor(conn: AConn, consumer_id: str, after_idx: int, *, schema: str) -> None:
    """Start (or restart) the consumer's cursor after ``after_idx``, as of this statement.

    Records at or below ``after_idx`` that a transaction still in progress is writing are
    delivered once it commits (they are late rows of this snapshot).
    """
    await conn.execute(
        q(
            schema,
            "UPDATE {consumers} SET after_idx = %(after)s, late_after = 0, "
            "cursor_snapshot = pg_current_snapshot()::text WHERE id = %(c)s",
        ),
        {"c": consumer_id, "after": after_idx},
    )
