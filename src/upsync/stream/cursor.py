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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upsync.errors import ConfigurationError
from upsync.stream._sql import AConn, q

_SNAPSHOT_RE = re.compile(r"\d+:\d+:[\d,]*")


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


# the consumer's filters, with '*' matching everything
_MATCH = """
    r.stream_id = k.stream_id
    AND (k.filter_provider = '*' OR r.provider = k.filter_provider)
    AND (k.filter_sync_id = '*' OR r.sync_id::text = k.filter_sync_id)
    AND (k.filter_collection_id = '*' OR r.collection_id = k.filter_collection_id)
"""

# one row even when nothing is pulled: the snapshot must come from the same statement as the
# rows (a later statement could see a late writer commit that this one did not return)
_PULL = """
WITH k AS (
    SELECT *, cursor_snapshot::pg_snapshot AS snap FROM {consumers} WHERE id = %(c)s
)
SELECT k.after_idx, k.late_after, k.cursor_snapshot,
    pg_current_snapshot()::text AS pull_snapshot, page.id, page.position, page.late
FROM k LEFT JOIN LATERAL (
    (SELECT r.id, r.updated_idx AS position, true AS late FROM {records} r
     WHERE k.snap IS NOT NULL
        AND r.xid >= pg_snapshot_xmin(k.snap)::text::bigint
        AND NOT pg_visible_in_snapshot(r.xid::text::xid8, k.snap)
        AND r.updated_idx <= k.after_idx AND r.updated_idx > k.late_after
        AND {match}
     ORDER BY r.updated_idx LIMIT %(n)s)
    UNION ALL
    (SELECT r.id, r.updated_idx, false FROM {records} r
     WHERE r.updated_idx > k.after_idx AND {match}
     ORDER BY r.updated_idx LIMIT %(n)s)
) page ON true
ORDER BY page.late DESC, page.position
LIMIT %(n)s
""".replace("{match}", _MATCH)

_MOVE = """
UPDATE {consumers} SET after_idx = %(after)s, late_after = %(late_after)s,
    cursor_snapshot = %(snapshot)s
WHERE id = %(c)s
"""

# how many matching records the cursor has not reached yet, up to %(cap)s (NULL: all)
BACKLOG = """
SELECT count(*) FROM (
    SELECT 1 FROM {consumers} k
    CROSS JOIN LATERAL (
        SELECT 1 FROM {records} r
        WHERE k.cursor_snapshot IS NOT NULL
            AND r.xid >= pg_snapshot_xmin(k.cursor_snapshot::pg_snapshot)::text::bigint
            AND NOT pg_visible_in_snapshot(r.xid::text::xid8, k.cursor_snapshot::pg_snapshot)
            AND r.updated_idx <= k.after_idx AND r.updated_idx > k.late_after
            AND {match}
        UNION ALL
        SELECT 1 FROM {records} r WHERE r.updated_idx > k.after_idx AND {match}
    ) x
    WHERE k.id = %(c)s
    LIMIT %(cap)s
) backlog
""".replace("{match}", _MATCH)

_ENQUEUE = """
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
    """Records a pull moved the cursor past: ids and the ``updated_idx`` each was read at."""

    ids: Sequence[uuid.UUID]
    positions: Sequence[int]


async def pull(conn: AConn, consumer_id: str, limit: int, *, schema: str) -> Pulled:
    """Move the consumer's cursor past up to ``limit`` matching records; return them.

    Runs in the caller's transaction, which must hold the consumer's row lock: if it rolls back,
    the cursor does not move.
    """
    cur = await conn.execute(q(schema, _PULL), {"c": consumer_id, "n": max(1, limit)})
    rows: list[Any] = await cur.fetchall()
    if not rows:  # the consumer is gone
        return Pulled((), ())
    after, late_after, snapshot, now = rows[0][:4]
    page = [{"position": r[5], "late": r[6]} for r in rows if r[4] is not None]
    moved = next_cursor(Cursor(after, late_after, snapshot), page, limit, now)
    await conn.execute(
        q(schema, _MOVE),
        {
            "c": consumer_id,
            "after": moved.after,
            "late_after": moved.late_after,
            "snapshot": moved.snapshot,
        },
    )
    return Pulled([r[4] for r in rows if r[4] is not None], [p["position"] for p in page])


async def enqueue(conn: AConn, consumer_id: str, limit: int, *, schema: str) -> int:
    """Pull up to ``limit`` records into ``consumer_messages`` as pending; returns how many."""
    pulled = await pull(conn, consumer_id, limit, schema=schema)
    if pulled.ids:
        await conn.execute(
            q(schema, _ENQUEUE),
            {"c": consumer_id, "ids": list(pulled.ids), "idxs": list(pulled.positions)},
        )
    return len(pulled.ids)


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
