"""SQL for the guarded sink, built with :mod:`psycopg.sql`. Pure: nothing here does I/O.

Every identifier goes through :class:`psycopg.sql.Identifier`; values are ``%s`` placeholders
(or rows streamed by ``COPY``). The statements:

* :func:`upsert_statement` — one row per execution, for pipelined ``executemany``::

      INSERT INTO t AS t (id, …, updated_idx) VALUES (%s, …, %s)
      ON CONFLICT (id) DO UPDATE SET … = excluded.…
      WHERE t.updated_idx < excluded.updated_idx
      RETURNING (t.xmax = 0) AS inserted

  A stale or duplicate version matches the conflict but fails the guard, so it changes nothing
  and returns no row; ``xmax = 0`` tells a fresh insert from an update.
* :func:`merge_statement` — the same upsert, set-based, from a staging table filled by ``COPY``.
* :func:`copy_statement` — ``COPY t (…) FROM STDIN (FORMAT BINARY)``.
* hard deletes: :func:`tombstone_upsert_statement`, :func:`hard_delete_statement`.

``column_types`` (column name → SQL type name without modifiers, as from
``format_type(atttypid, NULL)``) adds casts where Postgres cannot infer a parameter's type
(inside a ``SELECT``); without it the plain ``VALUES`` form lets the target columns decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg import sql

from upsync.sinks.routes import Column, Route

__all__ = [
    "copy_statement",
    "copy_text_statement",
    "hard_delete_statement",
    "merge_statement",
    "qualified",
    "staging_statement",
    "tombstone_table_statement",
    "tombstone_upsert_statement",
    "upsert_statement",
    "versions_statement",
]

ColumnTypes = Mapping[str, str]


def qualified(parts: Sequence[str]) -> sql.Identifier:
    """``schema.table`` (or ``table``) as one quoted identifier."""
    return sql.Identifier(*parts)


def _names(columns: Sequence[Column] | Sequence[str]) -> list[str]:
    return [c if isinstance(c, str) else c.name for c in columns]


def _type(name: str) -> sql.Composable:
    # a type name from format_type() is already a valid, quoted-where-needed SQL type; but
    # "character" without its length means char(1), a cast that truncates: bpchar does not
    if name.startswith("character") and not name.startswith("character varying"):
        name = "bpchar" + name[len("character") :]
    return sql.SQL(name)


def _set_clause(route: Route, names: list[str]) -> sql.Composable:
    updates = [
        sql.SQL("{} = excluded.{}").format(sql.Identifier(n), sql.Identifier(n))
        for n in names
        if n != route.key_column
    ]
    return sql.SQL(", ").join(updates)


def _guard(route: Route) -> sql.Composable:
    version = sql.Identifier(route.version_column)
    return sql.SQL("t.{} < excluded.{}").format(version, version)


def _not_tombstoned(
    route: Route, source: sql.Composable, tombstones: Sequence[str]
) -> sql.Composable:
    """A ``WHERE`` clause: no tombstone at this version or later exists for the row's key."""
    return sql.SQL(
        "NOT EXISTS (SELECT 1 FROM {tomb} AS d WHERE d.table_name = {table} "
        "AND d.id = ({src}.{key})::text AND d.updated_idx >= {src}.{version})"
    ).format(
        tomb=qualified(tombstones),
        table=sql.Literal(".".join(route.qualified_name)),
        src=source,
        key=sql.Identifier(route.key_column),
        version=sql.Identifier(route.version_column),
    )


def upsert_statement(
    route: Route,
    columns: Sequence[Column] | Sequence[str],
    *,
    column_types: ColumnTypes | None = None,
    tombstones: Sequence[str] | None = None,
    deleted_column: str | None = None,
    returning: bool = True,
    text_params: bool = False,
) -> sql.Composed:
    """The guarded upsert of one row, with one ``%s`` per column, in column order.

    Args:
        route: the target table, its key and version columns.
        columns: the columns in row order (``Column`` objects or names).
        column_types: type names for the casts needed when ``tombstones`` is given.
        tombstones: the qualified name of the tombstone table (hard-delete mode): a row whose
            key has a tombstone at this version or later is not written (no resurrection).
        deleted_column: the soft-delete flag column, returned so tombstones can be counted.
        returning: add ``RETURNING (t.xmax = 0), <deleted>``: one row per applied version,
            saying inserted (vs updated) and whether it is a tombstone. A stale version
            returns nothing.
        text_params: every value is bound as text (``%s::text::type``, ``column_types`` then
            names every column), so Postgres parses it as ``COPY`` would, whatever the driver.
    """
    names = _names(columns)
    target = qualified(route.qualified_name)
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    types = column_types or {}
    cast = "%s::text::{}" if text_params else "%s::{}"
    params = sql.SQL(", ").join(
        sql.SQL(cast).format(_type(types[n]))
        if n in types and (text_params or tombstones is not None)
        else sql.Placeholder()
        for n in names
    )
    if tombstones is None:
        source: sql.Composable = sql.SQL("VALUES ({})").format(params)
    else:
        source = sql.SQL("SELECT v.* FROM (VALUES ({params})) AS v ({cols}) WHERE {guard}").format(
            params=params, cols=cols, guard=_not_tombstoned(route, sql.SQL("v"), tombstones)
        )
    return sql.SQL(
        "INSERT INTO {target} AS t ({cols}) {source} "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {guard}{returning}"
    ).format(
        target=target,
        cols=cols,
        source=source,
        key=sql.Identifier(route.key_column),
        sets=_set_clause(route, names),
        guard=_guard(route),
        returning=sql.SQL(" RETURNING (t.xmax = 0), {}").format(_deleted_expr(deleted_column))
        if returning
        else sql.SQL(""),
    )


def _deleted_expr(deleted_column: str | None) -> sql.Composable:
    if deleted_column is None:
        return sql.SQL("false")
    return sql.SQL("coalesce(t.{}, false)").format(sql.Identifier(deleted_column))


def merge_statement(
    route: Route,
    columns: Sequence[Column] | Sequence[str],
    staging: Sequence[str],
    *,
    column_types: ColumnTypes | None = None,
    tombstones: Sequence[str] | None = None,
    deleted_column: str | None = None,
    order_bytewise: bool = True,
) -> sql.Composed:
    """The guarded upsert of every row of ``staging`` into the route's table; one result row.

    The staging table holds deduplicated rows (one per key), with the same column names. If its
    columns have looser types (e.g. ``text``), ``column_types`` casts them to the target's types
    without modifiers, so the target's own assignment rules (``varchar(n)`` length, …) still
    apply and refuse what they would refuse in a plain ``INSERT``.

    Rows are written in key order (bytewise with ``order_bytewise``, which matches Python's
    ``str`` ordering, so every applier locks keys in the same order whatever the collation).
    The statement returns ``(inserted, updated, deleted)``: new live rows, changed live rows,
    and rows written as tombstones (``deleted_column`` true). Rows of ``staging`` not counted
    are stale: the table (or a tombstone) already had a version at least as new.
    """
    names = _names(columns)
    types = column_types or {}
    select_list = sql.SQL(", ").join(
        sql.SQL("s.{}::{}").format(sql.Identifier(n), _type(types[n]))
        if n in types
        else sql.SQL("s.{}").format(sql.Identifier(n))
        for n in names
    )
    where: sql.Composable = sql.SQL("")
    if tombstones is not None:
        where = sql.SQL(" WHERE {}").format(_not_tombstoned(route, sql.SQL("s"), tombstones))
    key = sql.Identifier(route.key_column)
    order = sql.SQL('s.{} COLLATE "C"' if order_bytewise else "s.{}").format(key)
    return sql.SQL(
        "WITH w AS (INSERT INTO {target} AS t ({cols}) "
        "SELECT {select_list} FROM {staging} AS s{where} ORDER BY {order} "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {guard} "
        "RETURNING (t.xmax = 0) AS ins, {deleted} AS del) "
        "SELECT count(*) FILTER (WHERE ins AND NOT del), "
        "count(*) FILTER (WHERE NOT ins AND NOT del), count(*) FILTER (WHERE del) FROM w"
    ).format(
        target=qualified(route.qualified_name),
        cols=sql.SQL(", ").join(map(sql.Identifier, names)),
        select_list=select_list,
        staging=qualified(staging),
        where=where,
        order=order,
        key=key,
        sets=_set_clause(route, names),
        guard=_guard(route),
        deleted=_deleted_expr(deleted_column),
    )


def copy_statement(
    target: Sequence[str], columns: Sequence[Column] | Sequence[str]
) -> sql.Composed:
    """``COPY target (columns) FROM STDIN (FORMAT BINARY)``."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        qualified(target), sql.SQL(", ").join(map(sql.Identifier, _names(columns)))
    )


def tombstone_table_statement(tombstones: Sequence[str]) -> sql.Composed:
    """``CREATE TABLE IF NOT EXISTS`` for the hard-delete tombstone table.

    One row per hard-deleted object: the table it was deleted from (dotted name), its key as
    text, and the version of the delete. A version of that object at or below it is never
    written again.
    """
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} ("
        "table_name text NOT NULL, id text NOT NULL, updated_idx bigint NOT NULL, "
        "deleted_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, id))"
    ).format(qualified(tombstones))


def tombstone_upsert_statement(
    route: Route, tombstones: Sequence[str], *, key_type: str = "text"
) -> sql.Composed:
    """Record hard deletes: ``%s`` = keys (``text[]``), versions (``bigint[]``), sorted by key.

    Run after :func:`hard_delete_statement`. The tombstone keeps the highest delete version; a
    delete older than the tombstone, or older than a row still in the table (the object was
    re-created upstream after it), changes nothing. Returns one row per delete that took effect.
    """
    return sql.SQL(
        "INSERT INTO {tomb} AS d (table_name, id, updated_idx) "
        "SELECT {table}, u.id, u.v FROM unnest(%s::text[], %s::bigint[]) AS u (id, v) "
        "WHERE NOT EXISTS (SELECT 1 FROM {target} AS t "
        "WHERE t.{key} = u.id::{key_type} AND t.{version} >= u.v) "
        'ORDER BY u.id COLLATE "C" '
        "ON CONFLICT (table_name, id) DO UPDATE SET updated_idx = excluded.updated_idx, "
        "deleted_at = excluded.deleted_at "
        "WHERE d.updated_idx < excluded.updated_idx RETURNING d.id"
    ).format(
        tomb=qualified(tombstones),
        table=sql.Literal(".".join(route.qualified_name)),
        target=qualified(route.qualified_name),
        key=sql.Identifier(route.key_column),
        key_type=_type(key_type),
        version=sql.Identifier(route.version_column),
    )


def hard_delete_statement(route: Route, *, key_type: str = "text") -> sql.Composed:
    """Delete rows older than their delete: ``%s`` = keys (``text[]``), versions (``bigint[]``).

    A row with a version at or above the delete's is newer than the delete and stays.
    """
    return sql.SQL(
        "DELETE FROM {target} AS t USING unnest(%s::text[], %s::bigint[]) AS u (id, v) "
        "WHERE t.{key} = u.id::{key_type} AND t.{version} < u.v"
    ).format(
        target=qualified(route.qualified_name),
        key=sql.Identifier(route.key_column),
        key_type=_type(key_type),
        version=sql.Identifier(route.version_column),
    )


def versions_statement(
    route: Route, *, key_type: str = "text", tombstones: Sequence[str] | None = None
) -> sql.Composed:
    """The current version of each key in ``%s`` (keys as ``text[]``): ``(key::text, version)``.

    With ``tombstones``, a hard-deleted key reports its tombstone's version (the higher one if
    the row exists too). Keys with neither are absent from the result.
    """
    key, version = sql.Identifier(route.key_column), sql.Identifier(route.version_column)
    if tombstones is None:
        return sql.SQL(
            "SELECT t.{key}::text, t.{version} FROM {target} AS t "
            "WHERE t.{key} = ANY(%s::text[]::{key_type}[])"
        ).format(
            key=key,
            version=version,
            target=qualified(route.qualified_name),
            key_type=_type(key_type),
        )
    return sql.SQL(
        "SELECT u.k, greatest(t.{version}, d.updated_idx) FROM unnest(%s::text[]) AS u (k) "
        "LEFT JOIN {target} AS t ON t.{key} = u.k::{key_type} "
        "LEFT JOIN {tomb} AS d ON d.table_name = {table} AND d.id = u.k "
        "WHERE t.{key} IS NOT NULL OR d.id IS NOT NULL"
    ).format(
        key=key,
        version=version,
        target=qualified(route.qualified_name),
        key_type=_type(key_type),
        tomb=qualified(tombstones),
        table=sql.Literal(".".join(route.qualified_name)),
    )


def staging_statement(
    staging: str, target: Sequence[str], columns: Sequence[Column] | Sequence[str]
) -> sql.Composed:
    """Create the session's staging table for ``target`` if missing (temporary, emptied at commit).

    It has the target's column types (so ``COPY`` parses and checks each value once) but none of
    its constraints (those are checked by the upsert, where a failure can be isolated).
    """
    return sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {stg} ON COMMIT DELETE ROWS AS "
        "SELECT {cols} FROM {target} WITH NO DATA"
    ).format(
        stg=sql.Identifier(staging),
        cols=sql.SQL(", ").join(map(sql.Identifier, _names(columns))),
        target=qualified(target),
    )


def copy_text_statement(
    target: Sequence[str], columns: Sequence[Column] | Sequence[str]
) -> sql.Composed:
    """``COPY target (columns) FROM STDIN`` (text format: the server parses by column type)."""
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        qualified(target), sql.SQL(", ").join(map(sql.Identifier, _names(columns)))
    )
