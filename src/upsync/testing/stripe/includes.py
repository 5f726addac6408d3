"""Values ``expand[]`` brings in that a stored object does not hold.

*Includable* fields are left out of an object unless expanded (``customer.sources``,
``price.currency_options``, ``checkout.session.line_items``): :func:`include` builds them,
from a few type-specific builders and otherwise from the field's schema (an empty list with
its URL, ``null`` where nullable, empty arrays and maps). Ids with no object behind them (a
payout's ``ba_…`` destination: the stand-in keeps no bank accounts) are answered with Stripe's
sample object of the type the spec names, under that id (:func:`fabricate`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from . import spec
from .store import Store

__all__ = ["fabricate", "include", "resolve"]

Schema = dict[str, Any]
Builder = Callable[[Store, dict[str, Any]], Any]


def resolve(prop: Schema) -> Schema:
    """A property's schema with ``$ref`` and single-object ``anyOf`` followed."""
    if "$ref" in prop:
        return spec.schema(prop["$ref"])
    refs = [p for p in prop.get("anyOf", []) if "$ref" in p]
    if len(refs) == 1 and len(prop["anyOf"]) == 1:
        return spec.schema(refs[0]["$ref"])
    return prop


def include(store: Store, node: dict[str, Any], key: str, prop: Schema) -> Any:
    """The value of an includable field ``key`` of ``node`` (an object or one of its hashes)."""
    builder = _BUILDERS.get((str(node.get("object")), key))
    if builder is not None:
        return builder(store, node)
    schema = resolve(prop)
    if _is_list(schema):
        return _empty_list(store, node, key)
    return _default(prop, schema)


def fabricate(oid: str, prop: Schema | None) -> dict[str, Any] | None:
    """Stripe's sample of the object type ``prop`` expands to whose ids look like ``oid``."""
    if prop is None:
        return None
    fixtures = spec.vendored_fixtures()
    prefix = oid.split("_", 1)[0] + "_"
    for type_ in prop.get("x-expansionResources", []):
        sample = fixtures.get(type_)
        if sample is not None and str(sample.get("id", "")).startswith(prefix):
            return {**sample, "id": oid}
    return None


def _is_list(schema: Schema) -> bool:
    enum = schema.get("properties", {}).get("object", {}).get("enum")
    return bool(enum == ["list"])


def _empty_list(store: Store, node: dict[str, Any], key: str) -> dict[str, Any]:
    resource = store.resources.get(str(node.get("object")))
    base = f"/v1/{resource.path}/{node['id']}" if resource and resource.path else ""
    return {"object": "list", "data": [], "has_more": False, "url": f"{base}/{key}"}


def _default(prop: Schema, schema: Schema) -> Any:
    """The emptiest value a schema allows: null, [], {}, or a hash of its required fields."""
    if prop.get("nullable") or schema.get("nullable"):
        return None
    kind = schema.get("type")
    if kind == "array":
        return []
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return 0
    if kind == "string":
        return (schema.get("enum") or [""])[0]
    properties = schema.get("properties")
    if not properties:
        return {}
    return {
        name: _default(sub, resolve(sub))
        for name, sub in properties.items()
        if name in schema.get("required", [])
    }


def _currency_options(store: Store, price: dict[str, Any]) -> dict[str, Any]:
    return {
        price["currency"]: {
            "custom_unit_amount": None,
            "tax_behavior": price.get("tax_behavior", "unspecified"),
            "unit_amount": price.get("unit_amount"),
            "unit_amount_decimal": price.get("unit_amount_decimal"),
        }
    }


def _cash_balance(store: Store, customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "available": None,
        "customer": customer["id"],
        "livemode": False,
        "object": "cash_balance",
        "settings": {"reconciliation_mode": "automatic", "using_merchant_default": True},
    }


def _customer_tax(store: Store, customer: dict[str, Any]) -> dict[str, Any]:
    return {"automatic_tax": "unrecognized_location", "ip_address": None, "location": None}


def _session_line_items(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    """The items a checkout session was created with (kept as ``_line_items``, never shown)."""
    entry = store.find(session["id"])
    wanted = entry.obj.get("_line_items", []) if entry is not None else []
    items = [_item(store, session["id"], n, line) for n, line in enumerate(wanted)]
    url = f"/v1/checkout/sessions/{session['id']}/line_items"
    return {"object": "list", "data": items, "has_more": False, "url": url}


def _item(store: Store, session_id: str, n: int, line: dict[str, Any]) -> dict[str, Any]:
    price = store.retrieve("price", line["price"])
    product = store.find(price["product"])
    amount = (price.get("unit_amount") or 0) * line["quantity"]
    digest = hashlib.sha1(f"{session_id}/{n}".encode(), usedforsecurity=False).hexdigest()
    return {
        "id": f"li_{digest[:24]}",
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price["currency"],
        "description": product.obj.get("name") if product is not None else None,
        "metadata": {},
        "price": price,
        "quantity": line["quantity"],
    }


_BUILDERS: dict[tuple[str, str], Builder] = {
    ("price", "currency_options"): _currency_options,
    ("customer", "cash_balance"): _cash_balance,
    ("customer", "tax"): _customer_tax,
    ("checkout.session", "line_items"): _session_line_items,
}
