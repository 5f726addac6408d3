"""psycopg executors for :class:`~upsync.sinks.table.TableSink` (sync and async).

The apply algorithm is written once, as a generator that yields database operations
(:class:`Query`, :class:`Copy`) and receives their results; :func:`apply_sync` and
:func:`apply_async` are thin drivers that perform them on a ``Connection`` or an
``AsyncConnection``. Per table, in key order, chunk by chunk:

1. while the table keeps receiving new keys, ``COPY`` the chunk straight into it (the fastest
   path there is), in a savepoint; an existing key (or a concurrent insert of one) makes the
   ``COPY`` fail at that key, and the chunk goes on to step 2;
2. read the current version of the chunk's keys (one index probe per key; skipped while chunks
   come without stale versions) and drop the versions that are not newer (counted stale, no
   write at all);
3. ``COPY`` the rest into a session temp staging table and run the guarded
   ``INSERT … SELECT … ON CONFLICT … WHERE t.version < excluded.version``.

With ``hard_delete`` step 2 always runs (it also reads the tombstones) and step 1 only follows
it, for chunks it found entirely new. Row values are computed while ``COPY`` pulls them, so
Python's work overlaps the server's.

A chunk Postgres refuses (bad value, constraint violation) is retried in halves, each in its own
savepoint, down to the single rows at fault, which are reported as ``RowRejected``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import sql

from upsync.errors import ConfigurationError, MappingError, RowRejected, UpsyncError
from upsync.records import Record
from upsync.sinks import ddl
from upsync.sinks import sql as q
from upsync.sinks.plan import TableBatch, compute_row, plan_batch
from upsync.sinks.routes import Column, Route, _parse_path

if TYPE_CHECKING:
    from upsync.sinks.table import ApplyResult, TableSink

__all__ = ["ColumnInfo", "Copy", "Many", "Query", "TableInfo", "apply_async", "apply_sync"]

# Postgres refuses the row itself: data exceptions, integrity violations, wrong type, a row too
# big for an index. Anything else (connection, deadlock, serialization, cancel) is not the
# row's fault and propagates.
_ROW_FAULT_CLASSES = ("22", "23")
_ROW_FAULT_CODES = frozenset({"42804", "54000"})
_OBJECT_SOURCES = frozenset({"data", "sync.metadata"})
_TEXT_TYPES = frozenset({"text", "character varying", "character", "name", "citext"})


@dataclass(frozen=True)
class ColumnInfo:
    """A target column as introspected: name, type without modifiers, JSON/array flags."""

    name: str
    type: str
    is_json: bool
    is_array: bool


@dataclass(frozen=True)
class TableInfo:
    """A target table's columns, in table order."""

    columns: dict[str, ColumnInfo]

    @property
    def names(self) -> list[str]:
        return list(self.columns)


@dataclass(frozen=True)
class Query:
    """Run a statement; the driver sends back ``fetchall()`` (or ``[]`` without a result)."""

    stmt: sql.Composed | sql.SQL | str
    params: Sequence[Any] | None = None


@dataclass(frozen=True)
class Copy:
    """``COPY … FROM STDIN`` the rows; the driver sends back ``None``."""

    stmt: sql.Composed
    rows: Iterable[Sequence[Any]]


@dataclass(frozen=True)
class Many:
    """``executemany`` the statement over the rows (pipelined); the driver sends back one
    ``fetchall()`` per row (``[]`` for a row whose guard said no)."""

    stmt: sql.Composed
    rows: Iterable[Sequence[Any]]


Op = Query | Copy | Many
Steps = Generator[Op, Any, Any]


@dataclass
class _Counts:
    inserted: int = 0
    updated: int = 0
    stale: int = 0
    deleted: int = 0
    rejected: list[UpsyncError] = field(default_factory=list)

    def add(self, inserted: int = 0, updated: int = 0, stale: int = 0, deleted: int = 0) -> None:
        self.inserted += inserted
        self.updated += updated
        self.stale += stale
        self.deleted += deleted


_INTROSPECT = """
SELECT a.attname, format_type(a.atttypid, NULL), t.typname IN ('json', 'jsonb'),
       t.typcategory = 'A'
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def _introspect(conn_ident: Callable[[Sequence[str]], str], route: Route) -> Steps:
    rows = yield Query(_INTROSPECT, [conn_ident(route.qualified_name)])
    if not rows:
        raise ConfigurationError(
            f"table {'.'.join(route.qualified_name)} (route for {route.collection_id!r}) "
            f"does not exist or is not visible on this connection's search_path"
        )
    return TableInfo({r[0]: ColumnInfo(r[0], r[1], bool(r[2]), bool(r[3])) for r in rows})


def _adapter(column: Column, info: ColumnInfo) -> Column:
    """Wrap a column's extractor so its value is ready for ``COPY``, or refused early.

    JSON columns get JSON text (orjson). A data path or callable feeding a non-JSON column is
    checked for objects and arrays, which no such column can take (a clear ``MappingError``
    instead of a driver error). Other values go as they are: Postgres parses each by the
    column's type and refuses what does not fit (isolated as ``RowRejected``).
    """
    extract = _fast_extractor(column, scalar=not (info.is_json or info.is_array))
    if info.is_json:

        def to_json(record: Record) -> Any:
            value = extract(record)
            if value is None:
                return None
            try:
                text = orjson.dumps(value)
            except TypeError as e:
                raise MappingError(f"cannot encode as JSON: {e}", column=column.name) from None
            # a \u0000 escape (jsonb refuses it) is left to Postgres: the isolation finds it
            return text.decode()

        return Column(column.name, column.source, to_json)
    if extract is column.extract and isinstance(column.source, str):
        return column  # a record attribute: its type is known and fits a scalar column
    return Column(column.name, column.source, extract)


def _fast_extractor(column: Column, *, scalar: bool) -> Callable[[Record], Any]:
    """The column's extractor, checked for a scalar column; for a ``data`` path, a fast one.

    A path gives the same result as :mod:`upsync.sinks.routes`' path getter (a missing key or
    index, or a step into something that is not an object (name) or an array (index), gives
    ``None``) at a third of the cost. With ``scalar``, a JSON object or array, which no scalar
    column can take, raises a ``MappingError`` (instead of a driver error).
    """
    source = column.source
    name = column.name

    def refuse(value: Any) -> MappingError:
        kind = "object" if isinstance(value, dict) else "array"
        return MappingError(f"value is a JSON {kind}, but column {name!r} is not JSON", column=name)

    is_path = isinstance(source, str) and source[:5] in ("data.", "data[")
    if isinstance(source, str) and source not in _OBJECT_SOURCES and not is_path:
        return column.extract  # a scalar record attribute
    if not isinstance(source, str) or source in _OBJECT_SOURCES:
        extract = column.extract
        if not scalar:
            return extract

        def call(record: Record) -> Any:
            value = extract(record)
            if isinstance(value, (dict, list)):
                raise refuse(value)
            return value

        return call
    steps = _parse_path(source[4:], source)

    def get(record: Record) -> Any:
        value: Any = record.data
        try:
            for step in steps:
                if step.__class__ is int and not isinstance(value, list):
                    return None
                value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
        if scalar and isinstance(value, (dict, list)):
            raise refuse(value)
        return value

    return get


@dataclass
class _TableCtx:
    """Everything the writes of one table batch need."""

    batch: TableBatch
    info: TableInfo
    tombstones: tuple[str, ...] | None
    deleted_column: str | None
    dirty: bool
    """Whether the staging table may hold rows of an earlier chunk or apply (then TRUNCATE)."""

    @property
    def route(self) -> Route:
        return self.batch.route

    @property
    def key_type(self) -> str:
        return self.info.columns[self.route.key_column].type

    @property
    def types(self) -> dict[str, str]:
        return {c.name: self.info.columns[c.name].type for c in self.batch.columns}

    @property
    def staging(self) -> str:
        sig = "\x1f".join([*self.route.qualified_name, "\x1e", *self.batch.column_names])
        return "upsync_stage_" + hashlib.blake2b(sig.encode(), digest_size=8).hexdigest()


def _tombstone_table(sink: TableSink, route: Route) -> tuple[str, ...]:
    if route.schema:
        return (route.schema, sink.tombstone_table)
    return (sink.tombstone_table,)


def _run(
    sink: TableSink,
    records: Iterable[Record],
    ident: Callable[[Sequence[str]], str],
    nested: bool,
) -> Steps:
    """The whole apply, as operations. ``nested``: the caller already had a transaction."""
    from upsync.sinks.table import ApplyResult

    batch = list(records)
    needed: dict[str, Route] = {}
    for record in batch:
        route = sink.routes.get(record.collection_id)
        if route is None and sink.unrouted == "raw":
            route = sink.raw_route
        if route is not None:
            needed.setdefault(route.collection_id, route)
    infos: dict[str, TableInfo | ConfigurationError] = {}
    for route in needed.values():
        if route is sink.raw_route:
            yield from _create_if_missing(ddl.create_table_sql(route, raw=True))
        infos[route.collection_id] = yield from _table_info(sink, route, ident)

    def columns_for(route: Route) -> tuple[Column, ...]:
        info = infos[route.collection_id]
        if isinstance(info, ConfigurationError):
            raise info
        cached = sink._columns.get(route.collection_id)
        if cached is None:
            resolved = route.resolve(info.names)
            cached = tuple(_adapter(c, info.columns[c.name]) for c in resolved)
            sink._columns[route.collection_id] = cached
        return cached

    plan = plan_batch(
        batch,
        columns_for,
        sink.routes,
        unrouted=sink.unrouted,
        raw_route=sink.raw_route,
        compute_rows=False,
    )
    if plan.rejected and not sink.isolate_bad_records:
        raise plan.rejected[0]
    counts = _Counts(rejected=list(plan.rejected))
    for tb in plan.tables:
        info = infos[tb.route.collection_id]
        assert isinstance(info, TableInfo)
        yield from _apply_table(sink, tb, info, counts, nested=nested)
    if counts.rejected and not sink.isolate_bad_records:
        # mapping errors found while streaming: raising rolls the whole batch back
        raise counts.rejected[0]
    return ApplyResult(
        inserted=counts.inserted,
        updated=counts.updated,
        stale=counts.stale,
        deleted=counts.deleted,
        duplicates=plan.duplicates,
        unrouted=len(plan.unrouted),
        rejected=counts.rejected,
    )


def _table_info(
    sink: TableSink, route: Route, ident: Callable[[Sequence[str]], str]
) -> Generator[Op, Any, TableInfo | ConfigurationError]:
    info: TableInfo | None = sink._tables.get(route.collection_id)
    if info is not None:
        return info
    try:
        info = yield from _introspect(ident, route)
    except ConfigurationError as e:
        return e  # not cached: the table may be created before the next batch
    sink._tables[route.collection_id] = info
    return info


def _apply_table(
    sink: TableSink, tb: TableBatch, info: TableInfo, counts: _Counts, *, nested: bool
) -> Steps:
    route = tb.route
    names = tb.column_names
    deleted_column = route.deleted_column if route.deleted_column in names else None
    # in a new transaction the staging table is empty: ON COMMIT DELETE ROWS emptied it at the
    # last commit, and a rollback leaves nothing; in the caller's transaction it may not be
    ctx = _TableCtx(tb, info, None, deleted_column, dirty=nested)
    if sink.hard_delete:
        ctx.tombstones = _tombstone_table(sink, route)
        yield from _create_if_missing(q.tombstone_table_statement(ctx.tombstones))
        # hard deletes remove rows, so "the row's version" alone cannot guard against an older
        # version re-inserting it concurrently; writers of one table take turns instead
        yield Query(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            ["upsync:" + ".".join(route.qualified_name)],
        )
        live = [i for i, d in enumerate(tb.deleted) if not d]
        dead = [i for i, d in enumerate(tb.deleted) if d]
        for chunk in _chunks(tb.subset(dead), sink.chunk_size):
            yield from _hard_delete(ctx, chunk, counts)
        tb = tb.subset(live)
    elif deleted_column is None and any(tb.deleted):
        keep = []
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
            else:
                keep.append(i)
        tb = tb.subset(keep)
    for chunk in _chunks(tb, sink.chunk_size):
        yield from _write_chunk(sink, ctx, chunk, counts)


def _create_if_missing(stmt: sql.Composed) -> Steps:
    """``CREATE TABLE IF NOT EXISTS`` that tolerates a concurrent creator."""
    try:
        yield from _savepoint(_one(Query(stmt)))
    except psycopg.Error as e:
        # two sessions creating one table race on the catalogs' unique indexes
        if e.sqlstate not in ("23505", "42P07"):
            raise


def _one(op: Op) -> Steps:
    return (yield op)


def _chunks(tb: TableBatch, size: int) -> Iterable[TableBatch]:
    for start in range(0, len(tb), size):
        yield tb.subset(range(start, min(start + size, len(tb))))


class _Rows:
    """A chunk's rows, computed as ``COPY`` pulls them (so Python overlaps the server's work),
    and kept for a retry. A record whose values cannot be computed is left out and reported."""

    def __init__(self, chunk: TableBatch, rejected: list[UpsyncError]) -> None:
        self.chunk = chunk
        self.rejected = rejected
        self.rows: list[tuple[Any, ...]] = []
        self.kept: list[int] = []
        self.next = 0
        if not chunk.deferred:
            self.rows, self.kept, self.next = chunk.rows, list(range(len(chunk))), len(chunk)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        yield from list(self.rows)  # computed by an earlier pass, possibly an interrupted one
        records = self.chunk.records
        extractors = [c.extract for c in self.chunk.columns]
        # the hot loop of every write: keep it free of calls that are not the extractors
        while (i := self.next) < len(records):
            self.next = i + 1
            try:
                row = tuple([extract(records[i]) for extract in extractors])
            except Exception:
                found = self._failed(i)
                if found is None:
                    continue
                row = found
            self.rows.append(row)
            self.kept.append(i)
            yield row

    def _failed(self, i: int) -> tuple[Any, ...] | None:
        errors: list[MappingError] = []
        row = compute_row(self.chunk.records[i], self.chunk.columns, errors)
        self.rejected.extend(errors)
        return row

    def batch(self) -> TableBatch:
        """The chunk with every row computed (records that failed mapping left out)."""
        for _ in self:
            pass
        if len(self.kept) == len(self.chunk) and not self.chunk.deferred:
            return self.chunk
        return replace(self.chunk.subset(self.kept), rows=self.rows)


def _hard_delete(ctx: _TableCtx, chunk: TableBatch, counts: _Counts) -> Steps:
    params = [[str(k) for k in chunk.keys], chunk.versions]
    yield Query(q.hard_delete_statement(ctx.route, key_type=ctx.key_type), params)
    assert ctx.tombstones is not None
    done = yield Query(
        q.tombstone_upsert_statement(ctx.route, ctx.tombstones, key_type=ctx.key_type), params
    )
    counts.add(deleted=len(done), stale=len(chunk) - len(done))


def _write_chunk(sink: TableSink, ctx: _TableCtx, chunk: TableBatch, counts: _Counts) -> Steps:
    """Write one chunk: COPY it if it is all new, else skip the stale part and merge the rest."""
    table = chunk.table
    rows = _Rows(chunk, counts.rejected)
    hard = ctx.tombstones is not None
    if len(chunk) < sink.executemany_below:
        yield from _isolating(sink, ctx, rows, counts, _upsert_rows)
        return
    if not hard and sink._expect_new.get(table, True):
        # optimistic: a table taking new rows usually keeps taking new rows; if a key exists
        # the COPY fails (at the first existing key) and the merge path takes over. Not with
        # hard deletes: a plain COPY would not see the tombstones
        if (yield from _copy_direct(ctx, rows, counts)):
            return
        sink._expect_new[table] = False
        chunk = rows.batch()
        rows = _Rows(chunk, counts.rejected)
    fresh = list(range(len(chunk)))
    if hard or sink._expect_stale.get(table, True):
        # skipping stale versions here saves their staging and the row lock the guarded
        # upsert takes even when its guard says no; skipped while chunks come without any
        current = yield Query(
            q.versions_statement(ctx.route, key_type=ctx.key_type, tombstones=ctx.tombstones),
            [chunk.keys if ctx.key_type in _TEXT_TYPES else [str(k) for k in chunk.keys]],
        )
        known = dict(current)
        fresh = [
            i
            for i, key in enumerate(chunk.keys)
            if (v := known.get(str(key))) is None or chunk.versions[i] > v
        ]
        counts.add(stale=len(chunk) - len(fresh))
        if not fresh:
            return
        if len(fresh) < len(chunk):
            rows = _Rows(chunk.subset(fresh), counts.rejected)
        # hard deletes hold the table's advisory lock: no key can appear or get a tombstone
        # behind our back, so "known to nobody" means a plain COPY is safe
        if hard and not any(str(chunk.keys[i]) in known for i in fresh):
            if (yield from _copy_direct(ctx, rows, counts)):
                return
            rows = _Rows(rows.batch(), counts.rejected)
    stale_before = counts.stale
    inserted = yield from _isolating(sink, ctx, rows, counts, _merge)
    sink._expect_new[table] = inserted == len(fresh)
    sink._expect_stale[table] = len(fresh) < len(chunk) or counts.stale > stale_before


def _savepoint(body: Steps) -> Steps:
    """Run ``body`` in a savepoint; on failure roll back to it and re-raise."""
    yield Query("SAVEPOINT upsync_chunk")
    try:
        result = yield from body
    except psycopg.Error:
        yield Query("ROLLBACK TO SAVEPOINT upsync_chunk")
        yield Query("RELEASE SAVEPOINT upsync_chunk")
        raise
    yield Query("RELEASE SAVEPOINT upsync_chunk")
    return result


def _copy_direct(ctx: _TableCtx, rows: _Rows, counts: _Counts) -> Generator[Op, Any, bool]:
    """COPY rows straight into the table; ``False`` if that failed (the caller merges)."""

    def body() -> Steps:
        yield Copy(q.copy_text_statement(ctx.route.qualified_name, rows.chunk.columns), rows)

    try:
        yield from _savepoint(body())
    except psycopg.Error as e:
        # a key exists (or a concurrent insert won), or a row Postgres refuses: the merge
        # path sorts out which (each record is mapped once: its mapping error, if any, stays)
        if e.sqlstate == "23505" or _is_row_fault(e):
            return False
        raise
    done = rows.batch()
    tombstones = sum(done.deleted)
    counts.add(inserted=len(done) - tombstones, deleted=tombstones)
    return True


def _merge(ctx: _TableCtx, rows: _Rows, counts: _Counts) -> Generator[Op, Any, int]:
    """Stage the rows, then one guarded ``INSERT … SELECT``; returns how many were inserted."""
    stg = ctx.staging
    yield Query(q.staging_statement(stg, ctx.route.qualified_name, rows.chunk.columns))
    if ctx.dirty:
        # rows of an earlier chunk (or an earlier apply in the caller's transaction) are still
        # there: ON COMMIT DELETE ROWS only empties the table at commit
        yield Query(sql.SQL("TRUNCATE {}").format(sql.Identifier(stg)))
    ctx.dirty = True
    yield Copy(q.copy_text_statement((stg,), rows.chunk.columns), rows)
    result = yield Query(
        q.merge_statement(
            ctx.route,
            rows.chunk.columns,
            (stg,),
            tombstones=ctx.tombstones,
            deleted_column=ctx.deleted_column,
            order_bytewise=ctx.key_type in _TEXT_TYPES,
        )
    )
    inserted, updated, deleted = result[0]
    counts.add(
        inserted=inserted,
        updated=updated,
        deleted=deleted,
        stale=len(rows.kept) - inserted - updated - deleted,
    )
    return int(inserted)


def _upsert_rows(ctx: _TableCtx, rows: _Rows, counts: _Counts) -> Generator[Op, Any, int]:
    """The guarded upsert row by row, pipelined; returns how many were inserted."""
    stmt = q.upsert_statement(
        ctx.route,
        rows.chunk.columns,
        column_types=ctx.types,
        tombstones=ctx.tombstones,
        deleted_column=ctx.deleted_column,
    )
    results = yield Many(stmt, rows)
    applied = [r[0] for r in results if r]
    deleted = sum(1 for _, is_deleted in applied if is_deleted)
    inserted = sum(1 for is_new, is_deleted in applied if is_new and not is_deleted)
    counts.add(
        inserted=inserted,
        updated=len(applied) - inserted - deleted,
        deleted=deleted,
        stale=len(rows.kept) - len(applied),
    )
    return inserted


def _is_row_fault(e: psycopg.Error) -> bool:
    state = e.sqlstate
    if state is None:
        # raised by psycopg itself while sending a value: a NUL byte in text, an object it
        # cannot adapt; the row is at fault
        return isinstance(e, psycopg.DataError | psycopg.ProgrammingError)
    return state[:2] in _ROW_FAULT_CLASSES or state in _ROW_FAULT_CODES


def _isolating(
    sink: TableSink,
    ctx: _TableCtx,
    rows: _Rows,
    counts: _Counts,
    write: Callable[[_TableCtx, _Rows, _Counts], Generator[Op, Any, int]],
) -> Generator[Op, Any, int]:
    """Write ``rows``; if Postgres refuses them, bisect down to the rows at fault."""
    pending = [rows]
    inserted = 0
    while pending:
        part = pending.pop()
        before = (counts.inserted, counts.updated, counts.stale, counts.deleted, ctx.dirty)
        try:
            inserted += yield from _savepoint(write(ctx, part, counts))
        except psycopg.Error as e:
            if not _is_row_fault(e):
                raise
            # the savepoint undid the attempt, staging table included
            counts.inserted, counts.updated, counts.stale, counts.deleted, ctx.dirty = before
            done = part.batch()
            if len(done) == 1:
                rejected = _rejected(done, e)
                if not sink.isolate_bad_records:
                    raise rejected from e
                counts.rejected.append(rejected)
                continue
            half = len(done) // 2
            # a stack: push the right half first so the left one (lower keys) runs first
            pending.append(_Rows(done.subset(range(half, len(done))), counts.rejected))
            pending.append(_Rows(done.subset(range(half)), counts.rejected))
    return inserted


_COPY_COLUMN = re.compile(r"column (\S+): ")


def _rejected(part: TableBatch, e: psycopg.Error) -> RowRejected:
    diag = e.diag
    reason = diag.message_primary or str(e)
    if diag.message_detail:
        reason += f" ({diag.message_detail})"
    column = diag.column_name
    if column is None and diag.context and (m := _COPY_COLUMN.search(diag.context)):
        column = m[1]
    if column:
        reason += f" [column {column}]"
    return RowRejected(reason, record_id=part.record_ids[0], table=part.table, sqlstate=e.sqlstate)


def _drive_sync(conn: psycopg.Connection[Any], steps: Steps) -> Any:
    cur = conn.cursor()
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            if isinstance(op, Copy):
                with cur.copy(op.stmt) as copy:
                    for row in op.rows:
                        copy.write_row(row)
                result = None
            elif isinstance(op, Many):
                params = list(op.rows)
                result = []
                if params:
                    cur.executemany(op.stmt, params, returning=True)
                    result.append(cur.fetchall())
                    while cur.nextset():
                        result.append(cur.fetchall())
            else:
                cur.execute(op.stmt, op.params)
                result = cur.fetchall() if cur.description is not None else []
        except psycopg.Error as e:
            error = e


async def _drive_async(conn: psycopg.AsyncConnection[Any], steps: Steps) -> Any:
    cur = conn.cursor()
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            if isinstance(op, Copy):
                async with cur.copy(op.stmt) as copy:
                    for row in op.rows:
                        await copy.write_row(row)
                result = None
            elif isinstance(op, Many):
                params = list(op.rows)
                result = []
                if params:
                    await cur.executemany(op.stmt, params, returning=True)
                    result.append(await cur.fetchall())
                    while cur.nextset():
                        result.append(await cur.fetchall())
            else:
                await cur.execute(op.stmt, op.params)
                result = await cur.fetchall() if cur.description is not None else []
        except psycopg.Error as e:
            error = e


def apply_sync(
    sink: TableSink, conn: psycopg.Connection[Any], records: Iterable[Record]
) -> ApplyResult:
    """Apply ``records`` through ``sink`` on a sync connection, in one transaction."""
    nested = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        steps = _run(sink, records, lambda parts: sql.Identifier(*parts).as_string(conn), nested)
        return _drive_sync(conn, steps)  # type: ignore[no-any-return]


async def apply_async(
    sink: TableSink, conn: psycopg.AsyncConnection[Any], records: Iterable[Record]
) -> ApplyResult:
    """Apply ``records`` through ``sink`` on an async connection, in one transaction."""
    nested = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    async with conn.transaction():
        steps = _run(sink, records, lambda parts: sql.Identifier(*parts).as_string(conn), nested)
        return await _drive_async(conn, steps)  # type: ignore[no-any-return]
