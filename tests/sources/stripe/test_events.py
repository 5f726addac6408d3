"""The event window and what each event asks for (pure)."""

from __future__ import annotations

import random
from typing import Any

from upsync.sources.stripe.events import (
    RETENTION_SECONDS,
    EventWindow,
    action_for,
    related_reads,
)

SELECTED = ["stripe:customer", "stripe:subscription", "stripe:product"]


def event(i: int, created: int, type_: str = "customer.updated", **obj: Any) -> dict[str, Any]:
    body = {"id": f"cus_{i}", "object": "customer", **obj}
    return {
        "id": f"evt_{i}",
        "object": "event",
        "created": created,
        "type": type_,
        "data": {"object": body},
    }


def test_fresh_events_come_oldest_first_and_only_once() -> None:
    window = EventWindow(cursor=100, overlap=10)
    page = [event(3, 105), event(2, 101), event(1, 101)]  # newest first, as Stripe lists
    fresh = window.fresh(page)
    assert [e["id"] for e in fresh] == ["evt_1", "evt_2", "evt_3"]
    window.mark(fresh)
    assert window.cursor == 105 and window.since == 95
    assert window.fresh(page) == []


def test_late_event_inside_the_overlap_is_still_picked_up(rng: random.Random) -> None:
    window = EventWindow(cursor=0, overlap=60)
    seen: list[str] = []
    visible: list[dict[str, Any]] = []
    late = event(999, 150)
    for i in range(1, 40):
        visible.insert(0, event(i, 100 + i * 5))
        if i == 20:
            visible.insert(rng.randrange(len(visible)), late)  # appears behind the cursor
        batch = window.fresh(e for e in visible if e["created"] >= window.since)
        window.mark(batch)
        seen.extend(e["id"] for e in batch)
    assert sorted(seen) == sorted({e["id"] for e in visible})
    assert len(seen) == len(set(seen))


def test_seen_ids_are_forgotten_outside_the_window() -> None:
    window = EventWindow(cursor=0, overlap=10)
    window.mark([event(1, 100), event(2, 200)])
    assert set(window.seen) == {"evt_2"}


def test_state_round_trip_and_expiry() -> None:
    window = EventWindow(cursor=1000, seen={"evt_1": 995}, overlap=30)
    again = EventWindow.from_state(window.to_state())
    assert again == window
    assert not again.expired(upstream_now=1000 + RETENTION_SECONDS - 31)
    assert again.expired(upstream_now=1000 + RETENTION_SECONDS)
    assert EventWindow.from_state(None) == EventWindow()


def test_actions() -> None:
    refetch = action_for(event(1, 1, "customer.updated"), SELECTED)
    assert refetch is not None and refetch.kind == "refetch" and refetch.upstream_id == "cus_1"
    gone = action_for(event(1, 1, "customer.deleted", email="a@b"), SELECTED)
    assert gone is not None and gone.kind == "tombstone" and gone.last["email"] == "a@b"
    canceled = {
        "id": "evt_9",
        "type": "customer.subscription.deleted",
        "created": 1,
        "data": {"object": {"id": "sub_1", "object": "subscription"}},
    }
    action = action_for(canceled, SELECTED)
    assert action is not None and action.kind == "refetch"  # a cancellation, not a deletion
    other = {
        "id": "e",
        "type": "charge.succeeded",
        "created": 1,
        "data": {"object": {"id": "ch_1", "object": "charge"}},
    }
    assert action_for(other, SELECTED) is None
    assert action_for({"id": "e", "type": "x", "created": 1, "data": {}}, SELECTED) is None


def test_finalized_invoice_also_rereads_its_customer() -> None:
    finalized = {
        "id": "evt_f",
        "type": "invoice.finalized",
        "created": 1,
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_9"}},
    }
    (read,) = related_reads(finalized, SELECTED)
    assert (read.collection.collection_id, read.upstream_id, read.kind) == (
        "stripe:customer",
        "cus_9",
        "refetch",
    )
    assert related_reads(finalized, ["stripe:invoice"]) == []  # customers not synced
    assert related_reads(event(1, 1, "customer.updated"), SELECTED) == []
