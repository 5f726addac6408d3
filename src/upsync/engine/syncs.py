"""Running syncs: one source task per active sync, restarted on failure, stopped on pause.

The runner re-reads the catalog every ``refresh`` seconds (and when :meth:`SyncRunner.refresh`
is called, e.g. by the API after a change), starts sources for new active syncs, stops those
paused or deleted, and restarts a failed source after a jittered, growing delay. A source's
progress lives in the database, so a restart — of the source or the whole process — resumes.

Each sync is isolated: a sync that cannot be started (an unknown provider or collection, no
credential) or whose source fails with an error retrying cannot fix (see
:mod:`upsync.engine.supervision`) is stopped on its own — its health shows the error and
``stopped`` — and is not retried until its configuration changes; every other sync runs on.
A transient failure (the database or Stripe unreachable) is retried with backoff.

Webhook signing secrets are credentials of kind ``stripe_webhook_secret``, referenced from the
sync's ``metadata["webhook_credential_id"]`` (one id, or a list of ids while a secret is being
rolled). They are read when the source starts; changing the reference restarts the source.

Each running sync has a :class:`~upsync.engine.health.SyncHealth` (its source's status plus
error and webhook counts); it outlives restarts of the source, so its counters keep counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from upsync.engine.health import SyncHealth, TaskBoard
from upsync.engine.supervision import Backoff, is_transient, supervise
from upsync.errors import ConfigurationError, NotFound, UpsyncError
from upsync.ops.health import report as report_health
from upsync.redact import redact
from upsync.sources.port import PostgresPort
from upsync.sources.stripe.client import StripeHTTP
from upsync.sources.stripe.collections import collection
from upsync.sources.stripe.ratelimit import RateLimiter
from upsync.sources.stripe.source import StripeSource
from upsync.stream.catalog import list_syncs, reveal_secret
from upsync.stream.models import WEBHOOK_CREDENTIAL_KEY, Sync, webhook_credential_ids
from upsync.stream.tables import DEFAULT_SCHEMA

__all__ = ["WEBHOOK_CREDENTIAL_KEY", "SyncRunner", "default_rate", "webhook_credential_ids"]


_log = logging.getLogger(__name__)


def default_rate(sync: Sync, secret: str) -> tuple[float, int | None]:
    """Requests/s and concurrency for a sync: its ``rate_limit``, else Sequin's defaults.

    Stripe allows 25 requests/s in test mode and 100 live; Sequin took 25 and 50 of those.
    """
    limit = sync.rate_limit or {}
    allowed, interval = limit.get("allowed_requests"), limit.get("interval")
    if allowed and interval:
        rate = float(allowed) / float(interval)
    else:
        rate = 25.0 if secret.startswith(("sk_test_", "rk_test_")) else 50.0
    concurrent = limit.get("max_concurrent_requests") or None
    return rate, int(concurrent) if concurrent else None


@dataclass
class _Running:
    sync: Sync
    source: StripeSource
    task: asyncio.Task[None]
    stop: asyncio.Event
    failures: int = 0
    started_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Refused:
    """A sync stopped for good, and the configuration it was stopped with."""

    config: tuple[Any, ...]
    error: str


#: a source that ran this long before failing starts its backoff afresh
_HEALTHY_RUN_S = 300.0
_RESTART_BACKOFF = Backoff(base_s=1.0, max_s=60.0)


@dataclass
class SyncRunner:
    """Keeps one source task per active sync; a sync that cannot run never holds up another."""

    pool: AsyncConnectionPool[Any]
    schema: str = DEFAULT_SCHEMA
    stripe_base_url: str = "https://api.stripe.com"
    poll_interval: float = 0.5
    refresh_every: float = 5.0
    reconcile_every: float | None = 24 * 3600
    tasks: TaskBoard = field(default_factory=TaskBoard)
    running: dict[str, _Running] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _report_failures: set[str] = field(default_factory=set)
    _backoff: dict[str, tuple[int, float]] = field(default_factory=dict)
    _health: dict[str, tuple[Sync, SyncHealth]] = field(default_factory=dict)
    _refused: dict[str, _Refused] = field(default_factory=dict)

    def source(self, sync_id: str) -> StripeSource | None:
        """The running source of a sync (for status and webhooks)."""
        entry = self.running.get(sync_id)
        return entry.source if entry else None

    def health(self, sync_id: str) -> SyncHealth | None:
        """The live status of a sync this runner runs (also while it waits to restart)."""
        found = self._health.get(sync_id)
        return found[1] if found else None

    def running_syncs(self) -> list[tuple[Sync, SyncHealth]]:
        """Every sync this runner runs (or will restart), with its live status."""
        return list(self._health.values())

    def refresh(self) -> None:
        """Re-read the catalog now rather than at the next tick."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise sources until ``stop`` is set, then stop them all.

        Reading the catalog is retried while the error is transient (the database restarting);
        any other error stops the runner, logged once and shown in ``/healthz``.
        """

        async def one_round() -> bool:
            await self._reconcile_tasks()
            await self._wait(stop)
            return True

        try:
            await supervise(one_round, stop=stop, health=self.tasks.task("sync runner"), log=_log)
        finally:
            await asyncio.gather(*(self._stop(i) for i in list(self.running)))

    async def _wait(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        await asyncio.wait(waits, timeout=self.refresh_every, return_when="FIRST_COMPLETED")
        for w in waits:
            w.cancel()

    async def _reconcile_tasks(self) -> None:
        async with self.pool.connection() as conn:
            syncs = {s.id: s for s in await list_syncs(conn, schema=self.schema)}
        wanted = {i: s for i, s in syncs.items() if s.status == "active"}
        for sync_id in list(self.running):
            entry = self.running[sync_id]
            changed = sync_id in wanted and _config(wanted[sync_id]) != _config(entry.sync)
            if sync_id not in wanted or changed:
                await self._stop(sync_id)
        for sync_id in [i for i in self._health if i not in wanted]:
            sync, _ = self._health.pop(sync_id)  # paused or deleted: the database's status again
            self.tasks.forget(_task(sync))
            self._refused.pop(sync_id, None)
            self._backoff.pop(sync_id, None)
        now = asyncio.get_running_loop().time()
        for sync_id, sync in wanted.items():
            current = self.running.get(sync_id)
            if current is not None and current.task.done():
                self._ended(self.running.pop(sync_id), now)
                current = None
            failures, not_before = self._backoff.get(sync_id, (0, 0.0))
            if current is None and now >= not_before and not self._still_refused(sync):
                await self._start_isolated(sync, failures, now)
        await self._report(syncs)

    async def _report(self, syncs: dict[str, Sync]) -> None:
        """Store each run sync's state where other processes read it (`upsync status`, an
        API replica); written only when the state or the error changed."""
        try:
            async with self.pool.connection() as conn:
                for sync_id, (_, health) in list(self._health.items()):
                    if sync_id in syncs:
                        await report_health(conn, syncs[sync_id], health, schema=self.schema)
        except Exception as e:
            if is_transient(e):
                raise  # the database is restarting: the runner's round is retried
            # a bug in reporting must not stop the syncs it reports on; say it once per kind
            if type(e).__name__ not in self._report_failures:
                self._report_failures.add(type(e).__name__)
                _log.error("sync runner: cannot store sync states", exc_info=e)

    def _still_refused(self, sync: Sync) -> bool:
        """Whether ``sync`` was stopped for good and has not changed since."""
        refused = self._refused.get(sync.id)
        if refused is None:
            return False
        if refused.config == _config(sync):
            return True
        del self._refused[sync.id]
        _log.info("sync %s: configuration changed; starting it again", _name(sync))
        return False

    async def _start_isolated(self, sync: Sync, failures: int, now: float) -> None:
        """Start ``sync``; whatever goes wrong stays with this sync and shows in its health."""
        try:
            await self._start(sync, failures)
        except Exception as e:
            health = self._health_of(sync)
            health.last_error = redact(f"{type(e).__name__}: {e}")
            if is_transient(e):
                failures += 1
                delay = _RESTART_BACKOFF.delay(failures)
                _log.warning(
                    "sync %s: cannot start: %s (retrying in %.1f s)",
                    _name(sync),
                    health.last_error,
                    delay,
                )
                self._backoff[sync.id] = (failures, now + delay)
            else:
                self._refuse(sync, health, e)

    def _refuse(self, sync: Sync, health: SyncHealth, error: BaseException) -> None:
        health.stopped = True
        self._refused[sync.id] = _Refused(_config(sync), health.last_error or "")
        self.tasks.task(_task(sync)).stop(health.last_error or type(error).__name__)
        # a configuration error is the user's to fix and says all there is; others get a trace
        trace = None if isinstance(error, UpsyncError) else error
        _log.error(
            "sync %s stopped: %s (not retried until the sync is changed)",
            _name(sync),
            health.last_error,
            exc_info=trace,
        )

    def _health_of(self, sync: Sync) -> SyncHealth:
        health = self._health.get(sync.id, (sync, SyncHealth()))[1]
        self._health[sync.id] = (sync, health)
        return health

    async def _start(self, sync: Sync, failures: int = 0) -> None:
        if sync.provider != "stripe":
            raise ConfigurationError(
                f"provider {sync.provider!r} is not supported (upsync syncs: stripe)"
            )
        if sync.credential_id is None:
            raise ConfigurationError("the sync has no credential (its Stripe API key)")
        for collection_id in sync.collection_ids:
            collection(collection_id)  # an unknown collection is refused before any I/O
        async with self.pool.connection() as conn:
            secret = await reveal_secret(conn, sync.credential_id, schema=self.schema)
            webhook_secrets = await self._webhook_secrets(conn, sync)
        rate, concurrent = default_rate(sync, secret)
        http = StripeHTTP(
            secret,
            base_url=self.stripe_base_url,
            limiter=RateLimiter(rate, max_concurrent=concurrent),
        )
        source = StripeSource(
            http,
            PostgresPort(self.pool, sync, schema=self.schema),
            sync.collection_ids,
            webhook_secrets=webhook_secrets,
            poll_interval=self.poll_interval,
            reconcile_every=self.reconcile_every,
            label=f"sync {sync.name!r}",
        )
        health = self._health_of(sync)
        health.stopped = False
        self.tasks.forget(_task(sync))
        source.status = health  # one status per sync, kept across restarts of its source
        stop = asyncio.Event()
        task = asyncio.create_task(self._guard(sync, source, stop), name=f"sync {sync.id}")
        self.running[sync.id] = _Running(sync, source, task, stop, failures)
        _log.info(
            "sync %s started: %s", _name(sync), ", ".join(sync.collection_ids) or "no collections"
        )

    async def _guard(self, sync: Sync, source: StripeSource, stop: asyncio.Event) -> None:
        try:
            await source.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            source.status.last_error = redact(f"{type(e).__name__}: {e}")
            if not is_transient(e):
                raise  # the runner stops the sync for good (see _ended)
            _log.warning("sync %s failed: %s", _name(sync), source.status.last_error)
        finally:
            await source.http.aclose()

    async def _webhook_secrets(self, conn: Any, sync: Sync) -> list[str]:
        """The sync's webhook signing secrets (none: every webhook is refused, polling works)."""
        secrets = []
        for credential_id in webhook_credential_ids(sync.metadata):
            try:
                secrets.append(await reveal_secret(conn, credential_id, schema=self.schema))
            except NotFound:
                _log.warning("sync %s: webhook credential %s not found", sync.id, credential_id)
        return secrets

    def _ended(self, entry: _Running, now: float) -> None:
        """A source task ended: restart it after a pause, or stop the sync on a lasting error."""
        error = None if entry.task.cancelled() else entry.task.exception()
        health = self._health_of(entry.sync)
        if error is not None:
            self._refuse(entry.sync, health, error)
            return
        ran_well = time.monotonic() - entry.started_at >= _HEALTHY_RUN_S
        failures = 1 if ran_well else entry.failures + 1
        health.restarts += 1
        delay = _RESTART_BACKOFF.delay(failures)
        _log.info("restarting sync %s in %.1fs", _name(entry.sync), delay)
        self._backoff[entry.sync.id] = (failures, now + delay)

    async def _stop(self, sync_id: str) -> None:
        entry = self.running.pop(sync_id, None)
        if entry is None:
            return
        entry.stop.set()
        if not entry.task.done():
            _log.info("sync %s stopped", _name(entry.sync))
        try:
            await asyncio.wait_for(asyncio.shield(entry.task), timeout=10)
        except TimeoutError:
            entry.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await entry.task
        except Exception:  # it already failed and was reported; stopping is what was asked
            return


def _name(sync: Sync) -> str:
    return f"{sync.name!r} ({sync.id})"


def _task(sync: Sync) -> str:
    return f"sync {_name(sync)}"


def _config(sync: Sync) -> tuple[Any, ...]:
    """What a running source depends on; a change restarts it."""
    return (
        sync.collection_ids,
        sync.credential_id,
        dict(sync.rate_limit or {}),
        sync.status,
        webhook_credential_ids(sync.metadata),
    )
