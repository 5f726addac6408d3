"""kill -9 at every named crash point, then a restart: nothing is lost (invariant 8)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.world import stream_world
from upsync.crashpoints import POINTS
from upsync.testing.stripe import LiveTraffic, RunningStandin, generate, run_standin

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def engine_process(
    dsn: str, schema: str, url: str, crash_at: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if k != "UPSYNC_CRASH_AT"}
    if crash_at:
        env["UPSYNC_CRASH_AT"] = crash_at
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine._engine_proc", dsn, schema, url],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()


def upstream_state(standin: RunningStandin) -> dict[str, tuple[str, str]]:
    state = {c["id"]: ("customer", str(c["email"])) for c in standin.store.live("customer")}
    state.update(
        {s["id"]: ("subscription", str(s["status"])) for s in standin.store.live("subscription")}
    )
    return state


def table_state(dsn: str, dest: str) -> dict[str, tuple[str, str]]:
    state: dict[str, tuple[str, str]] = {}
    with contextlib.suppress(psycopg.errors.UndefinedTable), psycopg.connect(dsn) as conn:
        for table, column, kind in (
            ("customers", "email", "customer"),
            ("subscriptions", "status", "subscription"),
        ):
            query = sql.SQL("SELECT upstream_id, {} FROM {} WHERE NOT deleted").format(
                sql.Identifier(column), sql.Identifier(dest, table)
            )
            state.update({r[0]: (kind, str(r[1])) for r in conn.execute(query)})
    return state


def setup_sync(schema_dsn: str, schema: str, standin: RunningStandin, dest: str) -> None:
    import asyncio

    async def create() -> None:
        async with await psycopg.AsyncConnection.connect(schema_dsn, autocommit=True) as conn:
            world = await stream_world(conn, schema, api_key=standin.api_key)
            await world.consumer(conn, "tables", kind="table", metadata={"schema": dest})

    asyncio.run(create())


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_crash_at_any_point_loses_nothing(
    point: str, schema_dsn: str, schema: str, seed: int
) -> None:
    dest = f"{schema}_dest"
    with run_standin(rate_limit=None) as standin:
        generate(standin.store, customers=60, seed=seed, days=20)
        setup_sync(schema_dsn, schema, standin, dest)
        traffic = LiveTraffic(standin.store, rate=30.0, duration=60.0, seed=seed).start()
        try:
            with engine_process(schema_dsn, schema, standin.url, crash_at=point) as doomed:
                code = doomed.wait(timeout=60)
                reason = doomed.stderr.read().decode() if doomed.stderr else ""
            assert code == 137, f"the engine did not reach {point} (exit {code}): {reason[-2000:]}"
            with engine_process(schema_dsn, schema, standin.url, crash_at=None) as engine:
                time.sleep(1.0)  # let live traffic go on against the restarted engine
                traffic.stop()
                deadline = time.monotonic() + 60
                while table_state(schema_dsn, dest) != upstream_state(standin):
                    assert engine.poll() is None, "the restarted engine exited"
                    assert time.monotonic() < deadline, "tables never caught up after the crash"
                    time.sleep(0.1)  # the engine works in its own process; the test watches
        finally:
            traffic.stop()
            with psycopg.connect(schema_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(dest))
                )
    print(f"crash_point={point} live_operations={traffic.operations} lost=0 seed={seed}")
