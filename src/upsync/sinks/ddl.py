"""Table helpers: DDL for a collection's table, as SQL for psycopg or as plain text for migrations.

The standard columns are those of Sequin's upsert guide::

    id text PRIMARY KEY, upstream_id text, deleted boolean NOT NULL DEFAULT false,
    updated_idx bigint NOT NULL, sync_id text, sync_external_id text, sync_metadata jsonb,
    upstream_created_at timestamptz, upstream_updated_at timestamptz

followed by the route's mapped columns (types given by you; ``text`` when not), then
``data jsonb`` (``COMPRESSION lz4`` when the server supports it: PostgreSQL 14+ built with lz4).

* :func:`create_table_sql` → a :class:`psycopg.sql.Composed` to execute;
* :func:`create_table_text` → the same as a string, for Alembic ``op.execute(...)`` or Django
  ``migrations.RunSQL(...)``;
* :func:`ensure_table` → create it if missing on a psycopg connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from upsync.errors import ConfigurationError
from upsync.sinks.routes import Route

__all__ = [
    "RAW_COLUMN_TYPES",
    "STANDARD_COLUMN_TYPES",
    "create_table_sql",
    "create_table_text",
    "ensure_table",
    "ensure_table_async",
    "supports_lz4",
    "supports_lz4_async",
]

#: The standard columns of a collection table, in order, with their SQL types.
STANDARD_COLUMN_TYPES: Mapping[str, str] = {
    "id": "text PRIMARY KEY",
    "upstream_id": "text",
    "deleted": "boolean NOT NULL DEFAULT false",
    "updated_idx": "bigint NOT NULL",
    "sync_id": "text",
    "sync_external_id": "text",
    "sync_metadata": "jsonb",
    "upstream_created_at": "timestamptz",
    "upstream_updated_at": "timestamptz",
}

#: Extra standard columns of the raw table (``unrouted="raw"``), which keeps every attribute.
RAW_COLUMN_TYPES: Mapping[str, str] = {
    "collection_id": "text NOT NULL",
    "provider": "text",
    "inserted_at": "timestamptz",
}

# a type as a user writes it: words, an optional (n[, m]) modifier, optional []; constraints
# and defaults are not types (keep the DDL predictable), and anything else could smuggle SQL
_TYPE_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z_][A-Za-z0-9_]*)*"
    r"(?:\s*\(\s*\d+\s*(?:,\s*\d+\s*)?\))?(?: [A-Za-z_][A-Za-z0-9_]*)*(?:\[\])*"
)


_NOT_TYPE_WORDS = frozenset(
    [
        "not",
        "null",
        "default",
        "primary",
        "key",
        "references",
        "check",
        "unique",
        "constraint",
        "collate",
        "generated",
    ]
)


def _check_type(column: str, type_: str) -> str:
    words = {w.lower() for w in re.findall(r"[A-Za-z_]+", type_)}
    if not _TYPE_RE.fullmatch(type_.strip()) or words & _NOT_TYPE_WORDS:
        raise ConfigurationError(f"column {column!r}: {type_!r} is not a plain SQL type name")
    return type_.strip()


def _columns(route: Route | None, column_types: Mapping[str, str], raw: bool) -> dict[str, str]:
    out = dict(STANDARD_COLUMN_TYPES)
    if raw:
        out.update(RAW_COLUMN_TYPES)
    mapped = list(route.columns) if route is not None else []
    for name in [*mapped, *column_types]:
        if name in out or name == "data":
            if name in column_types and name in STANDARD_COLUMN_TYPES:
                out[name] = _check_type(name, column_types[name])
            continue
        out[name] = _check_type(name, column_types.get(name, "text"))
    return out


def create_table_sql(
    target: Route | str,
    *,
    schema: str | None = None,
    table: str | None = None,
    column_types: Mapping[str, str] | None = None,
    lz4: bool = False,
    if_not_exists: bool = True,
    raw: bool = False,
) -> sql.Composed:
    """``CREATE TABLE`` for a collection's table.

    Args:
        target: a :class:`Route` (its table, schema and mapped columns) or a collection id
            such as ``"stripe:subscription"`` (then ``table`` is required).
        schema: the schema; defaults to the route's (else unqualified: the ``search_path``).
        table: the table name; defaults to the route's.
        column_types: SQL types of mapped columns (``{"quantity": "integer"}``); a mapped column
            without one is ``text``. Names that are standard columns override their type.
        lz4: ``data jsonb COMPRESSION lz4`` (check with :func:`supports_lz4`).
        if_not_exists: ``CREATE TABLE IF NOT EXISTS``.
        raw: add the raw table's extra columns (``collection_id``, ``provider``, ``inserted_at``).

    Raises:
        ConfigurationError: no table name, or a type that is not a plain SQL type name.
    """
    route = target if isinstance(target, Route) else None
    name = table or (route.table if route else None)
    if not name:
        raise ConfigurationError(f"create_table_sql({target!r}) needs a table name")
    sch = schema if schema is not None else (route.schema if route else None)
    parts = (sch, name) if sch else (name,)
    cols = _columns(route, column_types or {}, raw)
    defs: list[sql.Composable] = [
        sql.SQL("{} {}").format(sql.Identifier(col), sql.SQL(type_)) for col, type_ in cols.items()
    ]
    data = "data jsonb COMPRESSION lz4" if lz4 else "data jsonb"
    defs.append(sql.SQL(data))
    return sql.SQL("CREATE TABLE {exists}{name} ({defs})").format(
        exists=sql.SQL("IF NOT EXISTS ") if if_not_exists else sql.SQL(""),
        name=sql.Identifier(*parts),
        defs=sql.SQL(", ").join(defs),
    )


def create_table_text(target: Route | str, **kwargs: Any) -> str:
    """:func:`create_table_sql` as a plain string, for ``op.execute`` or ``RunSQL``.

    Quoting needs no connection (identifiers only; no values). Pass ``lz4=True`` only if every
    database the migration runs on supports it.
    """
    return create_table_sql(target, **kwargs).as_string(None)


_LZ4_QUERY = (
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def supports_lz4(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server can compress with lz4 (PostgreSQL 14+ built ``--with-lz4``)."""
    if conn.info.server_version < 140000:
        return False
    row = conn.execute(_LZ4_QUERY).fetchone()
    return bool(row and row[0])


async def supports_lz4_async(conn: psycopg.AsyncConnection[Any]) -> bool:
    """:func:`supports_lz4` on an async connection."""
    if conn.info.server_version < 140000:
        return False
    row = await (await conn.execute(_LZ4_QUERY)).fetchone()
    return bool(row and row[0])


def ensure_table(
    conn: psycopg.Connection[Any],
    target: Route | str,
    *,
    schema: str | None = None,
    table: str | None = None,
    column_types: Mapping[str, str] | None = None,
    raw: bool = False,
) -> None:
    """Create the table if it does not exist (lz4 for ``data`` when the server has it).

    Runs in the connection's current transaction (or autocommit); does not commit.
    """
    stmt = create_table_sql(
        target,
        schema=schema,
        table=table,
        column_types=column_types,
        lz4=supports_lz4(conn),
        raw=raw,
    )
    conn.execute(stmt)


async def ensure_table_async(
    conn: psycopg.AsyncConnection[Any],
    target: Route | str,
    *,
    schema: str | None = None,
    table: str | None = None,
    column_types: Mapping[str, str] | None = None,
    raw: bool = False,
) -> None:
    """:func:`ensure_table` on an async connection."""
    stmt = create_table_sql(
        target,
        schema=schema,
        table=table,
        column_types=column_types,
        lz4=await supports_lz4_async(conn),
        raw=raw,
    )
    await conn.execute(stmt)
