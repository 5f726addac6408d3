"""A sync's progress, read from the cursors its source stores with every page it writes.

The Stripe source keeps each backfill slice under ``cursors["backfill"]["<collection>#<i>"]``
as ``{"count", "done", …}`` and its event position under ``cursors["events"]["cursor"]`` (the
``created`` time, in epoch seconds, of the newest event processed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from upsync.stream.models import Sync

__all__ = ["backfill_progress", "events_through", "progress_text"]


def backfill_progress(sync: Sync) -> dict[str, dict[str, Any]]:
    """``{collection_id: {"count": objects backfilled, "done": bool}}`` for every collection."""
    stored = dict(sync.cursors.get("backfill") or {})
    complete = sync.initial_backfill_completed_at is not None
    out: dict[str, dict[str, Any]] = {}
    for cid in sync.collection_ids:
        slices = [
            v for k, v in stored.items() if k.rpartition("#")[0] == cid and isinstance(v, dict)
        ]
        done = bool(slices) and all(bool(s.get("done")) for s in slices)
        out[cid] = {
            "count": sum(int(s.get("count") or 0) for s in slices),
            "done": done or (complete and not slices),
        }
    return out


def events_through(sync: Sync) -> str | None:
    """When the newest event the sync has processed was created (ISO 8601), if known."""
    events = sync.cursors.get("events")
    cursor = events.get("cursor") if isinstance(events, dict) else None
    if not cursor:
        return None
    return datetime.fromtimestamp(int(cursor), UTC).isoformat()


def progress_text(sync: Sync) -> str:
    """One cell for a person: ``done (1,234)`` or ``customer 300 ✓, invoice 120 …``."""
    progress = backfill_progress(sync)
    total = sum(p["count"] for p in progress.values())
    if sync.initial_backfill_completed_at is not None:
        return f"done ({total:,} objects)"
    if not any(p["count"] or p["done"] for p in progress.values()):
        return "not started"
    return ", ".join(
        f"{cid.removeprefix('stripe:')} {p['count']:,}{' ✓' if p['done'] else '…'}"
        for cid, p in progress.items()
    )
