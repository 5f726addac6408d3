"""SQL building (pure): quoting and the version guard."""

from __future__ import annotations

from upsync.sinks import sql as q
from upsync.sinks.ddl import create_table_text
from upsync.sinks.routes import Route

ODD = Route("stripe:customer", 'cus"tömers; drop table x', schema="Bill ing")


def test_identifiers_with_quotes_spaces_and_unicode_are_quoted() -> None:
    text = q.upsert_statement(ODD, ["id", 'we"ird', "updated_idx"]).as_string(None)
    assert '"Bill ing"."cus""tömers; drop table x"' in text
    assert '"we""ird" = excluded."we""ird"' in text


def test_upsert_is_guarded_by_version_and_reports_inserts() -> None:
    text = q.upsert_statement(ODD, ["id", "updated_idx", "data"]).as_string(None)
    assert 'ON CONFLICT ("id") DO UPDATE SET' in text
    assert '"id" = excluded' not in text  # the key is never rewritten
    assert 'WHERE t."updated_idx" < excluded."updated_idx"' in text
    assert text.endswith("RETURNING (t.xmax = 0), false")
    assert text.count("%s") == 3


def test_hard_delete_mode_upsert_checks_the_tombstone() -> None:
    text = q.upsert_statement(
        ODD, ["id", "updated_idx"], tombstones=("Bill ing", "tomb"), column_types={"id": "text"}
    ).as_string(None)
    assert 'FROM "Bill ing"."tomb" AS d' in text
    assert 'd.updated_idx >= v."updated_idx"' in text
    assert "d.table_name = 'Bill ing.cus\"tömers; drop table x'" in text


def test_merge_orders_keys_bytewise_and_counts_three_ways() -> None:
    text = q.merge_statement(
        ODD, ["id", "updated_idx", "deleted"], ("stg",), deleted_column="deleted"
    ).as_string(None)
    assert 'ORDER BY s."id" COLLATE "C"' in text
    assert 'WHERE t."updated_idx" < excluded."updated_idx"' in text
    assert "count(*) FILTER (WHERE del)" in text


def test_table_ddl_quotes_names_and_carries_the_standard_columns() -> None:
    route = Route("stripe:subscription", 'sub"s', schema="ström", columns={"plan_id": "data.plan"})
    text = create_table_text(route, column_types={"plan_id": "varchar(20)"}, lz4=True)
    assert text.startswith('CREATE TABLE IF NOT EXISTS "ström"."sub""s" (')
    for column in (
        '"id" text PRIMARY KEY',
        '"updated_idx" bigint NOT NULL',
        '"deleted" boolean NOT NULL DEFAULT false',
        '"sync_metadata" jsonb',
        '"upstream_updated_at" timestamptz',
        '"plan_id" varchar(20)',
    ):
        assert column in text
    assert text.endswith("data jsonb COMPRESSION lz4)")
