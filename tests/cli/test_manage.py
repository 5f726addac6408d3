"""`upsync init`, `token`, `status` and the error lines, through the real script."""

from __future__ import annotations

import json

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.cli.conftest import Run, one_error_line, rows
from upsync.stream.migrations import MIGRATIONS


def test_init_creates_the_schema_and_default_stream_once(
    upsync: Run, env: dict[str, str], pg_dsn: str, schema: str
) -> None:
    first = upsync("init", env=env)
    assert first.returncode == 0, first.stderr
    applied = f"applied {len(MIGRATIONS)} migration(s)"
    assert applied in first.stdout and "'default': created" in first.stdout
    again = upsync("init", env=env)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout and "'default': exists" in again.stdout
    assert rows(pg_dsn, schema, "SELECT name FROM {s}.streams") == [("default",)]
    versions = rows(pg_dsn, schema, "SELECT version FROM {s}.schema_migrations")
    assert len(versions) == len(MIGRATIONS)


def test_tokens_are_printed_once_listed_without_values_and_revoked(
    upsync: Run, ready: dict[str, str], pg_dsn: str, schema: str
) -> None:
    created = upsync("token", "create", "ci", env=ready)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and token.startswith("upsync_tok_")
    assert "cannot be shown again" in created.stderr
    listed = upsync("token", "list", "--json", env=ready)
    assert json.loads(listed.stdout)["tokens"][0] | {"created_at": None} == {
        "name": "ci",
        "active": True,
        "created_at": None,
        "revoked_at": None,
    }
    assert token not in listed.stdout
    assert upsync("token", "revoke", "ci", env=ready).returncode == 0
    ((revoked_at,),) = rows(pg_dsn, schema, "SELECT revoked_at FROM {s}.api_tokens")
    assert revoked_at is not None
    assert "no active token named 'ci'" in one_error_line(
        upsync("token", "revoke", "ci", env=ready)
    )


def test_status_sums_backfill_slices_per_collection(
    upsync: Run, ready: dict[str, str], pg_dsn: str, schema: str
) -> None:
    created = upsync(
        "syncs", "create", "stripe", "--api-key-env", "K", "--collections", "customer,invoice",
        "--json", env={**ready, "K": "rk_live_abc"},
    )  # fmt: skip
    sync_id = json.loads(created.stdout)["id"]
    cursors = {
        "backfill": {
            "stripe:customer#0": {"count": 100, "done": True},
            "stripe:customer#1": {"count": 23, "done": True},
            "stripe:invoice#0": {"count": 7, "done": False},
        },
        "events": {"cursor": 1_700_000_000, "seen": {}},
    }
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.syncs SET cursors = %s").format(sql.Identifier(schema)),
            [Jsonb(cursors)],
        )
    status = upsync("status", "--json", env=ready)
    assert status.returncode == 0, status.stderr
    (sync,) = json.loads(status.stdout)["syncs"]
    assert sync["id"] == sync_id and sync["status"] == "active"
    assert sync["backfill"] == {
        "stripe:customer": {"count": 123, "done": True},
        "stripe:invoice": {"count": 7, "done": False},
    }
    assert sync["initial_backfill_completed_at"] is None and sync["state"]["state"] == "not started"
    assert sync["events_through"] == "2023-11-14T22:13:20+00:00"
    human = upsync("status", env=ready)
    assert "customer 123 ✓, invoice 7…" in human.stdout


def test_database_errors_are_one_line(upsync: Run, env: dict[str, str]) -> None:
    refused = {**env, "UPSYNC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"}
    assert "cannot reach the database" in one_error_line(upsync("status", env=refused))
    bad_port = {**env, "UPSYNC_DATABASE_URL": "postgresql://postgres@127.0.0.1:notaport/x"}
    assert "notaport" in one_error_line(upsync("token", "list", env=bad_port))
    not_postgres = {**env, "UPSYNC_DATABASE_URL": "mysql://root:hunter2@db/x"}
    line = one_error_line(upsync("status", env=not_postgres))
    assert "not a Postgres URL" in line and "hunter2" not in line
    assert "run `upsync init`" in one_error_line(upsync("status", env=env))
