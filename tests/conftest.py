"""Shared fixtures: a real Postgres for every test, one schema per test.

The database is ``UPSYNC_TEST_DSN`` when set (CI points it at the Postgres 15 server); otherwise
an embedded Postgres is started once per run (per xdist worker) in a temporary directory.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from upsync.embedded import start_embedded


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The DSN of the Postgres the tests run against."""
    dsn = os.environ.get("UPSYNC_TEST_DSN")
    if dsn:
        return dsn
    data_dir: Path = tmp_path_factory.mktemp("embedded") / "pgdata"
    return start_embedded(data_dir).dsn


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    """A fresh, empty schema for this test only; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def schema_dsn(pg_dsn: str, schema: str) -> str:
    """A DSN whose connections have ``search_path`` set to the test's schema."""
    return psycopg.conninfo.make_conninfo(pg_dsn, options=f"-c search_path={schema}")


@pytest.fixture
def conn(schema_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A psycopg connection in the test's schema (not autocommit)."""
    with psycopg.connect(schema_dsn) as c:
        yield c


@pytest.fixture
async def aconn(schema_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """An async psycopg connection in the test's schema (not autocommit)."""
    async with await psycopg.AsyncConnection.connect(schema_dsn) as c:
        yield c


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A random seed for this test, printed so a failure can be replayed with UPSYNC_TEST_SEED."""
    fixed = os.environ.get("UPSYNC_TEST_SEED")
    value = int(fixed) if fixed else random.SystemRandom().randrange(2**32)
    print(f"\n{request.node.nodeid}: seed={value} (replay: UPSYNC_TEST_SEED={value})")
    return value


@pytest.fixture
def rng(seed: int) -> random.Random:
    """A ``random.Random`` seeded by :func:`seed`."""
    return random.Random(seed)


def _hypothesis_profiles() -> None:
    from hypothesis import HealthCheck, settings

    # database round trips make examples slow; deadlines would only add flakiness
    common = {"deadline": None, "print_blob": True, "suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("default", max_examples=60, **common)  # type: ignore[arg-type]
    settings.register_profile("long", max_examples=2000, **common)  # type: ignore[arg-type]
    settings.load_profile(os.environ.get("UPSYNC_HYPOTHESIS_PROFILE", "default"))


_hypothesis_profiles()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test fails the run: a skip must never pass as green."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and session.exitstatus == 0:
        print(f"\nCI: {skipped} test(s) were skipped; every test must run in CI")
        session.exitstatus = 1
