"""The official SDK, unmodified, against the stand-in: CRUD, lists, expand, Stripe's quirks."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from upsync.testing.stripe import RunningStandin


def _catalog(client: Any, amount: int = 1500) -> Any:
    product = client.v1.products.create(params={"name": "Gold"})
    return client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
        }
    )


def _paying_customer(client: Any, **params: Any) -> Any:
    pm = client.v1.payment_methods.create(params={"type": "card"})
    return client.v1.customers.create(params={"payment_method": pm.id, **params})


@pytest.mark.smoke
def test_customer_create_retrieve_update_delete(client: Any) -> None:
    created = client.v1.customers.create(
        params={"email": "ada@example.com", "metadata": {"a": "1"}}
    )
    assert created.id.startswith("cus_") and created.object == "customer"
    assert created.livemode is False and isinstance(created.created, int)

    updated = client.v1.customers.update(
        created.id, params={"name": "Ada", "metadata": {"a": "", "b": "2"}}
    )
    assert (updated.name, updated.metadata.to_dict()) == ("Ada", {"b": "2"})
    assert client.v1.customers.retrieve(created.id).name == "Ada"

    deleted = client.v1.customers.delete(created.id)
    assert deleted.deleted is True
    stub = client.v1.customers.retrieve(created.id)
    assert stub.to_dict() == {"id": created.id, "object": "customer", "deleted": True}
    assert created.id not in [c.id for c in client.v1.customers.list().auto_paging_iter()]


def test_auto_paging_iter_walks_every_page_newest_first(client: Any) -> None:
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(23)]
    listed = [c.id for c in client.v1.customers.list(params={"limit": 5}).auto_paging_iter()]
    assert listed == list(reversed(ids))


def test_auto_paging_iter_from_ending_before_walks_backwards(client: Any) -> None:
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(12)]
    page = client.v1.customers.list(params={"limit": 3, "ending_before": ids[2]})
    # the SDK walks towards newer objects, yielding oldest first
    assert [c.id for c in page.auto_paging_iter()] == ids[3:]


def test_a_subscription_embeds_its_items_with_prices(client: Any) -> None:
    price = _catalog(client)
    customer = _paying_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id, "quantity": 2}]}
    )
    assert sub.id.startswith("sub_") and sub.status == "active"
    item = sub["items"].data[0]
    assert item.id.startswith("si_") and item.price.id == price.id and item.quantity == 2
    assert sub["items"].url == f"/v1/subscription_items?subscription={sub.id}"
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.total, invoice.amount_paid) == ("paid", 3000, 3000)
    assert invoice.lines.data[0].id.startswith("il_")


def test_embedded_items_stop_at_ten_and_their_url_pages_the_rest(
    client: Any,
) -> None:
    customer = _paying_customer(client)
    items = [{"price": _catalog(client, 100 + i).id} for i in range(13)]
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": items})
    assert len(sub["items"].data) == 10 and sub["items"].has_more is True
    every = client.v1.subscription_items.list(params={"subscription": sub.id, "limit": 4})
    assert len(list(every.auto_paging_iter())) == 13
    lines = client.v1.invoices.line_items.list(sub.latest_invoice, params={"limit": 100})
    assert len(lines.data) == 13 and not lines.has_more


def test_canceled_subscriptions_are_hidden_unless_asked_for(client: Any) -> None:
    price = _catalog(client)
    customer = _paying_customer(client)
    keep = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    gone = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    canceled = client.v1.subscriptions.cancel(gone.id)
    assert canceled.status == "canceled" and canceled.canceled_at is not None

    default = [s.id for s in client.v1.subscriptions.list().auto_paging_iter()]
    everything = [
        s.id for s in client.v1.subscriptions.list(params={"status": "all"}).auto_paging_iter()
    ]
    only = [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data]
    assert default == [keep.id]
    assert everything == [gone.id, keep.id]
    assert only == [gone.id]
    assert client.v1.subscriptions.retrieve(gone.id).status == "canceled"


def test_deleting_a_customer_cancels_its_subscriptions(client: Any) -> None:
    price = _catalog(client)
    customer = _paying_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    client.v1.customers.delete(customer.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_expand_on_retrieve_and_on_lists(client: Any) -> None:
    customer = client.v1.customers.create(params={"email": "x@example.com"})
    intent = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "customer": customer.id}
    )
    got = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["customer"]})
    assert got.customer.email == "x@example.com"
    listed = client.v1.payment_intents.list(params={"expand": ["data.customer"]})
    assert listed.data[0].customer.id == customer.id
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.retrieve(intent.id, params={"expand": ["nope"]})
    assert info.value.param == "expand"


def test_a_refund_updates_its_charge_and_the_charge_lists_it(client: Any) -> None:
    customer = _paying_customer(client)
    pm = client.v1.payment_methods.list(params={"customer": customer.id}).data[0]
    intent = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": pm.id,
            "confirm": True,
        }
    )
    assert intent.status == "succeeded" and intent.latest_charge.startswith("ch_")
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    charge = client.v1.charges.retrieve(
        intent.latest_charge, params={"expand": ["balance_transaction"]}
    )
    assert (charge.amount_refunded, charge.refunded) == (1000, False)
    assert charge.refunds.data[0].id == refund.id
    assert charge.balance_transaction.id.startswith("txn_")


def test_unknown_ids_are_404_resource_missing(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve("cus_doesnotexist")
    assert info.value.http_status == 404 and info.value.code == "resource_missing"


def test_list_parameters_are_checked(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.list(params={"limit": 101})
    assert (info.value.http_status, info.value.param) == (400, "limit")
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_items.list(params={})
    assert info.value.param == "subscription"


def test_created_filters_on_lists(client: Any, standin: RunningStandin) -> None:
    old = client.v1.customers.create(params={"name": "old"})
    standin.clock.advance(100)
    new = client.v1.customers.create(params={"name": "new"})
    newer = [c.id for c in client.v1.customers.list(params={"created": {"gt": old.created}}).data]
    older = [c.id for c in client.v1.customers.list(params={"created": {"lte": old.created}}).data]
    exact = [c.id for c in client.v1.customers.list(params={"created": new.created}).data]
    assert (newer, older, exact) == ([new.id], [old.id], [new.id])


def test_the_global_sdk_configuration_works_too(
    standin: RunningStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_base", standin.url)
    monkeypatch.setattr(stripe, "api_key", standin.api_key)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    product = stripe.Product.create(name="Global")
    assert stripe.Product.retrieve(product.id).name == "Global"
    assert stripe.Product.delete(product.id).deleted is True


def test_a_deleted_cursor_still_pages_and_an_unknown_one_is_a_400(client: Any) -> None:
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(5)]
    client.v1.customers.delete(ids[2])
    after = client.v1.customers.list(params={"starting_after": ids[2]}).data
    assert [c.id for c in after] == [ids[1], ids[0]]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.list(params={"starting_after": "cus_unknown"})
    assert (info.value.http_status, info.value.param) == (400, "starting_after")


def test_nested_expansion_reaches_through_embedded_lists(client: Any) -> None:
    price = _catalog(client)
    customer = _paying_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "expand": ["items.data.price.product", "latest_invoice"],
        }
    )
    assert sub["items"].data[0].price.product.name == "Gold"
    assert sub.latest_invoice.object == "invoice"


def test_advancing_the_clock_renews_subscriptions(client: Any, standin: RunningStandin) -> None:
    import httpx

    price = _catalog(client)
    customer = _paying_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    period_end = sub["items"].data[0].current_period_end
    moved = httpx.post(f"{standin.url}/_standin/clock/advance", json={"seconds": 32 * 86400})
    assert moved.json()["renewed"] == 1
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed["items"].data[0].current_period_start == period_end
    assert renewed.latest_invoice != sub.latest_invoice
    invoice = client.v1.invoices.retrieve(renewed.latest_invoice)
    assert (invoice.billing_reason, invoice.status) == ("subscription_cycle", "paid")
    invoices = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert len(invoices) == 2
