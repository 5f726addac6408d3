"""The stream write path: upstream snapshots and deletions in, versioned records out.

:func:`write` takes the snapshots of one ``(sync, collection)`` and, in the caller's transaction,
with a constant number of round trips whatever the batch size (COPY into a temporary staging
table, then one set-based statement; a chunk of live objects none of which the stream has seen
yet, a backfill's case, skips the staging: COPY straight into ``records``, then its ``created``
events copied from there):

- gives each object its stable id, :func:`upsync.records.record_id` (invariant 1);
- keeps one snapshot per object (the one that wins the rule below) and compares it with the
  stored record;
- for each object whose data or ``deleted`` flag actually changes, gives it a new
  ``updated_idx`` (invariant 2: strictly increasing across the stream; the batch takes one value
  ``v`` from the schema's sequence and numbers each change ``(v << 20) + 1 +`` its position in
  the batch, so every later batch is above every earlier one; the gaps are harmless), upserts
  the record, appends a ``created`` / ``updated`` / ``deleted`` event (``changes`` holds the
  previous values of the top-level fields that changed); consumers pull it from there
  (:mod:`upsync.stream.cursor`: a write costs the same whatever the number of consumers);
- unchanged objects bump nothing and emit nothing.

**Staleness rule (invariant 3).** Every snapshot carries a ``source_version`` (a bigint the sync
chooses so that a later upstream state has a greater value, e.g. the epoch milliseconds at which
it observed the object, or the creating event's timestamp). A snapshot is *stale*, and ignored,
when its ``source_version`` is lower than the stored one. On an equal ``source_version`` the
later write wins (re-writing the same snapshot is a no-op because nothing changed), except that a
live snapshot never replaces a tombstone of the same version: a delete is final at a tie. Within
one batch the same rule picks the winner: highest ``source_version``, then tombstone, then the
later position in the batch. A newer snapshot whose data equals the stored data only raises the
stored ``source_version`` (no new ``updated_idx``, no event), so a still older snapshot arriving
later stays stale.

Writes of the same ``(sync, collection)`` are serialised by a transaction-scoped advisory lock
(the ids of two different pairs never overlap, so no other writer can touch these records).
Every write also holds a ``FOR KEY SHARE`` lock on its stream row until commit; consumer
creation, rewind and deletion take ``FOR UPDATE`` on that row, so they place a consumer's cursor
while no write is in progress.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict

import orjson
from psycopg import sql

from upsync.errors import ConfigurationError, NotFound, RecordError
from upsync.records import RecordIds
from upsync.stream.clock import Clock, db_clock
from upsync.stream.models import Sync, UpstreamObject, WriteResult
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, channel, q

_MAX_BIGINT = 2**63 - 1
#: Rows per staged statement: a batch's versions are (sequence value << 20) + 1 + position.
MAX_CHUNK = 1_000_000
_STAGE_COLUMNS = (
    "ord",
    "id",
    "upstream_id",
    "data",
    "deleted",
    "source_version",
    "upstream_created_at",
    "upstream_updated_at",
)

_PREPARE = """
CREATE TEMP TABLE IF NOT EXISTS upsync_stage (
    ord integer NOT NULL,
    id uuid NOT NULL,
    upstream_id text NOT NULL,
    data jsonb,
    deleted boolean NOT NULL,
    source_version bigint NOT NULL,
    upstream_created_at timestamptz,
    upstream_updated_at timestamptz
) ON COMMIT DELETE ROWS;
TRUNCATE pg_temp.upsync_stage
"""

_LOCK = """
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0)) AS locked, s.id,
    current_setting('transaction_isolation') AS isolation,
    -- batches sort and hash a few MB: keep that in memory (until this transaction ends)
    {roomy_work_mem} AS work_mem
FROM {streams} s WHERE s.id = %(stream)s FOR KEY SHARE
"""

_APPLY = """
WITH s AS (
    SELECT DISTINCT ON (id) *
    FROM pg_temp.upsync_stage
    ORDER BY id, source_version DESC, deleted DESC, ord DESC
),
p AS MATERIALIZED (
    SELECT s.*,
        r.id IS NOT NULL AS existed,
        r.data AS old_data,
        coalesce(s.data, r.data, '{{}}'::jsonb) AS new_data,
        (r.id IS NOT NULL AND (s.source_version < r.source_version
            OR (s.source_version = r.source_version AND r.deleted AND NOT s.deleted))) AS stale,
        CASE
            WHEN r.id IS NULL THEN true
            WHEN s.deleted AND r.deleted THEN false
            WHEN s.deleted <> r.deleted THEN true
            ELSE coalesce(s.data, r.data) IS DISTINCT FROM r.data
        END AS changed,
        r.source_version AS old_version,
        -- one sequence value per batch (an InitPlan, evaluated once), not per row: nextval()
        -- costs a WAL write every few calls; numbered by position in the batch, so no sort
        (SELECT nextval({seq}) << 20) + s.ord - %(first)s + 1 AS idx,
        CASE
            WHEN s.deleted THEN 'deleted'
            WHEN r.id IS NULL OR r.deleted THEN 'created'
            ELSE 'updated'
        END AS event
    FROM s LEFT JOIN {records} r ON r.id = s.id
),
-- the changes (not materialized again: each use filters p)
c AS NOT MATERIALIZED (SELECT * FROM p WHERE changed AND NOT stale),
-- new records by plain INSERT (cheaper than ON CONFLICT's speculative insertion): the
-- advisory lock keeps every other writer away from this (sync, collection)'s ids
ins AS (
    INSERT INTO {records} (id, stream_id, sync_id, provider, collection_id, upstream_id, data,
        deleted, updated_idx, source_version, upstream_created_at, upstream_updated_at,
        inserted_at, updated_at)
    SELECT id, %(stream)s, %(sync)s, %(provider)s, %(collection)s, upstream_id, new_data,
        deleted, idx, source_version, upstream_created_at, upstream_updated_at, {now}, {now}
    FROM c WHERE NOT c.existed
),
upd AS (
    UPDATE {records} r SET
        data = c.new_data,
        deleted = c.deleted,
        updated_idx = c.idx,
        source_version = c.source_version,
        upstream_created_at = coalesce(c.upstream_created_at, r.upstream_created_at),
        upstream_updated_at = coalesce(c.upstream_updated_at, r.upstream_updated_at),
        updated_at = {now},
        xid = pg_current_xact_id()::text::bigint
    FROM c WHERE r.id = c.id AND c.existed
),
bump AS (
    UPDATE {records} r SET source_version = p.source_version
    FROM p
    WHERE r.id = p.id AND p.existed AND NOT p.changed AND NOT p.stale
        AND p.source_version > p.old_version
),
ev AS (
    INSERT INTO {events} (seq, stream_id, sync_id, record_id, provider, collection_id,
        upstream_id, event, data, changes, upstream_updated_at, inserted_at)
    SELECT idx, %(stream)s, %(sync)s, id, %(provider)s, %(collection)s, upstream_id, event,
        new_data,
        CASE WHEN event = 'updated' THEN (
            SELECT coalesce(jsonb_object_agg(k, old_data -> k), '{{}}'::jsonb)
            FROM (SELECT jsonb_object_keys(old_data) UNION SELECT jsonb_object_keys(new_data)) ks(k)
            WHERE (old_data -> k) IS DISTINCT FROM (new_data -> k)
        ) END,
        upstream_updated_at, {now}
    FROM c
),
note AS (
    SELECT pg_notify(%(channel)s, %(stream)s::text) FROM (SELECT 1 FROM c LIMIT 1) one
)
SELECT
    (SELECT count(*) FROM c WHERE event = 'created') AS created,
    (SELECT count(*) FROM c WHERE event = 'updated') AS updated,
    (SELECT count(*) FROM c WHERE event = 'deleted') AS deleted,
    (SELECT count(*) FROM p WHERE NOT changed AND NOT stale) AS unchanged,
    (SELECT count(*) FROM p WHERE stale) AS stale,
    (SELECT max(idx) FROM c) AS max_idx,
    (SELECT count(*) FROM note) AS notified
"""


class _Where(TypedDict):
    index: int
    record_id: str


def stage_rows(
    sync_id: str, collection_id: str, objects: Iterable[UpstreamObject | Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Validate and encode ``objects`` as staging rows; any bad object raises before any write.

    Raises :class:`~upsync.errors.RecordError` naming the object's index, upstream id and field.
    """
    rows = []
    ids = RecordIds(sync_id, collection_id)
    for i, raw in enumerate(objects):
        obj = _coerce(raw, i)
        if not isinstance(obj.upstream_id, str) or not obj.upstream_id:
            raise RecordError("expected a non-empty string", index=i, field="upstream_id")
        if "\x00" in obj.upstream_id:
            raise RecordError(
                "contains a NUL character, which Postgres text rejects",
                index=i,
                field="upstream_id",
            )
        where = _Where(index=i, record_id=obj.upstream_id)
        version = obj.source_version
        if type(version) is not int or not -_MAX_BIGINT <= version <= _MAX_BIGINT:
            raise RecordError(
                f"expected a bigint, got {version!r}", field="source_version", **where
            )
        if type(obj.deleted) is not bool:
            raise RecordError("expected true or false", field="deleted", **where)
        data = None
        if obj.data is not None:
            if not isinstance(obj.data, Mapping):
                raise RecordError("expected a JSON object", field="data", **where)
            data = _json(obj.data, where)
        elif not obj.deleted:
            raise RecordError("missing; a live snapshot needs its data", field="data", **where)
        for name in ("upstream_created_at", "upstream_updated_at"):
            value = getattr(obj, name)
            if value is not None and not (isinstance(value, datetime) and value.tzinfo):
                raise RecordError("expected a timezone-aware datetime", field=name, **where)
        rows.append(
            (
                i,
                ids(obj.upstream_id),
                obj.upstream_id,
                data,
                obj.deleted,
                version,
                obj.upstream_created_at,
                obj.upstream_updated_at,
            )
        )
    return rows


def _coerce(raw: UpstreamObject | Mapping[str, Any], index: int) -> UpstreamObject:
    if isinstance(raw, UpstreamObject):
        return raw
    if not isinstance(raw, Mapping):
        raise RecordError(
            f"expected an UpstreamObject or a mapping, got {type(raw).__name__}", index=index
        )
    try:
        return UpstreamObject(**raw)
    except TypeError as e:
        raise RecordError(f"not an upstream object: {e}", index=index) from None


def _json(data: Mapping[str, Any], where: _Where) -> str:
    try:
        text = orjson.dumps(data).decode()
    except TypeError as e:
        raise RecordError(f"not JSON-serialisable: {e}", field="data", **where) from None
    if "\\u0000" in text:
        raise RecordError(
            "contains a NUL character, which Postgres jsonb rejects", field="data", **where
        )
    return text


def check_isolation(level: str) -> None:
    """The stream's locking assumes each statement sees what committed before it started."""
    if level != "read committed":
        raise ConfigurationError(
            f"upsync.stream needs READ COMMITTED transactions, this one is {level.upper()}: "
            "a snapshot taken before a lock wait would miss the writes it waited for"
        )


def _add(a: WriteResult, b: WriteResult) -> WriteResult:
    top = [x for x in (a.max_updated_idx, b.max_updated_idx) if x is not None]
    return WriteResult(
        a.created + b.created,
        a.updated + b.updated,
        a.deleted + b.deleted,
        a.unchanged + b.unchanged,
        a.stale + b.stale,
        max(top) if top else None,
    )


def _check_target(sync: Sync, collection_id: str) -> None:
    provider, sep, name = collection_id.partition(":")
    if not sep or not name:
        raise ConfigurationError(f"collection_id {collection_id!r}: expected 'provider:name'")
    if provider != sync.provider:
        raise ConfigurationError(
            f"collection_id {collection_id!r} does not belong to sync {sync.id} "
            f"(provider {sync.provider!r})"
        )


async def write(
    conn: AConn,
    sync: Sync,
    collection_id: str,
    objects: Iterable[UpstreamObject | Mapping[str, Any]],
    *,
    schema: str = DEFAULT_SCHEMA,
    clock: Clock = db_clock,
) -> WriteResult:
    """Write snapshots and deletions of one ``(sync, collection)`` into the stream.

    Runs in ``conn.transaction()``: it commits on return when no transaction was open, and
    otherwise becomes part of the caller's transaction (so a sync can commit its cursor with the
    records it covers). Invalid input raises :class:`~upsync.errors.RecordError` before
    anything is written. See the module docstring for the rules.
    """
    _check_target(sync, collection_id)
    rows = stage_rows(sync.id, collection_id, objects)
    if not rows:
        return WriteResult()
    total = WriteResult()
    async with conn.transaction():
        for start in range(0, len(rows), MAX_CHUNK):
            total = _add(
                total,
                await _write_chunk(
                    conn, sync, collection_id, rows[start : start + MAX_CHUNK], schema, clock
                ),
            )
    return total


async def _write_chunk(
    conn: AConn,
    sync: Sync,
    collection_id: str,
    rows: list[tuple[Any, ...]],
    schema: str,
    clock: Clock,
) -> WriteResult:
    cur = await conn.execute(
        q(schema, _LOCK),
        {"key": f"upsync.write:{schema}:{sync.id}:{collection_id}", "stream": sync.stream_id},
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"stream {sync.stream_id!r} of sync {sync.id} not found")
    check_isolation(row[2])
    params = {
        "stream": sync.stream_id,
        "sync": sync.id,
        "provider": sync.provider,
        "collection": collection_id,
        "channel": channel(schema),
        "now": clock(),
        "first": rows[0][0],
    }
    if _all_new_candidates(rows):
        created = await _insert_if_all_new(conn, rows, params, schema)
        if created is not None:
            return created
    await conn.execute(_PREPARE)
    async with conn.cursor().copy(
        "COPY pg_temp.upsync_stage ({}) FROM STDIN".format(", ".join(_STAGE_COLUMNS))
    ) as copy:
        for row in rows:
            await copy.write_row(row)
    cur = await conn.execute(q(schema, _APPLY), params)
    counts = await cur.fetchone()
    assert counts is not None
    created, updated, deleted, unchanged, stale, max_idx, _ = counts
    return WriteResult(created, updated, deleted, unchanged, stale, max_idx)


# -- the bulk-insert path: a chunk of objects the stream has never seen -----------------------
# (a backfill's case). Under the (sync, collection) advisory lock nobody else can create these
# ids, so once none exists the records go by COPY straight into the table, with no staging, and
# their `created` events are copied from them server-side. Same numbering as the staged path.

_NEW_CHECK = """
SELECT CASE WHEN found.n = 0 THEN nextval({seq}) << 20 END AS base, {now} AS now
FROM (
    SELECT count(x.id) AS n FROM unnest(%(ids)s::uuid[]) AS t(id)
    -- one key lookup per id (OFFSET 0: not turned into a join that may scan the stream)
    CROSS JOIN LATERAL (SELECT r.id FROM {records} r WHERE r.id = t.id OFFSET 0) x
) found
"""

# a staging row without its position, then what the staged statement would add
_NEW_COLUMNS = (
    *_STAGE_COLUMNS[1:],
    "updated_idx",
    "stream_id",
    "sync_id",
    "provider",
    "collection_id",
    "inserted_at",
    "updated_at",
)

_NEW_EVENTS = """
WITH ev AS (
    INSERT INTO {events} (seq, stream_id, sync_id, record_id, provider, collection_id,
        upstream_id, event, data, changes, upstream_updated_at, inserted_at)
    SELECT r.updated_idx, r.stream_id, r.sync_id, r.id, r.provider, r.collection_id,
        r.upstream_id, 'created', r.data, NULL, r.upstream_updated_at, r.inserted_at
    FROM {records} r
    WHERE r.stream_id = %(stream)s AND r.updated_idx > %(base)s AND r.updated_idx <= %(top)s
    RETURNING 1
)
SELECT count(*), pg_notify(%(channel)s, %(stream)s::text) FROM ev
"""


def _all_new_candidates(rows: list[tuple[Any, ...]]) -> bool:
    """Live snapshots with distinct ids: what the bulk-insert path can take if none exists."""
    return not any(r[4] for r in rows) and len({r[1] for r in rows}) == len(rows)


async def _insert_if_all_new(
    conn: AConn, rows: list[tuple[Any, ...]], params: dict[str, Any], schema: str
) -> WriteResult | None:
    """Insert ``rows`` by COPY if none of their ids is in the stream; ``None`` if some is."""
    cur = await conn.execute(q(schema, _NEW_CHECK), {**params, "ids": [r[1] for r in rows]})
    found = await cur.fetchone()
    assert found is not None
    base, now = found
    if base is None:
        return None
    first = params["first"]
    fixed = (params["stream"], params["sync"], params["provider"], params["collection"], now, now)
    columns = ", ".join(_NEW_COLUMNS)
    async with conn.cursor().copy(
        sql.SQL("COPY {} (" + columns + ") FROM STDIN").format(sql.Identifier(schema, "records"))
    ) as copy:
        for row in rows:
            await copy.write_row((*row[1:], base + row[0] - first + 1, *fixed))
    top = base + rows[-1][0] - first + 1
    cur = await conn.execute(q(schema, _NEW_EVENTS), {**params, "base": base, "top": top})
    counted = await cur.fetchone()
    assert counted is not None and counted[0] == len(rows)
    return WriteResult(created=len(rows), max_updated_idx=top)
