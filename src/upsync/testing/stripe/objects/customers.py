"""Customers, payment methods and setup intents."""

from __future__ import annotations

from typing import Any

from ..formdata import Params
from ..resource import Filter, Resource
from ..store import Store
from .common import ADDRESS_NULL, apply_updates, base, ref

_CUSTOMER_FIELDS = {
    "address": "hash",
    "balance": "int",
    "description": "str",
    "email": "str",
    "name": "str",
    "phone": "str",
    "preferred_locales": "list",
    "shipping": "hash",
    "tax_exempt": "str",
    "invoice_settings": "hash",
    "invoice_prefix": "str",
    "metadata": "metadata",
}


def customer(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "customer", params)
    obj.update(
        address=None,
        balance=0,
        currency=None,
        default_source=None,
        delinquent=False,
        description=None,
        discount=None,
        email=None,
        invoice_prefix=store.ids.secret("", 8).upper(),
        invoice_settings={
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        name=None,
        next_invoice_sequence=1,
        phone=None,
        preferred_locales=[],
        shipping=None,
        tax_exempt="none",
        test_clock=None,
    )
    apply_updates(obj, params, _CUSTOMER_FIELDS)
    pm = ref(store, "payment_method", params, "payment_method")
    store.insert("customer", obj)
    if pm is not None:
        attach_payment_method(store, pm, Params({"customer": obj["id"]}))
        with store.change("customer", obj["id"]) as live:
            live["invoice_settings"]["default_payment_method"] = pm
    return obj


def update_customer(store: Store, obj: dict[str, Any], params: Params) -> None:
    apply_updates(obj, params, _CUSTOMER_FIELDS)
    settings = params.hash("invoice_settings")
    pm = ref(store, "payment_method", settings, "default_payment_method")
    if pm is not None:
        obj["invoice_settings"]["default_payment_method"] = pm


def delete_customer(store: Store, oid: str) -> dict[str, Any]:
    """Deleting a customer cancels its subscriptions first, as Stripe does."""
    from .subscriptions import cancel_subscription

    for sub in list(store.children("subscription", "customer", oid).entries):
        if sub.obj["status"] not in ("canceled", "incomplete_expired"):
            cancel_subscription(store, sub.id)
    return store.remove("customer", oid)


_CARDS = (("visa", "4242"), ("mastercard", "4444"), ("amex", "8431"), ("visa", "1881"))


def card_details(store: Store) -> dict[str, Any]:
    brand, last4 = store.rng.choice(_CARDS)
    return {
        "brand": brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": "US",
        "display_brand": brand,
        "exp_month": store.rng.randint(1, 12),
        "exp_year": store.rng.randint(2027, 2034),
        "fingerprint": store.ids.secret("", 16),
        "funding": "credit",
        "generated_from": None,
        "last4": last4,
        "networks": {"available": [brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def payment_method(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "payment_method", params)
    billing = params.hash("billing_details")
    obj.update(
        allow_redisplay="unspecified",
        billing_details={
            "address": dict(ADDRESS_NULL),
            "email": billing.string("email"),
            "name": billing.string("name"),
            "phone": billing.string("phone"),
            "tax_id": None,
        },
        card=card_details(store),
        customer=None,
        customer_account=None,
        type=params.string("type") or "card",
    )
    store.insert("payment_method", obj, event=None)
    customer_id = ref(store, "customer", params, "customer")
    if customer_id is not None:
        attach_payment_method(store, obj["id"], Params({"customer": customer_id}))
    return obj


def attach_payment_method(store: Store, oid: str, params: Params) -> None:
    customer_id = ref(store, "customer", params, "customer", required=True)
    with store.change("payment_method", oid, extra=("attached",), updated=False) as obj:
        obj["customer"] = customer_id


def detach_payment_method(store: Store, oid: str, params: Params) -> None:
    with store.change("payment_method", oid, extra=("detached",), updated=False) as obj:
        obj["customer"] = None


def setup_intent(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "setup_intent", params)
    pm = ref(store, "payment_method", params, "payment_method")
    obj.update(
        application=None,
        automatic_payment_methods=None,
        cancellation_reason=None,
        client_secret=f"{obj['id']}_secret_{store.ids.secret('', 24)}",
        customer=ref(store, "customer", params, "customer"),
        description=params.string("description"),
        excluded_payment_method_types=None,
        flow_directions=None,
        last_setup_error=None,
        latest_attempt=None,
        mandate=None,
        next_action=None,
        on_behalf_of=None,
        payment_method=pm,
        payment_method_configuration_details=None,
        payment_method_options={
            "card": {
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        payment_method_types=params.array("payment_method_types") or ["card"],
        single_use_mandate=None,
        status="requires_confirmation" if pm else "requires_payment_method",
        usage=params.string("usage") or "off_session",
    )
    store.insert("setup_intent", obj)
    if params.boolean("confirm") and pm is not None:
        confirm_setup_intent(store, obj["id"], Params({}))
    return obj


def confirm_setup_intent(store: Store, oid: str, params: Params) -> None:
    pm = ref(store, "payment_method", params, "payment_method")
    with store.change("setup_intent", oid, extra=("succeeded",)) as obj:
        obj["payment_method"] = pm or obj["payment_method"]
        obj["status"] = "succeeded" if obj["payment_method"] else "requires_payment_method"


def cancel_setup_intent(store: Store, oid: str, params: Params) -> None:
    with store.change("setup_intent", oid, extra=("canceled",)) as obj:
        obj["status"] = "canceled"
        obj["cancellation_reason"] = params.string("cancellation_reason")


RESOURCES = (
    Resource(
        "customer",
        "customers",
        "cus",
        events="customer",
        create=customer,
        update=update_customer,
        delete=delete_customer,
        filters=(Filter("email", "email"),),
    ),
    Resource(
        "payment_method",
        "payment_methods",
        "pm",
        events="payment_method",
        create=payment_method,
        updatable={"billing_details": "hash", "allow_redisplay": "str", "metadata": "metadata"},
        actions={"attach": attach_payment_method, "detach": detach_payment_method},
        filters=(Filter("customer", "customer"), Filter("type", "type")),
        parents=("customer",),
    ),
    Resource(
        "setup_intent",
        "setup_intents",
        "seti",
        events="setup_intent",
        create=setup_intent,
        updatable={"description": "str", "metadata": "metadata"},
        actions={"confirm": confirm_setup_intent, "cancel": cancel_setup_intent},
        filters=(Filter("customer", "customer"), Filter("payment_method", "payment_method")),
        parents=("customer",),
    ),
)
