"""Webhook signatures in Stripe's scheme, checked before a single byte of the body is parsed.

Stripe signs ``f"{t}.{raw_body}"`` with HMAC-SHA256 under the endpoint's ``whsec_…`` secret and
sends ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=<hex>]``. Several ``v1`` values
appear while a rolled secret is still active; ``v0`` (test mode) is never valid. See
stripe-contract §3.

This is upsync's one implementation of the scheme: Stripe webhook intake verifies with it, and
managed webhook consumers sign their deliveries with it (``Upsync-Signature``, see
:mod:`upsync.engine.webhooks`), both with :data:`DEFAULT_TOLERANCE`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from upsync.errors import WebhookSignatureError

__all__ = ["DEFAULT_TOLERANCE", "sign", "verify"]

#: Seconds a signature stays acceptable, as Stripe's own libraries default to.
DEFAULT_TOLERANCE = 300


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload`` at ``timestamp``."""
    return f"t={timestamp},v1={_digest(payload, secret, timestamp)}"


def verify(
    payload: bytes,
    header: str | None,
    secrets: str | Iterable[str],
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
    header_name: str = "Stripe-Signature",
) -> int:
    """Check ``header`` against ``payload`` (the raw body) and return the signed timestamp.

    ``secrets`` may hold several secrets (rotation on our side); any ``v1`` matching any secret
    passes. Timestamps older than ``tolerance`` are refused to stop replays; so are ones further
    than ``tolerance`` in the future, which a correct sender never produces. Raises
    :class:`WebhookSignatureError` saying what was wrong, never echoing a secret; messages name
    the header as ``header_name``.
    """
    if not header:
        raise WebhookSignatureError(f"missing {header_name} header")
    timestamp, signatures = _parse(header, header_name)
    if abs(now - timestamp) > tolerance:
        age = "old" if timestamp < now else "far in the future"
        raise WebhookSignatureError(
            f"signature timestamp {timestamp} is too {age} (tolerance {tolerance}s)"
        )
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise WebhookSignatureError("no webhook signing secret is configured for this endpoint")
    for secret in keys:
        expected = _digest(payload, secret, timestamp)
        if any(hmac.compare_digest(expected, sig) for sig in signatures):
            return timestamp
    raise WebhookSignatureError("no v1 signature matches the payload for the configured secret")


def _parse(header: str, name: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureError(f"{name} has a non-integer timestamp") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError(f"{name} has no timestamp (t=…)")
    if not signatures:
        raise WebhookSignatureError(f"{name} has no v1 signature")
    return timestamp, signatures


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
