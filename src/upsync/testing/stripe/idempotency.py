"""``Idempotency-Key``: a POST replayed with the same key gets the first response back."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from .errors import StripeError

__all__ = ["IdempotencyCache", "Saved"]

TTL = 24 * 3600
"""Stripe prunes keys after at least 24 hours."""


@dataclass(frozen=True)
class Saved:
    """A response kept for replay."""

    fingerprint: str
    status: int
    body: bytes
    created: int


class IdempotencyCache:
    """Responses by (API key, idempotency key); bounded, oldest dropped first."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._saved: OrderedDict[tuple[str, str], Saved] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    @staticmethod
    def fingerprint(method: str, path: str, params: object) -> str:
        blob = orjson.dumps([method, path, params], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()

    def lookup(self, scope: tuple[str, str], fingerprint: str, now: int) -> Saved | None:
        """The saved response, or ``None``; a key reused with other parameters is a 400."""
        with self._lock:
            saved = self._saved.get(scope)
            if saved is None or saved.created < now - TTL:
                return None
        if saved.fingerprint != fingerprint:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Try using a key other than "
                f"'{scope[1]}' if you meant to execute a different request.",
                type="idempotency_error",
            )
        return saved

    def save(self, scope: tuple[str, str], saved: Saved) -> None:
        with self._lock:
            self._saved[scope] = saved
            while len(self._saved) > self._capacity:
                self._saved.popitem(last=False)
