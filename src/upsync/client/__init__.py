"""Python client for upsync's HTTP API (Sequin's Consume, Management and Stream APIs), and a
worker loop that pulls batches, hands them to your code and acks them.

Example::

    import psycopg
    import upsync
    from upsync.client import run_worker
    from upsync.sinks import Route, TableSink

    sink = TableSink([Route("stripe:subscription", "subscriptions")])
    with upsync.Client("http://127.0.0.1:7376", token) as client, psycopg.connect(dsn) as conn:
        client.create_consumer("default", "my-consumer", max_deliver=5, exist_ok=True)
        run_worker(client, "my-consumer", lambda records: sink.apply(conn, records),
                   batch_size=100, wait_for_ms=5000, install_signal_handlers=True)

The handler returns the sink's :class:`~upsync.sinks.ApplyResult`: records it rejected are
nacked, not acked (see :func:`run_worker`).

Every method exists twice with the same typed signature: on :class:`Client` (blocking) and on
:class:`AsyncClient` (``await`` it). Both are generated from one request builder per endpoint
(:mod:`upsync.client._calls`), so they cannot drift apart. HTTP errors become upsync errors: 401
:class:`~upsync.errors.Unauthorized`, 404 :class:`~upsync.errors.NotFound`, a refused ack token
:class:`~upsync.errors.InvalidAckToken`, another 4xx :class:`~upsync.errors.ConfigurationError`,
429/5xx or no answer :class:`ApiUnavailable` (a :class:`~upsync.errors.TransientError`). The
bearer token never appears in a repr, an error or a log line.
"""

from upsync.client._calls import UNSET, Unset
from upsync.client.http import AsyncClient, Client
from upsync.client.worker import Backoff, WorkerStats, run_worker, run_worker_async
from upsync.errors import ApiUnavailable

__all__ = [
    "UNSET",
    "ApiUnavailable",
    "AsyncClient",
    "Backoff",
    "Client",
    "Unset",
    "WorkerStats",
    "run_worker",
    "run_worker_async",
]
