"""Balance transactions (money moving through the balance) and payouts."""

from __future__ import annotations

from typing import Any

from ..errors import invalid_request
from ..formdata import Params
from ..resource import Filter, Resource
from ..store import Store
from .common import base

__all__ = ["RESOURCES", "balance_transaction"]

FEE_PERCENT, FEE_FIXED = 0.029, 30


def balance_transaction(
    store: Store, amount: int, currency: str, source: str, type_: str, description: str | None
) -> str:
    """Record money moving through the balance; returns the ``txn_`` id."""
    fee = round(abs(amount) * FEE_PERCENT) + FEE_FIXED if type_ == "charge" else 0
    obj = base(store, "balance_transaction")
    del obj["livemode"], obj["metadata"]
    obj.update(
        amount=amount,
        available_on=obj["created"] + 2 * 86400,
        balance_type="payments",
        currency=currency,
        description=description,
        exchange_rate=None,
        fee=fee,
        fee_details=[
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        net=amount - fee,
        reporting_category=type_,
        source=source,
        status="pending",
        type=type_,
    )
    store.insert("balance_transaction", obj, event=None)
    return str(obj["id"])


def payout(store: Store, params: Params) -> dict[str, Any]:
    amount = params.integer("amount")
    if amount is None or amount <= 0:
        raise invalid_request("Missing required param: amount.", "amount", "parameter_missing")
    obj = base(store, "payout", params)
    obj.update(
        amount=amount,
        application_fee=None,
        application_fee_amount=None,
        arrival_date=obj["created"] + 2 * 86400,
        automatic=False,
        balance_transaction=None,
        currency=params.req_str("currency").lower(),
        description=params.string("description"),
        destination="ba_" + store.ids.secret("", 24),
        failure_balance_transaction=None,
        failure_code=None,
        failure_message=None,
        method=params.string("method") or "standard",
        original_payout=None,
        payout_method=None,
        reconciliation_status="not_applicable",
        reversed_by=None,
        source_type="card",
        statement_descriptor=params.string("statement_descriptor"),
        status="pending",
        trace_id=None,
        type="bank_account",
    )
    obj["balance_transaction"] = balance_transaction(
        store, -amount, obj["currency"], obj["id"], "payout", "STRIPE PAYOUT"
    )
    store.insert("payout", obj)
    return obj


def cancel_payout(store: Store, oid: str, params: Params) -> None:
    with store.change("payout", oid, extra=("canceled",)) as obj:
        obj["status"] = "canceled"


RESOURCES = (
    Resource(
        "payout",
        "payouts",
        "po",
        events="payout",
        create=payout,
        updatable={"metadata": "metadata"},
        actions={"cancel": cancel_payout},
        filters=(Filter("status", "status"), Filter("destination", "destination")),
    ),
    Resource(
        "balance_transaction",
        "balance_transactions",
        "txn",
        filters=(
            Filter("type", "type"),
            Filter("source", "source"),
            Filter("currency", "currency"),
        ),
    ),
)
