"""The apply algorithm for drivers other than psycopg 3, as operations a driver performs.

Pure: nothing here does I/O. :func:`steps` is a generator that yields :class:`Query` and
:class:`Many` operations and receives their results; a driver (:mod:`upsync.sinks._drivers`)
performs them. It plans a batch as psycopg's executor does (:func:`~upsync.sinks.plan.plan_batch`:
routed, deduplicated keeping the highest ``updated_idx``, sorted by key) and writes it with the
guarded :func:`~upsync.sinks.sql.upsert_statement`, one execution per row, pipelined by the
driver. A row Postgres refuses comes back into the generator as :class:`Refused`; the chunk is
then retried in halves, each in a savepoint, down to the rows at fault, which are reported as
:class:`~upsync.errors.RowRejected`. Counts follow :class:`~upsync.sinks.table.ApplyResult`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from psycopg import sql

from upsync.errors import ConfigurationError, MappingError, RowRejected, UpsyncError
from upsync.records import Record
from upsync.sinks import ddl
from upsync.sinks import sql as q
from upsync.sinks.plan import TableBatch, plan_batch
from upsync.sinks.routes import Column, Route

if TYPE_CHECKING:
    from upsync.sinks.table import TableSink

__all__ = ["Many", "Op", "Query", "Refused", "Steps", "is_row_fault", "render", "steps"]

# Postgres refuses the row itself (bad value, constraint violation, wrong type, too big for an
# index); anything else (connection, deadlock, cancel, missing table) is not the row's fault
_ROW_FAULT_CLASSES = ("22", "23")
_ROW_FAULT_CODES = frozenset({"42804", "54000"})
_TEXT_TYPES = frozenset({"text", "character varying", "character", "name", "citext"})

_INTROSPECT = (
    "SELECT a.attname, format_type(a.atttypid, NULL), t.typname IN ('json', 'jsonb'), "
    "t.typcategory = 'A' "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)


class Refused(Exception):
    """Postgres (or the driver, before sending) refused a row: the driver's error, normalized."""

    def __init__(self, reason: str, sqlstate: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class Query:
    """Run one statement; the driver sends back its rows as tuples (``[]`` if none)."""

    stmt: sql.Composable | str
    params: Sequence[Any] | None = None


@dataclass(frozen=True)
class Many:
    """Run one statement per row, pipelined; the driver sends back all returned rows."""

    stmt: sql.Composable
    rows: Sequence[Sequence[Any]]


Op = Query | Many
Steps = Generator[Op, Any, Any]


@dataclass(frozen=True)
class _ColumnInfo:
    name: str
    type: str
    is_json: bool
    is_array: bool


@dataclass
class _SinkCache:
    """Per sink: introspected tables and adapted columns, by collection id."""

    tables: dict[str, dict[str, _ColumnInfo]] = field(default_factory=dict)
    columns: dict[str, tuple[Column, ...]] = field(default_factory=dict)


_caches: weakref.WeakKeyDictionary[TableSink, _SinkCache] = weakref.WeakKeyDictionary()


@dataclass
class _Counts:
    inserted: int = 0
    updated: int = 0
    stale: int = 0
    deleted: int = 0
    rejected: list[UpsyncError] = field(default_factory=list)


def render(stmt: sql.Composable | str, style: str) -> str:
    """The statement as text for a driver: ``style`` is ``"format"`` (``%s``) or ``"numeric"``.

    Statements are written with psycopg's ``%s`` placeholders. ``"numeric"`` turns them into
    asyncpg's ``$1, $2, …``; ``"format"`` keeps them and doubles a ``%`` inside a quoted
    identifier or literal, which a DB-API driver would otherwise take for a placeholder.
    """
    text = stmt if isinstance(stmt, str) else stmt.as_string(None)
    out: list[str] = []
    n = 0
    i = 0
    quote: str | None = None
    while i < len(text):
        ch = text[i]
        if quote is not None:
            if ch == quote:
                if text.startswith(quote * 2, i):  # an escaped quote stays inside
                    out.append(quote * 2)
                    i += 2
                    continue
                quote = None
            out.append("%%" if ch == "%" and style == "format" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "%" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "sbt":
                n += 1
                out.append(f"${n}" if style == "numeric" else "%s")
            elif nxt == "%":
                out.append("%" if style == "numeric" else "%%")
            else:
                raise ConfigurationError(f"unexpected placeholder %{nxt} in {text!r}")
            i += 2
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _adapter(column: Column, info: _ColumnInfo) -> Column:
    """Wrap a column's extractor so its value suits a typed parameter (or is refused early).

    JSON columns get JSON text; text columns get text (``t``/``f`` for booleans, as psycopg's
    text format writes them), so drivers that check Python types (asyncpg) accept what psycopg
    does. A JSON object or array bound for a non-JSON column is a :class:`MappingError`.
    """
    extract = column.extract
    name = column.name
    if info.is_json:

        def to_json(record: Record) -> Any:
            value = extract(record)
            if value is None:
                return None
            try:
                text = orjson.dumps(value)
            except TypeError as e:
                raise MappingError(f"cannot encode as JSON: {e}", column=name) from None
            if b"\\u0000" in text:
                raise MappingError(
                    "JSON contains a \\u0000 character, which Postgres jsonb cannot store",
                    column=name,
                )
            return text.decode()

        return Column(name, column.source, to_json)

    is_text = info.type in _TEXT_TYPES

    def checked(record: Record) -> Any:
        value = extract(record)
        if value is None:
            return None
        if type(value) is str:
            if "\x00" in value:
                raise MappingError(
                    "text contains a NUL (0x00) byte, which Postgres cannot store", column=name
                )
            return value
        if isinstance(value, dict) or (isinstance(value, list) and not info.is_array):
            raise MappingError(
                f"value is a JSON {'object' if isinstance(value, dict) else 'array'} "
                f"but column {name!r} has type {info.type}",
                column=name,
            )
        if is_text:
            return ("t" if value else "f") if isinstance(value, bool) else str(value)
        return value

    return Column(name, column.source, checked)


def _ident(parts: Sequence[str]) -> str:
    return sql.Identifier(*parts).as_string(None)


def _introspect(route: Route) -> Generator[Op, Any, dict[str, _ColumnInfo]]:
    rows = yield Query(_INTROSPECT, [_ident(route.qualified_name)])
    if not rows:
        raise ConfigurationError(
            f"table {'.'.join(route.qualified_name)} (route for {route.collection_id!r}) "
            f"does not exist or is not visible on this connection's search_path"
        )
    return {r[0]: _ColumnInfo(r[0], r[1], bool(r[2]), bool(r[3])) for r in rows}


def steps(sink: TableSink, records: Iterable[Record]) -> Steps:
    """The whole apply as operations; returns the :class:`ApplyResult`."""
    from upsync.sinks.table import ApplyResult

    cache = _caches.setdefault(sink, _SinkCache())
    batch = list(records)
    needed: dict[str, Route] = {}
    for record in batch:
        route = sink.routes.get(record.collection_id)
        if route is None and sink.unrouted == "raw":
            route = sink.raw_route
        if route is not None:
            needed.setdefault(route.collection_id, route)
    failed: dict[str, ConfigurationError] = {}
    for route in needed.values():
        if route is sink.raw_route:
            yield Query(ddl.create_table_sql(route, raw=True))
        if route.collection_id not in cache.tables:
            try:
                cache.tables[route.collection_id] = yield from _introspect(route)
            except ConfigurationError as e:
                failed[route.collection_id] = e  # not cached: the table may appear later

    def columns_for(route: Route) -> tuple[Column, ...]:
        if route.collection_id in failed:
            raise failed[route.collection_id]
        cached = cache.columns.get(route.collection_id)
        if cached is None:
            info = cache.tables[route.collection_id]
            cached = tuple(_adapter(c, info[c.name]) for c in route.resolve(list(info)))
            cache.columns[route.collection_id] = cached
        return cached

    plan = plan_batch(
        batch, columns_for, sink.routes, unrouted=sink.unrouted, raw_route=sink.raw_route
    )
    if plan.rejected and not sink.isolate_bad_records:
        raise plan.rejected[0]
    counts = _Counts(rejected=list(plan.rejected))
    for tb in plan.tables:
        yield from _apply_table(sink, tb, cache.tables[tb.route.collection_id], counts)
    return ApplyResult(
        inserted=counts.inserted,
        updated=counts.updated,
        stale=counts.stale,
        deleted=counts.deleted,
        duplicates=plan.duplicates,
        unrouted=len(plan.unrouted),
        rejected=counts.rejected,
    )


def _apply_table(
    sink: TableSink, tb: TableBatch, info: dict[str, _ColumnInfo], counts: _Counts
) -> Steps:
    """Write one table's rows: hard deletes first (if so configured), then guarded upserts."""
    route = tb.route
    deleted_column = route.deleted_column if route.deleted_column in tb.column_names else None
    key_type = info[route.key_column].type
    tombstones: tuple[str, ...] | None = None
    if sink.hard_delete:
        tombstones = (
            (route.schema, sink.tombstone_table) if route.schema else (sink.tombstone_table,)
        )
        yield Query(q.tombstone_table_statement(tombstones))
        # as in the psycopg executor: hard deletes remove the row that guards its own version,
        # so writers of one table take turns
        yield Query(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            ["upsync:" + ".".join(route.qualified_name)],
        )
        dead = tb.subset(i for i, d in enumerate(tb.deleted) if d)
        for chunk in _chunks(dead, sink.chunk_size):
            yield from _hard_delete(route, tombstones, key_type, chunk, counts)
        tb = tb.subset(i for i, d in enumerate(tb.deleted) if not d)
    elif deleted_column is None and any(tb.deleted):
        for i, d in enumerate(tb.deleted):
            if d:
                counts.rejected.append(
                    MappingError(
                        f"is a delete, but table {tb.table} has no column "
                        f"{route.deleted_column!r}; add it or use TableSink(hard_delete=True)",
                        record_id=tb.record_ids[i],
                        collection_id=route.collection_id,
                    )
                )
        tb = tb.subset(i for i, d in enumerate(tb.deleted) if not d)
    stmt = q.upsert_statement(
        route,
        tb.columns,
        column_types={name: c.type for name, c in info.items()},
        tombstones=tombstones,
        deleted_column=deleted_column,
    )
    versions = q.versions_statement(route, key_type=key_type, tombstones=tombstones)
    # that statement takes the keys as text[] with tombstones, else as the key's own type
    as_text = tombstones is not None

    def current(part: TableBatch) -> Query:
        key = part.rows[0][part.key_index]
        return Query(versions, [[str(key) if as_text else key]])

    for chunk in _chunks(tb, sink.chunk_size):
        yield from _isolating(
            sink, chunk, counts, lambda part: _upsert(stmt, part, counts), current
        )


def _chunks(tb: TableBatch, size: int) -> Iterable[TableBatch]:
    for start in range(0, len(tb), size):
        yield tb.subset(range(start, min(start + size, len(tb))))


def _hard_delete(
    route: Route, tombstones: Sequence[str], key_type: str, chunk: TableBatch, counts: _Counts
) -> Steps:
    params = [[str(row[chunk.key_index]) for row in chunk.rows], chunk.versions]
    yield Query(q.hard_delete_statement(route, key_type=key_type), params)
    done = yield Query(q.tombstone_upsert_statement(route, tombstones, key_type=key_type), params)
    counts.deleted += len(done)
    counts.stale += len(chunk) - len(done)


def _upsert(stmt: sql.Composable, part: TableBatch, counts: _Counts) -> Steps:
    applied = yield Many(stmt, part.rows)
    for inserted, deleted in applied:
        if deleted:
            counts.deleted += 1
        elif inserted:
            counts.inserted += 1
        else:
            counts.updated += 1
    counts.stale += len(part) - len(applied)


def _savepoint(body: Steps) -> Steps:
    """Run ``body`` in a savepoint; when a row is refused, roll back to it and re-raise."""
    yield Query("SAVEPOINT upsync_chunk")
    try:
        result = yield from body
    except Refused:
        yield Query("ROLLBACK TO SAVEPOINT upsync_chunk")
        yield Query("RELEASE SAVEPOINT upsync_chunk")
        raise
    yield Query("RELEASE SAVEPOINT upsync_chunk")
    return result


def _isolating(
    sink: TableSink,
    chunk: TableBatch,
    counts: _Counts,
    write: Callable[[TableBatch], Steps],
    current: Callable[[TableBatch], Query],
) -> Steps:
    """Write ``chunk``; if a row is refused, bisect down to the rows at fault.

    A refused row whose version is stale counts as stale, not rejected: it would have changed
    nothing (Postgres checks the value before it finds the conflict), and the psycopg executor,
    which drops stale versions before writing, counts it so too.
    """
    pending = [chunk]
    while pending:
        part = pending.pop()
        before = (counts.inserted, counts.updated, counts.stale, counts.deleted)
        try:
            yield from _savepoint(write(part))
        except Refused as e:
            counts.inserted, counts.updated, counts.stale, counts.deleted = before
            if len(part) == 1 and (yield from _is_stale(part, current(part))):
                counts.stale += 1
                continue
            if len(part) == 1:
                rejected = RowRejected(
                    e.reason, record_id=part.record_ids[0], table=part.table, sqlstate=e.sqlstate
                )
                if not sink.isolate_bad_records:
                    raise rejected from e
                counts.rejected.append(rejected)
                continue
            half = len(part) // 2
            pending.append(part.subset(range(half, len(part))))
            pending.append(part.subset(range(half)))  # popped first: key order is kept


def _is_stale(part: TableBatch, lookup: Query) -> Generator[Op, Any, bool]:
    """Whether the one row of ``part`` is not newer than what the table (or a tombstone) has."""
    found = yield lookup
    return bool(found) and found[0][1] is not None and found[0][1] >= part.versions[0]


def is_row_fault(sqlstate: str | None) -> bool:
    """Whether an error with this SQLSTATE is the row's fault (isolate it) or not (raise)."""
    state = sqlstate or ""
    return state[:2] in _ROW_FAULT_CLASSES or state in _ROW_FAULT_CODES
