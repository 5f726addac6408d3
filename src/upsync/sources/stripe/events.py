"""Following ``/v1/events``: which events are new, in which order, and what each one asks for.

Pure. Stripe's events endpoint is eventually consistent: an event can appear a little after
events created later than it, and many events share one ``created`` second (stripe-contract
§2.2–2.3). So the cursor is a time, not an id: every poll re-reads the last ``overlap`` seconds
before the cursor, and a bounded set of already-seen event ids drops the repeats. An event that
shows up later than ``overlap`` behind the cursor is missed here and caught by reconciliation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from upsync.sources.stripe.collections import StripeCollection, for_object_type

__all__ = ["RELATED_READS", "Action", "EventWindow", "action_for", "related_reads"]

#: Stripe keeps events for 30 days; a cursor older than this cannot be caught up from events.
RETENTION_SECONDS = 30 * 24 * 3600


@dataclass
class EventWindow:
    """The event cursor: newest ``created`` processed, and ids seen in the overlap window."""

    cursor: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    overlap: int = 60

    @property
    def since(self) -> int:
        """The ``created[gte]`` bound for the next poll."""
        return max(self.cursor - self.overlap, 0)

    def fresh(self, events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The events not processed yet, oldest first (ties keep Stripe's order, reversed)."""
        unseen = {str(e["id"]): e for e in events if str(e["id"]) not in self.seen}
        # lists come newest first; reversing before a stable sort keeps same-second order
        return sorted(reversed(list(unseen.values())), key=lambda e: int(e["created"]))

    def mark(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Record events as processed and move the cursor; forget ids outside the window."""
        for e in events:
            created = int(e["created"])
            self.seen[str(e["id"])] = created
            self.cursor = max(self.cursor, created)
        horizon = self.since
        self.seen = {i: c for i, c in self.seen.items() if c >= horizon}

    def expired(self, upstream_now: int) -> bool:
        """Whether events since the cursor may already be gone from Stripe."""
        return self.cursor > 0 and upstream_now - self.since >= RETENTION_SECONDS

    def to_state(self) -> dict[str, Any]:
        """JSON-able form, for the sync's stored cursor."""
        return {"cursor": self.cursor, "seen": self.seen, "overlap": self.overlap}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> EventWindow:
        """Rebuild from :meth:`to_state`; ``None`` gives an empty window."""
        if not state:
            return cls()
        seen = {str(k): int(v) for k, v in dict(state.get("seen") or {}).items()}
        return cls(int(state.get("cursor", 0)), seen, int(state.get("overlap", 60)))


@dataclass(frozen=True)
class Action:
    """What an event asks the source to do about one object."""

    collection: StripeCollection
    upstream_id: str
    kind: Literal["refetch", "tombstone"]
    last: Mapping[str, Any]
    """the object as the event carried it (kept on tombstones as last known state)"""


def action_for(event: Mapping[str, Any], selected: Iterable[str]) -> Action | None:
    """The action for an event, or ``None`` if it concerns no selected collection.

    ``*.deleted`` removes an object only where Stripe really deletes it; for the rest
    (``customer.subscription.deleted`` is a cancellation) the object is re-read.
    """
    obj = (event.get("data") or {}).get("object") or {}
    target = for_object_type(str(obj.get("object", "")))
    if target is None or target.collection_id not in set(selected) or "id" not in obj:
        return None
    deleted = str(event.get("type", "")).endswith(".deleted") and target.deletable
    return Action(target, str(obj["id"]), "tombstone" if deleted else "refetch", obj)


#: Changes Stripe makes to *another* object without an event of its own, keyed by the event
#: that reveals them: event type → (field of the event's object holding the other object's id,
#: that object's collection). Finalizing an invoice bumps its customer's
#: ``next_invoice_sequence`` silently; re-reading the customer then keeps it current without
#: waiting for reconciliation.
RELATED_READS: dict[str, tuple[str, str]] = {
    "invoice.finalized": ("customer", "customer"),
}


def related_reads(event: Mapping[str, Any], selected: Iterable[str]) -> list[Action]:
    """Re-reads of other objects an event implies changed (see :data:`RELATED_READS`)."""
    rule = RELATED_READS.get(str(event.get("type", "")))
    if rule is None:
        return []
    field_name, name = rule
    obj = (event.get("data") or {}).get("object") or {}
    other = obj.get(field_name)
    target = for_object_type(name)
    if not isinstance(other, str) or target is None or target.collection_id not in set(selected):
        return []
    return [Action(target, other, "refetch", {})]
