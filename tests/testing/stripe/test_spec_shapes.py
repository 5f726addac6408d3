"""Every object the stand-in serves validates against Stripe's OpenAPI schema for its type.

The vendored spec describes API version 2023-08-16; the stand-in renders a newer version, so
fields Stripe added since are allowed, and the few required fields Stripe removed or moved
since are listed in :data:`MOVED` with the version that moved them. Everything else is checked:
required fields, JSON types, nullability, and ids versus embedded objects (``anyOf``).
"""

from __future__ import annotations

from typing import Any

import pytest

from upsync.testing.stripe import Store, spec
from upsync.testing.stripe.objects import REGISTRY

from .conftest import populate_every_type

Schema = dict[str, Any]

MOVED: dict[str, frozenset[str]] = {
    # 2024-04-10: product features became marketing_features
    "product": frozenset({"features"}),
    # 2025-03-31.basil: periods moved to subscription items, invoice payment flags and tax
    # amounts gave way to payments and total_taxes, line types to the line's parent
    "subscription": frozenset({"current_period_end", "current_period_start"}),
    "invoice": frozenset({"paid", "paid_out_of_band", "total_tax_amounts"}),
    "line_item": frozenset({"proration", "type"}),
    "credit_note": frozenset({"tax_amounts"}),
    "credit_note_line_item": frozenset({"tax_amounts"}),
}
"""schema name → required fields (of 2023-08-16) that newer API versions no longer render"""

NOW_NULLABLE: dict[str, frozenset[str]] = {
    # null in Stripe's own newer sample account
    "account_bacs_debit_payments_settings": frozenset({"display_name"}),
    # a custom credit note line (no invoice line behind it) names none
    "credit_note_line_item": frozenset({"invoice_line_item"}),
}
"""schema name → fields newer versions (or the kind of object served) leave null"""


@pytest.fixture(scope="module")
def populated() -> Store:
    store = Store(seed=7)
    populate_every_type(store)
    return store


def validate(value: Any, schema: Schema, where: str, name: str = "") -> list[str]:
    """What in ``value`` disagrees with ``schema`` (empty when it validates)."""
    if "$ref" in schema:
        return validate(value, spec.schema(schema["$ref"]), where, schema["$ref"])
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null, not nullable"]
    if "anyOf" in schema:
        return _any_of(value, schema["anyOf"], where)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        return _object(value, schema, where, name)
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, not an array"]
        return [
            p for i, v in enumerate(value) for p in validate(v, schema["items"], f"{where}[{i}]")
        ]
    if kind is not None and not _scalar_ok(value, kind):
        return [f"{where}: {type(value).__name__} {value!r:.40}, not {kind}"]
    return []


def _scalar_ok(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str) if kind == "string" else True


def _any_of(value: Any, options: list[Schema], where: str) -> list[str]:
    results = [validate(value, option, where) for option in options]
    if any(not r for r in results):
        return []
    return min(results, key=len)


def _object(value: Any, schema: Schema, where: str, name: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__}, not an object"]
    moved = MOVED.get(name, frozenset())
    problems = [
        f"{where}: missing {key}"
        for key in schema.get("required", [])
        if key not in value and key not in moved
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if item is None and key in NOW_NULLABLE.get(name, ()):
            continue
        if key in properties:
            problems += validate(item, properties[key], f"{where}.{key}")
        elif isinstance(extra, dict) and key != "object":
            problems += validate(item, extra, f"{where}.{key}")
    return problems


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_served_objects_validate_against_stripes_schema(type_: str, populated: Store) -> None:
    objects = list(populated.live(type_))[:25]
    assert objects, f"no {type_} to validate"
    problems = sorted({p for obj in objects for p in validate(obj, {"$ref": type_}, type_)})
    assert problems == []


def test_deleted_stubs_validate_against_stripes_schema() -> None:
    store = Store(seed=7)
    populate_every_type(store)
    deletable = [
        t for t, r in sorted(REGISTRY.items()) if r.delete and f"deleted_{t}" in spec.schemas()
    ]
    assert {"customer", "product", "coupon", "account"} <= set(deletable)
    customer = next(store.live("customer"))["id"]
    # only drafts and pending items can be deleted: make fresh ones (and keep the customer)
    fresh = {
        "customer": lambda: store.create("customer", {"name": "leaving"})["id"],
        "product": lambda: store.create("product", {"name": "unpriced"})["id"],
        "invoice": lambda: store.create("invoice", {"customer": customer})["id"],
        "invoiceitem": lambda: store.create(
            "invoiceitem", {"customer": customer, "amount": "100", "currency": "usd"}
        )["id"],
    }
    for type_ in deletable:
        make = fresh.get(type_)
        victim = make() if make else next(store.live(type_))["id"]
        stub = store.delete(type_, victim)
        assert validate(stub, {"$ref": f"deleted_{type_}"}, f"deleted_{type_}") == []
        assert validate(store.retrieve(type_, victim), {"$ref": f"deleted_{type_}"}, "") == []
