"""Prometheus metrics of the HTTP API and of the stream it serves.

Two kinds of series:

- counted in this process as requests are served: messages delivered, redelivered, acked and
  nacked per consumer, and the request latency histogram by route *template* (never the raw
  path, so ids do not explode the label set);
- read from the database at scrape time (:meth:`Metrics.refresh`): records in and record
  versions written to each stream, and each consumer's pending / ack-pending / dead counts, so
  they are right whichever process did the writing or delivering;
- read from the syncs this process runs (when the engine sets :attr:`Metrics.syncs`), labelled
  by sync name and id: objects backfilled per collection, lag, drift, errors and webhook
  deliveries accepted / refused. Only the process running a sync reports it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from upsync import ops
from upsync.api.sync_health import LiveSyncs
from upsync.ops.health import sync_state

__all__ = ["LatencyMiddleware", "Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class _Snapshot:
    """What the last scrape read from the database."""

    streams: list[tuple[str, int, int]] = field(default_factory=list)
    """(stream name, records now, record versions written)"""
    consumers: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    """(consumer name, consumer id, pending, ack pending, dead)"""
    failing: list[tuple[str, str, int]] = field(default_factory=list)
    """(consumer name, consumer id, 1 while its deliveries fail) of webhook consumers"""
    states: list[tuple[str, str, str]] = field(default_factory=list)
    """(sync name, sync id, state) of every sync"""


class _DatabaseCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = _Snapshot()

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        records = GaugeMetricFamily(
            "upsync_stream_records",
            "Records in the stream (each at its latest version)",
            labels=["stream"],
        )
        written = CounterMetricFamily(
            "upsync_records_written",
            "Record versions written to the stream (created, updated and deleted)",
            labels=["stream"],
        )
        for name, count, versions in snap.streams:
            records.add_metric([name], count)
            written.add_metric([name], versions)
        gauges = {
            key: GaugeMetricFamily(
                f"upsync_consumer_{key}", doc, labels=["consumer", "consumer_id"]
            )
            for key, doc in (
                ("pending", "Messages deliverable now"),
                ("ack_pending", "Messages held by workers within their ack window"),
                ("dead", "Dead letters (max_deliver attempts used up)"),
            )
        }
        for name, cid, pending, ack_pending, dead in snap.consumers:
            gauges["pending"].add_metric([name, cid], pending)
            gauges["ack_pending"].add_metric([name, cid], ack_pending)
            gauges["dead"].add_metric([name, cid], dead)
        failing = GaugeMetricFamily(
            "upsync_consumer_failing",
            "1 while a webhook consumer's deliveries fail (its last_error says why)",
            labels=["consumer", "consumer_id"],
        )
        for name, cid, value in snap.failing:
            failing.add_metric([name, cid], value)
        states = GaugeMetricFamily(
            "upsync_sync_state",
            "1 for each sync's current state (paused, not started, failing, backfilling, live)",
            labels=["sync", "sync_id", "state"],
        )
        for name, sid, state in snap.states:
            for candidate in _SYNC_STATES:
                states.add_metric([name, sid, candidate], 1 if candidate == state else 0)
        yield from (records, written, *gauges.values(), failing, states)


_SYNC_STATES = ("paused", "not started", "failing", "backfilling", "live")


class _SyncCollector(Collector):
    """Per-sync series, read from the live syncs at scrape time (no database access)."""

    def __init__(self) -> None:
        self.syncs: LiveSyncs | None = None

    def collect(self) -> Iterable[Metric]:
        labels = ["sync", "sync_id"]
        backfilled = GaugeMetricFamily(
            "upsync_sync_backfilled_objects",
            "Objects backfilled so far, per collection",
            labels=[*labels, "collection"],
        )
        done = GaugeMetricFamily(
            "upsync_sync_backfill_done",
            "1 when the collection's backfill has finished",
            labels=[*labels, "collection"],
        )
        lag = GaugeMetricFamily(
            "upsync_sync_lag_seconds",
            "Seconds between the newest processed event's creation and its processing",
            labels=labels,
        )
        counters = {
            key: CounterMetricFamily(f"upsync_sync_{key}", doc, labels=labels)
            for key, doc in (
                ("events_processed", "Stripe events applied by polling"),
                ("drift", "Objects whose stream state differed from Stripe's at reconciliation"),
                ("errors", "Failed polls, backfills and source runs"),
            )
        }
        webhooks = CounterMetricFamily(
            "upsync_sync_webhooks",
            "Webhook deliveries, by outcome (accepted or refused)",
            labels=[*labels, "outcome"],
        )
        for sync, health in self.syncs.running_syncs() if self.syncs else []:
            ids = [sync.name, sync.id]
            for collection_id, progress in health.backfill.items():
                backfilled.add_metric([*ids, collection_id], progress.count)
                done.add_metric([*ids, collection_id], int(progress.done))
            if health.lag_seconds is not None:
                lag.add_metric(ids, health.lag_seconds)
            counters["events_processed"].add_metric(ids, health.events_processed)
            counters["drift"].add_metric(ids, health.drift)
            counters["errors"].add_metric(ids, health.errors)
            webhooks.add_metric([*ids, "accepted"], health.webhooks_accepted)
            webhooks.add_metric([*ids, "refused"], health.webhooks_refused)
        yield from (backfilled, done, lag, *counters.values(), webhooks)


class Metrics:
    """The API's metrics, in their own registry (one per app, so tests do not collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        labels = ["consumer", "consumer_id"]
        self.delivered = Counter(
            "upsync_messages_delivered",
            "Messages handed out by next",
            labels,
            registry=self.registry,
        )
        self.redelivered = Counter(
            "upsync_messages_redelivered",
            "Messages handed out again (after a nack or an expired ack window)",
            labels,
            registry=self.registry,
        )
        self.acked = Counter(
            "upsync_messages_acked", "Messages acknowledged", labels, registry=self.registry
        )
        self.nacked = Counter(
            "upsync_messages_nacked",
            "Messages negatively acknowledged",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "upsync_http_request_duration_seconds",
            "HTTP API request latency by route template",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._db = _DatabaseCollector()
        self.registry.register(self._db)
        self._syncs = _SyncCollector()
        self.registry.register(self._syncs)

    @property
    def syncs(self) -> LiveSyncs | None:
        """The syncs this process runs (set by the engine), for the per-sync series."""
        return self._syncs.syncs

    @syncs.setter
    def syncs(self, value: LiveSyncs | None) -> None:
        self._syncs.syncs = value

    async def refresh(self, conn: Any, *, schema: str) -> None:
        """Read the database-side series (call right before :meth:`render`)."""
        streams = await ops.streams.stream_counts(conn, schema=schema)
        views = await ops.consumers.list_consumers(conn, schema=schema)
        consumers = [
            (
                v.consumer.name,
                v.consumer.id,
                v.info.num_pending,
                v.info.num_ack_pending,
                v.info.num_dead,
            )
            for v in views
        ]
        failing = [
            (v.consumer.name, v.consumer.id, int(v.state == "failing"))
            for v in views
            if v.webhook is not None
        ]
        live = self._syncs.syncs
        states = [
            (s.name, s.id, sync_state(s, None if live is None else live.health(s.id)).state)
            for s in await ops.syncs.list_syncs(conn, schema=schema)
        ]
        self._db.snapshot = _Snapshot(streams, consumers, failing, states)

    def render(self) -> bytes:
        """The exposition text of every series."""
        return generate_latest(self.registry)


class LatencyMiddleware:
    """Observes each HTTP request's duration, labelled by its route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            self.metrics.latency.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - start
            )
