"""Creating webhook consumers (with their signing secret) and their tables."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from upsync.engine.webhooks.config import SECRET_PREFIX, check_url
from upsync.errors import ConfigurationError
from upsync.stream.catalog import create_credential
from upsync.stream.consumers import create_consumer
from upsync.stream.migrations import migrate
from upsync.stream.models import CONSUMER_DEFAULTS, Consumer, Filters
from upsync.stream.tables import DEFAULT_SCHEMA, AConn


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
    deliver_policy: str = CONSUMER_DEFAULTS.deliver_policy,
    ack_wait_ms: int = CONSUMER_DEFAULTS.ack_wait_ms,
    max_deliver: int = CONSUMER_DEFAULTS.max_deliver,
    max_ack_pending: int = CONSUMER_DEFAULTS.max_ack_pending,
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
