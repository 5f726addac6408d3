"""Object ids with Stripe's prefixes and shapes (``cus_…``, ``sub_…``, ``cs_test_…``)."""

from __future__ import annotations

import random
import string

__all__ = ["IdFactory"]

_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits

# Stripe's older objects (customers, products) have 14-character suffixes, newer ones 24.
_SHORT = frozenset({"cus", "prod", "si", "seti_secret"})


class IdFactory:
    """Draws ids from a seeded generator, so a seeded data set always has the same ids."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def _chars(self, n: int, alphabet: str = _ALNUM) -> str:
        return "".join(self._rng.choices(alphabet, k=n))

    def new(self, prefix: str) -> str:
        """A fresh id: ``prefix`` + ``_`` + random characters (coupons: 8 uppercase)."""
        if prefix == "":
            return self._chars(8, _UPPER)
        if prefix == "cs":
            return "cs_test_" + self._chars(58)
        return f"{prefix}_{self._chars(14 if prefix in _SHORT else 24)}"

    def secret(self, prefix: str, n: int = 32) -> str:
        """A random secret-like token, e.g. ``whsec_…`` or a ``client_secret`` suffix."""
        return f"{prefix}{self._chars(n)}"
