"""Signing and verifying deliveries: ``Upsync-Signature``, in Stripe's scheme."""

from __future__ import annotations

from upsync.sources.stripe import signature

SIGNATURE_HEADER = "Upsync-Signature"
#: Seconds a signature stays acceptable to :func:`verify_signature` by default (Stripe's).
DEFAULT_TOLERANCE = signature.DEFAULT_TOLERANCE


def sign_payload(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Upsync-Signature`` header value for ``body`` sent at ``timestamp``."""
    return signature.sign(body, secret, timestamp)


def verify_signature(
    body: bytes, header: str | None, secret: str, now: float, *, tolerance: int = DEFAULT_TOLERANCE
) -> int:
    """Check an ``Upsync-Signature`` header against the raw request body; returns its timestamp.

    Stripe's scheme (:mod:`upsync.sources.stripe.signature`). Raises
    :class:`~upsync.errors.WebhookSignatureError` (never echoing the secret) when the header is
    missing or malformed, its timestamp is more than ``tolerance`` seconds away from ``now``
    (a replay), or no ``v1`` signature matches.

    Example::

        from upsync.engine.webhooks import verify_signature
        verify_signature(await request.body(), request.headers.get("upsync-signature"),
                         secret, now=time.time())
    """
    return signature.verify(
        body, header, secret, now=now, tolerance=tolerance, header_name=SIGNATURE_HEADER
    )
