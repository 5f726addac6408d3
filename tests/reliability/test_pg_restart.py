"""Postgres restarted at random moments under load: the engine reconnects, nothing is lost.

The engine runs as its own process against a Postgres of this test's own (restarting the shared
server would disturb everyone else); live Stripe traffic keeps changing objects throughout.
``UPSYNC_PG_RESTARTS`` sets how many restarts (3 in CI). Prints a figures line with its seed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.test_crashpoints import engine_process, setup_sync
from tests.engine.test_restart import stop_fast
from tests.reliability.test_crash import _settle
from upsync.embedded import EmbeddedPostgres, start_embedded
from upsync.testing.stripe import LiveTraffic, generate, run_standin

RESTARTS = int(os.environ.get("UPSYNC_PG_RESTARTS", "3"))


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = start_embedded(tmp_path / "pgdata")
    yield server
    server.stop()


def test_postgres_restarts_under_load_lose_nothing(
    own_postgres: EmbeddedPostgres, seed: int
) -> None:
    rnd = random.Random(seed)
    dsn, data_dir = own_postgres.dsn, own_postgres.data_dir
    with run_standin(rate_limit=None) as standin:
        generate(standin.store, customers=60, seed=seed, days=20)
        setup_sync(dsn, "upsync", standin, "stripe")
        traffic = LiveTraffic(standin.store, rate=30.0, duration=600.0, seed=seed).start()
        try:
            with engine_process(dsn, "upsync", standin.url, crash_at=None) as engine:
                for _ in range(RESTARTS):
                    time.sleep(rnd.uniform(0.3, 1.5))  # the fault's timing, drawn from the seed
                    stop_fast(data_dir)
                    time.sleep(rnd.uniform(0.1, 1.0))  # how long the database stays down
                    start_embedded(data_dir)
                    assert engine.poll() is None, "the engine exited instead of reconnecting"
                traffic.stop()
                damage = _settle(dsn, "upsync", "stripe", standin.store, engine)
        finally:
            traffic.stop()
    print(
        f"pg_restarts={RESTARTS} live_operations={traffic.operations} {damage.line()} seed={seed}"
    )
    assert damage.clean, damage.line()
