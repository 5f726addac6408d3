"""One view of everything: every sync with its state, every consumer with its counters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from upsync.ops.consumers import ConsumerView, list_consumers
from upsync.ops.syncs import SyncView, list_syncs, sync_view
from upsync.sources.stripe.source import SourceStatus
from upsync.stream.tables import DEFAULT_SCHEMA, AConn

__all__ = ["Overview", "overview", "ping"]


@dataclass(frozen=True)
class Overview:
    """What `upsync status` and the API's status show."""

    syncs: list[SyncView]
    consumers: list[ConsumerView]


async def overview(
    conn: AConn,
    *,
    live: Callable[[str], SourceStatus | None] = lambda _: None,
    schema: str = DEFAULT_SCHEMA,
) -> Overview:
    """Every sync (with its live status when ``live`` knows it) and every consumer."""
    syncs = [
        await sync_view(conn, s, live=live(s.id), schema=schema)
        for s in await list_syncs(conn, schema=schema)
    ]
    return Overview(syncs, await list_consumers(conn, schema=schema))


async def ping(conn: AConn) -> None:
    """Raise unless the database answers a trivial query (what ``/healthz`` checks)."""
    await conn.execute("SELECT 1")
