"""Keeping secrets out of logs, errors and API responses (invariant 10)."""

from __future__ import annotations

import re

__all__ = ["MASK", "mask", "redact"]

#: What a secret looks like wherever upsync shows it.
MASK = "****"

# Stripe secret/restricted keys, webhook secrets, upsync bearer tokens, and DSN passwords.
_SECRET_RE = re.compile(
    r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+"
    r"|\bwhsec_[A-Za-z0-9+/=]+"
    r"|\bupsync_(?:tok|whk)_[A-Za-z0-9_\-]+"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-+/=]{8,}"
)
_DSN_PASSWORD_RE = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]+(?=@)")
_KV_PASSWORD_RE = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace anything that looks like a secret in ``text`` by ``****``."""
    text = _SECRET_RE.sub(MASK, text)
    text = _DSN_PASSWORD_RE.sub(lambda m: m["head"] + MASK, text)
    return _KV_PASSWORD_RE.sub(lambda m: m["head"] + MASK, text)


def mask(secret: str | None) -> str | None:
    """How a stored secret is shown in API responses and status output."""
    return None if secret is None else MASK
