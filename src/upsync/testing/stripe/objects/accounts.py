"""Accounts: the platform account behind the API key (``GET /v1/account``) and Connect
accounts (``/v1/accounts``, selected per request with the ``Stripe-Account`` header).

The platform account is not stored: it is rendered from the store's id and creation time, so
it never appears in ``/v1/accounts`` (Stripe lists only connected accounts there). Connected
accounts are stored objects; the stand-in keeps one data set, so a request made on behalf of
a connected account sees the same objects as the platform (only ``/v1/account`` differs).
"""

from __future__ import annotations

from typing import Any

from ..errors import StripeError, invalid_request
from ..formdata import Params
from ..resource import Resource
from ..store import Store
from .common import ADDRESS_NULL, base

__all__ = ["RESOURCES", "account_for", "check_account_header"]

_TYPES = ("standard", "express", "custom")


def account_for(store: Store, stripe_account: str | None) -> dict[str, Any]:
    """``GET /v1/account``: the platform account, or the connected one the header names."""
    if stripe_account is None or stripe_account == store.account_id:
        return platform_account(store)
    check_account_header(store, stripe_account)
    return store.retrieve("account", stripe_account)


def check_account_header(store: Store, stripe_account: str) -> None:
    """A ``Stripe-Account`` header must name the platform or a live connected account.

    Raises:
        StripeError: 403 ``account_invalid``, worded as Stripe words it.
    """
    if stripe_account == store.account_id:
        return
    entry = store.find(stripe_account)
    if entry is None or entry.type != "account" or entry.deleted:
        raise StripeError(
            403,
            f"The provided key does not have access to account '{stripe_account}' (or that "
            "account does not exist). Application access may have been revoked.",
            code="account_invalid",
        )


def platform_account(store: Store) -> dict[str, Any]:
    """The account the stand-in's API keys belong to (a fully onboarded standard account)."""
    obj = _shape(store.account_id, store.account_created, "standard", "owner@example.com")
    obj["business_profile"]["name"] = "upsync stand-in"
    obj["settings"]["dashboard"]["display_name"] = "upsync stand-in"
    return obj


def connected_account(store: Store, params: Params) -> dict[str, Any]:
    """``POST /v1/accounts``: a connected account (``type`` or ``controller`` optional)."""
    kind = params.string("type") or "custom"
    if kind not in _TYPES:
        raise invalid_request(f"Invalid type: must be one of {', '.join(_TYPES)}", param="type")
    draft = base(store, "account", params)
    obj = _shape(draft["id"], draft["created"], kind, params.string("email"))
    obj.update(metadata=draft["metadata"], country=params.string("country") or "US")
    store.insert("account", obj, event=None)
    return obj


def _delete(store: Store, oid: str) -> dict[str, Any]:
    return store.remove("account", oid, event=None)


def _shape(oid: str, created: int, kind: str, email: str | None) -> dict[str, Any]:
    return {
        "id": oid,
        "object": "account",
        "business_profile": _business_profile(),
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "application" if kind != "standard" else "account"},
        "country": "US",
        "created": created,
        "default_currency": "usd",
        "details_submitted": True,
        "email": email,
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/accounts/{oid}/external_accounts",
        },
        "future_requirements": _requirements(),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": _requirements(),
        "settings": _settings(),
        "tos_acceptance": {"date": created, "ip": "127.0.0.1", "user_agent": None},
        "type": kind,
    }


def _business_profile() -> dict[str, Any]:
    return {
        "annual_revenue": None,
        "estimated_worker_count": None,
        "mcc": "5734",
        "minority_owned_business_designation": None,
        "name": None,
        "product_description": None,
        "support_address": dict(ADDRESS_NULL),
        "support_email": None,
        "support_phone": None,
        "support_url": None,
        "url": None,
    }


def _requirements() -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }


def _settings() -> dict[str, Any]:
    descriptors = dict.fromkeys(
        (
            "statement_descriptor",
            "statement_descriptor_kana",
            "statement_descriptor_kanji",
            "statement_descriptor_prefix_kana",
            "statement_descriptor_prefix_kanji",
        )
    )
    return {
        "bacs_debit_payments": {"display_name": None, "service_user_number": None},
        "branding": dict.fromkeys(("icon", "logo", "primary_color", "secondary_color")),
        "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
        "card_payments": {
            "decline_on": {"avs_failure": True, "cvc_failure": True},
            "statement_descriptor_prefix": None,
            "statement_descriptor_prefix_kana": None,
            "statement_descriptor_prefix_kanji": None,
        },
        "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
        "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": None},
        "payments": descriptors,
        "payouts": {
            "debit_negative_balances": True,
            "schedule": {"delay_days": 2, "interval": "daily"},
            "statement_descriptor": None,
        },
        "sepa_debit_payments": {},
    }


RESOURCES = (
    Resource(
        "account",
        "accounts",
        "acct",
        events="account",
        create=connected_account,
        updatable={"email": "str", "metadata": "metadata"},
        delete=_delete,
    ),
)
