"""A sync's ``health`` block: live from the process that runs it, else from the database.

``GET /v1/syncs/{id}`` shows Sequin's ``health: {status: healthy|warn|error, …}`` with upsync's
details: backfill progress per collection, event polling (last poll, lag, events processed),
drift found by reconciliation, errors and webhook deliveries. When the engine runs the sync in
this process (``source: "engine"``) the figures are live; when the API runs on its own
(``create_app`` alone) they are what the sync's stored cursors say (``source: "database"``).

``SyncHealth`` itself lives in :mod:`upsync.engine.health` (re-exported here).

Status rules (live): ``error`` while the last attempt failed (the message is redacted), with
``stopped: true`` when the engine gave up on the sync until its configuration changes;
``warn`` when the backfill is done but no poll has succeeded for a while; ``healthy``
otherwise, backfilling included. From the database alone errors are invisible, so the status
is ``healthy`` with a note saying where the figures come from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request

from upsync.engine.health import SyncHealth
from upsync.redact import redact
from upsync.sources.stripe.source import CollectionProgress
from upsync.stream.models import Sync

__all__ = ["LiveSyncs", "SyncHealth", "attach_live_syncs", "health_block", "live_syncs"]

#: A finished backfill whose last successful poll is older than this many poll intervals
#: (and at least :data:`_STALE_MIN_S`) is a warning.
_STALE_POLLS = 10
_STALE_MIN_S = 60.0


class LiveSyncs(Protocol):
    """What the API needs from the process that runs syncs (the engine's ``SyncRunner``)."""

    poll_interval: float

    def health(self, sync_id: str) -> SyncHealth | None:
        """The live status of a sync this process runs, else ``None``."""

    def running_syncs(self) -> list[tuple[Sync, SyncHealth]]:
        """Every sync this process runs, with its live status."""

    def refresh(self) -> None:
        """Re-read the syncs now (after the API created, changed or deleted one)."""


_STATE_KEY = "upsync_live_syncs"


def attach_live_syncs(app: Starlette, syncs: LiveSyncs) -> None:
    """Let ``app``'s sync routes show live status from ``syncs``."""
    setattr(app.state, _STATE_KEY, syncs)


def live_syncs(request: Request) -> LiveSyncs | None:
    """The live syncs attached to the request's app, if any (a FastAPI dependency)."""
    found: LiveSyncs | None = getattr(request.app.state, _STATE_KEY, None)
    return found


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def _collections(progress: Mapping[str, CollectionProgress]) -> dict[str, Any]:
    return {cid: {"objects": p.count, "done": p.done} for cid, p in progress.items()}


def _stored_progress(sync: Sync) -> dict[str, CollectionProgress]:
    stored = dict(sync.cursors.get("backfill") or {})
    return {c: CollectionProgress.from_state(c, stored) for c in sync.collection_ids}


def health_block(
    sync: Sync, live: SyncHealth | None, *, poll_interval: float, now: float | None = None
) -> dict[str, Any]:
    """The ``health`` object of ``sync`` (live when ``live`` is given)."""
    now = time.time() if now is None else now
    if live is None:
        return _from_database(sync)
    progress = live.backfill or _stored_progress(sync)
    status, notes = _judge(sync, live, progress, poll_interval, now)
    return {
        "status": status,
        "sync_id": sync.id,
        "source": "engine",
        "notes": notes,
        "backfill": {
            "completed_at": _completed_at(sync),
            "collections": _collections(progress),
        },
        "events": {
            "processed": live.events_processed,
            "last_poll_at": _iso(live.last_poll_at),
            "lag_seconds": live.lag_seconds,
            "cursor_at": _events_cursor_at(sync),
        },
        "drift": live.drift,
        "reconciliations": live.reconciliations,
        "errors": live.errors,
        "restarts": live.restarts,
        "last_error": None if not live.last_error else redact(live.last_error),
        "last_error_at": _iso(live.last_error_at),
        "stopped": live.stopped,
        "webhooks": {"accepted": live.webhooks_accepted, "refused": live.webhooks_refused},
    }


def _judge(
    sync: Sync,
    live: SyncHealth,
    progress: Mapping[str, CollectionProgress],
    poll_interval: float,
    now: float,
) -> tuple[str, list[str]]:
    if live.last_error and live.stopped:
        error = redact(live.last_error)
        return "error", [f"stopped: {error}; not retried until the sync is changed"]
    if live.last_error:
        return "error", [f"last attempt failed: {redact(live.last_error)}"]
    pending = [cid for cid, p in progress.items() if not p.done]
    if pending or sync.initial_backfill_completed_at is None:
        return "healthy", [f"backfilling {len(pending)} of {len(progress)} collection(s)"]
    stale_after = max(_STALE_MIN_S, _STALE_POLLS * poll_interval)
    if live.last_poll_at is None or now - live.last_poll_at > stale_after:
        since = "never" if live.last_poll_at is None else f"{now - live.last_poll_at:.0f} s ago"
        return "warn", [f"no successful event poll since the backfill (last: {since})"]
    return "healthy", []


def _from_database(sync: Sync) -> dict[str, Any]:
    progress = _stored_progress(sync)
    note = "live status unavailable: this process does not run the sync; figures are stored ones"
    if sync.status != "active":
        note = f"sync is {sync.status}; figures are stored ones"
    return {
        "status": "healthy",
        "sync_id": sync.id,
        "source": "database",
        "notes": [note],
        "backfill": {
            "completed_at": _completed_at(sync),
            "collections": _collections(progress),
        },
        "events": {
            "processed": None,
            "last_poll_at": None,
            "lag_seconds": None,
            "cursor_at": _events_cursor_at(sync),
        },
        "drift": None,
        "reconciliations": None,
        "errors": None,
        "restarts": None,
        "last_error": None,
        "last_error_at": None,
        "stopped": None,
        "webhooks": None,
    }


def _completed_at(sync: Sync) -> str | None:
    done = sync.initial_backfill_completed_at
    return None if done is None else done.isoformat()


def _events_cursor_at(sync: Sync) -> str | None:
    """When the newest processed event was created (the stored event cursor)."""
    events = sync.cursors.get("events")
    cursor = events.get("cursor") if isinstance(events, Mapping) else None
    return _iso(float(cursor)) if isinstance(cursor, int | float) and cursor > 0 else None
