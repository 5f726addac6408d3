"""SQLAlchemy 2 integration: routes from models or tables, apply in the caller's transaction.

::

    from upsync.sinks import TableSink
    from upsync.sinks.sqlalchemy import apply, route_for

    sink = TableSink([
        route_for(Subscription, "stripe:subscription", columns={
            "stripe_customer_id": "data.customer",
            "plan_id": "data.items.data[0].price.id",
            "quantity": "data.items.data[0].quantity",
            "internal_id": "sync.external_id",
        }),
    ])
    with Session(engine) as session, session.begin():
        result = apply(session, sink, records)

:func:`apply` / :func:`apply_async` run inside the transaction of the ``Session``,
``Connection``, ``AsyncSession`` or ``AsyncConnection`` they are given (beginning it if needed,
like any statement would) and never commit it: the caller's commit or rollback decides. On
psycopg 3 (``postgresql+psycopg://``) the batch goes through the driver connection to
:meth:`TableSink.apply` (COPY-based, the fastest path); on asyncpg and DB-API drivers such as
psycopg2 it goes through :mod:`upsync.sinks._drivers` (the driver's own pipelined executemany).

The writes bypass the ORM: objects already loaded in a ``Session`` are not refreshed. Call
``session.expire_all()`` (or query with ``populate_existing``) to see the new rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import ColumnProperty, Mapper, QueryableAttribute, Session

from upsync.errors import ConfigurationError
from upsync.records import Record
from upsync.sinks import _drivers
from upsync.sinks.routes import STANDARD_COLUMNS, Route, Source

if TYPE_CHECKING:
    from upsync.sinks.table import ApplyResult, TableSink

__all__ = ["apply", "apply_async", "route_for"]

ColumnKey = str | sa.Column[Any] | QueryableAttribute[Any]
"""A key of ``route_for(columns=…)``: a column name, a mapped attribute name,
``Subscription.plan_id`` or a ``Column``."""

_UNSET: Any = object()


def route_for(
    target: type[Any] | sa.Table,
    collection_id: str,
    columns: Mapping[Any, Source] | None = None,
    *,
    standard: Sequence[str] | None = None,
    key_column: str = "id",
    version_column: str = "updated_idx",
    deleted_column: str | None = _UNSET,
) -> Route:
    """A :class:`Route` to a declarative model's table, or to a Core ``Table``.

    The table name and schema come from the model. ``columns`` maps extra columns (by column
    name, mapped attribute name, ``Model.attr`` or ``Column``) to their sources. The standard
    columns (:data:`~upsync.sinks.routes.STANDARD_COLUMNS`) the table has are mapped by name,
    unless ``standard`` names them; ``deleted_column`` defaults to ``"deleted"`` when the table
    has it (else ``None``: deletes then need ``TableSink(hard_delete=True)``). Nothing touches
    the database: the model's metadata is the truth, so it must match the real table.

    Raises:
        ConfigurationError: not a model or table, a column the table lacks, a key column
            without a primary key or unique constraint, or a version column narrower than
            ``BIGINT`` (Sequin's versions overflow a 32-bit integer).
    """
    table, mapper = _table_and_mapper(target)
    names = [c.name for c in table.columns]
    mapped = {_column_name(key, table, mapper): source for key, source in (columns or {}).items()}
    if standard is None:
        standard = [c for c in STANDARD_COLUMNS if c in names and c not in mapped]
    if deleted_column is _UNSET:
        deleted_column = "deleted" if "deleted" in names else None
    route = Route(
        collection_id,
        table.name,
        schema=table.schema,
        columns=mapped,
        standard=tuple(standard),
        key_column=key_column,
        version_column=version_column,
        deleted_column=deleted_column,
    )
    route.resolve(names)  # every mapped column exists; key and version are mapped
    _check_key(table, key_column)
    _check_version(table, version_column)
    return route


def _table_and_mapper(target: type[Any] | sa.Table) -> tuple[sa.Table, Mapper[Any] | None]:
    if isinstance(target, sa.Table):
        return target, None
    mapper = sa.inspect(target, raiseerr=False)
    if isinstance(mapper, Mapper) and isinstance(mapper.local_table, sa.Table):
        return mapper.local_table, mapper
    raise ConfigurationError(
        f"route_for() needs a mapped class with a table or a Table, got {target!r}"
    )


def _column_name(key: ColumnKey, table: sa.Table, mapper: Mapper[Any] | None) -> str:
    names = {c.name for c in table.columns}
    if isinstance(key, str):
        if key in names:
            return key
        if mapper is not None and key in mapper.attrs:
            return _column_name(getattr(mapper.class_, key), table, mapper)
    elif isinstance(key, QueryableAttribute):
        prop = key.property
        if isinstance(prop, ColumnProperty):
            column = prop.columns[0]
            if isinstance(column, sa.Column) and column.table is table:
                return column.name
    elif isinstance(key, sa.Column) and key.table is table:
        return key.name
    raise ConfigurationError(f"{key!r} is not a column of table {table.fullname}")


def _check_key(table: sa.Table, key: str) -> None:
    if [c.name for c in table.primary_key.columns] == [key] or table.c[key].unique:
        return
    uniques = [c.columns for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    uniques += [ix.columns for ix in table.indexes if ix.unique]
    if any([c.name for c in columns] == [key] for columns in uniques):
        return
    raise ConfigurationError(
        f"table {table.fullname}: the guarded upsert's ON CONFLICT ({key}) needs {key!r} to be "
        f"the primary key or unique; declare it so in the model"
    )


def _check_version(table: sa.Table, version: str) -> None:
    type_ = table.c[version].type
    if isinstance(type_, sa.Integer) and not isinstance(type_, sa.BigInteger):
        raise ConfigurationError(
            f"table {table.fullname}: version column {version!r} is {type_}, but versions "
            f"(updated_idx) exceed 32 bits; use BigInteger"
        )


def apply(bind: Session | Connection, sink: TableSink, records: Iterable[Record]) -> ApplyResult:
    """Apply a batch through ``sink`` in the transaction of ``bind``; never commits.

    A ``Session`` is flushed first when its ``autoflush`` is on (as a query would), so pending
    ORM changes reach the database before the batch. If ``bind`` is in ``AUTOCOMMIT`` mode the
    batch is its own transaction, committed on return.

    Raises:
        ConfigurationError: an async driver (use :func:`apply_async`) or a driver whose
            placeholders are not ``%s``; and as :meth:`TableSink.apply`.
    """
    if isinstance(bind, Session):
        if bind.autoflush:
            bind.flush()
        conn = bind.connection()
    else:
        conn = bind
    fairy = conn.connection
    raw: Any = fairy.driver_connection
    dbapi = conn.dialect.loaded_dbapi
    is_psycopg = isinstance(raw, psycopg.Connection)
    if not is_psycopg and (conn.dialect.is_async or dbapi.paramstyle not in ("format", "pyformat")):
        raise ConfigurationError(
            f"apply() cannot drive {conn.dialect.driver!r}"
            + (": it is async; use apply_async()" if conn.dialect.is_async else "")
        )
    nested = not _autocommit(fairy.dbapi_connection)
    if nested and not _in_transaction(raw):
        conn.exec_driver_sql("SELECT 1")  # begins the driver's transaction, which SA now owns
    if is_psycopg:
        return sink.apply(raw, records)
    return _drivers.apply_dbapi(sink, raw, records, error=dbapi.Error, nested=nested)


async def apply_async(
    bind: AsyncSession | AsyncConnection, sink: TableSink, records: Iterable[Record]
) -> ApplyResult:
    """:func:`apply` for an ``AsyncSession`` or ``AsyncConnection`` (psycopg 3 or asyncpg)."""
    if isinstance(bind, AsyncSession):
        if bind.sync_session.autoflush:
            await bind.flush()
        conn = await bind.connection()
    else:
        conn = bind
    fairy = await conn.get_raw_connection()
    raw = fairy.driver_connection
    nested = not _autocommit(fairy.dbapi_connection)
    if nested and not _in_transaction(raw):
        await conn.exec_driver_sql("SELECT 1")
    if isinstance(raw, psycopg.AsyncConnection):
        return await sink.apply_async(raw, records)
    if type(raw).__module__.partition(".")[0] == "asyncpg":
        return await _drivers.apply_asyncpg(sink, raw, records, nested=nested)
    raise ConfigurationError(
        f"apply_async() supports psycopg 3 and asyncpg, not {conn.dialect.driver!r}"
    )


def _autocommit(dbapi_connection: Any) -> bool:
    return bool(getattr(dbapi_connection, "autocommit", False))


def _in_transaction(raw: Any) -> bool:
    """Whether the driver connection has a transaction open on the server."""
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    if status is not None:
        return int(status) != 0  # libpq's PQTRANS_IDLE, for psycopg and psycopg2 alike
    in_transaction = getattr(raw, "is_in_transaction", None)  # asyncpg
    return bool(in_transaction()) if callable(in_transaction) else False
