"""Events: one per change, filters, pagination, and the 30-day horizon."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from upsync.testing.stripe import EVENT_RETENTION, RunningStandin


def test_an_update_records_previous_attributes(client: Any) -> None:
    customer = client.v1.customers.create(
        params={"email": "old@example.com", "metadata": {"k": "1"}}
    )
    client.v1.customers.update(
        customer.id, params={"email": "new@example.com", "metadata": {"j": "2"}}
    )
    event = client.v1.events.list(params={"type": "customer.updated"}).data[0]
    assert event.id.startswith("evt_") and event.data.object.email == "new@example.com"
    assert event.data.previous_attributes.to_dict() == {
        "email": "old@example.com",
        "metadata": {"j": None},
    }
    assert event.request.id is not None and event.request.id.startswith("req_")


def test_every_change_is_an_event_newest_first(client: Any) -> None:
    customer = client.v1.customers.create(params={"name": "A"})
    client.v1.customers.update(customer.id, params={"name": "B"})
    client.v1.customers.delete(customer.id)
    types = [e.type for e in client.v1.events.list().auto_paging_iter()]
    assert types == ["customer.deleted", "customer.updated", "customer.created"]
    deleted = client.v1.events.list(params={"limit": 1}).data[0]
    # the deletion event carries the last full state, not the stub
    assert deleted.data.object.name == "B"


def test_type_wildcards_and_types_lists_filter_events(client: Any) -> None:
    product = client.v1.products.create(params={"name": "P"})
    client.v1.prices.create(params={"product": product.id, "currency": "usd", "unit_amount": 100})
    client.v1.customers.create(params={"name": "C"})
    wildcard = [e.type for e in client.v1.events.list(params={"type": "pr*.created"}).data]
    prefix = [e.type for e in client.v1.events.list(params={"type": "product.*"}).data]
    listed = [
        e.type
        for e in client.v1.events.list(params={"types": ["price.created", "customer.created"]}).data
    ]
    assert prefix == ["product.created"]
    assert listed == ["customer.created", "price.created"]
    assert wildcard == []  # only a trailing `.*` is a wildcard, as in Stripe


def test_subscription_changes_are_customer_subscription_events(client: Any) -> None:
    product = client.v1.products.create(params={"name": "P"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
        }
    )
    customer = client.v1.customers.create(params={"name": "C"})
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    client.v1.subscriptions.update(sub.id, params={"metadata": {"tier": "gold"}})
    client.v1.subscriptions.cancel(sub.id)
    types = [e.type for e in client.v1.events.list(params={"type": "customer.subscription.*"}).data]
    assert types[0] == "customer.subscription.deleted"
    assert "customer.subscription.created" in types and "customer.subscription.updated" in types


def test_events_older_than_30_days_are_gone(client: Any, standin: RunningStandin) -> None:
    first = client.v1.customers.create(params={"name": "old"})
    old_event = client.v1.events.list().data[0]
    standin.clock.advance(EVENT_RETENTION - 10)
    client.v1.customers.create(params={"name": "recent"})
    assert len(client.v1.events.list().data) == 2
    # the admin surface moves the same clock
    moved = httpx.post(f"{standin.url}/_standin/clock/advance", json={"seconds": 20})
    assert moved.status_code == 200
    remaining = client.v1.events.list().data
    assert [e.data.object.name for e in remaining] == ["recent"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve(old_event.id)
    assert client.v1.customers.retrieve(first.id).name == "old"  # objects stay


def test_event_pagination_with_created_filters(client: Any, standin: RunningStandin) -> None:
    for i in range(6):
        client.v1.customers.create(params={"name": f"c{i}"})
        standin.clock.advance(10)
    events = client.v1.events.list(params={"limit": 100}).data
    middle = events[3].created
    later = client.v1.events.list(params={"created": {"gte": middle}, "limit": 2})
    paged = [e.id for e in later.auto_paging_iter()]
    assert paged == [e.id for e in events if e.created >= middle]


def test_delayed_events_appear_late(client: Any, standin: RunningStandin) -> None:
    """With ``event_delay`` set, new events may be missing from /v1/events for a while."""
    httpx.post(f"{standin.url}/_standin/faults", json={"event_delay": 3600}).raise_for_status()
    client.v1.customers.create(params={"name": "late"})
    standin.store.event_delay = 0.0
    client.v1.customers.create(params={"name": "prompt"})
    names = [e.data.object.name for e in client.v1.events.list().data]
    # a random delay of up to an hour: the chance it is already over is negligible
    assert names == ["prompt"]
    event_ids = {e.obj["id"] for e in standin.store.table("event").entries}
    assert len(event_ids) == 2  # the late one exists, it is just not visible yet


def test_an_item_update_reaches_its_subscriptions_event() -> None:
    """Updating an item records ``customer.subscription.updated`` showing the new quantity."""
    from upsync.testing.stripe import Store, generate

    store = Store(seed=2)
    generate(store, customers=5, seed=2, events=False)
    sub = next(s for s in store.live("subscription") if s["status"] != "canceled")
    item = sub["items"]["data"][0]
    quantity = item["quantity"] + 3
    store.update("subscription_item", item["id"], {"quantity": str(quantity)})
    events = list(store.live("event"))
    assert [e["type"] for e in events] == ["customer.subscription.updated"]
    event = events[0]
    assert event["data"]["object"]["items"]["data"][0]["quantity"] == quantity
    assert event["data"]["previous_attributes"]["items"]["data"][0]["quantity"] == item["quantity"]
    assert store.retrieve("subscription", sub["id"])["items"]["data"][0]["quantity"] == quantity
