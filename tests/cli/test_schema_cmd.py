"""``upsync schema``: typed tables for Stripe collections, usable as printed."""

from __future__ import annotations

import psycopg

from tests.cli.conftest import Run


def test_sql_creates_a_table_with_standard_and_typed_columns(
    upsync: Run, conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> None:
    result = upsync("schema", "stripe:subscription", "--schema", schema)
    assert result.returncode == 0, result.stderr
    conn.execute(result.stdout)
    cols: dict[object, object] = {
        name: type_
        for name, type_ in conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = 'subscriptions'",
            [schema],
        ).fetchall()
    }
    assert cols["id"] == "text" and cols["updated_idx"] == "bigint"
    assert cols["plan_id"] == "text" and cols["quantity"] == "bigint"
    assert cols["data"] == "jsonb" and cols["sync_metadata"] == "jsonb"


def test_sqlalchemy_and_django_models_compile(upsync: Run) -> None:
    for fmt in ("sqlalchemy", "django"):
        result = upsync("schema", "stripe:checkout.session", "--format", fmt)
        assert result.returncode == 0, result.stderr
        compile(result.stdout, f"<{fmt}>", "exec")
        assert "class CheckoutSession" in result.stdout


def test_unknown_collection_is_one_actionable_line(upsync: Run) -> None:
    result = upsync("schema", "stripe:widget")
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown Stripe collection 'stripe:widget'; known:")
    assert "Traceback" not in result.stderr
