"""How a webhook consumer is doing, and its dead letters with their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from upsync.stream.delivery import list_dead_letters
from upsync.stream.models import Consumer, DeadLetter
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, q


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
