"""Disputes: opened by Stripe (the generator), answered or closed through the API."""

from __future__ import annotations

from typing import Any

from ..formdata import Params
from ..resource import Filter, Resource
from ..store import Store
from .balance import balance_transaction
from .common import apply_updates, base

__all__ = ["RESOURCES", "open_dispute"]


# what a merchant can submit; all empty until it answers
_EVIDENCE = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "enhanced_evidence",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def open_dispute(store: Store, charge_id: str, reason: str = "fraudulent") -> dict[str, Any]:
    """Stripe opens disputes (there is no create API); the generator calls this."""
    ch = store.get("charge", charge_id).obj
    obj = base(store, "dispute")
    obj.update(
        amount=ch["amount"],
        balance_transactions=[],
        charge=charge_id,
        currency=ch["currency"],
        enhanced_eligibility_types=[],
        evidence={**dict.fromkeys(_EVIDENCE), "enhanced_evidence": {}},
        evidence_details={
            "due_by": obj["created"] + 7 * 86400,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        is_charge_refundable=False,
        payment_intent=ch["payment_intent"],
        payment_method_details={
            "card": {
                "brand": ch["payment_method_details"]["card"]["brand"],
                "case_type": "chargeback",
                "network": ch["payment_method_details"]["card"]["brand"],
                "network_reason_code": "10.4",
            },
            "type": "card",
        },
        reason=reason,
        status="needs_response",
    )
    txn = balance_transaction(
        store, -ch["amount"], ch["currency"], obj["id"], "dispute", "Chargeback withdrawal"
    )
    # embedded whole, as Stripe does (never expanded ids)
    obj["balance_transactions"] = [store.render(store.get("balance_transaction", txn))]
    with store.change("charge", charge_id) as live:
        store.insert("dispute", obj)
        live["disputed"] = True
    return obj


def close_dispute(store: Store, oid: str, params: Params) -> None:
    with store.change("dispute", oid, extra=("closed",)) as obj:
        obj["status"] = "lost"


def update_dispute(store: Store, obj: dict[str, Any], params: Params) -> None:
    apply_updates(obj, params, {"metadata": "metadata"})
    evidence = params.hash("evidence")
    obj["evidence"].update({k: v for k, v in evidence.data.items() if isinstance(v, str)})


RESOURCES = (
    Resource(
        "dispute",
        "disputes",
        "dp",
        events="charge.dispute",
        update=update_dispute,
        actions={"close": close_dispute},
        filters=(Filter("charge", "charge"), Filter("payment_intent", "payment_intent")),
    ),
)
