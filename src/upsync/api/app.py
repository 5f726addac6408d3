"""The HTTP API application: :func:`create_app`.

Example::

    import uvicorn
    from upsync.api import create_app

    uvicorn.run(create_app("postgresql://localhost/mydb"), host="127.0.0.1", port=7376)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from upsync.api import consume, health, management, stream
from upsync.api.bodylimit import BodyLimitMiddleware
from upsync.api.errors import install_error_handlers
from upsync.api.metrics import LatencyMiddleware, Metrics
from upsync.api.state import AConn, ApiState
from upsync.ops import limits
from upsync.ops.tokens import ensure_api_schema
from upsync.stream.clock import Clock, db_clock
from upsync.stream.service import StreamService

__all__ = ["DEFAULT_MAX_WAIT_MS", "create_app"]

#: The longest ``wait_for`` a client may ask of ``next`` (longer is a 422).
DEFAULT_MAX_WAIT_MS = 60_000


async def _autocommit(conn: AConn) -> None:
    # set here rather than in the pool's connect kwargs, which the notifier reuses as its own
    await conn.set_autocommit(True)


def _pool(dsn_or_pool: str | AsyncConnectionPool[AConn], size: int) -> AsyncConnectionPool[AConn]:
    if isinstance(dsn_or_pool, AsyncConnectionPool):
        return dsn_or_pool
    return AsyncConnectionPool(
        dsn_or_pool,
        connection_class=psycopg.AsyncConnection[Any],
        configure=_autocommit,
        min_size=1,
        max_size=size,
        open=False,
        name="upsync-api",
    )


def create_app(
    dsn_or_pool: str | AsyncConnectionPool[AConn],
    *,
    schema: str = "upsync",
    migrate: bool = True,
    pool_size: int = 10,
    metrics: Metrics | None = None,
    metrics_auth: bool = False,
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS,
    clock: Clock = db_clock,
    max_request_bytes: int | None = None,
) -> FastAPI:
    """Build the Sequin-compatible HTTP API over upsync's schema ``schema``.

    Args:
        dsn_or_pool: a Postgres DSN (the app opens and closes its own pool), or an
            ``AsyncConnectionPool`` that the caller opens and closes; its ``conninfo`` must be a
            string and its ``kwargs`` must not set ``autocommit`` (the LISTEN connection reuses
            them).
        schema: upsync's schema in that database.
        migrate: apply pending migrations (stream and API tokens) at startup.
        pool_size: the maximum size of the app's own pool (ignored when given a pool).
        metrics: share a :class:`Metrics` (e.g. with the engine's managed consumers).
        metrics_auth: require the bearer token on ``/metrics`` too (default: open, like most
            Prometheus targets; it shows consumer names and counts, no record data).
        max_wait_ms: the longest long poll ``next`` accepts.
        clock: where "now" comes from for ack deadlines (tests inject a ``ManualClock``).
        max_request_bytes: the largest request body read (413 beyond); default
            ``UPSYNC_MAX_REQUEST_BYTES`` or 16 MiB (:mod:`upsync.ops.limits`).

    The pool, the LISTEN connection and migrations live in the app's lifespan: serve it with
    uvicorn, or enter ``app.router.lifespan_context(app)`` when driving it in-process.
    """
    max_request_bytes = max_request_bytes or limits.max_request_bytes()
    owns_pool = not isinstance(dsn_or_pool, AsyncConnectionPool)
    pool = _pool(dsn_or_pool, pool_size)
    api_metrics = metrics or Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owns_pool:
            await pool.open(wait=True)
        service = StreamService(pool, schema=schema, clock=clock)
        try:
            if migrate:
                async with pool.connection() as conn:
                    await ensure_api_schema(conn, schema=schema)
            await service.notifier.start()
            app.state.upsync = ApiState(pool, schema, api_metrics, service, max_wait_ms)
            yield
        finally:
            await service.notifier.close()
            if owns_pool:
                await pool.close()

    app = FastAPI(
        title="upsync",
        summary="Sequin-compatible stream, consumer and management API",
        version="0.1",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(LatencyMiddleware, metrics=api_metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_request_bytes)
    app.include_router(health.router)
    app.include_router(health.metrics_router(auth=metrics_auth))
    app.include_router(management.router)
    app.include_router(consume.router)
    app.include_router(stream.router)
    return app
