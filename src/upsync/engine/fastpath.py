"""The server-side path of a managed table consumer whose tables live in the stream's database.

Claiming a batch, applying it and acking it need not move a single record through Python: in
one transaction, under the consumer's row lock (engines sharing a consumer take turns), the
consumer's cursor moves past its next records (:mod:`upsync.stream.cursor`; messages waiting
for a retry, if any, are taken and deleted first, the same ones the Python path would hand out:
see :data:`upsync.stream.delivery.DELIVERABLE`), and each target table gets one guarded
``INSERT … SELECT`` straight from the stream's ``records``:

    INSERT INTO t (…) SELECT <column expressions> FROM records r LEFT JOIN syncs s …
    WHERE r.id = ANY(<claimed ids>) AND r.collection_id = … ORDER BY r.id
    ON CONFLICT (id) DO UPDATE SET … WHERE t.updated_idx < excluded.updated_idx

Each column's source compiles to SQL: record attributes to ``records`` columns, the sync's
fields to ``syncs`` columns, ``data`` paths to ``r.data #>> '{a,b,0,c}'`` cast to the column's
type. The cursor's move commits with the rows it delivered (invariant 8); a newer version
written meanwhile is beyond the cursor, so nothing is skipped (invariant 4), and the version
guard keeps each row at its highest version (invariant 6).

What SQL cannot express (a callable source, hard deletes) makes :func:`compile_target` return
``None``: the consumer then uses the Python path. A batch Postgres refuses (a value that does not
cast, a constraint) rolls back untouched and is retried on the Python path, which isolates the
bad rows and dead-letters them with their reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from upsync.crashpoints import crash_point
from upsync.sinks.routes import Route, parse_path
from upsync.sinks.table import TableSink
from upsync.stream.cursor import READER_COLS, Reader, pull
from upsync.stream.delivery import DELIVERABLE
from upsync.stream.tables import DEFAULT_SCHEMA, q

__all__ = ["CompiledRoute", "FastPath", "column_expression", "compile_target"]

#: record attributes and sync fields as SQL over ``records r LEFT JOIN syncs s``
_ATTRIBUTES: Mapping[str, str] = {
    "id": "r.id::text",
    "upstream_id": "r.upstream_id",
    "collection_id": "r.collection_id",
    "provider": "r.provider",
    "stream_id": "r.stream_id::text",
    "updated_idx": "r.updated_idx",
    "deleted": "r.deleted",
    "inserted_at": "r.inserted_at",
    "upstream_created_at": "r.upstream_created_at",
    "upstream_updated_at": "r.upstream_updated_at",
    "data": "r.data",
    "sync.id": "r.sync_id::text",
    "sync.external_id": "s.external_id",
    "sync.metadata": "s.metadata",
}
_JSON_TYPES = frozenset({"json", "jsonb"})
# a type name as pg_catalog.format_type prints it; anything else is not trusted into SQL
_TYPE_RE = re.compile(r"[a-z_][a-z0-9_ ]*(?:\(\d+(?:,\d+)?\))?(?:\[\])?")

_LOCK = """
SELECT
    EXISTS (SELECT 1 FROM {consumer_messages} m
        WHERE m.consumer_id = k.id AND {deliverable}) AS ready,
    EXISTS (SELECT 1 FROM {consumer_messages} m WHERE m.consumer_id = k.id) AS any_messages,
    -- a batch's rows are sorted (row locks in one order): keep that in memory
    {roomy_work_mem} AS work_mem,
    -- per-id lookups look costly to the planner, but compiling them costs more than running them
    set_config('jit', 'off', true) AS jit,
    {reader_cols}
FROM {consumers} k WHERE k.id = %(c)s FOR NO KEY UPDATE
""".replace("{reader_cols}", READER_COLS).replace("{deliverable}", DELIVERABLE)
# messages a directly delivered version supersedes: a dead letter, a nacked or expired older
# version go (an outdated message is never picked: the cursor's newer version replaces it); one
# a worker holds takes the newer version, as the Python path's pull does (acking that older
# delivery re-queues it), so that it cannot linger outdated once its deadline passes
_SUPERSEDED = """
WITH t AS (SELECT * FROM unnest(%(ids)s::uuid[], %(idxs)s::bigint[]) AS t(rid, idx)),
gone AS (
    DELETE FROM {consumer_messages} m USING t
    WHERE m.consumer_id = %(c)s AND m.record_id = t.rid AND m.updated_idx <= t.idx
        AND (m.state <> 'delivered' OR m.ack_deadline <= now())
)
UPDATE {consumer_messages} m SET updated_idx = t.idx FROM t
WHERE m.consumer_id = %(c)s AND m.record_id = t.rid AND m.updated_idx < t.idx
    AND m.state = 'delivered' AND m.ack_deadline > now()
"""
# the same messages as the Python path's claim would hand out (see DELIVERABLE)
_PICK = """
WITH pick AS (
    SELECT m.record_id FROM {consumer_messages} m
    WHERE m.consumer_id = %(c)s AND {deliverable}
    ORDER BY m.updated_idx
    LIMIT %(n)s
    FOR UPDATE OF m SKIP LOCKED
)
DELETE FROM {consumer_messages} m USING pick
WHERE m.consumer_id = %(c)s AND m.record_id = pick.record_id
RETURNING m.record_id
""".replace("{deliverable}", DELIVERABLE)
_COLLECTIONS = """
SELECT DISTINCT r.collection_id FROM unnest(%s::uuid[]) AS pick(id)
CROSS JOIN LATERAL (SELECT x.collection_id FROM {records} x WHERE x.id = pick.id OFFSET 0) r
"""
_COLUMN_TYPES = """
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped
"""


def column_expression(source: object, pg_type: str) -> sql.Composable | None:
    """SQL computing a column of type ``pg_type`` from ``source``; ``None`` if SQL cannot."""
    if not isinstance(source, str) or not _TYPE_RE.fullmatch(pg_type):
        return None
    cast = sql.SQL(pg_type)
    if source in _ATTRIBUTES:
        return sql.SQL("({})::{}").format(sql.SQL(_ATTRIBUTES[source]), cast)
    if source.startswith(("data.", "data[")):
        path = [str(step) for step in parse_path(source[4:], source)]
        if pg_type in _JSON_TYPES:
            return sql.SQL("(r.data #> {})::{}").format(sql.Literal(path), cast)
        return sql.SQL("(r.data #>> {})::{}").format(sql.Literal(path), cast)
    return None


@dataclass(frozen=True)
class CompiledRoute:
    """One route's guarded ``INSERT … SELECT`` from the stream's records."""

    collection_id: str | None
    """the collection it takes; ``None`` for the raw table (every collection no route takes)"""
    statement: sql.Composed


def _insert(
    route: Route, columns: Mapping[str, sql.Composable], stream_schema: str
) -> sql.Composed:
    names = list(columns)
    updates = sql.SQL(", ").join(
        sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(n))
        for n in names
        if n != route.key_column
    )
    return sql.SQL(
        # one primary-key lookup per id (OFFSET 0 keeps the lateral from being flattened):
        # with the statistics of a fast-growing stream, the planner may otherwise scan it all
        "INSERT INTO {table} AS t ({cols}) SELECT {exprs} "
        "FROM unnest(%(ids)s::uuid[]) AS pick(id) "
        "CROSS JOIN LATERAL (SELECT * FROM {records} x WHERE x.id = pick.id OFFSET 0) r "
        "LEFT JOIN {syncs} s ON s.id = r.sync_id "
        # row locks taken in one order, by uuid (a text sort would go through the collation)
        "WHERE {where} ORDER BY r.id "
        "ON CONFLICT ({key}) DO UPDATE SET {updates} "
        "WHERE t.{version} < excluded.{version}"
    ).format(
        table=sql.Identifier(*route.qualified_name),
        cols=sql.SQL(", ").join(map(sql.Identifier, names)),
        exprs=sql.SQL(", ").join(columns.values()),
        records=sql.Identifier(stream_schema, "records"),
        syncs=sql.Identifier(stream_schema, "syncs"),
        where=sql.SQL("r.collection_id = %(collection)s")
        if route.collection_id != "upsync:raw"
        else sql.SQL("NOT (r.collection_id = ANY(%(routed)s))"),
        key=sql.Identifier(route.key_column),
        updates=updates,
        version=sql.Identifier(route.version_column),
    )


async def compile_target(
    pool: AsyncConnectionPool[Any], sink: TableSink, stream_schema: str = DEFAULT_SCHEMA
) -> FastPath | None:
    """The server-side path for ``sink``'s routes, or ``None`` if some part needs Python."""
    if sink.hard_delete:
        return None
    routes: list[Route] = list(sink.routes.values())
    raw = sink.raw_route if sink.unrouted == "raw" else None
    compiled: list[CompiledRoute] = []
    async with pool.connection() as conn:
        for route in [*routes, *([raw] if raw else [])]:
            table = sql.Identifier(*route.qualified_name).as_string(conn)
            cur = await conn.execute(_COLUMN_TYPES, [table])
            types = dict(await cur.fetchall())
            if not types:
                return None  # the table does not exist (yet)
            exprs: dict[str, sql.Composable] = {}
            for column in route.resolve(list(types)):
                expr = column_expression(column.source, types[column.name])
                if expr is None:
                    return None
                exprs[column.name] = expr
            key = None if route is raw else route.collection_id
            compiled.append(CompiledRoute(key, _insert(route, exprs, stream_schema)))
    return FastPath(compiled, [r.collection_id for r in routes], stream_schema)


@dataclass(frozen=True)
class FastPath:
    """Delivers a consumer's batches with SQL only (see the module doc)."""

    routes: Sequence[CompiledRoute]
    routed: Sequence[str]
    stream_schema: str

    async def deliver(
        self, pool: AsyncConnectionPool[Any], consumer_id: str, batch_size: int
    ) -> int:
        """Claim, apply and ack one batch in one transaction; returns how many were delivered.

        Any database error leaves everything as it was (the transaction rolls back).
        """
        async with pool.connection() as conn, conn.transaction():
            ids, present = await self._take(conn, consumer_id, batch_size)
            if not ids:
                return 0
            crash_point("consumer.claimed")
            for route in self.routes:
                wanted = route.collection_id is None and bool(present - set(self.routed))
                if route.collection_id in present or wanted:
                    params = {
                        "ids": ids,
                        "collection": route.collection_id,
                        "routed": list(self.routed),
                    }
                    await conn.execute(route.statement, params)
            crash_point("consumer.before_commit")
        crash_point("consumer.after_commit")
        return len(ids)

    async def _take(
        self, conn: Any, consumer_id: str, batch_size: int
    ) -> tuple[list[Any], frozenset[str]]:
        """The ids of the next batch and their collections, under the consumer's row lock:
        messages waiting for a retry first, else straight from the stream through the
        consumer's cursor."""
        schema = self.stream_schema
        params: dict[str, Any] = {"c": consumer_id, "now": None, "n": batch_size}
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q(schema, _LOCK), params)
            row = await cur.fetchone()
        if row is None:  # the consumer was deleted
            return [], frozenset()
        if row["ready"]:
            cur = await conn.execute(q(schema, _PICK), params)
            ids = [r[0] for r in await cur.fetchall()]
            if ids:
                cur = await conn.execute(q(schema, _COLLECTIONS), [ids])
                return ids, frozenset(c for (c,) in await cur.fetchall())
            # taken by a worker or outdated since the lock: the stream may still have records
        pulled = await pull(conn, Reader.from_row(row), batch_size, schema=schema)
        if pulled.ids and row["any_messages"]:
            ids_idxs = {"c": consumer_id, "ids": pulled.ids, "idxs": pulled.positions}
            await conn.execute(q(schema, _SUPERSEDED), ids_idxs)
        return pulled.ids, pulled.collections
