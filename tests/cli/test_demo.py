"""``upsync demo`` through the real console script: rows land and match the stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.cli.conftest import Run
from upsync.embedded import start_embedded


def demo_tables(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        schema = "stripe"
        counts = {}
        for table in ("customers", "subscriptions", "invoices", "charges", "products", "prices"):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            row = conn.execute(query).fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts


def test_demo_against_a_postgres_server(upsync: Run, pg_dsn: str) -> None:
    result = upsync(
        "demo", "--duration", "3", "--customers", "40", env={"UPSYNC_DATABASE_URL": pg_dsn}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ every table equals the Stripe stand-in's state" in result.stdout
    counts = demo_tables(pg_dsn)
    assert counts["customers"] >= 30 and counts["subscriptions"] > 0 and counts["invoices"] > 0
    assert "select status, count(*) from stripe.subscriptions" in result.stdout


@pytest.fixture
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh UPSYNC_HOME; the embedded Postgres the demo leaves running is stopped after."""
    home = tmp_path_factory.mktemp("home")
    yield home
    if (home / "pgdata" / "postmaster.pid").exists():
        start_embedded(home / "pgdata").stop()


@pytest.mark.smoke
def test_demo_on_the_embedded_postgres(upsync: Run, demo_home: Path) -> None:
    env = {"UPSYNC_HOME": str(demo_home), "UPSYNC_DATABASE_URL": ""}
    result = upsync("demo", "--duration", "2", "--customers", "20", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Postgres: embedded" in result.stdout
    assert "✓ every table equals" in result.stdout
    dsn = f"postgresql://postgres@/postgres?host={demo_home / 'pgdata'}"
    assert demo_tables(dsn)["customers"] >= 15
