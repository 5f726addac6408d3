"""kill -9 at random moments under live traffic, restart, repeat: nothing is lost or damaged.

The short form (CI) kills the engine a few times; ``UPSYNC_CRASH_KILLS`` sets how many (the
long form). Each run prints its figures line and seed; replay with ``UPSYNC_TEST_SEED``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import psycopg
from psycopg import sql

from tests.engine.test_crashpoints import engine_process, setup_sync
from tests.reliability.checker import Damage, check
from upsync.testing.stripe import LiveTraffic, Store, generate, run_standin

KILLS = int(os.environ.get("UPSYNC_CRASH_KILLS", "4"))


def test_random_kill_9_under_live_traffic_loses_nothing(
    schema_dsn: str, schema: str, seed: int
) -> None:
    rnd = random.Random(seed)
    dest = f"{schema}_dest"
    with run_standin(rate_limit=None) as standin:
        generate(standin.store, customers=60, seed=seed, days=20)
        setup_sync(schema_dsn, schema, standin, dest)
        traffic = LiveTraffic(standin.store, rate=30.0, duration=600.0, seed=seed).start()
        try:
            for _ in range(KILLS):
                with engine_process(schema_dsn, schema, standin.url, crash_at=None) as engine:
                    # the fault's timing, drawn from the seed; nothing waits on it
                    time.sleep(rnd.uniform(0.3, 2.0))
                    os.kill(engine.pid, signal.SIGKILL)
                    engine.wait(timeout=10)
            traffic.stop()
            with engine_process(schema_dsn, schema, standin.url, crash_at=None) as engine:
                damage = _settle(schema_dsn, schema, dest, standin.store, engine)
            assert damage.clean, damage.line()
            _checker_sees_damage(schema_dsn, schema, dest, standin.store)
        finally:
            traffic.stop()
            with psycopg.connect(schema_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(dest))
                )
    print(f"random_kills={KILLS} live_operations={traffic.operations} {damage.line()} seed={seed}")


def _checker_sees_damage(dsn: str, schema: str, dest: str, store: Store) -> None:
    """The checker is only worth its zeros if it counts real damage: make some on purpose."""
    table = sql.Identifier(dest, "customers")
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT upstream_id FROM {} WHERE NOT deleted ORDER BY 1 LIMIT 2").format(
                    table
                )
            )
        ]
        conn.execute(
            sql.SQL(
                'UPDATE {} SET data = data || \'{{"email": "x"}}\' WHERE upstream_id = %s'
            ).format(table),
            [ids[0]],
        )
        conn.execute(sql.SQL("DELETE FROM {} WHERE upstream_id = %s").format(table), [ids[1]])
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, upstream_id, updated_idx, deleted, data) "
                "VALUES ('fake', 'cus_never', 1, false, '{{}}')"
            ).format(table)
        )
    damage = check(dsn, schema, dest, store)
    assert (damage.stale, damage.lost, damage.unexpected) == (1, 1, 1), damage.line()


def _settle(
    dsn: str, schema: str, dest: str, store: Store, engine: subprocess.Popen[bytes]
) -> Damage:
    deadline = time.monotonic() + 90
    while True:
        try:
            damage = check(dsn, schema, dest, store)
        except psycopg.errors.UndefinedTable:
            damage = Damage(lost=1)  # the consumer has not created its tables yet
        if damage.clean or time.monotonic() > deadline:
            return damage
        assert engine.poll() is None, "the restarted engine exited"
        time.sleep(0.2)  # the engine works in its own process; the test only watches
