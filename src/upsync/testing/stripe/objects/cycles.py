"""Billing cycles: the first invoice of a subscription, and renewals when periods end.

Renewals happen when the stand-in's time passes an item's ``current_period_end``: the
generator schedules them through its backdated history, :func:`renew_due` runs them after the
clock moves (``/_standin/clock/advance``, live traffic).
"""

from __future__ import annotations

from typing import Any

from ..errors import StripeError, invalid_request
from ..store import Store
from .invoices import add_line, finalize_invoice, new_invoice, pay_invoice
from .periods import period_end

__all__ = ["bill_new_subscription", "price_interval", "renew_due", "renew_subscription"]

RENEWABLE = ("active", "trialing", "past_due")


def price_interval(price: dict[str, Any]) -> tuple[str, int]:
    """``(interval, count)`` of a recurring price or a plan."""
    if price["object"] == "plan":
        return price["interval"], price["interval_count"]
    if price["recurring"] is None:
        raise invalid_request(
            "The price specified is set to `type=one_time` but this field only accepts "
            "prices with `type=recurring`.",
            "items",
        )
    return price["recurring"]["interval"], price["recurring"]["interval_count"]


def bill_new_subscription(store: Store, sub_id: str, trialing: bool) -> None:
    """Invoice the first period (``subscription_create``) and set the resulting status."""
    status = _bill(store, sub_id, "subscription_create", free=trialing)
    if trialing:
        status = "trialing"
    with store.change("subscription", sub_id) as obj:
        obj["status"] = status


def renew_subscription(store: Store, sub_id: str) -> str | None:
    """Bill the next period if the current one has ended; returns the new invoice id."""
    sub = store.get("subscription", sub_id).obj
    items = _items(store, sub_id)
    if sub["status"] not in RENEWABLE or not items:
        return None
    if min(i["current_period_end"] for i in items) > store.now():
        return None
    if sub["cancel_at_period_end"]:
        from .subscriptions import cancel_subscription

        cancel_subscription(store, sub_id)
        return None
    with store.change("subscription", sub_id):
        # items render inside the subscription: its updated event reports their new periods
        for entry in store.children("subscription_item", "subscription", sub_id).entries:
            item = entry.obj
            start = item["current_period_end"]
            price = store.find(item["price"])
            assert price is not None
            item.update(
                current_period_start=start,
                current_period_end=period_end(start, *price_interval(price.obj)),
            )
            entry.obj = item
    status = _bill(store, sub_id, "subscription_cycle", free=False)
    with store.change("subscription", sub_id) as obj:
        obj["status"] = status
    return str(obj["latest_invoice"])


def renew_due(store: Store, max_periods: int = 24) -> int:
    """Renew every subscription whose period has ended (several periods after a big jump)."""
    renewed = 0
    with store.lock:
        subs = [e.id for e in store.table("subscription").entries if e.obj["status"] in RENEWABLE]
        for sub_id in subs:
            for _ in range(max_periods):
                if renew_subscription(store, sub_id) is None:
                    break
                renewed += 1
    return renewed


def _items(store: Store, sub_id: str) -> list[dict[str, Any]]:
    return [e.obj for e in store.children("subscription_item", "subscription", sub_id).entries]


def _bill(store: Store, sub_id: str, reason: str, free: bool) -> str:
    """One invoice for the items' current periods, paid when possible; the new status."""
    sub = store.get("subscription", sub_id).obj
    inv = new_invoice(
        store,
        sub["customer"],
        subscription=sub_id,
        reason=reason,
        collection_method=sub["collection_method"],
    )
    for item in _items(store, sub_id):
        add_line(
            store,
            inv["id"],
            0 if free else _item_amount(store, item),
            description=_describe(store, item),
            quantity=item["quantity"] or 1,
            price=item["price"],
            period=(item["current_period_start"], item["current_period_end"]),
            subscription_item=item["id"],
        )
    finalize_invoice(store, inv["id"])
    with store.change("subscription", sub_id) as obj:
        obj["latest_invoice"] = inv["id"]
    paid = store.get("invoice", inv["id"]).obj["status"] == "paid"  # nothing was due
    if paid or sub["collection_method"] != "charge_automatically":
        return "active"
    try:
        pay_invoice(store, inv["id"])
    except StripeError:
        # no usable payment method: a first invoice leaves the subscription incomplete,
        # a renewal leaves it past due (Stripe's default_incomplete / retry behaviour)
        return "incomplete" if reason == "subscription_create" else "past_due"
    return "active"


def _item_amount(store: Store, item: dict[str, Any]) -> int:
    price = store.find(item["price"])
    assert price is not None
    unit = price.obj.get("unit_amount", price.obj.get("amount")) or 0
    return int(unit) * int(item["quantity"] or 1)


def _describe(store: Store, item: dict[str, Any]) -> str:
    price = store.find(item["price"])
    assert price is not None
    product = store.find(price.obj["product"])
    name = product.obj.get("name") if product else "Item"
    return f"{item['quantity'] or 1} × {name}"
