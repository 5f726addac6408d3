"""API keys as Stripe reads them: ``Bearer sk_test_…`` or basic auth with the key as user."""

from __future__ import annotations

import base64
import binascii

from .errors import StripeError

__all__ = ["api_key_from"]

TEST_PREFIXES = ("sk_test_", "rk_test_")

_MISSING = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
)


def api_key_from(authorization: str | None, accepted: frozenset[str] | None = None) -> str:
    """The test-mode API key of a request; anything else is a 401 (the key is never echoed).

    ``accepted`` limits keys to a set; by default every ``sk_test_``/``rk_test_`` key works.
    """
    if not authorization:
        raise _unauthorized(_MISSING)
    scheme, _, value = authorization.strip().partition(" ")
    key = value.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("Invalid API Key provided.") from None
    elif scheme.lower() != "bearer":
        raise _unauthorized(_MISSING)
    if not key.startswith(TEST_PREFIXES) or len(key) <= len("sk_test_"):
        raise _unauthorized(f"Invalid API Key provided: {_mask(key)}")
    if accepted is not None and key not in accepted:
        raise _unauthorized(f"Invalid API Key provided: {_mask(key)}")
    return key


def _mask(key: str) -> str:
    prefix = key[:8] if key[:3] in ("sk_", "rk_", "pk_") else ""
    return f"{prefix}****"


def _unauthorized(message: str) -> StripeError:
    return StripeError(401, message, headers={"WWW-Authenticate": 'Basic realm="Stripe"'})
