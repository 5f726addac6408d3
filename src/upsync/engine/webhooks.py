"""Managed webhook consumers: a consumer's records POSTed, signed, to a URL.

A consumer with ``kind="webhook"`` keeps in its ``metadata``:

- ``url``: where batches are POSTed (``http://`` or ``https://`` only);
- ``secret_ref``: the id of the credential (``kind="webhook_secret"``) holding the signing secret,
  as :func:`create_webhook_consumer` stores it; or ``secret_env``: the name of an environment
  variable of the engine process holding it. Never the secret itself: metadata is shown in API
  responses, so a ``secret`` key is refused with :class:`~upsync.errors.ConfigurationError`;
- ``batch_size`` (optional, 1–1000, default 100).

Each batch is claimed, POSTed as ``{"data": [{"record": …}, …]}`` with an
``Upsync-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` header (Stripe's scheme;
receivers check it with :func:`verify_signature`) and ``Upsync-Delivery``, an id that is the same
for every retry of the same record versions. A 2xx acks the batch. Anything else — another
status, a timeout, a refused connection — nacks it; the consumer waits a jittered exponential
backoff and tries again. A message that keeps failing for :attr:`RetryPolicy.horizon_s` (24 h by
default), counted from its first failed attempt, becomes a dead letter of the consumer (listed,
replayable; see :func:`list_webhook_dead_letters` for the reason of each), and the consumer's
:func:`webhook_status` shows the failure. Nothing is dropped silently.

The status and the per-message failures live in two small tables of upsync's schema,
``webhook_status`` and ``webhook_failures``, created by upsync's migrations (number 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from upsync.backoff import Backoff
from upsync.engine.health import TaskHealth
from upsync.engine.supervision import supervise
from upsync.errors import ConfigurationError, InvalidAckToken, NotFound
from upsync.records import Message
from upsync.redact import redact
from upsync.sources.stripe import signature
from upsync.stream import tokens as _tokens
from upsync.stream._sql import DEFAULT_SCHEMA, AConn, q
from upsync.stream.catalog import create_credential, reveal_secret
from upsync.stream.consumers import create_consumer, get_consumer
from upsync.stream.delivery import ack, claim, list_dead_letters, nack
from upsync.stream.migrations import migrate
from upsync.stream.models import Consumer, DeadLetter, Filters
from upsync.stream.notify import Notifier

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "Attempt",
    "RetryPolicy",
    "WebhookConfig",
    "WebhookDeadLetter",
    "WebhookStatus",
    "create_webhook_consumer",
    "deliver_webhook_batch",
    "ensure_webhook_tables",
    "list_webhook_dead_letters",
    "load_webhook_config",
    "run_webhook_consumer",
    "sign_payload",
    "verify_signature",
    "webhook_status",
]

_log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Upsync-Signature"
DELIVERY_HEADER = "Upsync-Delivery"
#: Generated secrets start with this, so :func:`upsync.redact.redact` masks them anywhere.
SECRET_PREFIX = "upsync_whk_"
#: Seconds a signature stays acceptable to :func:`verify_signature` by default (Stripe's).
DEFAULT_TOLERANCE = signature.DEFAULT_TOLERANCE
_DELIVERY_NS = uuid.UUID("2d6c0f0e-4f5a-5c59-8b8e-7d0f3f1b9a41")
_MAX_BATCH = 1000

WallClock = Callable[[], float]
"""Returns the current time as Unix seconds (``time.time``); tests inject their own."""


def sign_payload(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Upsync-Signature`` header value for ``body`` sent at ``timestamp``."""
    return signature.sign(body, secret, timestamp)


def verify_signature(
    body: bytes, header: str | None, secret: str, now: float, *, tolerance: int = DEFAULT_TOLERANCE
) -> int:
    """Check an ``Upsync-Signature`` header against the raw request body; returns its timestamp.

    Stripe's scheme (:mod:`upsync.sources.stripe.signature`). Raises
    :class:`~upsync.errors.WebhookSignatureError` (never echoing the secret) when the header is
    missing or malformed, its timestamp is more than ``tolerance`` seconds away from ``now``
    (a replay), or no ``v1`` signature matches.

    Example::

        from upsync.engine.webhooks import verify_signature
        verify_signature(await request.body(), request.headers.get("upsync-signature"),
                         secret, now=time.time())
    """
    return signature.verify(
        body, header, secret, now=now, tolerance=tolerance, header_name=SIGNATURE_HEADER
    )


@dataclass(frozen=True)
class RetryPolicy(Backoff):
    """How failed deliveries are retried: :class:`~upsync.backoff.Backoff`, and when to give up.

    The n-th consecutive failure waits ``min(max_s, base_s * 2**(n-1))``, of which a random
    ``jitter`` fraction is taken off (so many consumers do not retry in step).
    """

    base_s: float = 1.0
    max_s: float = 600.0
    horizon_s: float = 24 * 3600.0
    """A message failing for this long (since its first failed attempt) becomes a dead letter."""


@dataclass(frozen=True)
class WebhookConfig:
    """A webhook consumer's destination, read from its metadata (secret resolved)."""

    url: str
    secret: str = field(repr=False)
    batch_size: int = 100

    @property
    def safe_url(self) -> str:
        """The URL without credentials, query or fragment: what logs and errors show."""
        return safe_url(self.url)


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: user info and query may carry secrets."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL, else :class:`ConfigurationError`."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError("metadata.url: expected the webhook's http(s) URL")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(f"metadata.url: {safe_url(url)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"metadata.url: expected an http:// or https:// URL, got scheme {parts.scheme!r}"
        )
    return url


def _batch_size(value: object) -> int:
    if value is None:
        return 100
    if type(value) is not int or not 1 <= value <= _MAX_BATCH:
        raise ConfigurationError(f"metadata.batch_size: expected an integer 1-{_MAX_BATCH}")
    return value


async def load_webhook_config(
    conn: AConn, consumer: Consumer, *, schema: str = DEFAULT_SCHEMA
) -> WebhookConfig:
    """Read and check a webhook consumer's metadata, resolving its signing secret.

    Raises :class:`ConfigurationError` naming the bad key (never showing a secret).
    """
    meta = consumer.metadata
    if consumer.kind != "webhook":
        raise ConfigurationError(f"consumer {consumer.name!r} is a {consumer.kind!r} consumer")
    if "secret" in meta:
        raise ConfigurationError(
            "metadata.secret: a signing secret must not be kept in metadata (API responses show "
            "it); use metadata.secret_ref (a credential id) or metadata.secret_env"
        )
    url = check_url(meta.get("url"))
    size = _batch_size(meta.get("batch_size"))
    if meta.get("secret_ref"):
        try:
            secret = await reveal_secret(conn, str(meta["secret_ref"]), schema=schema)
        except NotFound:
            raise ConfigurationError(
                "metadata.secret_ref: no credential with that id holds the signing secret"
            ) from None
    elif meta.get("secret_env"):
        secret = os.environ.get(str(meta["secret_env"]), "")
        if not secret:
            raise ConfigurationError(
                f"metadata.secret_env: environment variable {meta['secret_env']!r} is not set"
            )
    else:
        raise ConfigurationError("metadata: expected secret_ref or secret_env for the secret")
    return WebhookConfig(url, secret, size)


async def ensure_webhook_tables(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> None:
    """Make sure the webhook tables exist: they come with migration 8 of upsync's schema."""
    await migrate(conn, schema=schema)


async def create_webhook_consumer(
    conn: AConn,
    *,
    stream_id: str,
    name: str,
    url: str,
    secret: str | None = None,
    filters: Mapping[str, Any] | Filters | None = None,
    deliver_policy: str = "all",
    ack_wait_ms: int = 30000,
    max_deliver: int = -1,
    max_ack_pending: int = 1000,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> tuple[Consumer, str]:
    """Create a webhook consumer and store its signing secret as a credential.

    Returns the consumer and the secret in clear — the only time it is shown (a new random
    ``upsync_whk_…`` secret unless ``secret`` is given). Give it to the receiver.
    """
    check_url(url)
    meta = dict(metadata or {})
    if "secret" in meta:
        raise ConfigurationError("metadata.secret: pass the signing secret as secret=")
    secret = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    async with conn.transaction():
        await ensure_webhook_tables(conn, schema=schema)
        cred = await create_credential(
            conn,
            provider="upsync",
            kind="webhook_secret",
            secret=secret,
            name=f"webhook signing secret of consumer {name}",
            schema=schema,
        )
        consumer = await create_consumer(
            conn,
            stream_id=stream_id,
            name=name,
            filters=filters,
            deliver_policy=deliver_policy,
            ack_wait_ms=ack_wait_ms,
            max_deliver=max_deliver,
            max_ack_pending=max_ack_pending,
            metadata={**meta, "url": url, "secret_ref": cred.id},
            kind="webhook",
            schema=schema,
        )
    return consumer, secret


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    """How a webhook consumer is doing. ``failing_since`` is None while deliveries succeed."""

    consumer_id: str
    failing_since: datetime | None = None
    attempts: int = 0
    """Failed attempts since the last success."""
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    delivered: int = 0
    dead_lettered: int = 0
    last_dead_lettered_at: datetime | None = None

    @property
    def state(self) -> str:
        """``"failing"`` while retrying, else ``"ok"``."""
        return "ok" if self.failing_since is None else "failing"

    def to_dict(self) -> dict[str, Any]:
        def ts(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "consumer_id": self.consumer_id,
            "state": self.state,
            "failing_since": ts(self.failing_since),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "last_error_at": ts(self.last_error_at),
            "last_attempt_at": ts(self.last_attempt_at),
            "last_success_at": ts(self.last_success_at),
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "last_dead_lettered_at": ts(self.last_dead_lettered_at),
        }


async def webhook_status(
    conn: AConn, consumer: Consumer, *, schema: str = DEFAULT_SCHEMA
) -> WebhookStatus:
    """The consumer's delivery status (all zero before its first attempt)."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            q(schema, "SELECT * FROM {schema}.webhook_status WHERE consumer_id = %s"),
            [consumer.id],
        )
        row = await cur.fetchone()
    if row is None:
        return WebhookStatus(consumer.id)
    return WebhookStatus(**{**row, "consumer_id": str(row["consumer_id"])})


@dataclass(frozen=True, slots=True)
class WebhookDeadLetter:
    """A dead letter of a webhook consumer, with why its last delivery failed."""

    dead_letter: DeadLetter
    reason: str | None
    attempts: int
    first_failed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.dead_letter.to_dict(),
            "reason": self.reason,
            "attempts": self.attempts,
            "first_failed_at": None
            if self.first_failed_at is None
            else self.first_failed_at.isoformat(),
        }


async def list_webhook_dead_letters(
    conn: AConn, consumer: Consumer, *, limit: int = 100, schema: str = DEFAULT_SCHEMA
) -> list[WebhookDeadLetter]:
    """The consumer's dead letters (oldest first), each with its last failure's reason."""
    dead = await list_dead_letters(conn, consumer, limit=limit, schema=schema)
    async with conn.transaction():
        cur = await conn.execute(
            q(
                schema,
                "SELECT record_id::text, last_error, attempts, first_failed_at "
                "FROM {schema}.webhook_failures WHERE consumer_id = %s "
                "AND record_id = ANY(%s::uuid[])",
            ),
            [consumer.id, [d.record.id for d in dead]],
        )
        why = {r[0]: r[1:] for r in await cur.fetchall()}
    return [
        WebhookDeadLetter(d, *why.get(d.record.id, (None, d.deliver_count, None))) for d in dead
    ]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt did."""

    delivered: int = 0
    """Messages in the batch (0: nothing was deliverable)."""
    ok: bool = True
    acked: int = 0
    dead: int = 0
    error: str | None = None
    retry_in_s: float | None = None
    failures: int = 0
    """Consecutive failed attempts of the consumer, this one included."""
    delivery_id: str | None = None
    next_deadline_s: float | None = None


def encode_batch(messages: Sequence[Message]) -> tuple[bytes, str]:
    """The POST body and its ``Upsync-Delivery`` id (the same for the same record versions)."""
    body = orjson.dumps({"data": [{"record": m.record.to_dict()} for m in messages]})
    key = ",".join(f"{m.record.id}@{m.record.updated_idx}" for m in messages)
    return body, str(uuid.uuid5(_DELIVERY_NS, key))


async def post_batch(
    http: httpx.AsyncClient, config: WebhookConfig, body: bytes, delivery_id: str, now: float
) -> str | None:
    """POST one batch; None on a 2xx answer, else what went wrong (safe to log and store)."""
    headers = {
        "content-type": "application/json",
        "user-agent": "upsync-webhook/1",
        SIGNATURE_HEADER: sign_payload(body, config.secret, int(now)),
        DELIVERY_HEADER: delivery_id,
    }
    try:
        response = await http.post(config.url, content=body, headers=headers)
    except httpx.HTTPError as e:  # refused, reset, timed out, bad URL: retry later
        return _safe(f"{type(e).__name__} posting to {config.safe_url}: {e}", config)
    if response.is_success:
        return None
    snippet = response.content[:200].decode("utf-8", "replace")
    return _safe(f"HTTP {response.status_code} from {config.safe_url}: {snippet}", config)


def _safe(message: str, config: WebhookConfig) -> str:
    # the secret is only ever an HMAC key, but a misbehaving receiver could echo anything back
    message = message.replace(config.secret, "****") if config.secret else message
    return redact(message.replace(config.url, config.safe_url))


_RECORD_FAILURE = """
INSERT INTO {schema}.webhook_failures AS f
    (consumer_id, record_id, first_failed_at, last_failed_at, attempts, last_error)
SELECT %(c)s, rid, %(now)s, %(now)s, 1, %(err)s FROM unnest(%(rids)s::uuid[]) AS rid ORDER BY rid
ON CONFLICT (consumer_id, record_id) DO UPDATE SET
    -- a message revived from the dead letters starts a fresh retry horizon
    first_failed_at = CASE WHEN f.dead THEN excluded.first_failed_at ELSE f.first_failed_at END,
    attempts = CASE WHEN f.dead THEN 1 ELSE f.attempts + 1 END,
    dead = false, last_failed_at = excluded.last_failed_at, last_error = excluded.last_error
RETURNING record_id::text, first_failed_at
"""

# what upsync.stream.delivery's expiry does after max_deliver attempts, for the deliveries the
# tokens name; a record that got a newer version meanwhile goes back to pending instead
_BURY = """
WITH held AS (
    SELECT m.record_id FROM {consumer_messages} m
    JOIN unnest(%(rids)s::uuid[], %(dids)s::bigint[]) AS t(rid, did)
        ON m.record_id = t.rid AND m.delivery_id = t.did
    WHERE m.consumer_id = %(c)s AND m.state = 'delivered'
    ORDER BY m.record_id
    FOR UPDATE OF m
)
UPDATE {consumer_messages} m SET
    state = CASE WHEN m.updated_idx > m.delivered_idx THEN 'pending' ELSE 'dead' END,
    dead_at = CASE WHEN m.updated_idx > m.delivered_idx THEN NULL ELSE now() END,
    deliver_count = CASE WHEN m.updated_idx > m.delivered_idx THEN 0 ELSE m.deliver_count END,
    delivery_id = NULL, ack_deadline = NULL
FROM held WHERE m.consumer_id = %(c)s AND m.record_id = held.record_id
RETURNING m.state
"""

_MARK_DEAD = """
UPDATE {schema}.webhook_failures f SET dead = true
FROM {consumer_messages} m
WHERE f.consumer_id = %(c)s AND f.record_id = ANY(%(rids)s::uuid[])
    AND m.consumer_id = f.consumer_id AND m.record_id = f.record_id AND m.state = 'dead'
"""

_STATUS_FAILED = """
INSERT INTO {schema}.webhook_status AS s (consumer_id, failing_since, attempts, last_error,
    last_error_at, last_attempt_at, dead_lettered, last_dead_lettered_at)
VALUES (%(c)s, %(now)s, %(inc)s, %(err)s, %(now)s, %(now)s, %(dead)s,
    CASE WHEN %(dead)s > 0 THEN %(now)s::timestamptz END)
ON CONFLICT (consumer_id) DO UPDATE SET
    failing_since = coalesce(s.failing_since, excluded.failing_since),
    attempts = s.attempts + excluded.attempts,
    last_error = excluded.last_error, last_error_at = excluded.last_error_at,
    last_attempt_at = excluded.last_attempt_at,
    dead_lettered = s.dead_lettered + excluded.dead_lettered,
    last_dead_lettered_at = coalesce(excluded.last_dead_lettered_at, s.last_dead_lettered_at)
RETURNING attempts
"""

_STATUS_OK = """
INSERT INTO {schema}.webhook_status AS s (consumer_id, delivered, last_attempt_at, last_success_at)
VALUES (%(c)s, %(n)s, %(now)s, %(now)s)
ON CONFLICT (consumer_id) DO UPDATE SET
    failing_since = NULL, attempts = 0, delivered = s.delivered + excluded.delivered,
    last_attempt_at = excluded.last_attempt_at, last_success_at = excluded.last_success_at
"""


def _at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


async def _settle_ok(
    conn: AConn, consumer: Consumer, messages: Sequence[Message], now: float, schema: str
) -> int:
    async with conn.transaction():
        done = await ack(conn, consumer, [m.ack_token for m in messages], schema=schema)
        await conn.execute(
            q(
                schema,
                "DELETE FROM {schema}.webhook_failures "
                "WHERE consumer_id = %s AND record_id = ANY(%s::uuid[])",
            ),
            [consumer.id, [m.record.id for m in messages]],
        )
        params = {"c": consumer.id, "n": len(messages), "now": _at(now)}
        await conn.execute(q(schema, _STATUS_OK), params)
    return done


async def _settle_failed(
    conn: AConn,
    consumer: Consumer,
    messages: Sequence[Message],
    error: str,
    now: float,
    retry: RetryPolicy,
    schema: str,
) -> tuple[int, int]:
    """Record the failure; bury messages past the horizon, nack the rest.

    Returns (dead letters made, consecutive failed attempts of the consumer).
    """
    rids = [m.record.id for m in messages]
    params: dict[str, Any] = {"c": consumer.id, "rids": rids, "now": _at(now), "err": error}
    async with conn.transaction():
        cur = await conn.execute(q(schema, _RECORD_FAILURE), params)
        first = dict(await cur.fetchall())
        expired = [m for m in messages if now - first[m.record.id].timestamp() >= retry.horizon_s]
        gone = {m.record.id for m in expired}
        retried = [m for m in messages if m.record.id not in gone]
        dead = await _bury(conn, consumer, expired, schema)
        dead += await nack(conn, consumer, [m.ack_token for m in retried], schema=schema)
        if dead:
            await conn.execute(q(schema, _MARK_DEAD), params)
        cur = await conn.execute(q(schema, _STATUS_FAILED), {**params, "inc": 1, "dead": dead})
        row = await cur.fetchone()
    assert row is not None
    return dead, int(row[0])


async def _bury(conn: AConn, consumer: Consumer, messages: Sequence[Message], schema: str) -> int:
    if not messages:
        return 0
    held = [_tokens.decode(m.ack_token, consumer.id) for m in messages]
    cur = await conn.execute(
        q(schema, _BURY),
        {
            "c": consumer.id,
            "rids": [t.record_id for t in held],
            "dids": [t.delivery_id for t in held],
        },
    )
    return [s for (s,) in await cur.fetchall()].count("dead")


async def deliver_webhook_batch(
    pool: AsyncConnectionPool[Any],
    consumer: Consumer,
    config: WebhookConfig,
    http: httpx.AsyncClient,
    *,
    schema: str = DEFAULT_SCHEMA,
    retry: RetryPolicy = RetryPolicy(),
    clock: WallClock = time.time,
    rng: random.Random | None = None,
) -> Attempt:
    """Claim one batch, POST it, then ack it (2xx) or nack / dead-letter it (anything else).

    No database connection is held while the request is in flight.
    """
    async with pool.connection() as conn:
        got = await claim(conn, consumer, config.batch_size, schema=schema)
    if not got.messages:
        return Attempt(next_deadline_s=got.next_deadline_s)
    body, delivery_id = encode_batch(got.messages)
    error = await post_batch(http, config, body, delivery_id, clock())
    now = clock()
    async with pool.connection() as conn:
        if error is None:
            try:
                acked = await _settle_ok(conn, consumer, got.messages, now, schema)
            except InvalidAckToken as e:  # held past ack_wait_ms and taken again: redelivered
                _log.warning(
                    "webhook consumer %s: delivered, but ack refused: %s", consumer.name, e
                )
                acked = 0
            return Attempt(len(got.messages), True, acked, delivery_id=delivery_id)
        dead, failures = await _settle_failed(
            conn, consumer, got.messages, error, now, retry, schema
        )
    wait = retry.delay(failures, rng or random.Random())
    return Attempt(
        len(got.messages),
        ok=False,
        dead=dead,
        error=error,
        retry_in_s=wait,
        delivery_id=delivery_id,
        failures=failures,
    )


async def _record_config_error(
    pool: AsyncConnectionPool[Any], consumer: Consumer, error: str, now: float, schema: str
) -> None:
    params = {"c": consumer.id, "now": _at(now), "err": error, "inc": 0, "dead": 0}
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(q(schema, _STATUS_FAILED), params)


async def run_webhook_consumer(
    pool: AsyncConnectionPool[Any],
    notifier: Notifier,
    consumer: Consumer,
    stop: asyncio.Event,
    *,
    schema: str = DEFAULT_SCHEMA,
    retry: RetryPolicy = RetryPolicy(),
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
