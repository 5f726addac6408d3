"""``TableSink``: apply batches of records to the user's tables, guarded by version.

Usage::

    sink = TableSink([Route("stripe:subscription", "subscriptions", columns={...})])
    with psycopg.connect(dsn) as conn:
        result = sink.apply(conn, records)        # one transaction; commits unless the caller
                                                  # already had one open
The algorithm is written once, as steps (:mod:`upsync.sinks.steps`, pure); drivers only
perform them: psycopg 3 (:mod:`upsync.sinks.apply`), asyncpg and DB-API drivers
(:mod:`upsync.sinks._drivers`, used by the SQLAlchemy and Django integrations).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, Literal

import psycopg

from upsync.errors import ConfigurationError
from upsync.records import Record
from upsync.sinks import apply as psycopg_driver
from upsync.sinks.actions import Capabilities, Op
from upsync.sinks.plan import BatchPlan, plan_batch
from upsync.sinks.result import ApplyResult
from upsync.sinks.routes import STANDARD_COLUMNS, Column, Route, check_identifier
from upsync.sinks.steps import SinkCache, apply_steps

__all__ = ["RAW_COLLECTION", "ApplyResult", "TableSink"]

#: The pseudo collection id of the raw route (``unrouted="raw"``).
RAW_COLLECTION = "upsync:raw"


class TableSink:
    """Routes records to tables and applies them with the guarded upsert.

    Args:
        routes: one :class:`Route` per collection.
        unrouted: what to do with a record whose collection has no route: ``"ignore"``
            (counted in :attr:`ApplyResult.unrouted`), ``"raise"`` (:class:`ConfigurationError`
            naming the collection; nothing is written) or ``"raw"`` (kept in ``raw_table``).
        raw_table: the raw table for ``unrouted="raw"``, ``"name"`` or ``("schema", "name")``;
            created if missing.
        hard_delete: remove rows on delete instead of keeping them with ``deleted=true``;
            a tombstone (key, version) is kept in ``tombstone_table`` so that an older version
            arriving later cannot bring the row back.
        tombstone_table: the name of the hard-delete tombstone table, created if missing in
            each target table's schema.
        isolate_bad_records: a record that cannot be mapped is reported as ``MappingError``;
            a row Postgres refuses (bad value, constraint violation) is found by bisection and
            reported as ``RowRejected``; the rest applies. ``False`` raises the first of these
            instead, and nothing of the batch is written.
        chunk_size: rows per internal chunk; the whole batch stays in one transaction.
        executemany_below: chunks with fewer rows are upserted by one pipelined
            ``executemany`` (one round trip) instead of ``COPY`` + merge (several): small
            batches are about latency, large ones about throughput.

    Raises:
        ConfigurationError: two routes for one collection, or a bad ``unrouted`` value.
    """

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        unrouted: Literal["ignore", "raise", "raw"] = "ignore",
        raw_table: str | tuple[str, str] = "upsync_raw_records",
        hard_delete: bool = False,
        tombstone_table: str = "upsync_tombstones",
        isolate_bad_records: bool = True,
        chunk_size: int = 5000,
        executemany_below: int = 32,
    ) -> None:
        self.routes: dict[str, Route] = {}
        for route in routes:
            if route.collection_id in self.routes:
                raise ConfigurationError(f"two routes for collection {route.collection_id!r}")
            if route.standard != "auto":
                route.resolve(None)  # a route that cannot work fails now, not at first apply
            self.routes[route.collection_id] = route
        if unrouted not in ("ignore", "raise", "raw"):
            raise ConfigurationError(
                f"unrouted must be 'ignore', 'raise' or 'raw', got {unrouted!r}"
            )
        self.unrouted = unrouted
        schema, table = raw_table if isinstance(raw_table, tuple) else (None, raw_table)
        self.raw_route = raw_route(table, schema)
        self.hard_delete = hard_delete
        self.tombstone_table = check_identifier(tombstone_table, "tombstone_table")
        self.isolate_bad_records = isolate_bad_records
        if chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size
        self.executemany_below = executemany_below
        # what was learned about the tables, shared by every driver; dropped by invalidate()
        self._cache = SinkCache()

    def invalidate(self) -> None:
        """Forget what was learned about the tables (call after altering one)."""
        self._cache.clear()

    def steps(
        self, records: Iterable[Record], caps: Capabilities, *, nested: bool
    ) -> Generator[Op, Any, ApplyResult]:
        """The apply of ``records`` as operations, for a driver that can do ``caps``.

        The one algorithm every driver runs (:mod:`upsync.sinks.steps`); the driver performs
        the operations (:mod:`upsync.sinks.actions`) in a transaction of its own, or in a savepoint
        of the caller's (``nested``).
        """
        return apply_steps(self, self._cache, records, caps, nested=nested)

    def plan(
        self,
        records: Iterable[Record],
        table_columns: Callable[[Route], Sequence[str] | None],
    ) -> BatchPlan:
        """Route, dedup, map and sort a batch without touching a database.

        ``table_columns(route)`` gives the target table's column names (``None`` if unknown);
        it is called once per route per call. Values are the raw Python values (dicts for JSON).
        A preview of what :meth:`apply` would write; the apply itself plans the same way, with
        the columns it introspects and each value in the form its column takes.
        """
        cache: dict[str, tuple[Column, ...]] = {}

        def columns_for(route: Route) -> tuple[Column, ...]:
            if route.collection_id not in cache:
                cache[route.collection_id] = route.resolve(table_columns(route))
            return cache[route.collection_id]

        return plan_batch(
            records, columns_for, self.routes, unrouted=self.unrouted, raw_route=self.raw_route
        )

    def apply(self, conn: psycopg.Connection[Any], records: Iterable[Record]) -> ApplyResult:
        """Apply a batch of any size in one transaction on ``conn``.

        If ``conn`` is idle (or in autocommit), the batch is one transaction, committed on
        return. If the caller has a transaction open, the batch runs inside it (in a savepoint)
        and nothing is committed: the caller's commit or rollback decides.

        Raises:
            ConfigurationError: ``unrouted="raise"`` and a record has no route (nothing written).
            RowRejected: ``isolate_bad_records=False`` and Postgres refused a row.
        """
        return psycopg_driver.apply(self, conn, records)

    async def apply_async(
        self, conn: psycopg.AsyncConnection[Any], records: Iterable[Record]
    ) -> ApplyResult:
        """:meth:`apply` on an async psycopg connection."""
        return await psycopg_driver.apply_async(self, conn, records)


def raw_route(table: str, schema: str | None = None) -> Route:
    """The route of the raw table: every record attribute, ``data`` as jsonb."""
    return Route(
        RAW_COLLECTION,
        table,
        schema=schema,
        standard=tuple(STANDARD_COLUMNS),
    )
