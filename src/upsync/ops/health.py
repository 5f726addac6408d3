"""A sync's state in one word, for people: the same in the API, the CLI and the log.

The process that runs a sync knows its live status (:class:`~upsync.api.sync_health.SyncHealth`)
and stores a summary in the sync's ``health`` column whenever the state or the error changes
(:func:`report`), so that `upsync status` and an API process that does not run the sync show
the same thing. States:

- ``paused``: the sync is disabled;
- ``not started``: active, but no engine has reported on it yet (is `upsync server` running?);
- ``failing``: the last attempt failed; ``error`` says why (redacted);
- ``backfilling``: reading the collections' history;
- ``live``: backfill done, following changes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from upsync.redact import redact
from upsync.sources.stripe.source import SourceStatus
from upsync.stream.catalog import record_sync_health
from upsync.stream.models import Sync
from upsync.stream.tables import DEFAULT_SCHEMA, AConn

__all__ = ["SyncState", "live_state", "report", "sync_state"]


@dataclass(frozen=True, slots=True)
class SyncState:
    """One sync's state (see the module doc), its last error and when the engine said so."""

    state: str
    error: str | None = None
    reported_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "error": self.error, "reported_at": self.reported_at}

    @property
    def text(self) -> str:
        """One cell for a person: ``failing: UpstreamRejected: …``."""
        return self.state if not self.error else f"{self.state}: {self.error}"


def live_state(sync: Sync, live: SourceStatus) -> SyncState:
    """The state of a sync this process runs, from its live status."""
    if sync.status != "active":
        return SyncState("paused")
    if live.last_error:
        return SyncState("failing", redact(live.last_error), _now())
    pending = [p for p in live.backfill.values() if not p.done]
    backfilling = pending or (sync.initial_backfill_completed_at is None and not live.backfill)
    return SyncState("backfilling" if backfilling else "live", None, _now())


def sync_state(sync: Sync, live: SourceStatus | None = None) -> SyncState:
    """The state of any sync: live when this process runs it, else what its engine stored."""
    if sync.status != "active":
        return SyncState("paused")
    if live is not None:
        return live_state(sync, live)
    stored: Mapping[str, Any] = sync.health or {}
    state = stored.get("state")
    if not isinstance(state, str):
        return SyncState("not started")
    error = stored.get("error")
    return SyncState(
        state, redact(error) if isinstance(error, str) else None, stored.get("reported_at")
    )


async def report(
    conn: AConn, sync: Sync, live: SourceStatus, *, schema: str = DEFAULT_SCHEMA
) -> SyncState:
    """Store ``sync``'s live state if it differs from the stored one; returns the state."""
    state = live_state(sync, live)
    stored = sync_state(sync)
    if (stored.state, stored.error) != (state.state, state.error):
        await record_sync_health(conn, sync.id, state.to_dict(), schema=schema)
    return state


def _now() -> str:
    return datetime.fromtimestamp(time.time(), UTC).isoformat()
