"""Credit notes (with their lines) against open or paid invoices."""

from __future__ import annotations

from typing import Any

from ..errors import invalid_request
from ..formdata import Params
from ..resource import Filter, Resource, Sublist
from ..store import Store
from .common import base, ref, strip_fields

__all__ = ["RESOURCES", "credit_note"]


def credit_note(store: Store, params: Params) -> dict[str, Any]:
    invoice_id = ref(store, "invoice", params, "invoice", required=True)
    assert invoice_id is not None
    inv = store.get("invoice", invoice_id).obj
    if inv["status"] not in ("open", "paid"):
        raise invalid_request(
            "You can only create credit notes for open or paid invoices.", param="invoice"
        )
    amount = params.integer("amount", inv["total"]) or 0
    obj = base(store, "credit_note", params)
    post = inv["status"] == "paid"
    obj.update(
        amount=amount,
        amount_shipping=0,
        currency=inv["currency"],
        customer=inv["customer"],
        customer_account=None,
        customer_balance_transaction=None,
        discount_amount=0,
        discount_amounts=[],
        effective_at=obj["created"],
        invoice=invoice_id,
        memo=params.string("memo"),
        number=f"{inv['number']}-CN-01",
        out_of_band_amount=None,
        pdf=f"https://pay.stripe.com/credit_notes/{obj['id']}/pdf",
        post_payment_amount=amount if post else 0,
        pre_payment_amount=0 if post else amount,
        pretax_credit_amounts=[],
        reason=params.string("reason"),
        refunds=[],
        shipping_cost=None,
        status="issued",
        subtotal=amount,
        subtotal_excluding_tax=amount,
        total=amount,
        total_excluding_tax=amount,
        total_taxes=[],
        type="post_payment" if post else "pre_payment",
        voided_at=None,
    )
    line = base(store, "credit_note_line_item")
    line.update(
        amount=amount,
        credit_note=obj["id"],
        description=params.string("memo") or "Credit",
        discount_amount=0,
        discount_amounts=[],
        invoice_line_item=None,
        pretax_credit_amounts=[],
        quantity=1,
        tax_rates=[],
        taxes=[],
        type="custom_line_item",
        unit_amount=amount,
        unit_amount_decimal=str(amount),
    )
    store.insert("credit_note_line_item", line, event=None)
    with store.change("invoice", invoice_id) as live:
        store.insert("credit_note", obj)
        live["post_payment_credit_notes_amount" if post else "pre_payment_credit_notes_amount"] += (
            amount
        )
    return obj


def void_credit_note(store: Store, oid: str, params: Params) -> None:
    with store.change("credit_note", oid, extra=("voided",)) as obj:
        obj.update(status="void", voided_at=store.now())


RESOURCES = (
    Resource(
        "credit_note",
        "credit_notes",
        "cn",
        events="credit_note",
        create=credit_note,
        updatable={"memo": "str", "metadata": "metadata"},
        actions={"void": void_credit_note},
        filters=(Filter("customer", "customer"), Filter("invoice", "invoice")),
        parents=("customer",),
        sublists={
            "lines": Sublist("credit_note_line_item", "credit_note", "/v1/credit_notes/{id}/lines")
        },
    ),
    Resource(
        "credit_note_line_item",
        None,
        "cnli",
        parents=("credit_note",),
        render=strip_fields("created", "credit_note"),
    ),
)
