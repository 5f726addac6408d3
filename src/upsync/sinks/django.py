"""Django integration: routes from models, apply on Django's own database connection.

::

    from upsync.sinks import TableSink
    from upsync.sinks.django import apply, route_for_model

    sink = TableSink([
        route_for_model(Subscription, "stripe:subscription", columns={
            "stripe_customer_id": "data.customer",
            "plan_id": "data.items.data[0].price.id",
            "quantity": "data.items.data[0].quantity",
            "internal_id": "sync.external_id",
        }),
    ])
    with transaction.atomic():
        result = apply(sink, records)

:func:`apply` writes through the psycopg 3 connection Django wraps (Django 4.2+ with psycopg 3
installed), so it shares Django's transaction: inside ``transaction.atomic()`` nothing is
committed until the block is; outside one the batch is its own transaction, committed on
return (Django's autocommit). With psycopg2 as Django's driver it goes through the DB-API
executor of :mod:`upsync.sinks._drivers`. The writes bypass the ORM (no signals, no
``save()``), and Django's query log does not list them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, models

from upsync.errors import ConfigurationError
from upsync.records import Record
from upsync.sinks import _drivers
from upsync.sinks.routes import STANDARD_COLUMNS, Route, Source

if TYPE_CHECKING:
    from upsync.sinks.table import ApplyResult, TableSink

__all__ = ["apply", "route_for_model"]

_UNSET: Any = object()


def route_for_model(
    model: type[models.Model],
    collection_id: str,
    columns: Mapping[str, Source] | None = None,
    *,
    schema: str | None = None,
    standard: Sequence[str] | None = None,
    key_column: str = "id",
    version_column: str = "updated_idx",
    deleted_column: str | None = _UNSET,
) -> Route:
    """A :class:`Route` to a Django model's table (``Meta.db_table``).

    ``columns`` maps model fields (by field name or column name; a ``ForeignKey`` ``customer``
    is the column ``customer_id``) to their sources. Standard columns the model has are mapped
    by name unless ``standard`` names them; ``deleted_column`` defaults to ``"deleted"`` when
    the model has it. ``key_column`` and ``version_column`` are field or column names too.
    ``schema`` qualifies the table (else the connection's ``search_path`` finds it).

    Raises:
        ConfigurationError: a field the model lacks, or a key that is neither the primary key
            nor unique (the guarded upsert's ``ON CONFLICT`` needs one).
    """
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise ConfigurationError(f"route_for_model() needs a Django model class, got {model!r}")
    fields = {f.name: f for f in model._meta.concrete_fields}
    by_column = {f.column: f for f in fields.values() if f.column}
    columns_of = {name: f.column for name, f in fields.items() if f.column}

    def column(name: str) -> str:
        if name in by_column:
            return name
        if name in columns_of:
            return columns_of[name]
        raise ConfigurationError(f"model {model.__name__} has no field or column {name!r}")

    mapped = {column(name): source for name, source in (columns or {}).items()}
    key, version = column(key_column), column(version_column)
    if standard is None:
        standard = [c for c in STANDARD_COLUMNS if c in by_column and c not in mapped]
    if deleted_column is _UNSET:
        deleted_column = "deleted" if "deleted" in by_column else None
    key_field = by_column[key]
    if not (key_field.primary_key or key_field.unique):
        raise ConfigurationError(
            f"model {model.__name__}: the guarded upsert's ON CONFLICT ({key}) needs field "
            f"{key_field.name!r} to be the primary key or unique"
        )
    route = Route(
        collection_id,
        model._meta.db_table,
        schema=schema,
        columns=mapped,
        standard=tuple(standard),
        key_column=key,
        version_column=version,
        deleted_column=deleted_column,
    )
    route.resolve(list(by_column))  # every mapped column exists; key and version are mapped
    return route


def apply(
    sink: TableSink, records: Iterable[Record], *, using: str = DEFAULT_DB_ALIAS
) -> ApplyResult:
    """Apply a batch through ``sink`` on Django's connection ``using``.

    Inside ``transaction.atomic(using=...)`` the batch joins that transaction (in a savepoint)
    and is committed or rolled back with it; outside one it is its own transaction.

    Raises:
        ConfigurationError: the database is not PostgreSQL; and as :meth:`TableSink.apply`.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise ConfigurationError(f"database {using!r} is {connection.vendor}, not PostgreSQL")
    connection.ensure_connection()
    connection.validate_no_broken_transaction()  # as Django's own queries do in atomic()
    raw: Any = connection.connection
    nested = not raw.autocommit
    if nested and not _in_transaction(raw):
        # Django turned autocommit off for atomic() but sent nothing yet: begin now, so the
        # batch joins this transaction instead of committing one of its own
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    if isinstance(raw, psycopg.Connection):
        return _apply_psycopg(sink, raw, records)
    wrapper: Any = connection
    dbapi = wrapper.Database  # the driver module Django loaded
    return _drivers.apply_dbapi(sink, raw, records, error=dbapi.Error, nested=nested)


def _apply_psycopg(
    sink: TableSink, raw: psycopg.Connection[Any], records: Iterable[Record]
) -> ApplyResult:
    # Django's cursors bind parameters client-side (literal SQL); the sink's statements are
    # written for server-side binding and COPY, so use plain psycopg cursors for this call
    factory = raw.cursor_factory
    raw.cursor_factory = psycopg.Cursor
    try:
        return sink.apply(raw, records)
    finally:
        raw.cursor_factory = factory


def _in_transaction(raw: Any) -> bool:
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    return status is not None and int(status) != 0  # libpq's PQTRANS_IDLE
