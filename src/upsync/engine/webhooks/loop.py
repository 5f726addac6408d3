"""The webhook consumer's run loop: deliver, wait for records, retry, stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from upsync.engine.health import TaskHealth
from upsync.engine.supervision import supervise
from upsync.engine.webhooks.config import WebhookConfig, load_webhook_config
from upsync.engine.webhooks.delivery import (
    DEFAULT_RETRY,
    Attempt,
    RetryPolicy,
    WallClock,
    _record_config_error,
    deliver_webhook_batch,
)
from upsync.engine.webhooks.manage import ensure_webhook_tables
from upsync.errors import ConfigurationError, NotFound
from upsync.stream.consumers import get_consumer
from upsync.stream.models import Consumer
from upsync.stream.notify import Notifier
from upsync.stream.tables import DEFAULT_SCHEMA

_log = logging.getLogger("upsync.engine.webhooks")  # one logger name, as before the split


async def run_webhook_consumer(
    pool: AsyncConnectionPool[Any],
    notifier: Notifier,
    consumer: Consumer,
    stop: asyncio.Event,
    *,
    schema: str = DEFAULT_SCHEMA,
    retry: RetryPolicy = DEFAULT_RETRY,
    timeout_s: float = 30.0,
    idle_wait: float = 5.0,
    config_retry_s: float = 60.0,
    clock: WallClock = time.time,
    rng: random.Random | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
    health: TaskHealth | None = None,
) -> None:
    """POST ``consumer``'s records to its webhook until ``stop`` is set, or it fails for good.

    Woken by new records (``notifier``), by the earliest ack deadline, or after ``idle_wait``
    seconds. The configuration (URL, secret) is re-read when idle and after every failure, so a
    fixed URL is picked up by the next retry. A bad configuration is shown in the status and
    re-checked every ``config_retry_s``; a transient database error is retried with a growing
    pause (nothing was acked, so the batch comes again). Any other error stops the consumer:
    logged once with its traceback, shown as ``stopped`` in ``health``
    (:mod:`upsync.engine.supervision`). Returns when the consumer is deleted or stopped.
    Each request times out after ``timeout_s``, capped by the consumer's ``ack_wait_ms`` so a
    batch is settled before it could be redelivered.
    """
    rng = rng or random.Random()
    timeout = min(timeout_s, consumer.ack_wait_ms / 1000)
    async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
        health = health or TaskHealth(f"consumer {consumer.name!r}")
        loop = _Loop(pool, notifier, consumer, stop, schema, clock, on_attempt, health)
        await loop.run(http, retry, idle_wait, config_retry_s, rng)


@dataclass
class _Loop:
    pool: AsyncConnectionPool[Any]
    notifier: Notifier
    consumer: Consumer
    stop: asyncio.Event
    schema: str
    clock: WallClock
    on_attempt: Callable[[Attempt], None] | None
    health: TaskHealth
    config: WebhookConfig | None = None
    shown_error: str | None = None
    tables_ready: bool = False

    async def run(
        self,
        http: httpx.AsyncClient,
        retry: RetryPolicy,
        idle_wait: float,
        config_retry_s: float,
        rng: random.Random,
    ) -> None:
        async def one_round() -> bool:
            with self.notifier.subscribe(self.consumer.stream_id) as wake:  # before looking
                try:
                    config = self.config or await self._load()
                    report = await deliver_webhook_batch(
                        self.pool, self.consumer, config, http, schema=self.schema,
                        retry=retry, clock=self.clock, rng=rng,
                    )  # fmt: skip
                except NotFound:
                    _log.info("webhook consumer %s: deleted; stopping", self.consumer.name)
                    return False
                except ConfigurationError as e:
                    # shown in the status and re-read: fixing the URL or secret resumes delivery
                    self.health.retrying(e)
                    await self._config_error(str(e))
                    await self._pause(config_retry_s)
                    return True
                await self._after(report, wake, idle_wait)
            return True

        await supervise(one_round, stop=self.stop, health=self.health, log=_log)

    async def _after(self, report: Attempt, wake: Any, idle_wait: float) -> None:
        if self.on_attempt is not None and report.delivered:
            self.on_attempt(report)
        if not report.ok:
            self.config = None
            _log.warning(
                "webhook consumer %s: delivery %s of %d record(s) failed (attempt %d): %s; "
                "%d dead-lettered, retrying in %.1f s",
                self.consumer.name,
                report.delivery_id,
                report.delivered,
                report.failures,
                report.error,
                report.dead,
                report.retry_in_s or 0.0,
            )
            await self._pause(report.retry_in_s or 0.0)
            return
        if report.delivered:
            return
        self.config = None  # idle: pick up a changed URL or secret on the next round
        timeout = idle_wait
        if report.next_deadline_s is not None:
            timeout = min(timeout, max(report.next_deadline_s, 0.01))
        stopper = asyncio.ensure_future(self.stop.wait())
        waiter = asyncio.ensure_future(wake.wait(timeout))
        await asyncio.wait([stopper, waiter], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        waiter.cancel()

    async def _load(self) -> WebhookConfig:
        async with self.pool.connection() as conn:
            if not self.tables_ready:
                await ensure_webhook_tables(conn, schema=self.schema)
                self.tables_ready = True
            self.consumer = await get_consumer(conn, self.consumer.id, schema=self.schema)
            self.config = await load_webhook_config(conn, self.consumer, schema=self.schema)
        self.shown_error = None
        return self.config

    async def _config_error(self, message: str) -> None:
        if message != self.shown_error:
            _log.error("webhook consumer %s: %s", self.consumer.name, message)
            self.shown_error = message
        with contextlib.suppress(Exception):  # best effort: the log line above already says it
            await _record_config_error(self.pool, self.consumer, message, self.clock(), self.schema)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
