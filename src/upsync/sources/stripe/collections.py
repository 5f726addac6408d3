"""The Stripe collections upsync syncs: where to list them, which events touch them, how they
are deleted, and the typed columns a table for them usually wants.

Subscription items are not a collection of their own: Stripe cannot list them without a
``subscription`` filter, and every subscription snapshot carries all of its items (truncated
embedded lists are completed, see :mod:`upsync.sources.stripe.listing`).

Pure data. Facts come from stripe-contract §1–§5: lists are newest first; subscriptions hide
canceled ones unless ``status=all``; only some objects can be deleted (the rest are canceled,
voided or archived and stay listed); embedded lists (``items``, ``lines``) hold at most 10 entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from upsync.errors import ConfigurationError
from upsync.sources.stripe.ids import path_segment

__all__ = ["COLLECTIONS", "StripeCollection", "TypedField", "collection", "for_object_type"]


@dataclass(frozen=True)
class TypedField:
    """A column worth lifting out of ``data``: its name, Postgres type and source path."""

    column: str
    pg_type: str
    source: str


@dataclass(frozen=True)
class StripeCollection:
    """One Stripe object type as a syncable collection (``stripe:<name>``)."""

    name: str
    list_path: str
    table: str
    list_params: Mapping[str, str] = field(default_factory=dict)
    deletable: bool = False
    """``*.deleted`` events remove it for good (a tombstone), rather than cancel it"""
    nested_lists: tuple[str, ...] = ()
    """embedded lists that may be truncated (``has_more``) and must be paged by their ``url``"""
    fields: tuple[TypedField, ...] = ()

    @property
    def collection_id(self) -> str:
        """``stripe:<name>``."""
        return f"stripe:{self.name}"

    @property
    def object_type(self) -> str:
        """The ``object`` value Stripe puts in this collection's objects."""
        return self.name

    def retrieve_path(self, object_id: str) -> str:
        """The path that returns one object; raises :class:`InvalidObjectId` for a non-id."""
        return f"{self.list_path}/{path_segment(object_id)}"


def _f(column: str, pg_type: str, source: str | None = None) -> TypedField:
    return TypedField(column, pg_type, source or f"data.{column}")


_AMOUNT = (_f("amount", "bigint"), _f("currency", "text"), _f("status", "text"))
_CUSTOMER_REF = (_f("customer_id", "text", "data.customer"),)
_CREATED = (_f("created", "bigint"), _f("livemode", "boolean"), _f("metadata", "jsonb"))
# a few objects lack livemode/metadata (or created) in Stripe's own fixtures
_CREATED_ONLY = (_f("created", "bigint"),)

COLLECTIONS: Mapping[str, StripeCollection] = {
    c.name: c
    for c in (
        StripeCollection(
            "customer",
            "/v1/customers",
            "customers",
            deletable=True,
            fields=(
                _f("email", "text"),
                _f("name", "text"),
                _f("phone", "text"),
                _f("currency", "text"),
                _f("balance", "bigint"),
                _f("delinquent", "boolean"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "subscription",
            "/v1/subscriptions",
            "subscriptions",
            list_params={"status": "all"},
            nested_lists=("items",),
            fields=(
                *_CUSTOMER_REF,
                _f("status", "text"),
                _f("plan_id", "text", "data.items.data[0].price.id"),
                _f("quantity", "bigint", "data.items.data[0].quantity"),
                _f("cancel_at_period_end", "boolean"),
                _f("canceled_at", "bigint"),
                _f("collection_method", "text"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "invoice",
            "/v1/invoices",
            "invoices",
            deletable=True,  # drafts can be deleted; others are voided and stay listed
            nested_lists=("lines",),
            fields=(
                *_CUSTOMER_REF,
                _f("status", "text"),
                _f("amount_due", "bigint"),
                _f("amount_paid", "bigint"),
                _f("total", "bigint"),
                _f("currency", "text"),
                _f("number", "text"),
                _f("subscription_id", "text", "data.parent.subscription_details.subscription"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "invoiceitem",
            "/v1/invoiceitems",
            "invoice_items",
            deletable=True,
            fields=(
                *_CUSTOMER_REF,
                _f("amount", "bigint"),
                _f("currency", "text"),
                _f("date", "bigint"),
                _f("livemode", "boolean"),
                _f("metadata", "jsonb"),
            ),
        ),
        StripeCollection(
            "charge",
            "/v1/charges",
            "charges",
            fields=(
                *_CUSTOMER_REF,
                *_AMOUNT,
                _f("amount_refunded", "bigint"),
                _f("paid", "boolean"),
                _f("refunded", "boolean"),
                _f("payment_intent_id", "text", "data.payment_intent"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "payment_intent",
            "/v1/payment_intents",
            "payment_intents",
            fields=(*_CUSTOMER_REF, *_AMOUNT, _f("amount_received", "bigint"), *_CREATED),
        ),
        StripeCollection(
            "payment_method",
            "/v1/payment_methods",
            "payment_methods",
            fields=(*_CUSTOMER_REF, _f("type", "text"), *_CREATED),
        ),
        StripeCollection(
            "setup_intent",
            "/v1/setup_intents",
            "setup_intents",
            fields=(*_CUSTOMER_REF, _f("status", "text"), *_CREATED),
        ),
        StripeCollection(
            "refund",
            "/v1/refunds",
            "refunds",
            fields=(
                *_AMOUNT,
                _f("charge_id", "text", "data.charge"),
                *_CREATED_ONLY,
                _f("metadata", "jsonb"),
            ),
        ),
        StripeCollection(
            "dispute",
            "/v1/disputes",
            "disputes",
            fields=(
                *_AMOUNT,
                _f("charge_id", "text", "data.charge"),
                _f("reason", "text"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "product",
            "/v1/products",
            "products",
            deletable=True,
            fields=(
                _f("name", "text"),
                _f("active", "boolean"),
                _f("description", "text"),
                _f("default_price_id", "text", "data.default_price"),
                _f("updated", "bigint"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "price",
            "/v1/prices",
            "prices",
            deletable=True,
            fields=(
                _f("product_id", "text", "data.product"),
                _f("active", "boolean"),
                _f("currency", "text"),
                _f("unit_amount", "bigint"),
                _f("type", "text"),
                _f("interval", "text", "data.recurring.interval"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "plan",
            "/v1/plans",
            "plans",
            deletable=True,
            fields=(
                _f("amount", "bigint"),
                _f("currency", "text"),
                _f("interval", "text"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "coupon",
            "/v1/coupons",
            "coupons",
            deletable=True,
            fields=(_f("percent_off", "numeric"), _f("amount_off", "bigint"), *_CREATED),
        ),
        StripeCollection(
            "tax_rate",
            "/v1/tax_rates",
            "tax_rates",
            fields=(_f("percentage", "numeric"), _f("active", "boolean"), *_CREATED),
        ),
        StripeCollection(
            "payout",
            "/v1/payouts",
            "payouts",
            fields=(*_AMOUNT, _f("arrival_date", "bigint"), *_CREATED),
        ),
        StripeCollection(
            "balance_transaction",
            "/v1/balance_transactions",
            "balance_transactions",
            fields=(
                *_AMOUNT,
                _f("fee", "bigint"),
                _f("net", "bigint"),
                _f("type", "text"),
                *_CREATED_ONLY,
            ),
        ),
        StripeCollection(
            "checkout.session",
            "/v1/checkout/sessions",
            "checkout_sessions",
            fields=(
                *_CUSTOMER_REF,
                _f("status", "text"),
                _f("payment_status", "text"),
                _f("amount_total", "bigint"),
                *_CREATED,
            ),
        ),
        StripeCollection(
            "credit_note",
            "/v1/credit_notes",
            "credit_notes",
            fields=(
                *_CUSTOMER_REF,
                _f("invoice_id", "text", "data.invoice"),
                _f("total", "bigint"),
                _f("status", "text"),
                *_CREATED,
            ),
        ),
    )
}

_BY_OBJECT_TYPE = {c.object_type: c for c in COLLECTIONS.values()}


def collection(collection_id: str) -> StripeCollection:
    """The collection named ``"stripe:customer"`` or ``"customer"``; unknown names are refused."""
    name = collection_id.removeprefix("stripe:")
    try:
        return COLLECTIONS[name]
    except KeyError:
        known = ", ".join(f"stripe:{n}" for n in sorted(COLLECTIONS))
        raise ConfigurationError(
            f"unknown Stripe collection {collection_id!r}; known: {known}"
        ) from None


def for_object_type(object_type: str) -> StripeCollection | None:
    """The collection whose objects carry ``object: <object_type>``, if upsync syncs it."""
    return _BY_OBJECT_TYPE.get(object_type)
