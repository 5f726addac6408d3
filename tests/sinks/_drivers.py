"""Every way to apply a batch, behind one async interface, for tests that run on all of them.

A :class:`Session` is one connection with a transaction open: ``apply`` runs a batch inside it,
``commit`` ends it. Sync drivers run in a worker thread so that two sessions can block each
other (and be seen blocking) from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import psycopg
import pytest

from tests.sinks import _orm_scenario as scenario
from upsync.errors import MappingError, RowRejected, UpsyncError
from upsync.records import Record
from upsync.sinks import ApplyResult, TableSink

#: psycopg 3 (sync and async) runs with COPY; "pipeline" forces its executemany path (the one
#: every other driver takes); SQLAlchemy and Django hand a psycopg 3 connection to that driver,
#: and SQLAlchemy drives psycopg2 and asyncpg itself.
DRIVERS = [
    "psycopg",
    "psycopg-pipeline",
    "psycopg-async",
    "sqlalchemy-psycopg",
    "sqlalchemy-psycopg2",
    "sqlalchemy-asyncpg",
    "django",
]


class Session(Protocol):
    async def pid(self) -> int: ...
    async def apply(self, sink: TableSink, records: Sequence[Record]) -> ApplyResult: ...
    async def commit(self) -> None: ...


class _Psycopg:
    def __init__(self, conn: psycopg.Connection[Any], *, pipeline: bool) -> None:
        self.conn = conn
        self.pipeline = pipeline

    async def pid(self) -> int:
        row = self.conn.execute("SELECT pg_backend_pid()").fetchone()  # never waits
        assert row is not None
        return int(row[0])

    async def apply(self, sink: TableSink, records: Sequence[Record]) -> ApplyResult:
        if self.pipeline:
            sink.executemany_below = 10**9
        return await asyncio.to_thread(sink.apply, self.conn, records)

    async def commit(self) -> None:
        await asyncio.to_thread(self.conn.commit)


class _PsycopgAsync:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def pid(self) -> int:
        row = await (await self.conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        return int(row[0])

    async def apply(self, sink: TableSink, records: Sequence[Record]) -> ApplyResult:
        return await sink.apply_async(self.conn, records)

    async def commit(self) -> None:
        await self.conn.commit()


class _SqlAlchemy:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def pid(self) -> int:
        return int(
            await asyncio.to_thread(
                lambda: self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            )
        )

    async def apply(self, sink: TableSink, records: Sequence[Record]) -> ApplyResult:
        from upsync.sinks.sqlalchemy import apply

        return await asyncio.to_thread(apply, self.conn, sink, records)

    async def commit(self) -> None:
        await asyncio.to_thread(self.conn.commit)


class _SqlAlchemyAsync:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def pid(self) -> int:
        return int((await self.conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar())

    async def apply(self, sink: TableSink, records: Sequence[Record]) -> ApplyResult:
        from upsync.sinks.sqlalchemy import apply_async

        return await apply_async(self.conn, sink, records)

    async def commit(self) -> None:
        await self.conn.commit()


class _Django:
    """Django's connection is per thread: every call of one session runs in its own thread."""

    def __init__(self) -> None:
        self.thread = ThreadPoolExecutor(max_workers=1)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)

    async def pid(self) -> int:
        def pid() -> int:
            from django.db import connection, transaction

            transaction.set_autocommit(False)  # as transaction.atomic() does
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                return int(cursor.fetchone()[0])

        return int(await self._run(pid))

    async def apply(self, sink: TableSink, records: Sequence[Record]) -> ApplyResult:
        from upsync.sinks.django import apply

        result: ApplyResult = await self._run(apply, sink, records)
        return result

    async def commit(self) -> None:
        from django.db import transaction

        await self._run(transaction.commit)

    async def close(self) -> None:
        def close() -> None:
            from django.db import connection

            connection.close()

        await self._run(close)
        self.thread.shutdown()


def _django_settings(schema_dsn: str) -> None:
    """Point Django's default database at the test's schema (configuring Django if needed)."""
    import django
    from django.conf import settings
    from django.db import connections
    from psycopg.conninfo import conninfo_to_dict

    if not settings.configured:  # the same configuration as tests/sinks/test_django.py
        settings.configure(
            DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unset"}},
            INSTALLED_APPS=["tests.sinks.django_app"],
            USE_TZ=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
        django.setup()
    params = conninfo_to_dict(schema_dsn)
    connections.settings["default"].update(
        NAME=params["dbname"],
        USER=params.get("user", ""),
        PASSWORD=params.get("password", ""),
        HOST=params.get("host", ""),
        PORT=params.get("port", ""),
        OPTIONS={"options": params["options"]},
    )


@contextlib.asynccontextmanager
async def session(driver: str, schema_dsn: str) -> AsyncIterator[Session]:
    """A session of ``driver`` on the test's schema; what it did not commit is rolled back."""
    if driver == "django":
        _django_settings(schema_dsn)
        django_session = _Django()
        try:
            yield django_session
        finally:
            await django_session.close()
        return
    if driver.startswith("psycopg"):
        if driver == "psycopg-async":
            async with await psycopg.AsyncConnection.connect(schema_dsn) as aconn:
                yield _PsycopgAsync(aconn)
            return
        with psycopg.connect(schema_dsn) as conn:
            yield _Psycopg(conn, pipeline=driver == "psycopg-pipeline")
        return
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    name = driver.partition("-")[2]
    importlib.import_module(name)  # a dev dependency: missing fails here, never skips
    url, connect_args = scenario.sqlalchemy_url(schema_dsn, name)
    if name == "asyncpg":
        aengine = create_async_engine(url, connect_args=connect_args, poolclass=sa.NullPool)
        try:
            async with aengine.connect() as aconn:
                yield _SqlAlchemyAsync(aconn)
        finally:
            await aengine.dispose()
        return
    engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.NullPool)
    sconn = await asyncio.to_thread(engine.connect)
    try:
        yield _SqlAlchemy(sconn)
    finally:
        await asyncio.to_thread(sconn.close)
        engine.dispose()


async def apply_once(
    driver: str, schema_dsn: str, sink: TableSink, records: Sequence[Record]
) -> ApplyResult:
    """Apply ``records`` in one committed transaction of ``driver``."""
    async with session(driver, schema_dsn) as s:
        await s.pid()  # begins the transaction, as a caller's own statement would
        result = await s.apply(sink, records)
        await s.commit()
    return result


Report = tuple[str, str, str | None, str | None, str]
"""(error type, record id, column, SQLSTATE, reason): what a rejection says."""


def report(errors: Sequence[UpsyncError]) -> list[Report]:
    """The comparable part of rejections, sorted by record id."""
    out: list[Report] = []
    for e in errors:
        if isinstance(e, RowRejected):
            out.append(("RowRejected", e.record_id, None, e.sqlstate, e.reason))
        else:
            assert isinstance(e, MappingError), e
            out.append(("MappingError", e.record_id or "", e.column, None, e.reason))
    return sorted(out, key=lambda r: r[1])


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (an async callable) until it is true, or fail naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)
