"""The apply algorithm, written once for every driver: a generator of steps. Pure, no I/O.

:func:`apply_steps` yields the operations of :mod:`upsync.sinks.actions` and receives their results;
a driver performs them (psycopg sync and async in :mod:`upsync.sinks.apply`, asyncpg and DB-API
drivers in :mod:`upsync.sinks._drivers`). Per batch:

1. introspect each target table once per sink (creating the raw table if it is used);
2. plan: route, deduplicate, sort (:func:`~upsync.sinks.plan.plan_batch`); row values are
   computed later, while they are sent, so Python's work overlaps the server's;
3. per table, in key order, chunk by chunk: hard deletes first (with ``hard_delete``), then the
   live rows. A driver that can ``COPY`` (:class:`~upsync.sinks.actions.Capabilities`):

   a. while the table keeps receiving new keys, ``COPY`` the chunk straight into it, in a
      savepoint; an existing key makes it fail, and the chunk goes on;
   b. read the current versions of the chunk's keys (skipped while chunks come without stale
      versions) and drop the versions that are not newer (counted stale, never written);
   c. ``COPY`` the rest into a session staging table and run the guarded
      ``INSERT … SELECT … ON CONFLICT … WHERE t.version < excluded.version``.

   Small chunks (below ``executemany_below``), and every chunk of a driver without ``COPY``, go
   by the guarded upsert once per row, pipelined, every value bound as text;
4. a chunk Postgres refuses is retried in halves, each in its own savepoint, down to the single
   rows at fault. Such a row is counted stale if its version is not newer than the table's
   (it would have changed nothing), a ``MappingError`` if no driver could ever send it
   (:func:`~upsync.sinks.columns.diagnose`), else a ``RowRejected`` with Postgres' reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from psycopg import sql

from upsync.errors import ConfigurationError, MappingError, RowRejected, UpsyncError
from upsync.records import Record
from upsync.sinks import ddl
from upsync.sinks import sql as sink_sql
from upsync.sinks.actions import Capabilities, Copy, Many, Op, Query, Steps
from upsync.sinks.columns import INTROSPECT, TEXT_TYPES, TableInfo, adapt, diagnose, table_info
from upsync.sinks.columns import text_row as _text_row
from upsync.sinks.faults import DbFailure
from upsync.sinks.plan import TableBatch, Unrouted, compute_row, plan_batch
from upsync.sinks.result import ApplyResult, Counts
from upsync.sinks.routes import Column, Route

__all__ = ["ApplySteps", "SinkCache", "SinkSettings", "apply_steps"]

# two sessions creating one table race on the catalogs' unique indexes, or find it created
_CREATE_RACE = frozenset({"23505", "42P07"})


class SinkSettings(Protocol):
    """What the steps read of a sink (:class:`~upsync.sinks.table.TableSink` documents each)."""

    @property
    def routes(self) -> Mapping[str, Route]: ...
    @property
    def unrouted(self) -> Unrouted: ...
    @property
    def raw_route(self) -> Route: ...
    @property
    def hard_delete(self) -> bool: ...
    @property
    def tombstone_table(self) -> str: ...
    @property
    def isolate_bad_records(self) -> bool: ...
    @property
    def chunk_size(self) -> int: ...
    @property
    def executemany_below(self) -> int: ...


class ApplySteps(Protocol):
    """What a driver applies: a sink that gives the steps of a batch (``TableSink.steps``)."""

    def steps(
        self, records: Iterable[Record], caps: Capabilities, *, nested: bool
    ) -> Generator[Op, Any, ApplyResult]: ...


@dataclass
class SinkCache:
    """What a sink learned about its tables, shared by every driver; :meth:`clear` forgets it."""

    tables: dict[str, TableInfo] = field(default_factory=dict)
    """Introspected tables, by collection id."""
    columns: dict[str, tuple[Column, ...]] = field(default_factory=dict)
    """Resolved and adapted columns, by collection id."""
    expect_new: dict[str, bool] = field(default_factory=dict)
    """Per table: whether the last chunk was all new rows (then try a plain ``COPY`` first)."""
    expect_stale: dict[str, bool] = field(default_factory=dict)
    """Per table: whether the last chunk had stale versions (then filter them out first)."""

    def clear(self) -> None:
        self.tables.clear()
        self.columns.clear()
        self.expect_new.clear()
        self.expect_stale.clear()


def apply_steps(
    sink: SinkSettings,
    cache: SinkCache,
    records: Iterable[Record],
    caps: Capabilities,
    *,
    nested: bool,
) -> Generator[Op, Any, ApplyResult]:
    """The whole apply of one batch, as operations; returns its :class:`ApplyResult`.

    ``nested``: the driver runs it inside a transaction the caller already had open. The
    driver wraps the steps in their own transaction (or savepoint).
    """
    batch = list(records)
    failed: dict[str, ConfigurationError] = {}
    for route in _routes_used(sink, batch):
        if route is sink.raw_route:
            yield from _create_if_missing(ddl.create_table_sql(route, raw=True))
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
            resolved = route.resolve(info.names)
            cached = tuple(adapt(c, info.columns[c.name]) for c in resolved)
            cache.columns[route.collection_id] = cached
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
    counts = Counts(rejected=list(plan.rejected))
    for tb in plan.tables:
        info = cache.tables[tb.route.collection_id]
        # in a new transaction the staging table is empty: ON COMMIT DELETE ROWS emptied it
        # at the last commit, and a rollback leaves nothing; in the caller's one it may not be
        ctx = _Table(sink, cache, caps, info, tb.route, counts, dirty=nested)
        yield from _apply_table(ctx, tb)
    if counts.rejected and not sink.isolate_bad_records:
        # mapping errors found while sending: raising rolls the whole batch back
        raise counts.rejected[0]
    return counts.result(duplicates=plan.duplicates, unrouted=len(plan.unrouted))


def _routes_used(sink: SinkSettings, batch: list[Record]) -> list[Route]:
    used: dict[str, Route] = {}
    for record in batch:
        route = sink.routes.get(record.collection_id)
        if route is None and sink.unrouted == "raw":
            route = sink.raw_route
        if route is not None:
            used.setdefault(route.collection_id, route)
    return list(used.values())


def _introspect(route: Route) -> Generator[Op, Any, TableInfo]:
    rows = yield Query(INTROSPECT, [sql.Identifier(*route.qualified_name).as_string(None)])
    if not rows:
        raise ConfigurationError(
            f"table {'.'.join(route.qualified_name)} (route for {route.collection_id!r}) "
            f"does not exist or is not visible on this connection's search_path"
        )
    return table_info(rows)


@dataclass
class _Table:
    """Everything the writes of one table's rows need."""

    sink: SinkSettings
    cache: SinkCache
    caps: Capabilities
    info: TableInfo
    route: Route
    counts: Counts
    dirty: bool
    """Whether the staging table may hold rows of an earlier chunk or apply (then TRUNCATE)."""
    tombstones: tuple[str, ...] | None = None
    deleted_column: str | None = None

    @property
    def key_type(self) -> str:
        return self.info.columns[self.route.key_column].type

    def staging(self, columns: tuple[str, ...]) -> str:
        sig = "\x1f".join([*self.route.qualified_name, "\x1e", *columns])
        return "upsync_stage_" + hashlib.blake2b(sig.encode(), digest_size=8).hexdigest()

    def versions(self, keys: Iterable[Any]) -> Query:
        """The current versions (table or tombstone) of ``keys``: ``(key::text, version)``."""
        stmt = sink_sql.versions_statement(
            self.route, key_type=self.key_type, tombstones=self.tombstones
        )
        return Query(stmt, [[str(k) for k in keys]])


def _apply_table(ctx: _Table, tb: TableBatch) -> Steps:
    route = tb.route
    if route.deleted_column in tb.column_names:
        ctx.deleted_column = route.deleted_column
    if ctx.sink.hard_delete:
        ctx.tombstones = _tombstone_table(ctx.sink, route)
        yield from _create_if_missing(sink_sql.tombstone_table_statement(ctx.tombstones))
        # hard deletes remove rows, so "the row's version" alone cannot guard against an older
        # version re-inserting it concurrently; writers of one table take turns instead
        yield Query(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            ["upsync:" + ".".join(route.qualified_name)],
        )
        for chunk in _chunks(tb.subset(i for i, d in enumerate(tb.deleted) if d), ctx):
            yield from _hard_delete(ctx, chunk)
        tb = tb.subset(i for i, d in enumerate(tb.deleted) if not d)
    elif ctx.deleted_column is None and any(tb.deleted):
        for i in (i for i, d in enumerate(tb.deleted) if d):
            ctx.counts.rejected.append(
                MappingError(
                    f"is a delete, but table {tb.table} has no column "
                    f"{route.deleted_column!r}; add it or use TableSink(hard_delete=True)",
                    record_id=tb.record_ids[i],
                    collection_id=route.collection_id,
                )
            )
        tb = tb.subset(i for i, d in enumerate(tb.deleted) if not d)
    for chunk in _chunks(tb, ctx):
        yield from _write_chunk(ctx, chunk)


def _tombstone_table(sink: SinkSettings, route: Route) -> tuple[str, ...]:
    if route.schema:
        return (route.schema, sink.tombstone_table)
    return (sink.tombstone_table,)


def _chunks(tb: TableBatch, ctx: _Table) -> Iterable[TableBatch]:
    size = ctx.sink.chunk_size
    for start in range(0, len(tb), size):
        yield tb.subset(range(start, min(start + size, len(tb))))


def _create_if_missing(stmt: sql.Composed) -> Steps:
    """``CREATE TABLE IF NOT EXISTS`` that tolerates a concurrent creator."""
    try:
        yield from _savepoint(_one(Query(stmt)), lambda f: f.sqlstate in _CREATE_RACE)
    except DbFailure as e:
        if e.sqlstate not in _CREATE_RACE:
            raise


def _one(op: Op) -> Steps:
    return (yield op)


def _row_fault(failure: DbFailure) -> bool:
    return failure.row_fault


def _savepoint(body: Steps, handled: Callable[[DbFailure], bool] = _row_fault) -> Steps:
    """Run ``body`` in a savepoint; on a failure the caller handles, roll back to it. Re-raises."""
    yield Query("SAVEPOINT upsync_chunk")
    try:
        result = yield from body
    except DbFailure as e:
        if handled(e):
            yield Query("ROLLBACK TO SAVEPOINT upsync_chunk")
            yield Query("RELEASE SAVEPOINT upsync_chunk")
        raise
    yield Query("RELEASE SAVEPOINT upsync_chunk")
    return result


class _Rows:
    """A chunk's rows, computed as they are sent (so Python overlaps the server's work), and
    kept for a retry. A record whose values cannot be computed is left out and reported."""

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

    def text(self) -> Iterator[tuple[str | None, ...]]:
        """The rows in Postgres' text format (for :class:`~upsync.sinks.actions.Many`)."""
        for row in self:
            yield _text_row(row)

    def batch(self) -> TableBatch:
        """The chunk with every row computed (records that failed mapping left out)."""
        for _ in self:
            pass
        if len(self.kept) == len(self.chunk) and not self.chunk.deferred:
            return self.chunk
        return replace(self.chunk.subset(self.kept), rows=self.rows)


def _hard_delete(ctx: _Table, chunk: TableBatch) -> Steps:
    assert ctx.tombstones is not None
    params = [[str(k) for k in chunk.keys], chunk.versions]
    yield Query(sink_sql.hard_delete_statement(ctx.route, key_type=ctx.key_type), params)
    done = yield Query(
        sink_sql.tombstone_upsert_statement(ctx.route, ctx.tombstones, key_type=ctx.key_type),
        params,
    )
    ctx.counts.add(deleted=len(done), stale=len(chunk) - len(done))


def _write_chunk(ctx: _Table, chunk: TableBatch) -> Steps:
    """Write one chunk: COPY it if it is all new, else skip the stale part and merge the rest."""
    rows = _Rows(chunk, ctx.counts.rejected)
    if not ctx.caps.copy or len(chunk) < ctx.sink.executemany_below:
        yield from _isolating(ctx, rows, _upsert_rows)
        return
    table = chunk.table
    hard = ctx.tombstones is not None
    if not hard and ctx.cache.expect_new.get(table, True):
        # optimistic: a table taking new rows usually keeps taking new rows; if a key exists
        # the COPY fails (at the first existing key) and the merge path takes over. Not with
        # hard deletes: a plain COPY would not see the tombstones
        if (yield from _copy_direct(ctx, rows)):
            return
        ctx.cache.expect_new[table] = False
        chunk = rows.batch()
        rows = _Rows(chunk, ctx.counts.rejected)
    fresh = list(range(len(chunk)))
    if hard or ctx.cache.expect_stale.get(table, True):
        # skipping stale versions here saves their staging and the row lock the guarded
        # upsert takes even when its guard says no; skipped while chunks come without any
        known = dict((yield ctx.versions(chunk.keys)))
        fresh = [
            i
            for i, key in enumerate(chunk.keys)
            if (v := known.get(str(key))) is None or chunk.versions[i] > v
        ]
        ctx.counts.add(stale=len(chunk) - len(fresh))
        if not fresh:
            return
        if len(fresh) < len(chunk):
            rows = _Rows(chunk.subset(fresh), ctx.counts.rejected)
        # hard deletes hold the table's advisory lock: no key can appear or get a tombstone
        # behind our back, so "known to nobody" means a plain COPY is safe
        if hard and not any(str(chunk.keys[i]) in known for i in fresh):
            if (yield from _copy_direct(ctx, rows)):
                return
            rows = _Rows(rows.batch(), ctx.counts.rejected)
    stale_before = ctx.counts.stale
    inserted = yield from _isolating(ctx, rows, _merge)
    ctx.cache.expect_new[table] = inserted == len(fresh)
    ctx.cache.expect_stale[table] = len(fresh) < len(chunk) or ctx.counts.stale > stale_before


def _copy_direct(ctx: _Table, rows: _Rows) -> Generator[Op, Any, bool]:
    """COPY rows straight into the table; ``False`` if that failed (the caller merges)."""
    stmt = sink_sql.copy_text_statement(ctx.route.qualified_name, rows.chunk.columns)
    try:
        yield from _savepoint(_one(Copy(stmt, rows)))
    except DbFailure as e:
        # a key exists (or a concurrent insert won), or a row Postgres refuses: the merge
        # path sorts out which (each record is mapped once: its mapping error, if any, stays)
        if e.row_fault:
            return False
        raise
    done = rows.batch()
    tombstones = sum(done.deleted)
    ctx.counts.add(inserted=len(done) - tombstones, deleted=tombstones)
    return True


def _merge(ctx: _Table, rows: _Rows) -> Generator[Op, Any, int]:
    """Stage the rows, then one guarded ``INSERT … SELECT``; returns how many were inserted."""
    columns = rows.chunk.columns
    stg = ctx.staging(rows.chunk.column_names)
    yield Query(sink_sql.staging_statement(stg, ctx.route.qualified_name, columns))
    if ctx.dirty:
        # rows of an earlier chunk (or an earlier apply in the caller's transaction) are still
        # there: ON COMMIT DELETE ROWS only empties the table at commit
        yield Query(sql.SQL("TRUNCATE {}").format(sql.Identifier(stg)))
    ctx.dirty = True
    yield Copy(sink_sql.copy_text_statement((stg,), columns), rows)
    stmt = sink_sql.merge_statement(
        ctx.route,
        columns,
        (stg,),
        tombstones=ctx.tombstones,
        deleted_column=ctx.deleted_column,
        order_bytewise=ctx.key_type in TEXT_TYPES,
    )
    [(inserted, updated, deleted)] = yield Query(stmt)
    stale = len(rows.kept) - inserted - updated - deleted
    ctx.counts.add(inserted=inserted, updated=updated, deleted=deleted, stale=stale)
    return int(inserted)


def _upsert_rows(ctx: _Table, rows: _Rows) -> Generator[Op, Any, int]:
    """The guarded upsert row by row, pipelined; returns how many were inserted."""
    columns = rows.chunk.columns
    stmt = sink_sql.upsert_statement(
        ctx.route,
        columns,
        column_types=ctx.info.types(columns),
        tombstones=ctx.tombstones,
        deleted_column=ctx.deleted_column,
        text_params=True,
    )
    applied = yield Many(stmt, rows.text())
    deleted = sum(1 for _, is_deleted in applied if is_deleted)
    inserted = sum(1 for is_new, is_deleted in applied if is_new and not is_deleted)
    ctx.counts.add(
        inserted=inserted,
        updated=len(applied) - inserted - deleted,
        deleted=deleted,
        stale=len(rows.kept) - len(applied),
    )
    return inserted


Write = Callable[[_Table, _Rows], Generator[Op, Any, int]]


def _isolating(ctx: _Table, rows: _Rows, write: Write) -> Generator[Op, Any, int]:
    """Write ``rows``; if Postgres refuses them, bisect down to the rows at fault."""
    counts = ctx.counts
    pending = [rows]
    inserted = 0
    while pending:
        part = pending.pop()
        before, dirty = counts.snapshot(), ctx.dirty
        try:
            inserted += yield from _savepoint(write(ctx, part))
        except DbFailure as e:
            if not e.row_fault:
                raise
            # the savepoint undid the attempt, staging table included
            counts.restore(before)
            ctx.dirty = dirty
            done = part.batch()
            if len(done) == 1:
                yield from _single_row_refused(ctx, done, e)
                continue
            half = len(done) // 2
            # a stack: push the right half first so the left one (lower keys) runs first
            pending.append(_Rows(done.subset(range(half, len(done))), counts.rejected))
            pending.append(_Rows(done.subset(range(half)), counts.rejected))
    return inserted


def _single_row_refused(ctx: _Table, row: TableBatch, failure: DbFailure) -> Steps:
    """Count a refused row stale if it is (it would have changed nothing), else report it."""
    [(_, current)] = (yield ctx.versions(row.keys)) or [(None, None)]
    if current is not None and current >= row.versions[0]:
        ctx.counts.add(stale=1)
        return
    record = row.records[0]
    error: UpsyncError
    unsendable = diagnose(row.rows[0], row.columns, ctx.info)
    if unsendable is not None:
        error = MappingError(
            unsendable.reason,
            record_id=record.id,
            collection_id=record.collection_id,
            column=unsendable.column,
        )
    else:
        error = RowRejected(
            failure.reason, record_id=row.record_ids[0], table=row.table, sqlstate=failure.sqlstate
        )
    if not ctx.sink.isolate_bad_records:
        raise error from failure.error
    ctx.counts.rejected.append(error)
