"""Charges, payment intents and refunds."""

from __future__ import annotations

from typing import Any

from ..errors import StripeError, invalid_request
from ..formdata import Params
from ..resource import Filter, Resource, Sublist
from ..store import Store
from .balance import balance_transaction
from .common import ADDRESS_NULL, apply_updates, base, ref
from .customers import card_details

__all__ = ["RESOURCES", "collect", "refund_charge"]


def _charge_shape(store: Store, amount: int, currency: str, customer: str | None) -> dict[str, Any]:
    obj = base(store, "charge")
    card = card_details(store)
    obj.update(
        amount=amount,
        amount_captured=amount,
        amount_refunded=0,
        application=None,
        application_fee=None,
        application_fee_amount=None,
        balance_transaction=None,
        billing_details={
            "address": dict(ADDRESS_NULL),
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        calculated_statement_descriptor="UPSYNC STANDIN",
        captured=True,
        currency=currency,
        customer=customer,
        description=None,
        disputed=False,
        failure_balance_transaction=None,
        failure_code=None,
        failure_message=None,
        fraud_details={},
        on_behalf_of=None,
        outcome={
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        paid=True,
        payment_intent=None,
        payment_method=None,
        payment_method_details={"card": _card_details(card, amount), "type": "card"},
        receipt_email=None,
        receipt_number=None,
        receipt_url=f"https://pay.stripe.com/receipts/{obj['id']}",
        refunded=False,
        review=None,
        shipping=None,
        source=None,
        source_transfer=None,
        statement_descriptor=None,
        statement_descriptor_suffix=None,
        status="succeeded",
        transfer_data=None,
        transfer_group=None,
    )
    return obj


def _card_details(card: dict[str, Any], amount: int) -> dict[str, Any]:
    """``payment_method_details.card`` of a charge paid with ``card``."""
    return {
        "amount_authorized": amount,
        "authorization_code": "123456",
        "brand": card["brand"],
        "checks": card["checks"],
        "country": card["country"],
        "exp_month": card["exp_month"],
        "exp_year": card["exp_year"],
        "extended_authorization": {"status": "disabled"},
        "fingerprint": card["fingerprint"],
        "funding": card["funding"],
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": card["last4"],
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": card["brand"],
        "network_token": {"used": False},
        "network_transaction_id": None,
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }


def charge(store: Store, params: Params) -> dict[str, Any]:
    """A direct (legacy) charge; it always succeeds."""
    amount = params.integer("amount")
    if amount is None or amount < 50:
        raise invalid_request(
            "Amount must be at least 50 cents", param="amount", code="amount_too_small"
        )
    obj = _charge_shape(
        store,
        amount,
        params.req_str("currency").lower(),
        ref(store, "customer", params, "customer"),
    )
    obj["description"] = params.string("description")
    apply_updates(obj, params, {"metadata": "metadata"})
    obj["balance_transaction"] = balance_transaction(
        store, amount, obj["currency"], obj["id"], "charge", obj["description"]
    )
    store.insert("charge", obj, event="succeeded")
    return obj


def payment_intent(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "payment_intent", params)
    amount = params.integer("amount")
    if amount is None:
        raise invalid_request("Missing required param: amount.", "amount", "parameter_missing")
    pm = ref(store, "payment_method", params, "payment_method")
    obj.update(
        amount=amount,
        amount_capturable=0,
        amount_details={"tip": {}},
        amount_received=0,
        application=None,
        application_fee_amount=None,
        automatic_payment_methods=None,
        canceled_at=None,
        cancellation_reason=None,
        capture_method=params.string("capture_method") or "automatic",
        client_secret=f"{obj['id']}_secret_{store.ids.secret('', 25)}",
        confirmation_method="automatic",
        currency=params.req_str("currency").lower(),
        customer=ref(store, "customer", params, "customer"),
        customer_account=None,
        description=params.string("description"),
        excluded_payment_method_types=None,
        last_payment_error=None,
        latest_charge=None,
        managed_payments=None,
        next_action=None,
        on_behalf_of=None,
        payment_method=pm,
        payment_method_configuration_details=None,
        payment_method_options={},
        payment_method_types=params.array("payment_method_types") or ["card"],
        processing=None,
        receipt_email=params.string("receipt_email"),
        review=None,
        setup_future_usage=None,
        shipping=None,
        source=None,
        statement_descriptor=None,
        statement_descriptor_suffix=None,
        status="requires_confirmation" if pm else "requires_payment_method",
        transfer_data=None,
        transfer_group=None,
    )
    store.insert("payment_intent", obj)
    if params.boolean("confirm"):
        confirm_payment_intent(store, obj["id"], Params({}))
    return obj


def confirm_payment_intent(store: Store, oid: str, params: Params) -> None:
    """Confirming always succeeds (test card 4242): a charge and its balance transaction."""
    entry = store.get("payment_intent", oid)
    pm = ref(store, "payment_method", params, "payment_method") or entry.obj["payment_method"]
    if pm is None:
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    if entry.obj["status"] in ("succeeded", "canceled"):
        raise StripeError(
            400,
            f"This PaymentIntent's status is {entry.obj['status']}.",
            code="payment_intent_unexpected_state",
        )
    pi = entry.obj
    ch = _charge_shape(store, pi["amount"], pi["currency"], pi["customer"])
    ch.update(payment_intent=oid, payment_method=pm, description=pi["description"])
    ch["balance_transaction"] = balance_transaction(
        store, pi["amount"], pi["currency"], ch["id"], "charge", pi["description"]
    )
    store.insert("charge", ch, event="succeeded")
    with store.change("payment_intent", oid, extra=("succeeded",), updated=False) as obj:
        obj.update(
            payment_method=pm,
            status="succeeded",
            amount_received=obj["amount"],
            latest_charge=ch["id"],
        )


def cancel_payment_intent(store: Store, oid: str, params: Params) -> None:
    if store.get("payment_intent", oid).obj["status"] == "succeeded":
        raise StripeError(
            400,
            "You cannot cancel this PaymentIntent because it has a status of succeeded.",
            code="payment_intent_unexpected_state",
        )
    with store.change("payment_intent", oid, extra=("canceled",), updated=False) as obj:
        obj.update(
            status="canceled",
            canceled_at=store.now(),
            cancellation_reason=params.string("cancellation_reason") or "requested_by_customer",
        )


def collect(
    store: Store, customer: str, amount: int, currency: str, pm: str, description: str
) -> str:
    """Take a payment for an invoice: a confirmed payment intent. Returns its id."""
    params = {
        "amount": str(amount),
        "currency": currency,
        "customer": customer,
        "payment_method": pm,
        "description": description,
        "confirm": "true",
    }
    return str(payment_intent(store, Params(params))["id"])


def refund_charge(
    store: Store, charge_id: str, amount: int | None, reason: str | None
) -> dict[str, Any]:
    ch = store.get("charge", charge_id, param="charge").obj
    left = ch["amount"] - ch["amount_refunded"]
    amount = left if amount is None else amount
    if amount <= 0 or amount > left:
        raise invalid_request(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            param="amount",
        )
    obj = base(store, "refund")
    del obj["livemode"]
    obj.update(
        amount=amount,
        balance_transaction=None,
        charge=charge_id,
        currency=ch["currency"],
        customer=ch["customer"],
        customer_account=None,
        destination_details={
            "card": {
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        payment_intent=ch["payment_intent"],
        payment_method=ch["payment_method"],
        reason=reason,
        receipt_number=None,
        source_transfer_reversal=None,
        status="succeeded",
        transfer_reversal=None,
    )
    obj["balance_transaction"] = balance_transaction(
        store, -amount, ch["currency"], obj["id"], "refund", None
    )
    with store.change("charge", charge_id, extra=("refunded",)) as live:
        store.insert("refund", obj)
        live["amount_refunded"] += amount
        live["refunded"] = live["amount_refunded"] == live["amount"]
    return obj


def refund(store: Store, params: Params) -> dict[str, Any]:
    charge_id = params.string("charge")
    if charge_id is None:
        pi = ref(store, "payment_intent", params, "payment_intent", required=True)
        assert pi is not None
        charge_id = store.get("payment_intent", pi).obj["latest_charge"]
        if charge_id is None:
            raise invalid_request(
                "This PaymentIntent does not have a successful charge to refund.", "payment_intent"
            )
    out = refund_charge(store, charge_id, params.integer("amount"), params.string("reason"))
    if "metadata" in params:
        with store.change("refund", out["id"]) as obj:
            apply_updates(obj, params, {"metadata": "metadata"})
    return out


RESOURCES = (
    Resource(
        "charge",
        "charges",
        "ch",
        events="charge",
        create=charge,
        updatable={"description": "str", "receipt_email": "str", "metadata": "metadata"},
        filters=(Filter("customer", "customer"), Filter("payment_intent", "payment_intent")),
        parents=("customer",),
        sublists={"refunds": Sublist("refund", "charge", "/v1/charges/{id}/refunds")},
    ),
    Resource(
        "payment_intent",
        "payment_intents",
        "pi",
        events="payment_intent",
        create=payment_intent,
        updatable={"description": "str", "receipt_email": "str", "metadata": "metadata"},
        actions={"confirm": confirm_payment_intent, "cancel": cancel_payment_intent},
        filters=(Filter("customer", "customer"),),
        parents=("customer",),
    ),
    Resource(
        "refund",
        "refunds",
        "re",
        events="refund",
        create=refund,
        updatable={"metadata": "metadata"},
        filters=(Filter("charge", "charge"), Filter("payment_intent", "payment_intent")),
        parents=("charge",),
    ),
)
