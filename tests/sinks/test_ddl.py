"""Table helpers against a real server: ensure_table, lz4 detection, migration text."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from upsync import ConfigurationError
from upsync.sinks import Route, create_table_sql, create_table_text, ensure_table, supports_lz4

Conn = psycopg.Connection[tuple[Any, ...]]
ROUTE = Route(
    "stripe:subscription",
    "subscriptions",
    columns={"plan_id": "data.plan.id", "quantity": "data.quantity", "internal_id": "sync.id"},
)


def columns(conn: Conn, table: str) -> dict[str, str]:
    rows = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = current_schema() and table_name = %s",
        [table],
    )
    return dict(rows.fetchall())


def test_ensure_table_creates_the_standard_and_mapped_columns(conn: Conn) -> None:
    ensure_table(conn, ROUTE, column_types={"quantity": "integer"})
    ensure_table(conn, ROUTE, column_types={"quantity": "integer"})  # idempotent
    assert columns(conn, "subscriptions") == {
        "id": "text",
        "upstream_id": "text",
        "deleted": "boolean",
        "updated_idx": "bigint",
        "sync_id": "text",
        "sync_external_id": "text",
        "sync_metadata": "jsonb",
        "upstream_created_at": "timestamp with time zone",
        "upstream_updated_at": "timestamp with time zone",
        "plan_id": "text",
        "quantity": "integer",
        "internal_id": "text",
        "data": "jsonb",
    }


def test_data_uses_lz4_when_the_server_has_it(conn: Conn) -> None:
    ensure_table(conn, ROUTE)
    row = conn.execute(
        "select attcompression from pg_attribute "
        "where attrelid = 'subscriptions'::regclass and attname = 'data'"
    ).fetchone()
    assert row is not None
    assert row[0] == ("l" if supports_lz4(conn) else "")


def test_plain_text_form_runs_as_is(conn: Conn) -> None:
    """The string for Alembic op.execute / Django RunSQL is complete, quoted SQL."""
    text = create_table_text("stripe:customer", table="Cüstomers", column_types={"email": "text"})
    conn.execute(text.encode())
    assert set(columns(conn, "Cüstomers")) >= {"id", "updated_idx", "email", "data"}


@pytest.mark.parametrize(
    "bad_type",
    ["text); drop table x; --", "integer default 1", "text not null"],
    ids=["injection", "default", "constraint"],
)
def test_column_types_must_be_plain_type_names(bad_type: str) -> None:
    with pytest.raises(ConfigurationError, match="plain SQL type"):
        create_table_sql(ROUTE, column_types={"plan_id": bad_type})
