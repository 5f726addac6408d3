"""Batch planning: records in, per-table row batches out. Pure; nothing here does I/O.

:func:`plan_batch` is the first half of every apply, whatever the driver:

1. route each record by ``collection_id`` (unrouted ones are counted, raised, or sent to a raw
   route, as the caller chose);
2. dedup in the batch per ``(table, key)``, keeping the version with the highest
   ``updated_idx`` (a set-based ``INSERT … ON CONFLICT`` cannot touch one row twice, and the
   lower versions could never win anyway);
3. compute each surviving record's column values; a record whose values cannot be computed
   (a callable raised, a value does not fit its column) becomes a :class:`MappingError` and is
   left out, so it never blocks the others;
4. sort rows by key and tables by name, so two appliers on overlapping keys always lock rows in
   the same order and cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from upsync.errors import ConfigurationError, MappingError
from upsync.records import Record
from upsync.sinks.routes import Column, Route

__all__ = ["BatchPlan", "TableBatch", "Unrouted", "plan_batch"]

Unrouted = Literal["ignore", "raise", "raw"]
"""What to do with a record whose collection has no route: count it, raise, or land it raw."""


@dataclass(frozen=True)
class TableBatch:
    """The rows bound for one table, ready for a driver to write.

    ``rows[i]`` holds the values of ``columns`` for the record ``record_ids[i]`` at version
    ``versions[i]``; ``deleted[i]`` says whether that version is a tombstone, ``keys[i]`` is its
    key column's value and ``records[i]`` the record itself. Rows are sorted by key and hold one
    version per key: the highest one in the batch.

    A *deferred* batch (``plan_batch(..., compute_rows=False)``) has ``rows == []``: the values
    are computed later by :func:`compute_row`, e.g. while ``COPY`` streams them.
    """

    route: Route
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    record_ids: list[str]
    versions: list[int]
    deleted: list[bool]
    keys: list[Any] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    @property
    def table(self) -> str:
        """The dotted table name, for messages."""
        return ".".join(self.route.qualified_name)

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def key_index(self) -> int:
        """Position of the key column (``route.key_column``) in each row."""
        return self.column_names.index(self.route.key_column)

    @property
    def deferred(self) -> bool:
        """Whether the row values are still to be computed."""
        return not self.rows and bool(self.records)

    def __len__(self) -> int:
        return len(self.record_ids)

    def subset(self, indexes: Iterable[int]) -> TableBatch:
        """A batch with only the entries at ``indexes`` (kept in key order)."""
        idx = sorted(indexes)
        return TableBatch(
            route=self.route,
            columns=self.columns,
            rows=[self.rows[i] for i in idx] if self.rows else [],
            record_ids=[self.record_ids[i] for i in idx],
            versions=[self.versions[i] for i in idx],
            deleted=[self.deleted[i] for i in idx],
            keys=[self.keys[i] for i in idx],
            records=[self.records[i] for i in idx],
        )


@dataclass
class BatchPlan:
    """What one batch of records turns into."""

    tables: list[TableBatch]
    """One entry per target table, sorted by (schema, table) so lock order is deterministic."""
    rejected: list[MappingError] = field(default_factory=list)
    """Records whose values could not be computed, each naming the record and the reason."""
    unrouted: list[Record] = field(default_factory=list)
    """Records of collections without a route (with ``unrouted="ignore"``)."""
    duplicates: int = 0
    """In-batch versions dropped because the same key had a higher (or equal) version."""


def plan_batch(
    records: Iterable[Record],
    columns_for: Callable[[Route], tuple[Column, ...]],
    routes: Mapping[str, Route],
    *,
    unrouted: Unrouted = "ignore",
    raw_route: Route | None = None,
    compute_rows: bool = True,
) -> BatchPlan:
    """Route, dedup, map and sort one batch of records.

    Args:
        records: the batch, any size, in any order, duplicates allowed.
        columns_for: the resolved columns of a route (usually ``route.resolve(table_columns)``,
            cached by the caller). It may raise :class:`ConfigurationError` (e.g. the table lacks
            a mapped column): every record of that route is then rejected with that reason.
        routes: routes by ``collection_id``.
        unrouted: ``"ignore"`` (collect in :attr:`BatchPlan.unrouted`), ``"raise"`` (raise
            :class:`ConfigurationError` naming the collection before anything is planned) or
            ``"raw"`` (send to ``raw_route``).
        raw_route: the route for unrouted records when ``unrouted="raw"``.
        compute_rows: compute every row now; ``False`` leaves the batches deferred (only each
            record's key is computed) for a writer that computes rows as it sends them.

    Raises:
        ConfigurationError: ``unrouted="raise"`` and a record's collection has no route, or
            ``unrouted="raw"`` without a ``raw_route``.
    """
    if unrouted == "raw" and raw_route is None:
        raise ConfigurationError("unrouted='raw' needs a raw route")
    # (schema, table) -> key -> newest record; several collections may share one table
    latest: dict[tuple[str, str], dict[Any, tuple[Record, Route]]] = {}
    plan = BatchPlan(tables=[])
    for record in records:
        route = routes.get(record.collection_id)
        if route is None:
            if unrouted == "raise":
                raise ConfigurationError(
                    f"no route for collection {record.collection_id!r} (record {record.id!r}); "
                    f"add a Route for it or pass unrouted='ignore' or 'raw'"
                )
            if unrouted == "ignore":
                plan.unrouted.append(record)
                continue
            assert raw_route is not None
            route = raw_route
        bucket = latest.setdefault((route.schema or "", route.table), {})
        # the dedup key is the record id: every route maps its key column from the record, and
        # two records with one id are versions of one object by the record contract
        seen = bucket.get(record.id)
        if seen is None:
            bucket[record.id] = (record, route)
        else:
            plan.duplicates += 1
            if record.updated_idx > seen[0].updated_idx:
                bucket[record.id] = (record, route)
    for name in sorted(latest):
        batch, dropped = _table_batch(latest[name], columns_for, plan.rejected, compute_rows)
        plan.duplicates += dropped
        if batch is not None:
            plan.tables.append(batch)
    return plan


def _table_batch(
    bucket: dict[Any, tuple[Record, Route]],
    columns_for: Callable[[Route], tuple[Column, ...]],
    rejected: list[MappingError],
    compute_rows: bool,
) -> tuple[TableBatch | None, int]:
    # per route: its columns and the key's position, or why the route cannot be used
    resolved: dict[int, tuple[tuple[Column, ...], int] | MappingError] = {}
    keyed: list[tuple[Any, tuple[Any, ...], Record]] = []
    first_route: Route | None = None
    first_columns: tuple[Column, ...] | None = None
    for record, route in bucket.values():
        entry = resolved.get(id(route))
        if entry is None:
            entry = _resolve(route, columns_for, first_route, first_columns)
            resolved[id(route)] = entry
            if first_columns is None and not isinstance(entry, MappingError):
                first_route, first_columns = route, entry[0]
        if isinstance(entry, MappingError):
            rejected.append(
                MappingError(entry.reason, record_id=record.id, collection_id=record.collection_id)
            )
            continue
        columns, key_at = entry
        if compute_rows:
            row = compute_row(record, columns, rejected)
            if row is not None:
                keyed.append((row[key_at], row, record))
        else:
            key = _key(record, columns[key_at], rejected)
            if key is not _FAILED:
                keyed.append((key, (), record))
    if first_route is None or first_columns is None or not keyed:
        return None, 0
    keyed.sort(key=_sort_key)
    dropped = 0
    if first_columns[_index_of(first_columns, first_route.key_column)].source != "id":
        keyed, dropped = _dedup_by_key(keyed)
    return TableBatch(
        route=first_route,
        columns=first_columns,
        rows=[row for _, row, _ in keyed] if compute_rows else [],
        record_ids=[r.id for _, _, r in keyed],
        versions=[r.updated_idx for _, _, r in keyed],
        deleted=[r.deleted for _, _, r in keyed],
        keys=[k for k, _, _ in keyed],
        records=[r for _, _, r in keyed],
    ), dropped


_Keyed = tuple[Any, tuple[Any, ...], Record]


def _resolve(
    route: Route,
    columns_for: Callable[[Route], tuple[Column, ...]],
    first_route: Route | None,
    first_columns: tuple[Column, ...] | None,
) -> tuple[tuple[Column, ...], int] | MappingError:
    try:
        columns = columns_for(route)
        key_at = _index_of(columns, route.key_column)
    except ConfigurationError as e:
        return MappingError(str(e))
    if first_columns is not None and [c.name for c in columns] != [c.name for c in first_columns]:
        assert first_route is not None
        return MappingError(
            f"routes for {route.collection_id!r} and {first_route.collection_id!r} "
            f"share table {route.table!r} but map different columns"
        )
    return columns, key_at


def _sort_key(item: _Keyed) -> Any:
    # None sorts first and never reaches a table (the primary key refuses it), but must not
    # break the sort; the version orders a key's versions, newest first
    key = item[0]
    return (key is not None, key, -item[2].updated_idx)


def _dedup_by_key(keyed: list[_Keyed]) -> tuple[list[_Keyed], int]:
    # only when the key column is not the record id: two different records may then share a key
    out: list[_Keyed] = []
    for item in keyed:
        if out and out[-1][0] == item[0] and item[0] is not None:
            continue
        out.append(item)
    return out, len(keyed) - len(out)


def _index_of(columns: tuple[Column, ...], name: str) -> int:
    for i, column in enumerate(columns):
        if column.name == name:
            return i
    raise ConfigurationError(f"column {name!r} is not mapped")


_FAILED = object()


def _key(record: Record, column: Column, rejected: list[MappingError]) -> Any:
    try:
        return column.extract(record)
    except Exception as e:
        rejected.append(_mapping_error(record, column, e))
        return _FAILED


def compute_row(
    record: Record, columns: tuple[Column, ...], rejected: list[MappingError]
) -> tuple[Any, ...] | None:
    """The record's values for ``columns``; ``None`` (and a ``MappingError``) if one fails."""
    try:
        return tuple([column.extract(record) for column in columns])
    except Exception:
        pass
    for column in columns:  # the rare path: find the column at fault
        try:
            column.extract(record)
        except Exception as e:
            rejected.append(_mapping_error(record, column, e))
            return None
    return None  # pragma: no cover - an extractor that fails only once


def _mapping_error(record: Record, column: Column, e: Exception) -> MappingError:
    if isinstance(e, MappingError):
        reason = e.reason
    else:  # a user callable may raise anything; report it, don't crash
        reason = f"{column.source!r} raised {type(e).__name__}: {e}"
    return MappingError(
        reason, record_id=record.id, collection_id=record.collection_id, column=column.name
    )
