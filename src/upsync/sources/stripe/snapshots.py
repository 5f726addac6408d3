"""What the Stripe source writes to the stream: snapshots of objects, and tombstones.

How "older" is decided (invariant 3): every snapshot carries ``version``, the time (µs since
the epoch, this machine's clock) at which the request that read it was *sent*. The stream keeps,
per object, the snapshot with the highest version and ignores lower ones. Event payloads are
never written as object state: an event makes the source re-read the object, so all versions
come from one clock, and the highest-version read of an object is always issued after its last
change became visible in ``/v1/events`` (that change is what triggered it) and therefore returns
the latest state. Deletions are the exception — a deleted object may no longer be readable —
so a tombstone's version is the time the deletion was observed, which is after every read that
could still have returned the object alive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["CursorUpdate", "Snapshot", "is_deleted_stub", "snapshot_of", "tombstone"]

CursorUpdate = tuple[tuple[str, ...], Any]
"""A path into the sync's stored cursors and the value to put there, written atomically with
the snapshots it covers. (Not :class:`upsync.stream.cursor.Cursor`, a consumer's position.)"""


@dataclass(frozen=True)
class Snapshot:
    """One observed state of one upstream object (or its deletion)."""

    upstream_id: str
    version: int
    data: Mapping[str, Any] = field(default_factory=dict)
    deleted: bool = False
    upstream_created_at: datetime | None = None
    upstream_updated_at: datetime | None = None


def is_deleted_stub(obj: Mapping[str, Any]) -> bool:
    """Stripe's ``{id, object, deleted: true}`` answer for a deleted object."""
    return obj.get("deleted") is True


def snapshot_of(obj: Mapping[str, Any], version: int) -> Snapshot:
    """A snapshot of a Stripe object read by a request sent at ``version``."""
    upstream_id = str(obj["id"])
    if is_deleted_stub(obj):
        return tombstone(upstream_id, version)
    return Snapshot(
        upstream_id=upstream_id,
        version=version,
        data=obj,
        upstream_created_at=_epoch(obj.get("created")),
        # only a few Stripe objects (products) say when they last changed
        upstream_updated_at=_epoch(obj.get("updated")) or _epoch(obj.get("created")),
    )


def tombstone(upstream_id: str, version: int, last: Mapping[str, Any] | None = None) -> Snapshot:
    """The deletion of ``upstream_id`` observed at ``version``; ``last``: its last known state."""
    return Snapshot(upstream_id=upstream_id, version=version, data=last or {}, deleted=True)


def _epoch(value: Any) -> datetime | None:
    if type(value) is int:
        return datetime.fromtimestamp(value, UTC)
    return None
