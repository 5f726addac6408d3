"""Subscriptions and subscription items, with the invoice each new subscription starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import invalid_request
from ..formdata import Params
from ..resource import Filter, Resource, Sublist
from ..store import Store
from .common import apply_updates, base, ref
from .cycles import bill_new_subscription, price_interval
from .periods import period_end

__all__ = ["RESOURCES", "cancel_subscription"]

_SUB_FIELDS = {
    "cancel_at_period_end": "bool",
    "cancel_at": "int",
    "collection_method": "str",
    "days_until_due": "int",
    "description": "str",
    "metadata": "metadata",
}


def subscription(store: Store, params: Params) -> dict[str, Any]:
    """Create a subscription and its first invoice, paid when a payment method is known.

    Without a payment method the subscription stays ``incomplete`` with an open invoice
    (Stripe's ``payment_behavior=default_incomplete``) instead of failing.
    """
    customer = ref(store, "customer", params, "customer", required=True)
    assert customer is not None
    items = params.items("items")
    if not items:
        raise invalid_request("Missing required param: items.", "items", "parameter_missing")
    obj = base(store, "subscription", params)
    now = obj["created"]
    trial_days = params.integer("trial_period_days")
    trial_end = now + trial_days * 86400 if trial_days else params.integer("trial_end")
    pm = ref(store, "payment_method", params, "default_payment_method")
    obj.update(_subscription_defaults(now, customer, pm, trial_end))
    apply_updates(obj, params, _SUB_FIELDS)
    for item in items:
        _new_item(store, obj["id"], item, start=now, created=now, end=trial_end)
    store.insert("subscription", obj)
    bill_new_subscription(store, obj["id"], trial_end is not None)
    return obj


def _subscription_defaults(
    now: int, customer: str, pm: str | None, trial_end: int | None
) -> dict[str, Any]:
    return {
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": trial_end or now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "currency": "usd",
        "customer": customer,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": pm,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "latest_invoice": None,
        "managed_payments": None,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "trialing" if trial_end else "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": now if trial_end else None,
    }


def _new_item(
    store: Store,
    sub_id: str,
    p: Params,
    start: int,
    created: int | None = None,
    end: int | None = None,
) -> dict[str, Any]:
    price_id = ref(store, "price", p, "price") or ref(store, "plan", p, "plan")
    if price_id is None:
        raise invalid_request(
            "Missing required param: items[0][price].", p.name("price"), "parameter_missing"
        )
    price = store.find(price_id)
    assert price is not None
    recurring = price_interval(price.obj)
    obj = base(store, "subscription_item", p)
    if created is not None:
        obj["created"] = created
    del obj["livemode"]
    obj.update(
        billing_thresholds=None,
        current_period_end=end or period_end(start, *recurring),
        current_period_start=start,
        discounts=[],
        price=price_id,
        quantity=p.integer("quantity", 1),
        subscription=sub_id,
        tax_rates=[],
    )
    store.insert("subscription_item", obj, event=None)
    return obj


def update_subscription(store: Store, obj: dict[str, Any], params: Params) -> None:
    if obj["status"] in ("canceled", "incomplete_expired"):
        raise invalid_request(
            "A canceled subscription can only update its cancellation_details and metadata.",
            param="items",
        )
    apply_updates(obj, params, _SUB_FIELDS)
    pm = ref(store, "payment_method", params, "default_payment_method")
    if pm is not None:
        obj["default_payment_method"] = pm
    if params.string("trial_end") == "now" and obj["status"] == "trialing":
        obj.update(status="active", trial_end=store.now())
    for item in params.items("items"):
        _change_item(store, obj, item)


def _change_item(store: Store, sub: dict[str, Any], p: Params) -> None:
    item_id = p.string("id")
    if item_id is None:
        _new_item(store, sub["id"], p, start=store.now())
        return
    store.get("subscription_item", item_id, param=p.name("id"))
    if p.boolean("deleted"):
        store.remove("subscription_item", item_id, event=None)
        return
    with store.change("subscription_item", item_id) as item:
        apply_updates(item, p, {"quantity": "int", "metadata": "metadata"})
        price = ref(store, "price", p, "price")
        if price is not None:
            item["price"] = price


def cancel_subscription(store: Store, oid: str, params: Params | None = None) -> dict[str, Any]:
    """Cancel now: ``customer.subscription.deleted``; the object stays (status ``canceled``)."""
    if store.get("subscription", oid).obj["status"] == "canceled":
        raise invalid_request(f"No such subscription: '{oid}'", param="id", code="resource_missing")
    with store.change("subscription", oid, extra=("deleted",), updated=False) as obj:
        now = store.now()
        obj.update(status="canceled", canceled_at=now, ended_at=now)
        obj["cancellation_details"]["reason"] = "cancellation_requested"
    return store.render(store.get("subscription", oid))


def resume_subscription(store: Store, oid: str, params: Params) -> None:
    with store.change("subscription", oid, extra=("resumed",)) as obj:
        obj.update(status="active", pause_collection=None)


def _status_filter(store: Store, params: Params) -> Callable[[dict[str, Any]], bool] | None:
    """Canceled subscriptions are hidden unless ``status`` asks for them (Stripe's quirk)."""
    status = params.string("status")
    price = params.string("price")

    def keep(obj: dict[str, Any]) -> bool:
        if status is None and obj["status"] == "canceled":
            return False
        if status == "ended" and obj["status"] not in ("canceled", "incomplete_expired"):
            return False
        if status not in (None, "all", "ended") and obj["status"] != status:
            return False
        return price is None or price in _item_prices(store, obj["id"])

    return keep


def _item_prices(store: Store, sub_id: str) -> list[str]:
    items = store.children("subscription_item", "subscription", sub_id).entries
    return [item.obj["price"] for item in items]


def subscription_item(store: Store, params: Params) -> dict[str, Any]:
    sub_id = ref(store, "subscription", params, "subscription", required=True)
    assert sub_id is not None
    with store.change("subscription", sub_id):
        return _new_item(store, sub_id, params, start=store.now())


def update_item(store: Store, obj: dict[str, Any], params: Params) -> None:
    with store.change("subscription", obj["subscription"]):
        apply_updates(obj, params, {"quantity": "int", "metadata": "metadata"})
        price = ref(store, "price", params, "price")
        if price is not None:
            obj["price"] = price
        # store the item now (not when its own change ends): the subscription's event shows it
        store.get("subscription_item", obj["id"]).obj = obj


def delete_item(store: Store, oid: str) -> dict[str, Any]:
    sub_id = store.get("subscription_item", oid).obj["subscription"]
    with store.change("subscription", sub_id):
        return store.remove("subscription_item", oid, event=None)


def render_item(store: Store, obj: dict[str, Any]) -> None:
    """Items embed their full price, and the legacy ``plan`` view of it."""
    entry = store.find(obj["price"])
    assert entry is not None
    price = store.render(entry)
    obj["price"] = price
    obj["plan"] = price if price["object"] == "plan" else _as_plan(price)


def _as_plan(price: dict[str, Any]) -> dict[str, Any]:
    recurring = price["recurring"] or {}
    return {
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "id": price["id"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": price["metadata"],
        "meter": None,
        "nickname": price["nickname"],
        "object": "plan",
        "product": price["product"],
        "tiers_mode": price["tiers_mode"],
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


RESOURCES = (
    Resource(
        "subscription",
        "subscriptions",
        "sub",
        events="customer.subscription",
        create=subscription,
        update=update_subscription,
        delete=lambda store, oid: cancel_subscription(store, oid),
        actions={"resume": resume_subscription},
        filters=(Filter("customer", "customer"), Filter("collection_method", "collection_method")),
        list_hook=_status_filter,
        parents=("customer",),
        sublists={
            "items": Sublist(
                "subscription_item", "subscription", "/v1/subscription_items?subscription={id}"
            )
        },
    ),
    Resource(
        "subscription_item",
        "subscription_items",
        "si",
        create=subscription_item,
        update=update_item,
        delete=delete_item,
        filters=(Filter("subscription", "subscription"),),
        parents=("subscription",),
        required_filter="subscription",
        render=render_item,
    ),
)
