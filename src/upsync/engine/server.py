"""The engine: one asyncio process serving the API and running syncs and managed consumers.

It shuts down gracefully on its stop event (SIGINT/SIGTERM from ``upsync server``) and lives
through a restart of its Postgres: the pool reconnects, each sync and consumer loop retries
with backoff, and nothing that was not committed was acknowledged.

Managed consumers run here: ``kind="table"`` applies records to typed tables in the schema named
by ``metadata["schema"]`` (default ``stripe``), with SQL only when the tables are in this
database (:mod:`upsync.engine.fastpath`); ``kind="postgres"`` keeps Sequin's single managed
table ``metadata["table"]``; ``kind="webhook"`` POSTs signed batches to ``metadata.url``
(:mod:`upsync.engine.webhooks`).
Webhooks from Stripe arrive at ``POST /v1/syncs/{sync_id}/webhook``; they are authenticated by
their signature (no bearer token: Stripe cannot send one) and verified before being parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from upsync.api.app import create_app
from upsync.api.health import attach_tasks
from upsync.api.metrics import Metrics
from upsync.api.sync_health import attach_live_syncs
from upsync.engine.consumers import TableTarget, run_table_consumer, target_of
from upsync.engine.fastpath import compile_target
from upsync.engine.health import TaskBoard
from upsync.engine.supervision import is_transient, pause, stopped, supervise
from upsync.engine.syncs import SyncRunner
from upsync.engine.webhooks import run_webhook_consumer
from upsync.errors import UpstreamRejected, WebhookSignatureError
from upsync.sinks.table import TableSink
from upsync.stream.consumers import list_consumers
from upsync.stream.maintenance import refresh_statistics
from upsync.stream.migrations import migrate
from upsync.stream.models import Consumer
from upsync.stream.notify import Notifier
from upsync.stream.tables import DEFAULT_SCHEMA

__all__ = ["Engine", "EngineConfig"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs."""

    dsn: str
    schema: str = DEFAULT_SCHEMA
    host: str = "127.0.0.1"
    port: int = 8765
    stripe_base_url: str = "https://api.stripe.com"
    poll_interval: float = 0.5
    refresh_every: float = 5.0
    reconcile_every: float | None = 24 * 3600
    serve_api: bool = True


@dataclass
class Engine:
    """Runs everything of one upsync deployment in this process."""

    config: EngineConfig
    pool: AsyncConnectionPool[Any] | None = None
    syncs: SyncRunner | None = None
    consumers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    app: FastAPI | None = None
    tasks: TaskBoard = field(default_factory=TaskBoard)
    """every supervised task's state (shown in ``/healthz``)"""

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then stop taking work and finish what is in flight."""
        cfg = self.config
        self.pool = AsyncConnectionPool(cfg.dsn, min_size=2, max_size=20, open=False)
        await self.pool.open(wait=True)
        notifier = Notifier(cfg.dsn, schema=cfg.schema)
        try:
            async with self.pool.connection() as conn:
                await migrate(conn, schema=cfg.schema)
            await notifier.start()
            self.syncs = SyncRunner(
                self.pool,
                schema=cfg.schema,
                stripe_base_url=cfg.stripe_base_url,
                poll_interval=cfg.poll_interval,
                refresh_every=cfg.refresh_every,
                reconcile_every=cfg.reconcile_every,
                tasks=self.tasks,
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(self.syncs.run(stop))
                group.create_task(self._supervise_consumers(notifier, stop))
                if cfg.serve_api:
                    group.create_task(self._serve_api(stop))
                else:
                    self.ready.set()
        finally:
            await notifier.close()
            await self.pool.close()

    async def _serve_api(self, stop: asyncio.Event) -> None:
        assert self.pool is not None and self.syncs is not None
        metrics = Metrics()
        metrics.syncs = self.syncs  # per-sync series: backfill, lag, drift, errors, webhooks
        self.app = create_app(self.pool, schema=self.config.schema, metrics=metrics)
        attach_live_syncs(self.app, self.syncs)  # GET /v1/syncs/{id} shows live health
        attach_tasks(self.app, self.tasks)  # /healthz shows tasks that retry or stopped
        self.app.include_router(self._webhook_router())
        config = uvicorn.Config(
            self.app,
            host=self.config.host,
            port=self.config.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,  # long polls in flight come back after their ack window
        )
        server = _QuietServer(config)
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)  # uvicorn offers no readiness event
        self.ready.set()
        await stop.wait()
        server.should_exit = True
        await serving

    def _webhook_router(self) -> APIRouter:
        router = APIRouter()

        @router.post("/v1/syncs/{sync_id}/webhook", include_in_schema=True, tags=["webhooks"])
        async def stripe_webhook(sync_id: str, request: Request) -> JSONResponse:
            """Stripe webhook intake: verified by its signature before anything is parsed."""
            source = self.syncs.source(sync_id) if self.syncs else None
            health = self.syncs.health(sync_id) if self.syncs else None
            if source is None or health is None:
                return _error(404, f"sync {sync_id!r} is not running here")
            body = await request.body()
            try:
                changed = await source.handle_webhook(
                    body, request.headers.get("stripe-signature"), now=time.time()
                )
            except (WebhookSignatureError, UpstreamRejected) as e:
                health.webhooks_refused += 1
                return _error(400, f"webhook refused: {e}")
            health.webhooks_accepted += 1
            return JSONResponse({"received": True, "applied": changed})

        return router

    async def _supervise_consumers(self, notifier: Notifier, stop: asyncio.Event) -> None:
        """Keep one task per managed consumer; pick up new ones and drop deleted ones.

        A consumer whose task stopped for good (see :mod:`upsync.engine.supervision`) is not
        started again until it is changed (its ``updated_at`` moves). Listing the consumers is
        retried while the error is transient; any other error stops this supervisor (and so
        the managed consumers), logged once and shown in ``/healthz``.
        """
        assert self.pool is not None
        stops: dict[str, asyncio.Event] = {}
        running: dict[str, Consumer] = {}

        async def one_round() -> bool:
            wanted = await self._managed_consumers()
            await self._maintain()
            for cid in [c for c in self.consumers if c not in wanted]:
                stops.pop(cid).set()
                await self.consumers.pop(cid)
                self.tasks.forget(_task_name(running.pop(cid)))
            for cid, consumer in wanted.items():
                task = self.consumers.get(cid)
                if task is not None and (
                    not task.done() or not self._restartable(running[cid], consumer)
                ):
                    continue
                if task is not None:
                    self.tasks.forget(_task_name(running[cid]))
                running[cid], stops[cid] = consumer, asyncio.Event()
                self.consumers[cid] = asyncio.create_task(
                    self._run_consumer(notifier, consumer, stops[cid])
                )
            await pause(stop, self.config.refresh_every)
            return True

        me = self.tasks.task("consumer supervisor")
        try:
            await supervise(one_round, stop=stop, health=me, log=_log)
        finally:
            for event in stops.values():
                event.set()
            await asyncio.gather(*self.consumers.values(), return_exceptions=True)

    def _restartable(self, ran: Consumer, now: Consumer) -> bool:
        """Whether an ended consumer task may start again: not if it stopped for good, unchanged."""
        stopped_for_good = self.tasks.task(_task_name(ran)).state == "stopped"
        return not stopped_for_good or now.updated_at != ran.updated_at

    async def _maintain(self) -> None:
        """Keep the stream's planner statistics fresh (see :mod:`upsync.stream.maintenance`)."""
        assert self.pool is not None
        try:
            async with self.pool.connection() as conn:
                analysed = await refresh_statistics(conn, schema=self.config.schema)
        except Exception as e:  # never worth stopping the engine for; autovacuum is still there
            _log.warning("engine: cannot refresh statistics: %s", e)
            return
        if analysed:
            _log.debug("engine: analysed %s", ", ".join(analysed))

    async def _managed_consumers(self) -> dict[str, Consumer]:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            found = await list_consumers(conn, schema=self.config.schema)
        return {c.id: c for c in found if c.kind in ("table", "postgres", "webhook")}

    async def _run_consumer(
        self, notifier: Notifier, consumer: Consumer, stop: asyncio.Event
    ) -> None:
        """Run one managed consumer until ``stop``, or until it fails (see the supervisor)."""
        assert self.pool is not None
        schema = self.config.schema
        health = self.tasks.task(_task_name(consumer))
        try:
            if consumer.kind == "webhook":
                await run_webhook_consumer(
                    self.pool, notifier, consumer, stop, schema=schema, health=health
                )
                return
            target = target_of(consumer)
            if target is None:
                return
            await target.create_tables(self.pool)
            sink = target.sink()
            fast = None
            if isinstance(target, TableTarget) and isinstance(sink, TableSink):
                fast = await compile_target(self.pool, sink, schema)
            await run_table_consumer(
                self.pool, notifier, consumer, sink, stop, schema=schema, fast=fast, health=health
            )
        except Exception as e:
            if not is_transient(e):
                stopped(_log, health, e)
                return
            # e.g. the database went away while starting: the supervisor starts it again
            health.retrying(e)
            _log.warning("engine: consumer %s: %s (retrying)", consumer.name, e)


def _task_name(consumer: Consumer) -> str:
    return f"consumer {consumer.name!r} ({consumer.id})"


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the engine's stop event is the one switch."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request", "message": message}}, status)
