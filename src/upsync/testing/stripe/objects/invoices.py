"""Invoices, their lines, invoice items and credit notes."""

from __future__ import annotations

from typing import Any

from ..errors import StripeError, invalid_request
from ..formdata import Params
from ..resource import Filter, Resource, Sublist
from ..store import Store
from .common import ADDRESS_NULL, apply_updates, base, ref, strip_fields
from .payments import collect

__all__ = ["RESOURCES", "add_line", "finalize_invoice", "new_invoice", "pay_invoice"]


def new_invoice(
    store: Store,
    customer: str,
    *,
    subscription: str | None = None,
    reason: str = "manual",
    collection_method: str = "charge_automatically",
) -> dict[str, Any]:
    """A draft invoice for ``customer`` (lines are added with :func:`add_line`)."""
    cus = store.get("customer", customer, param="customer").obj
    obj = base(store, "invoice")
    now = obj["created"]
    obj.update(
        account_country="US",
        account_name="upsync stand-in",
        account_tax_ids=None,
        amount_due=0,
        amount_overpaid=0,
        amount_paid=0,
        amount_remaining=0,
        amount_shipping=0,
        application=None,
        attempt_count=0,
        attempted=False,
        auto_advance=reason != "manual",
        automatic_tax={
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        automatically_finalizes_at=None,
        billing_reason=reason,
        collection_method=collection_method,
        currency="usd",
        custom_fields=None,
        customer=customer,
        customer_account=None,
        customer_address=cus["address"] or dict(ADDRESS_NULL),
        customer_email=cus["email"],
        customer_name=cus["name"],
        customer_phone=cus["phone"],
        customer_shipping=cus["shipping"],
        customer_tax_exempt=cus["tax_exempt"],
        customer_tax_ids=[],
        default_payment_method=None,
        default_source=None,
        default_tax_rates=[],
        description=None,
        discounts=[],
        due_date=None,
        effective_at=None,
        ending_balance=None,
        footer=None,
        from_invoice=None,
        hosted_invoice_url=None,
        invoice_pdf=None,
        issuer={"type": "self"},
        last_finalization_error=None,
        latest_revision=None,
        next_payment_attempt=None,
        number=None,
        on_behalf_of=None,
        parent=None
        if subscription is None
        else {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": subscription},
            "type": "subscription_details",
        },
        payment_settings={
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        period_end=now,
        period_start=now,
        post_payment_credit_notes_amount=0,
        pre_payment_credit_notes_amount=0,
        receipt_number=None,
        rendering=None,
        shipping_cost=None,
        shipping_details=None,
        starting_balance=0,
        statement_descriptor=None,
        status="draft",
        status_transitions={
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        subscription=subscription,
        subtotal=0,
        subtotal_excluding_tax=0,
        test_clock=None,
        total=0,
        total_discount_amounts=[],
        total_excluding_tax=0,
        total_pretax_credit_amounts=[],
        total_taxes=[],
        webhooks_delivered_at=None,
    )
    store.insert("invoice", obj)
    return obj


def add_line(
    store: Store,
    invoice: str,
    amount: int,
    *,
    description: str | None,
    quantity: int = 1,
    price: str | None = None,
    period: tuple[int, int] | None = None,
    invoice_item: str | None = None,
    subscription_item: str | None = None,
) -> dict[str, Any]:
    """Add a line to a draft invoice (and record ``invoice.updated``)."""
    inv = store.get("invoice", invoice, param="invoice").obj
    if inv["status"] != "draft":
        raise invalid_request("You can only add lines to a draft invoice.", param="invoice")
    start, end = period or (inv["created"], inv["created"])
    product = store.get("price", price).obj["product"] if price else None
    line = base(store, "line_item")
    line.update(
        amount=amount,
        currency=inv["currency"],
        description=description,
        discount_amounts=[],
        discountable=True,
        discounts=[],
        invoice=invoice,
        parent=_line_parent(inv, invoice_item, subscription_item),
        period={"end": end, "start": start},
        pretax_credit_amounts=[],
        pricing={
            "price_details": {"price": price, "product": product},
            "type": "price_details",
            "unit_amount_decimal": str(amount // max(quantity, 1)),
        },
        quantity=quantity,
        quantity_decimal=str(quantity),
        subscription=inv["subscription"],
        subtotal=amount,
        taxes=[],
    )
    with store.change("invoice", invoice) as live:
        store.insert("line_item", line, event=None)
        _add_to_totals(live, amount)
    return line


def _line_parent(inv: dict[str, Any], item: str | None, sub_item: str | None) -> dict[str, Any]:
    if sub_item is not None:
        details = {
            "invoice_item": None,
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": inv["subscription"],
            "subscription_item": sub_item,
        }
        return {
            "invoice_item_details": None,
            "subscription_item_details": details,
            "type": "subscription_item_details",
        }
    details = {
        "invoice_item": item,
        "proration": False,
        "proration_details": {"credited_items": None},
        "subscription": inv["subscription"],
    }
    return {
        "invoice_item_details": details,
        "subscription_item_details": None,
        "type": "invoice_item_details",
    }


def _add_to_totals(inv: dict[str, Any], amount: int) -> None:
    for key in (
        "subtotal",
        "subtotal_excluding_tax",
        "total",
        "total_excluding_tax",
        "amount_due",
        "amount_remaining",
    ):
        inv[key] += amount


def finalize_invoice(store: Store, oid: str, params: Params | None = None) -> None:
    inv = store.get("invoice", oid).obj
    if inv["status"] != "draft":
        raise StripeError(400, "This invoice is already finalized.", code="invoice_not_editable")
    with store.change("customer", inv["customer"], updated=False) as cus:
        sequence = cus["next_invoice_sequence"]
        cus["next_invoice_sequence"] = sequence + 1
    with store.change("invoice", oid, extra=("finalized",)) as obj:
        now = store.now()
        obj.update(
            status="open",
            number=f"{cus['invoice_prefix']}-{sequence:04d}",
            effective_at=now,
            hosted_invoice_url=f"https://invoice.stripe.com/i/{obj['id']}",
            invoice_pdf=f"https://pay.stripe.com/invoice/{obj['id']}/pdf",
            due_date=now + 30 * 86400 if obj["collection_method"] == "send_invoice" else None,
        )
        obj["status_transitions"]["finalized_at"] = now
    if inv["amount_due"] == 0:
        _mark_paid(store, oid)


def pay_invoice(store: Store, oid: str, params: Params | None = None) -> None:
    """Pay an open (or draft: finalized first) invoice with the customer's payment method."""
    inv = store.get("invoice", oid).obj
    if inv["status"] == "draft":
        finalize_invoice(store, oid)
        inv = store.get("invoice", oid).obj
    if inv["status"] == "paid":
        raise StripeError(400, "Invoice is already paid", code="invoice_already_paid")
    if inv["status"] != "open":
        raise StripeError(
            400, f"This invoice can't be paid: it is {inv['status']}.", code="invoice_not_editable"
        )
    pm = ref(store, "payment_method", params or Params({}), "payment_method") or _default_pm(
        store, inv
    )
    if pm is None:
        raise StripeError(
            402,
            "This customer has no attached payment source or default payment method.",
            type="card_error",
            code="invoice_payment_intent_requires_action",
        )
    collect(
        store,
        inv["customer"],
        inv["amount_remaining"],
        inv["currency"],
        pm,
        f"Invoice {inv['number']}",
    )
    _mark_paid(store, oid)


def _default_pm(store: Store, inv: dict[str, Any]) -> str | None:
    found = inv["default_payment_method"]
    if found is None and inv["subscription"]:
        found = store.get("subscription", inv["subscription"]).obj["default_payment_method"]
    if found is None:
        found = store.get("customer", inv["customer"]).obj["invoice_settings"][
            "default_payment_method"
        ]
    return found if isinstance(found, str) else None


def _mark_paid(store: Store, oid: str) -> None:
    with store.change("invoice", oid, extra=("paid", "payment_succeeded")) as obj:
        obj.update(
            status="paid",
            amount_paid=obj["amount_due"],
            amount_remaining=0,
            attempted=True,
            attempt_count=1,
            auto_advance=False,
        )
        obj["status_transitions"]["paid_at"] = store.now()


def _transition(status: str, suffix: str, stamp: str | None) -> Any:
    def act(store: Store, oid: str, params: Params) -> None:
        if store.get("invoice", oid).obj["status"] != "open":
            raise StripeError(
                400,
                f"You can only {suffix.replace('_', ' ')} an open invoice.",
                code="invoice_not_editable",
            )
        with store.change("invoice", oid, extra=(suffix,)) as obj:
            obj["status"] = status
            if stamp:
                obj["status_transitions"][stamp] = store.now()

    return act


def invoice(store: Store, params: Params) -> dict[str, Any]:
    customer = ref(store, "customer", params, "customer", required=True)
    assert customer is not None
    sub = ref(store, "subscription", params, "subscription")
    obj = new_invoice(
        store,
        customer,
        subscription=sub,
        collection_method=params.string("collection_method") or "charge_automatically",
    )
    with store.change("invoice", obj["id"], updated=False) as live:
        apply_updates(live, params, _INVOICE_FIELDS)
    if params.string("pending_invoice_items_behavior") == "include":
        for item in list(store.children("invoiceitem", "customer", customer).entries):
            if item.obj["invoice"] is None:
                _attach_item(store, item.id, obj["id"])
    return obj


_INVOICE_FIELDS = {
    "auto_advance": "bool",
    "description": "str",
    "footer": "str",
    "days_until_due": "int",
    "metadata": "metadata",
}


def update_invoice(store: Store, obj: dict[str, Any], params: Params) -> None:
    if obj["status"] not in ("draft", "open"):
        raise StripeError(
            400, "You can only update draft or open invoices.", code="invoice_not_editable"
        )
    apply_updates(obj, params, _INVOICE_FIELDS)


def delete_invoice(store: Store, oid: str) -> dict[str, Any]:
    if store.get("invoice", oid).obj["status"] != "draft":
        raise StripeError(400, "You can only delete draft invoices.", code="invoice_not_editable")
    return store.remove("invoice", oid)


def invoiceitem(store: Store, params: Params) -> dict[str, Any]:
    customer = ref(store, "customer", params, "customer", required=True)
    price = ref(store, "price", params, "price")
    quantity = params.integer("quantity", 1) or 1
    amount = params.integer("amount")
    if amount is None and price is None:
        raise invalid_request("Missing required param: amount.", "amount", "parameter_missing")
    if amount is None:
        amount = (store.get("price", str(price)).obj["unit_amount"] or 0) * quantity
    obj = base(store, "invoiceitem", params)
    now = obj["created"]
    obj.update(
        amount=amount,
        currency=(params.string("currency") or "usd").lower(),
        customer=customer,
        customer_account=None,
        date=now,
        description=params.string("description"),
        discountable=True,
        discounts=[],
        invoice=None,
        net_amount=amount,
        parent=None,
        period={"end": now, "start": now},
        pricing={
            "price_details": {"price": price, "product": None},
            "type": "price_details",
            "unit_amount_decimal": str(amount // quantity),
        },
        proration=False,
        quantity=quantity,
        quantity_decimal=str(quantity),
        tax_rates=[],
        test_clock=None,
    )
    store.insert("invoiceitem", obj)
    target = ref(store, "invoice", params, "invoice")
    if target is not None:
        _attach_item(store, obj["id"], target)
    return obj


def _attach_item(store: Store, item_id: str, invoice_id: str) -> None:
    item = store.get("invoiceitem", item_id).obj
    add_line(
        store,
        invoice_id,
        item["amount"],
        description=item["description"],
        quantity=item["quantity"],
        invoice_item=item_id,
    )
    with store.change("invoiceitem", item_id) as obj:
        obj["invoice"] = invoice_id


def delete_invoiceitem(store: Store, oid: str) -> dict[str, Any]:
    if store.get("invoiceitem", oid).obj["invoice"] is not None:
        raise StripeError(
            400,
            "This invoice item is on an invoice and cannot be deleted here.",
            code="invoice_not_editable",
        )
    return store.remove("invoiceitem", oid)


RESOURCES = (
    Resource(
        "invoice",
        "invoices",
        "in",
        events="invoice",
        create=invoice,
        update=update_invoice,
        delete=delete_invoice,
        actions={
            "finalize": finalize_invoice,
            "pay": pay_invoice,
            "void": _transition("void", "voided", "voided_at"),
            "mark_uncollectible": _transition(
                "uncollectible", "marked_uncollectible", "marked_uncollectible_at"
            ),
            "send": _transition("open", "sent", None),
        },
        filters=(
            Filter("customer", "customer"),
            Filter("subscription", "subscription"),
            Filter("status", "status"),
            Filter("collection_method", "collection_method"),
        ),
        parents=("customer", "subscription"),
        sublists={"lines": Sublist("line_item", "invoice", "/v1/invoices/{id}/lines")},
    ),
    Resource("line_item", None, "il", parents=("invoice",), render=strip_fields("created")),
    Resource(
        "invoiceitem",
        "invoiceitems",
        "ii",
        events="invoiceitem",
        create=invoiceitem,
        updatable={"description": "str", "metadata": "metadata"},
        delete=delete_invoiceitem,
        filters=(Filter("customer", "customer"), Filter("invoice", "invoice")),
        parents=("customer",),
        render=strip_fields("created"),  # invoice items show `date` instead
    ),
)
