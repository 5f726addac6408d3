"""Checkout sessions (created open; ``expire`` closes them)."""

from __future__ import annotations

from typing import Any

from ..errors import StripeError, invalid_request
from ..formdata import Params
from ..resource import Filter, Resource
from ..store import Store
from .common import base, ref, strip_fields


def checkout_session(store: Store, params: Params) -> dict[str, Any]:
    mode = params.string("mode") or "payment"
    if mode not in ("payment", "setup", "subscription"):
        raise invalid_request(f"Invalid mode: {mode}", param="mode")
    total = 0
    lines = []
    for item in params.items("line_items"):
        price = ref(store, "price", item, "price", required=True)
        quantity = item.integer("quantity", 1) or 1
        total += (store.get("price", str(price)).obj["unit_amount"] or 0) * quantity
        lines.append({"price": price, "quantity": quantity})
    obj = base(store, "checkout.session", params)
    obj.update(_defaults(store, obj, mode, total))
    obj["_line_items"] = lines  # shown only through expand[]=line_items
    obj["customer"] = ref(store, "customer", params, "customer")
    obj["customer_email"] = params.string("customer_email")
    obj["success_url"] = params.string("success_url")
    obj["cancel_url"] = params.string("cancel_url")
    obj["client_reference_id"] = params.string("client_reference_id")
    store.insert("checkout.session", obj, event=None)
    return obj


def _defaults(store: Store, obj: dict[str, Any], mode: str, total: int) -> dict[str, Any]:
    return {
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "currency": "usd",
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer_account": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "discounts": [],
        "expires_at": obj["created"] + 86400,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "locale": None,
        "managed_payments": None,
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"https://checkout.stripe.com/c/pay/{obj['id']}",
        "wallet_options": None,
    }


def expire_session(store: Store, oid: str, params: Params) -> None:
    if store.get("checkout.session", oid).obj["status"] != "open":
        raise StripeError(400, 'Only Checkout Sessions with a status in ["open"] can be expired.')
    with store.change("checkout.session", oid, extra=("expired",), updated=False) as obj:
        obj.update(status="expired", url=None)


def complete_session(store: Store, oid: str) -> None:
    """Stripe completes sessions when a customer pays; the generator calls this."""
    with store.change("checkout.session", oid, extra=("completed",), updated=False) as obj:
        obj.update(status="complete", payment_status="paid", url=None)


RESOURCES = (
    Resource(
        "checkout.session",
        "checkout/sessions",
        "cs",
        events="checkout.session",
        create=checkout_session,
        updatable={"metadata": "metadata"},
        actions={"expire": expire_session},
        render=strip_fields("_line_items"),
        filters=(
            Filter("customer", "customer"),
            Filter("payment_intent", "payment_intent"),
            Filter("subscription", "subscription"),
            Filter("status", "status"),
        ),
    ),
)
