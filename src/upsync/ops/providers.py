"""What upsync knows about each provider: its collections and the form of its keys.

Checked when a sync or consumer is created, so a typo is refused with a message naming the bad
value instead of failing later inside the engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from upsync.errors import ConfigurationError
from upsync.sources.stripe.collections import COLLECTIONS, collection

__all__ = [
    "PROVIDERS",
    "check_api_key",
    "check_collection_id",
    "check_provider",
    "check_webhook_secret",
    "collection_ids",
]

#: providers upsync can sync today
PROVIDERS: tuple[str, ...] = ("stripe",)

# Stripe secret and restricted keys: sk_/rk_, the mode, then letters, digits and underscores
# (real keys are alphanumeric; the stand-in's keys use underscores).
_STRIPE_KEY = re.compile(r"(?:sk|rk)_(?:test|live)_[A-Za-z0-9_]{3,}")
_STRIPE_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9_+/=]{3,}")


def check_provider(provider: str) -> str:
    """``provider`` if upsync can sync it, else :class:`ConfigurationError` naming it."""
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"provider: {provider!r} is not supported; supported: {', '.join(PROVIDERS)}"
        )
    return provider


def check_collection_id(collection_id: str) -> str:
    """The canonical id (``stripe:customer``) of a known collection; ``customer`` is accepted.

    An unknown name is refused with the closest known ones (``stripe:subscriptions`` →
    ``stripe:subscription``).
    """
    provider, sep, _ = collection_id.partition(":")
    if sep:
        check_provider(provider)
    try:
        return collection(collection_id).collection_id
    except ConfigurationError as e:
        name = collection_id.removeprefix("stripe:")
        close = [f"stripe:{n}" for n in COLLECTIONS if _similar(n, name)]
        if not close:
            raise
        raise ConfigurationError(
            f"unknown Stripe collection {collection_id!r}; did you mean {' or '.join(close)}?"
        ) from e


def _similar(known: str, given: str) -> bool:
    return known.rstrip("s") == given.rstrip("s") or known.replace("_", "") == given.replace(
        "_", ""
    )


def collection_ids(provider: str, names: Iterable[str]) -> list[str]:
    """Canonical, de-duplicated collection ids of ``provider``; at least one."""
    check_provider(provider)
    try:
        out = list(dict.fromkeys(check_collection_id(n) for n in names))
    except ConfigurationError as e:
        raise ConfigurationError(f"collection_ids: {e}") from None
    if not out:
        raise ConfigurationError("collection_ids: name at least one, e.g. stripe:customer")
    wrong = [c for c in out if not c.startswith(f"{provider}:")]
    if wrong:
        raise ConfigurationError(f"collection_ids: {wrong[0]!r} is not a {provider} collection")
    return out


def check_api_key(provider: str, key: str) -> str:
    """``key`` if it has the form of a ``provider`` secret key; the error never echoes it."""
    check_provider(provider)
    if _STRIPE_KEY.fullmatch(key):
        return key
    if key.startswith("pk_"):
        problem = "is a publishable key (pk_…); upsync needs a secret (sk_…) or restricted key"
    elif key.startswith(("sk_", "rk_")):
        problem = "looks truncated or contains characters Stripe keys do not have"
    else:
        problem = "does not look like a Stripe key (expected sk_test_…, sk_live_…, rk_…)"
    raise ConfigurationError(f"API key {problem}")


def check_webhook_secret(secret: str) -> str:
    """``secret`` if it has the form of a Stripe webhook signing secret (``whsec_…``)."""
    if _STRIPE_WEBHOOK_SECRET.fullmatch(secret):
        return secret
    raise ConfigurationError(
        "webhook secret does not look like a Stripe signing secret (expected whsec_…)"
    )
