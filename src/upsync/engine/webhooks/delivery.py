"""One delivery: claim a batch, POST it signed, settle it.

A 2xx acks the batch; anything else nacks it, counts the failure per message, and dead-letters
the messages failing for longer than :attr:`RetryPolicy.horizon_s`.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from psycopg_pool import AsyncConnectionPool

from upsync.backoff import Backoff
from upsync.engine.webhooks.config import WebhookConfig
from upsync.engine.webhooks.signing import SIGNATURE_HEADER, sign_payload
from upsync.errors import InvalidAckToken
from upsync.records import Message
from upsync.redact import redact
from upsync.stream import tokens as _tokens
from upsync.stream.delivery import ack, claim, nack
from upsync.stream.models import Consumer
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, q

_log = logging.getLogger("upsync.engine.webhooks")  # one logger name, as before the split

DELIVERY_HEADER = "Upsync-Delivery"
_DELIVERY_NS = uuid.UUID("2d6c0f0e-4f5a-5c59-8b8e-7d0f3f1b9a41")

WallClock = Callable[[], float]
"""Returns the current time as Unix seconds (``time.time``); tests inject their own."""


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


DEFAULT_RETRY = RetryPolicy()
"""24 h of retries, pauses from 1 s growing to 10 min."""


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
