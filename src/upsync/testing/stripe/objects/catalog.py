"""Products, prices, plans, coupons and tax rates."""

from __future__ import annotations

from typing import Any

from ..errors import invalid_request
from ..formdata import Params
from ..resource import Filter, Resource
from ..store import Store
from .common import apply_updates, base, ref

_PRODUCT_FIELDS = {
    "active": "bool",
    "description": "str",
    "images": "list",
    "name": "str",
    "shippable": "bool",
    "statement_descriptor": "str",
    "tax_code": "str",
    "unit_label": "str",
    "url": "str",
    "metadata": "metadata",
}


def product(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "product", params)
    custom_id = params.string("id")
    if custom_id:
        obj["id"] = custom_id
    obj.update(
        active=True,
        default_price=None,
        description=None,
        images=[],
        marketing_features=[],
        name=params.req_str("name"),
        package_dimensions=None,
        shippable=None,
        statement_descriptor=None,
        tax_code=None,
        type="service",
        unit_label=None,
        updated=obj["created"],
        url=None,
    )
    apply_updates(obj, params, _PRODUCT_FIELDS)
    store.insert("product", obj)
    return obj


def update_product(store: Store, obj: dict[str, Any], params: Params) -> None:
    apply_updates(obj, params, _PRODUCT_FIELDS)
    default_price = ref(store, "price", params, "default_price")
    if default_price is not None:
        obj["default_price"] = default_price
    obj["updated"] = store.now()


def delete_product(store: Store, oid: str) -> dict[str, Any]:
    """Stripe only deletes products without prices."""
    store.get("product", oid)
    if len(store.children("price", "product", oid)):
        raise invalid_request(
            "This product cannot be deleted because it has one or more user-created prices.",
            param="id",
        )
    return store.remove("product", oid)


def _recurring(params: Params) -> dict[str, Any] | None:
    if "recurring" not in params:
        return None
    rec = params.hash("recurring")
    interval = rec.req_str("interval")
    if interval not in ("day", "week", "month", "year"):
        raise invalid_request(f"Invalid recurring[interval]: {interval}", rec.name("interval"))
    return {
        "interval": interval,
        "interval_count": rec.integer("interval_count", 1),
        "meter": None,
        "trial_period_days": rec.integer("trial_period_days"),
        "usage_type": rec.string("usage_type") or "licensed",
    }


def price(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "price", params)
    amount = params.integer("unit_amount")
    recurring = _recurring(params)
    obj.update(
        active=params.boolean("active", True),
        billing_scheme=params.string("billing_scheme") or "per_unit",
        currency=params.req_str("currency").lower(),
        custom_unit_amount=None,
        lookup_key=params.string("lookup_key"),
        nickname=params.string("nickname"),
        product=_price_product(store, params),
        recurring=recurring,
        tax_behavior=params.string("tax_behavior") or "unspecified",
        tiers_mode=None,
        transform_quantity=None,
        type="recurring" if recurring else "one_time",
        unit_amount=amount,
        unit_amount_decimal=None if amount is None else str(amount),
    )
    store.insert("price", obj)
    return obj


def _price_product(store: Store, params: Params) -> str:
    if "product_data" in params:
        data = params.hash("product_data")
        return str(product(store, Params({"name": data.req_str("name")}))["id"])
    oid = ref(store, "product", params, "product", required=True)
    assert oid is not None
    return oid


def plan(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "plan", params)
    custom_id = params.string("id")
    if custom_id:
        obj["id"] = custom_id
    amount = params.integer("amount")
    interval = params.req_str("interval")
    obj.update(
        active=params.boolean("active", True),
        amount=amount,
        amount_decimal=None if amount is None else str(amount),
        billing_scheme="per_unit",
        currency=params.req_str("currency").lower(),
        interval=interval,
        interval_count=params.integer("interval_count", 1),
        meter=None,
        nickname=params.string("nickname"),
        product=_price_product(store, params),
        tiers_mode=None,
        transform_usage=None,
        trial_period_days=params.integer("trial_period_days"),
        usage_type=params.string("usage_type") or "licensed",
    )
    store.insert("plan", obj)
    return obj


def coupon(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "coupon", params)
    obj["id"] = params.string("id") or obj["id"]
    percent, amount = params.number("percent_off"), params.integer("amount_off")
    if (percent is None) == (amount is None):
        raise invalid_request("You must pass exactly one of percent_off or amount_off.")
    obj.update(
        amount_off=amount,
        currency=params.string("currency"),
        duration=params.string("duration") or "once",
        duration_in_months=params.integer("duration_in_months"),
        max_redemptions=params.integer("max_redemptions"),
        name=params.string("name"),
        percent_off=percent,
        redeem_by=params.integer("redeem_by"),
        times_redeemed=0,
        valid=True,
    )
    store.insert("coupon", obj)
    return obj


def tax_rate(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "tax_rate", params)
    percentage = params.number("percentage")
    if percentage is None:
        raise invalid_request("Missing required param: percentage.", "percentage")
    obj.update(
        active=params.boolean("active", True),
        country=params.string("country"),
        description=params.string("description"),
        display_name=params.req_str("display_name"),
        effective_percentage=percentage,
        flat_amount=None,
        inclusive=bool(params.boolean("inclusive", False)),
        jurisdiction=params.string("jurisdiction"),
        jurisdiction_level=None,
        percentage=percentage,
        rate_type="percentage",
        state=params.string("state"),
        tax_type=params.string("tax_type"),
    )
    store.insert("tax_rate", obj)
    return obj


RESOURCES = (
    Resource(
        "product",
        "products",
        "prod",
        events="product",
        create=product,
        update=update_product,
        delete=delete_product,
        filters=(
            Filter("active", "active", "bool"),
            Filter("shippable", "shippable", "bool"),
            Filter("ids", "id", "in"),
        ),
    ),
    Resource(
        "price",
        "prices",
        "price",
        events="price",
        create=price,
        updatable={
            "active": "bool",
            "nickname": "str",
            "lookup_key": "str",
            "tax_behavior": "str",
            "metadata": "metadata",
        },
        filters=(
            Filter("active", "active", "bool"),
            Filter("product", "product"),
            Filter("currency", "currency"),
            Filter("type", "type"),
            Filter("lookup_keys", "lookup_key", "in"),
        ),
        parents=("product",),
    ),
    Resource(
        "plan",
        "plans",
        "price",
        events="plan",
        create=plan,
        updatable={"active": "bool", "nickname": "str", "metadata": "metadata"},
        delete=lambda store, oid: store.remove("plan", oid),
        filters=(Filter("active", "active", "bool"), Filter("product", "product")),
    ),
    Resource(
        "coupon",
        "coupons",
        "",
        events="coupon",
        create=coupon,
        updatable={"name": "str", "metadata": "metadata"},
        delete=lambda store, oid: store.remove("coupon", oid),
    ),
    Resource(
        "tax_rate",
        "tax_rates",
        "txr",
        events="tax_rate",
        create=tax_rate,
        updatable={
            "active": "bool",
            "country": "str",
            "description": "str",
            "display_name": "str",
            "jurisdiction": "str",
            "state": "str",
            "tax_type": "str",
            "metadata": "metadata",
        },
        filters=(Filter("active", "active", "bool"), Filter("inclusive", "inclusive", "bool")),
    ),
)
