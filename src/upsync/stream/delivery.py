"""Delivery: next (claim), ack, nack, info, dead letters (connection-level).

A claim first pulls from the stream (:mod:`upsync.stream.cursor`) as many records as it can
hand out, into ``consumer_messages``; records the cursor has not reached count as pending.
Each ``(consumer, record)`` has at most one row in ``consumer_messages``, carrying the latest
``updated_idx`` the consumer owes for that record. Its states:

- ``pending``: deliverable now (new, nacked, or a newer version arrived after an ack);
- ``delivered``: held by one worker until ``ack_deadline`` (``now + ack_wait_ms``); once past it,
  it is deliverable again, unless it has had ``max_deliver`` attempts: then it becomes
- ``dead``: listed by :func:`list_dead_letters` until :func:`replay_dead_letters` (or a newer
  version of the record) makes it pending again. Nothing is ever discarded silently.

A message carries one version. If its record gets a newer one while the message waits for a
retry (nacked, or past its ack deadline), the message is *outdated* and is not handed out
(:data:`DELIVERABLE`): the newer version is still ahead of the cursor, and the pull that reaches
it updates the message. So a claim counts only current messages as ready and keeps pulling until
its batch is full or the stream has nothing more for the consumer: a consumer with deliverable
records is always handed one (liveness), and ``num_pending`` (current messages plus the
cursor's backlog) counts each record once.

An ack deletes the row only if no newer version arrived since that delivery; otherwise the row
goes back to ``pending`` with the newer version (invariant: acking an old delivery never drops a
newer one). Claims lock the consumer row, so concurrent workers take turns for the few
milliseconds a claim lasts; that makes ``max_ack_pending`` exact, and ``FOR UPDATE SKIP LOCKED``
on the message rows keeps two workers from ever holding the same message.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from psycopg.rows import dict_row

from upsync.errors import InvalidAckToken, NotFound
from upsync.records import Message, Record, SyncRef
from upsync.stream import tokens as _tokens
from upsync.stream.clock import Clock, db_clock
from upsync.stream.cursor import BACKLOG, READER_COLS, Reader, enqueue
from upsync.stream.models import Consumer, ConsumerInfo, DeadLetter
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, channel, q

#: A message ``m`` that can be handed out now: not dead, not held within its ack window, and
#: carrying its record's current version. An outdated one (the record got a newer version after
#: a nack or an expiry) is not: the cursor has not reached that newer version yet, and the pull
#: that does updates the message (the newer version counts in the cursor's backlog until then).
#: Counting an outdated message as ready kept claims from pulling, and stalled the consumer.
#: (OFFSET 0 keeps the version check a per-row probe: as a join it loses the index order and
#: the LIMIT of the statements that use it.)
DELIVERABLE = """(m.state <> 'dead' AND (m.state = 'pending' OR m.ack_deadline <= {now})
    AND EXISTS (
        SELECT 1 FROM {records} r WHERE r.id = m.record_id AND r.updated_idx = m.updated_idx
        OFFSET 0
    ))"""

_LOCK_CONSUMER = """
SELECT k.ack_wait_ms, k.max_deliver, k.max_ack_pending,
    (SELECT count(*) FROM {consumer_messages} m
     WHERE m.consumer_id = k.id AND m.state = 'delivered' AND m.ack_deadline > {now}) AS held,
    (SELECT count(*) FROM (
        SELECT 1 FROM {consumer_messages} m WHERE m.consumer_id = k.id AND {deliverable}
        LIMIT %(cap)s) x) AS ready,
    {reader_cols}
FROM {consumers} k
WHERE k.id = %(c)s FOR NO KEY UPDATE
""".replace("{deliverable}", DELIVERABLE)

_READER = "SELECT {reader_cols} FROM {consumers} k WHERE k.id = %s"

_MARK_DEAD = """
UPDATE {consumer_messages} m SET state = 'dead', dead_at = {now}, delivery_id = NULL
FROM (
    SELECT record_id FROM {consumer_messages} m
    WHERE m.consumer_id = %(c)s AND m.state = 'delivered' AND m.ack_deadline <= {now}
        AND {exhausted}
    FOR UPDATE SKIP LOCKED
) d
WHERE m.consumer_id = %(c)s AND m.record_id = d.record_id
"""

_CLAIM = """
WITH pick AS (
    SELECT m.record_id FROM {consumer_messages} m
    -- re-checked if the row changed under us: never hand out a version we cannot read
    WHERE m.consumer_id = %(c)s AND {deliverable}
    ORDER BY m.updated_idx
    LIMIT %(n)s
    FOR UPDATE OF m SKIP LOCKED
),
upd AS (
    UPDATE {consumer_messages} m SET
        state = 'delivered',
        deliver_count = CASE WHEN m.state = 'delivered' AND m.updated_idx > m.delivered_idx
                             THEN 1 ELSE m.deliver_count + 1 END,
        delivery_id = nextval({delivery_seq_reg}),
        delivered_idx = m.updated_idx,
        ack_deadline = {now} + %(ack_wait_ms)s * interval '1 millisecond',
        dead_at = NULL
    FROM pick WHERE m.consumer_id = %(c)s AND m.record_id = pick.record_id
    RETURNING m.record_id, m.delivery_id, m.delivered_idx
)
SELECT upd.delivery_id, {record_cols}
FROM upd
JOIN {records} r ON r.id = upd.record_id AND r.updated_idx = upd.delivered_idx
LEFT JOIN {syncs} s ON s.id = r.sync_id
ORDER BY r.updated_idx
""".replace("{deliverable}", DELIVERABLE)

# each count stops at %(cap)s rows (NULL: exact), so that next() stays cheap with a big backlog
_INFO = """
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM {consumer_messages} m
        WHERE m.consumer_id = %(c)s AND {deliverable}
            AND (m.state = 'pending' OR NOT {exhausted})
        LIMIT %(cap)s) x) + ({backlog}) AS pending,
    (SELECT count(*) FROM {consumer_messages} m
     WHERE m.consumer_id = %(c)s AND m.state = 'delivered' AND m.ack_deadline > {now})
        AS ack_pending,
    (SELECT count(*) FROM (
        SELECT 1 FROM {consumer_messages} m WHERE m.consumer_id = %(c)s AND m.state = 'dead'
        UNION ALL
        SELECT 1 FROM {consumer_messages} m
        WHERE m.consumer_id = %(c)s AND m.state = 'delivered' AND m.ack_deadline <= {now}
            AND {exhausted}
        LIMIT %(cap)s) y) AS dead,
    extract(epoch FROM (
        SELECT min(m.ack_deadline) FROM {consumer_messages} m
        WHERE m.consumer_id = %(c)s AND m.state = 'delivered') - {now}) AS next_deadline_s
""".replace("{deliverable}", DELIVERABLE)

_HELD = """
SELECT m.record_id, m.delivery_id FROM {consumer_messages} m
JOIN unnest(%(rids)s::uuid[], %(dids)s::bigint[]) AS t(rid, did)
    ON m.record_id = t.rid AND m.delivery_id = t.did
WHERE m.consumer_id = %(c)s AND m.state = 'delivered'
ORDER BY m.record_id
FOR UPDATE OF m
"""

_ACK = """
WITH gone AS (
    DELETE FROM {consumer_messages} m
    WHERE m.consumer_id = %(c)s AND m.record_id = ANY(%(rids)s::uuid[])
        AND m.updated_idx <= m.delivered_idx
    RETURNING 1
),
again AS (
    UPDATE {consumer_messages} m SET state = 'pending', deliver_count = 0, delivery_id = NULL,
        delivered_idx = NULL, ack_deadline = NULL
    WHERE m.consumer_id = %(c)s AND m.record_id = ANY(%(rids)s::uuid[])
        AND m.updated_idx > m.delivered_idx
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM again)
"""

_NACK = """
UPDATE {consumer_messages} m SET
    state = CASE WHEN {exhausted} THEN 'dead' ELSE 'pending' END,
    dead_at = CASE WHEN {exhausted} THEN {now} END,
    deliver_count = CASE WHEN m.updated_idx > m.delivered_idx THEN 0 ELSE m.deliver_count END,
    delivery_id = NULL, ack_deadline = NULL
WHERE m.consumer_id = %(c)s AND m.record_id = ANY(%(rids)s::uuid[])
RETURNING m.state
"""

_DEAD = """
SELECT m.deliver_count, m.dead_at, m.last_error, {record_cols}
FROM {consumer_messages} m
JOIN {records} r ON r.id = m.record_id
LEFT JOIN {syncs} s ON s.id = r.sync_id
WHERE m.consumer_id = %(c)s AND m.state = 'dead'
ORDER BY m.dead_at, m.record_id
LIMIT %(limit)s
"""

_REPLAY = """
UPDATE {consumer_messages} m SET state = 'pending', deliver_count = 0, dead_at = NULL,
    delivered_idx = NULL
WHERE m.consumer_id = %(c)s AND m.state = 'dead'
    AND (%(rids)s::uuid[] IS NULL OR m.record_id = ANY(%(rids)s::uuid[]))
"""


#: In a ``next`` response, ``num_pending`` and ``num_dead`` stop counting here (``info`` is exact).
INFO_CAP = 1_000


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claim: the messages and the consumer's counters right after it."""

    messages: tuple[Message, ...]
    info: ConsumerInfo
    next_deadline_s: float | None
    """Seconds until the earliest held message's ack deadline (it may then be redelivered)."""


def record_from_row(row: dict[str, Any]) -> Record:
    """A delivered :class:`Record` from a row with the ``{record_cols}`` columns."""
    return Record(
        id=str(row["id"]),
        upstream_id=row["upstream_id"],
        collection_id=row["collection_id"],
        updated_idx=row["updated_idx"],
        data=row["data"],
        deleted=row["deleted"],
        provider=row["provider"],
        stream_id=str(row["stream_id"]),
        sync=SyncRef(
            id=str(row["sync_id"]),
            external_id=row["sync_external_id"],
            metadata=row["sync_metadata"] or {},
        ),
        inserted_at=row["inserted_at"],
        upstream_created_at=row["upstream_created_at"],
        upstream_updated_at=row["upstream_updated_at"],
    )


async def _settings(
    conn: AConn, consumer: Consumer, schema: str, clock: Clock, cap: int = 0
) -> dict[str, Any]:
    now = clock()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            q(schema, _LOCK_CONSUMER.replace("{reader_cols}", READER_COLS)),
            {"c": consumer.id, "now": now, "cap": cap},
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"consumer {consumer.id!r} not found")
    return {"c": consumer.id, "maxd": row["max_deliver"], "now": now, **row}


async def claim(
    conn: AConn,
    consumer: Consumer,
    batch_size: int = 1,
    *,
    schema: str = DEFAULT_SCHEMA,
    clock: Clock = db_clock,
) -> Claimed:
    """Deliver up to ``batch_size`` messages (oldest ``updated_idx`` first), in one transaction.

    Messages whose deadline passed after ``max_deliver`` attempts become dead letters first.
    Liveness: the claim comes back short of ``batch_size`` (or empty) only when the stream has
    nothing more for this consumer right now, or ``max_ack_pending`` messages are held.
    """
    async with conn.transaction():
        params = await _settings(conn, consumer, schema, clock, cap=batch_size)
        params["n"] = max(0, min(batch_size, params["max_ack_pending"] - params["held"]))
        params["cap"] = INFO_CAP
        params.update(Reader.from_row(params).params())
        rows = await _take(conn, params, schema)
        info, wake = await _info(conn, params, schema)
    messages = tuple(
        Message(
            _tokens.AckToken(
                consumer.id, str(r["id"]), r["delivery_id"], r["updated_idx"]
            ).encode(),
            record_from_row(r),
        )
        for r in rows
    )
    return Claimed(messages, info, wake)


async def _take(conn: AConn, params: dict[str, Any], schema: str) -> list[dict[str, Any]]:
    """Claim ``params["n"]`` messages (after marking the exhausted dead), pulling from the
    stream what the ready ones do not cover.

    A pulled record may not be claimable (a worker holds an older version of it, or a newer
    version was committed since the pull): then the cursor pulls again, twice as far each
    round, until the claim is full or the stream has nothing more. ``params`` ends with the
    cursor where the last pull left it.
    """
    await conn.execute(q(schema, _MARK_DEAD), params)
    want: int = params["n"]
    rows: list[dict[str, Any]] = []
    reader = Reader.from_row(params)
    short = want - params["ready"]
    while True:
        more = True  # the stream may hold more records for this consumer
        if short > 0:
            pulled = await enqueue(conn, reader, short, schema=schema)
            reader = replace(reader, cursor=pulled.cursor)
            params.update(reader.params())
            more = len(pulled.ids) == short
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q(schema, _CLAIM), {**params, "n": want - len(rows)})
            rows += await cur.fetchall()
        if len(rows) >= want or not more:
            return rows
        short = max(2 * short, want - len(rows))


async def _info(
    conn: AConn, params: dict[str, Any], schema: str
) -> tuple[ConsumerInfo, float | None]:
    cur = await conn.execute(q(schema, _INFO.replace("{backlog}", BACKLOG)), params)
    row = await cur.fetchone()
    assert row is not None
    pending, ack_pending, dead, wake = row
    return ConsumerInfo(pending, ack_pending, dead), None if wake is None else float(wake)


async def info(
    conn: AConn, consumer: Consumer, *, schema: str = DEFAULT_SCHEMA, clock: Clock = db_clock
) -> ConsumerInfo:
    """``num_pending``, ``num_ack_pending`` and ``num_dead`` of a consumer, now."""
    params = {"c": consumer.id, "maxd": consumer.max_deliver, "now": clock(), "cap": None}
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q(schema, _READER.replace("{reader_cols}", READER_COLS)), [consumer.id])
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"consumer {consumer.id!r} not found")
        params.update(Reader.from_row(row).params())
        return (await _info(conn, params, schema))[0]


def _decode_all(consumer: Consumer, ack_tokens: Sequence[str]) -> dict[tuple[str, int], str]:
    if isinstance(ack_tokens, str) or not isinstance(ack_tokens, Sequence):
        raise InvalidAckToken("ack_tokens: expected a list of ack token strings")
    out: dict[tuple[str, int], str] = {}
    for i, token in enumerate(ack_tokens):
        try:
            t = _tokens.decode(token, consumer.id)
        except InvalidAckToken as e:
            raise InvalidAckToken(f"ack_tokens[{i}]: {e}; nothing was acked or nacked") from None
        out[(t.record_id, t.delivery_id)] = token
    return out


async def _hold(
    conn: AConn, consumer: Consumer, ack_tokens: Sequence[str], schema: str
) -> list[uuid.UUID]:
    """Lock the deliveries the tokens name; every one must be current, else nothing happens."""
    wanted = _decode_all(consumer, ack_tokens)
    cur = await conn.execute(
        q(schema, _HELD),
        {
            "c": consumer.id,
            "rids": [uuid.UUID(rid) for rid, _ in wanted],
            "dids": [did for _, did in wanted],
        },
    )
    found = {(str(rid), did) for rid, did in await cur.fetchall()}
    stale = [token for key, token in wanted.items() if key not in found]
    if stale:
        raise InvalidAckToken(
            f"{len(stale)} of {len(wanted)} ack token(s) are expired or already used "
            f"(the message was acked, nacked or redelivered since), e.g. {stale[0][:16]}...; "
            "nothing was acked or nacked"
        )
    return sorted(uuid.UUID(rid) for rid, _ in found)


async def ack(
    conn: AConn, consumer: Consumer, ack_tokens: Sequence[str], *, schema: str = DEFAULT_SCHEMA
) -> int:
    """Acknowledge deliveries; returns how many records are now done for this consumer.

    A record that got a newer version while it was held goes back to pending (not counted).
    Any invalid token raises :class:`InvalidAckToken` and changes nothing.
    """
    if not ack_tokens:
        return 0
    async with conn.transaction():
        rids = await _hold(conn, consumer, ack_tokens, schema)
        cur = await conn.execute(q(schema, _ACK), {"c": consumer.id, "rids": rids})
        row = await cur.fetchone()
        assert row is not None
        done, again = row
        if again:
            await conn.execute("SELECT pg_notify(%s, %s)", [channel(schema), consumer.stream_id])
    return int(done)


async def nack(
    conn: AConn,
    consumer: Consumer,
    ack_tokens: Sequence[str],
    *,
    schema: str = DEFAULT_SCHEMA,
    clock: Clock = db_clock,
) -> int:
    """Make deliveries available again now; returns how many became dead letters instead
    (their ``max_deliver`` attempts are used up). Invalid tokens change nothing."""
    if not ack_tokens:
        return 0
    async with conn.transaction():
        rids = await _hold(conn, consumer, ack_tokens, schema)
        params = {"c": consumer.id, "rids": rids, "maxd": consumer.max_deliver, "now": clock()}
        cur = await conn.execute(q(schema, _NACK), params)
        states = [s for (s,) in await cur.fetchall()]
        if "pending" in states:
            await conn.execute("SELECT pg_notify(%s, %s)", [channel(schema), consumer.stream_id])
    return states.count("dead")


async def list_dead_letters(
    conn: AConn,
    consumer: Consumer,
    *,
    limit: int = 100,
    schema: str = DEFAULT_SCHEMA,
    clock: Clock = db_clock,
) -> list[DeadLetter]:
    """Dead letters, oldest first (marking those whose last attempt just expired)."""
    params = {"c": consumer.id, "maxd": consumer.max_deliver, "now": clock(), "limit": limit}
    async with conn.transaction():
        await conn.execute(q(schema, _MARK_DEAD), params)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q(schema, _DEAD), params)
            rows = await cur.fetchall()
    return [
        DeadLetter(record_from_row(r), r["deliver_count"], r["dead_at"], r["last_error"])
        for r in rows
    ]


_ERRORS = """
UPDATE {consumer_messages} m SET last_error = e.reason
FROM unnest(%(ids)s::uuid[], %(reasons)s::text[]) AS e(record_id, reason)
WHERE m.consumer_id = %(c)s AND m.record_id = e.record_id
"""


async def record_errors(
    conn: AConn, consumer: Consumer, reasons: Mapping[str, str], *, schema: str = DEFAULT_SCHEMA
) -> None:
    """Remember why records failed (by record id): a dead letter then lists its reason.

    Call it before nacking them. Reasons must already be free of secrets (see ``redact``).
    """
    if not reasons:
        return
    ids = [uuid.UUID(record_id) for record_id in reasons]
    params = {"c": consumer.id, "ids": ids, "reasons": [r[:2000] for r in reasons.values()]}
    async with conn.transaction():
        await conn.execute(q(schema, _ERRORS), params)


async def replay_dead_letters(
    conn: AConn,
    consumer: Consumer,
    record_ids: Sequence[str] | None = None,
    *,
    schema: str = DEFAULT_SCHEMA,
) -> int:
    """Make dead letters (all, or those of ``record_ids``) pending again with a fresh
    ``max_deliver`` budget; returns how many."""
    rids = None if record_ids is None else [uuid.UUID(str(r)) for r in record_ids]
    async with conn.transaction():
        cur = await conn.execute(q(schema, _REPLAY), {"c": consumer.id, "rids": rids})
        if cur.rowcount:
            await conn.execute("SELECT pg_notify(%s, %s)", [channel(schema), consumer.stream_id])
    return cur.rowcount


async def count_redelivered(
    conn: AConn, consumer: Consumer, delivery_ids: Sequence[int], *, schema: str = DEFAULT_SCHEMA
) -> int:
    """How many of the deliveries ``delivery_ids`` were not their message's first attempt."""
    cur = await conn.execute(
        q(
            schema,
            "SELECT count(*) FROM {consumer_messages} WHERE consumer_id = %s "
            "AND delivery_id = ANY(%s) AND deliver_count > 1",
        ),
        [consumer.id, list(delivery_ids)],
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
