"""Migrations: numbered, idempotent, safe when several processes start at once."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg import sql

from upsync.stream import MIGRATIONS, migrate, migrate_sync

AConn = psycopg.AsyncConnection[Any]

_TABLES = {
    "schema_migrations",
    "api_tokens",
    "streams",
    "credentials",
    "syncs",
    "records",
    "events",
    "consumers",
    "consumer_messages",
    "webhook_status",
    "webhook_failures",
}


def _tables(dsn: str, schema: str) -> set[str]:
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        ).fetchall()
    return {r[0] for r in rows}


async def test_migrate_creates_every_table_in_the_given_schema_only(
    aconn: AConn, schema: str, pg_dsn: str
) -> None:
    await aconn.commit()
    applied = await migrate(aconn, schema=schema)
    assert applied == len(MIGRATIONS)
    assert _tables(pg_dsn, schema) == _TABLES
    assert "records" not in _tables(pg_dsn, "public")


async def test_migrate_twice_applies_nothing_the_second_time(aconn: AConn, schema: str) -> None:
    await aconn.commit()
    await migrate(aconn, schema=schema)
    assert await migrate(aconn, schema=schema) == 0
    cur = await aconn.execute(
        sql.SQL("SELECT version FROM {} ORDER BY 1").format(
            sql.Identifier(schema, "schema_migrations")
        )
    )
    assert [r[0] for r in await cur.fetchall()] == [m.version for m in MIGRATIONS]


def test_concurrent_migrations_apply_each_step_exactly_once(pg_dsn: str, schema: str) -> None:
    """Eight threads start at once on a schema that does not exist yet."""
    target = f"{schema}_fresh"
    barrier = threading.Barrier(8)
    applied: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(pg_dsn) as c:
                barrier.wait()
                applied.append(migrate_sync(c, schema=target))
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(applied) == [0] * 7 + [len(MIGRATIONS)]
        assert _tables(pg_dsn, target) == _TABLES
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(target)))


@pytest.mark.parametrize("version", [m.version for m in MIGRATIONS])
def test_migration_versions_are_increasing_and_named(version: int) -> None:
    numbers = [m.version for m in MIGRATIONS]
    assert numbers == sorted(set(numbers))
    assert next(m for m in MIGRATIONS if m.version == version).name
