"""Consumers: create, list, get, update, delete, rewind (connection-level).

A consumer reads the stream through a cursor (:mod:`upsync.stream.cursor`); creating one and
rewinding one only place that cursor. Both lock the stream row ``FOR UPDATE``, which waits for
every writer holding its ``FOR KEY SHARE`` lock to commit and holds new writers back until the
placement commits, so the start position is exact.

``deliver_policy`` (applied once, at creation):

- ``all``: every record currently in the stream that matches the filters, then every change;
- ``new``: only records written after the consumer was created;
- ``last``: the single most recently written matching record (highest ``updated_idx``), then
  every change (like NATS' DeliverLast: a consumer that starts "at the last message");
- ``1h``: matching records written (created or changed in the stream) during the last hour by
  the consumer's clock, then every change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from upsync.errors import ConfigurationError, NotFound
from upsync.stream.catalog import as_uuid, get_stream
from upsync.stream.clock import Clock, db_clock
from upsync.stream.cursor import rewind_cursor, set_cursor
from upsync.stream.models import CONSUMER_DEFAULTS, DELIVER_POLICIES, Consumer, Filters
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, channel, q
from upsync.stream.write import check_isolation

_UNSET: Any = object()

_MATCHING = """
SELECT {agg} FROM {records} r
WHERE r.stream_id = %(stream)s
    AND (%(fp)s = '*' OR r.provider = %(fp)s)
    AND (%(fs)s = '*' OR r.sync_id::text = %(fs)s)
    AND (%(fc)s = '*' OR r.collection_id = %(fc)s)
    AND r.updated_idx > %(after)s
    AND (%(since)s::timestamptz IS NULL OR r.updated_at >= %(since)s::timestamptz)
"""


def check_settings(
    *,
    deliver_policy: str = CONSUMER_DEFAULTS.deliver_policy,
    ack_wait_ms: int = CONSUMER_DEFAULTS.ack_wait_ms,
    max_deliver: int = CONSUMER_DEFAULTS.max_deliver,
    max_ack_pending: int = CONSUMER_DEFAULTS.max_ack_pending,
) -> None:
    """Raise :class:`ConfigurationError` naming the first invalid setting."""
    if deliver_policy not in DELIVER_POLICIES:
        raise ConfigurationError(
            f"deliver_policy: expected one of {list(DELIVER_POLICIES)}, got {deliver_policy!r}"
        )
    for name, value, low in (
        ("ack_wait_ms", ack_wait_ms, 1),
        ("max_ack_pending", max_ack_pending, 1),
    ):
        if type(value) is not int or not low <= value <= 2**31 - 1:
            raise ConfigurationError(f"{name}: expected an integer >= {low}, got {value!r}")
    if type(max_deliver) is not int or not (max_deliver == -1 or 1 <= max_deliver <= 2**31 - 1):
        raise ConfigurationError(
            f"max_deliver: expected -1 (unlimited) or an integer >= 1, got {max_deliver!r}"
        )


def _consumer(row: dict[str, Any]) -> Consumer:
    return Consumer(
        id=str(row["id"]),
        stream_id=str(row["stream_id"]),
        name=row["name"],
        kind=row["kind"],
        filters=Filters(row["filter_provider"], row["filter_sync_id"], row["filter_collection_id"]),
        deliver_policy=row["deliver_policy"],
        ack_wait_ms=row["ack_wait_ms"],
        max_deliver=row["max_deliver"],
        max_ack_pending=row["max_ack_pending"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _check_filters(filters: Filters) -> Filters:
    if filters.sync_id != "*":
        as_uuid(filters.sync_id, "filters.sync_id: sync")
    return filters


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigurationError("name: expected a non-empty string")
    if "\x00" in name:
        raise ConfigurationError("name: contains a NUL character")
    return name


async def lock_stream(conn: AConn, stream_id: str, *, schema: str) -> None:
    """Wait for in-flight writers of the stream and hold new ones until this transaction ends."""
    cur = await conn.execute(
        q(
            schema,
            "SELECT id, current_setting('transaction_isolation') FROM {streams} "
            "WHERE id = %s FOR UPDATE",
        ),
        [stream_id],
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"stream {stream_id!r} not found")
    check_isolation(row[1])


async def _matching(
    conn: AConn,
    consumer: Consumer,
    agg: str,
    *,
    after: int = 0,
    since: datetime | None = None,
    schema: str,
) -> int | None:
    """``agg`` (an aggregate over ``r``) of the records matching the consumer's filters."""
    f = consumer.filters
    query = q(schema, _MATCHING.replace("{agg}", agg))
    cur = await conn.execute(
        query,
        {
            "stream": consumer.stream_id,
            "fp": f.provider,
            "fs": f.sync_id,
            "fc": f.collection_id,
            "after": after,
            "since": since,
        },
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def _start_after(conn: AConn, consumer: Consumer, clock: Clock, schema: str) -> int:
    """Where ``deliver_policy`` starts the cursor (the stream is locked: no writer is active)."""
    policy = consumer.deliver_policy
    if policy == "all":
        return 0
    cur = await conn.execute(
        q(schema, "SELECT coalesce(max(updated_idx), 0) FROM {records} WHERE stream_id = %s"),
        [consumer.stream_id],
    )
    row = await cur.fetchone()
    end = int(row[0]) if row else 0
    if policy == "last":
        last = await _matching(conn, consumer, "max(r.updated_idx)", schema=schema)
        return end if last is None else last - 1
    if policy == "1h":
        since = await _now(conn, clock) - timedelta(hours=1)
        first = await _matching(conn, consumer, "min(r.updated_idx)", since=since, schema=schema)
        return end if first is None else first - 1
    return end  # "new"


async def _now(conn: AConn, clock: Clock) -> datetime:
    now = clock()
    if now is not None:
        return now
    cur = await conn.execute("SELECT now()")
    row = await cur.fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


async def create_consumer(
    conn: AConn,
    *,
    stream_id: str,
    name: str,
    filters: Mapping[str, Any] | Filters | None = None,
    deliver_policy: str = CONSUMER_DEFAULTS.deliver_policy,
    ack_wait_ms: int = CONSUMER_DEFAULTS.ack_wait_ms,
    max_deliver: int = CONSUMER_DEFAULTS.max_deliver,
    max_ack_pending: int = CONSUMER_DEFAULTS.max_ack_pending,
    metadata: Mapping[str, Any] | None = None,
    kind: str = "http",
    schema: str = DEFAULT_SCHEMA,
    clock: Clock = db_clock,
) -> Consumer:
    """Create a consumer and queue what its ``deliver_policy`` says it starts with."""
    check_settings(
        deliver_policy=deliver_policy,
        ack_wait_ms=ack_wait_ms,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
    )
    flt = _check_filters(Filters.parse(filters))
    _check_name(name)
    async with conn.transaction():
        sid = (await get_stream(conn, as_uuid(stream_id, "stream"), schema=schema)).id
        await lock_stream(conn, sid, schema=schema)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                q(
                    schema,
                    "INSERT INTO {consumers} (stream_id, name, kind, filter_provider, "
                    "filter_sync_id, filter_collection_id, deliver_policy, ack_wait_ms, "
                    "max_deliver, max_ack_pending, metadata) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (stream_id, name) DO NOTHING RETURNING *",
                ),
                [
                    sid,
                    name,
                    kind,
                    flt.provider,
                    flt.sync_id,
                    flt.collection_id,
                    deliver_policy,
                    ack_wait_ms,
                    max_deliver,
                    max_ack_pending,
                    Jsonb(dict(metadata or {})),
                ],
            )
            row = await cur.fetchone()
        if row is None:
            raise ConfigurationError(
                f"name: a consumer named {name!r} already exists on this stream"
            )
        consumer = _consumer(row)
        after = await _start_after(conn, consumer, clock, schema)
        await set_cursor(conn, consumer.id, after, schema=schema)
        await conn.execute("SELECT pg_notify(%s, %s)", [channel(schema), consumer.stream_id])
    return consumer


async def get_consumer(
    conn: AConn, id_or_name: str, *, stream_id: str | None = None, schema: str = DEFAULT_SCHEMA
) -> Consumer:
    """The consumer with that id, or that name (on ``stream_id`` when names repeat)."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            q(
                schema,
                "SELECT * FROM {consumers} WHERE (id::text = %(k)s OR name = %(k)s) "
                "AND (%(s)s::text IS NULL OR stream_id::text = %(s)s) "
                "ORDER BY id::text = %(k)s DESC",
            ),
            {"k": id_or_name, "s": stream_id},
        )
        rows = await cur.fetchall()
    if not rows:
        raise NotFound(f"consumer {id_or_name!r} not found")
    if len(rows) > 1 and str(rows[0]["id"]) != id_or_name:
        raise ConfigurationError(
            f"consumer name {id_or_name!r} exists on {len(rows)} streams; use its id"
        )
    return _consumer(rows[0])


async def list_consumers(
    conn: AConn,
    *,
    stream_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> list[Consumer]:
    """Consumers, oldest first; ``metadata`` filters by containment."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            q(
                schema,
                "SELECT * FROM {consumers} WHERE (%(s)s::text IS NULL OR stream_id::text = %(s)s) "
                "AND (%(m)s::jsonb IS NULL OR metadata @> %(m)s) ORDER BY created_at, id",
            ),
            {"s": stream_id, "m": None if metadata is None else Jsonb(dict(metadata))},
        )
        return [_consumer(r) for r in await cur.fetchall()]


async def update_consumer(
    conn: AConn,
    consumer: Consumer,
    *,
    name: str = _UNSET,
    filters: Mapping[str, Any] | Filters = _UNSET,
    ack_wait_ms: int = _UNSET,
    max_deliver: int = _UNSET,
    max_ack_pending: int = _UNSET,
    metadata: Mapping[str, Any] = _UNSET,
    deliver_policy: str = _UNSET,
    schema: str = DEFAULT_SCHEMA,
) -> Consumer:
    """Change settings. New ``filters`` apply to the records the consumer's cursor has not
    reached yet (use :func:`rewind` to re-deliver older records that now match)."""
    if deliver_policy is not _UNSET and deliver_policy != consumer.deliver_policy:
        raise ConfigurationError(
            "deliver_policy: applies only when a consumer is created; use rewind to re-deliver"
        )
    values: dict[str, Any] = {}
    if name is not _UNSET:
        values["name"] = _check_name(name)
    if filters is not _UNSET:
        flt = _check_filters(Filters.parse(filters))
        values.update(
            filter_provider=flt.provider,
            filter_sync_id=flt.sync_id,
            filter_collection_id=flt.collection_id,
        )
    settings: dict[str, int] = {
        "ack_wait_ms": consumer.ack_wait_ms if ack_wait_ms is _UNSET else ack_wait_ms,
        "max_deliver": consumer.max_deliver if max_deliver is _UNSET else max_deliver,
        "max_ack_pending": consumer.max_ack_pending
        if max_ack_pending is _UNSET
        else max_ack_pending,
    }
    check_settings(
        ack_wait_ms=settings["ack_wait_ms"],
        max_deliver=settings["max_deliver"],
        max_ack_pending=settings["max_ack_pending"],
    )
    values.update(settings)
    if metadata is not _UNSET:
        values["metadata"] = Jsonb(dict(metadata))
    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
    )
    query = sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE id = {} RETURNING *").format(
        sql.Identifier(schema, "consumers"), sets, sql.Placeholder("_id")
    )
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if filters is not _UNSET:
            await lock_stream(conn, consumer.stream_id, schema=schema)
        try:
            await cur.execute(query, {**values, "_id": consumer.id})
        except Exception as e:
            if getattr(e, "sqlstate", None) == "23505":
                raise ConfigurationError(
                    f"name: a consumer named {name!r} already exists"
                ) from None
            raise
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"consumer {consumer.id!r} not found")
    return _consumer(row)


async def delete_consumer(conn: AConn, consumer: Consumer, *, schema: str = DEFAULT_SCHEMA) -> None:
    """Delete a consumer and everything it still owed (pending, in-flight, dead)."""
    async with conn.transaction():
        await lock_stream(conn, consumer.stream_id, schema=schema)
        await conn.execute(
            q(schema, "DELETE FROM {consumer_messages} WHERE consumer_id = %s"), [consumer.id]
        )
        cur = await conn.execute(q(schema, "DELETE FROM {consumers} WHERE id = %s"), [consumer.id])
        if cur.rowcount == 0:
            raise NotFound(f"consumer {consumer.id!r} not found")


async def rewind(
    conn: AConn, consumer: Consumer, *, after_idx: int = 0, schema: str = DEFAULT_SCHEMA
) -> int:
    """Re-deliver every matching record whose ``updated_idx`` is greater than ``after_idx``
    (``0``: replay from the start): the consumer's cursor moves back there. Dead letters among
    them are revived when the cursor reaches them; messages currently held by a worker stay with
    it. Returns how many records the cursor will deliver again."""
    if type(after_idx) is not int or after_idx < 0:
        raise ConfigurationError(f"after_idx: expected an integer >= 0, got {after_idx!r}")
    async with conn.transaction():
        await lock_stream(conn, consumer.stream_id, schema=schema)
        await rewind_cursor(conn, consumer.id, after_idx, schema=schema)
        queued = await _matching(conn, consumer, "count(*)", after=after_idx, schema=schema)
        await conn.execute("SELECT pg_notify(%s, %s)", [channel(schema), consumer.stream_id])
    return queued or 0
