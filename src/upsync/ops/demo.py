"""The database side of ``upsync demo``: its schemas, and the check that tables equal Stripe.

The demo writes only to schemas it made itself: ``upsync_demo`` for upsync's state, and
``stripe`` (or ``stripe_demo`` when a ``stripe`` schema it did not make exists) for the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import psycopg
from psycopg import sql

from upsync.sources.stripe.collections import collection

__all__ = ["STATE_SCHEMA", "compare_tables", "prepare_schemas"]

STATE_SCHEMA = "upsync_demo"
_MARK = "created by upsync demo"


def prepare_schemas(dsn: str) -> str | None:
    """Recreate the demo's state schema and choose (and mark) the schema for the tables;
    ``None`` when ``stripe`` and ``stripe_demo`` both exist and neither is the demo's."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(STATE_SCHEMA))
        )
        for candidate in ("stripe", "stripe_demo"):
            row = conn.execute(
                "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
                [candidate],
            ).fetchone()
            if row is None or row[0] == _MARK:
                ident = sql.Identifier(candidate)
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
                conn.execute(
                    sql.SQL("COMMENT ON SCHEMA {} IS {}").format(ident, sql.Literal(_MARK))
                )
                return candidate
    return None


def compare_tables(
    dsn: str, tables_schema: str, expected: Mapping[str, Set[str]]
) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Rows (live, tombstones) per table, and each table whose live ids differ from
    ``expected`` (collection name → the upstream ids Stripe holds)."""
    rows: dict[str, tuple[int, int]] = {}
    mismatches = []
    with psycopg.connect(dsn) as conn:
        for name, want in expected.items():
            coll = collection(name)
            table = sql.Identifier(tables_schema, coll.table)
            live, deleted = conn.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE NOT deleted), "
                    "count(*) FILTER (WHERE deleted) FROM {}"
                ).format(table)
            ).fetchone() or (0, 0)
            ids = {
                r[0]
                for r in conn.execute(
                    sql.SQL("SELECT upstream_id FROM {} WHERE NOT deleted").format(table)
                )
            }
            rows[coll.table] = (live, deleted)
            if ids != want:
                mismatches.append(
                    f"{coll.table}: {len(want - ids)} missing, {len(ids - want)} extra"
                )
    return rows, mismatches
