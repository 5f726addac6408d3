"""Test-mode rate limiting and injectable faults (errors, latency, outages)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import StripeError

__all__ = ["Faults", "RateLimiter"]

RATE_LIMIT_MESSAGE = (
    "Too many requests hit the API too quickly. We recommend an exponential backoff of your "
    "requests."
)


@dataclass
class Faults:
    """What can go wrong, changeable while the stand-in runs (Python API or ``/_standin/faults``).

    Faults apply to Stripe API paths only, never to ``/_standin/…``.
    """

    rate_limit: float | None = 25.0
    """requests per second over all API paths (test mode's 25/s); ``None`` turns it off"""
    rate_limit_should_retry: bool | None = None
    """``Stripe-Should-Retry`` on 429s: ``None`` omits it (Stripe's plain rate limit)"""
    retry_after: int | None = None
    """``Retry-After`` seconds on 429s and injected 5xx (Stripe does not document one)"""
    error_rate: float = 0.0
    """fraction of API requests answered 500 ``api_error`` with ``Stripe-Should-Retry: true``"""
    lock_timeout_rate: float = 0.0
    """fraction answered 429 ``lock_timeout`` with ``Stripe-Should-Retry: true``"""
    latency: float = 0.0
    """seconds added before each API response"""
    outage: bool = False
    """every API request answers 503 (a full outage)"""
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def configure(self, **changes: Any) -> None:
        """Change some settings at once, e.g. ``faults.configure(error_rate=0.2)``."""
        names = self.settings().keys()
        unknown = set(changes) - set(names)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def settings(self) -> dict[str, Any]:
        """The current settings as a JSON-friendly dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if not k.startswith("_")}

    def draw(self) -> StripeError | None:
        """The injected error for this request, if any (outage, 5xx, lock timeout)."""
        with self._lock:
            roll = self._rng.random()
            outage, error_rate, lock_rate = self.outage, self.error_rate, self.lock_timeout_rate
        retry = {"Stripe-Should-Retry": "true", **self._retry_after()}
        if outage:
            return StripeError(
                503, "The stand-in is in a simulated outage.", type="api_error", headers=retry
            )
        if roll < error_rate:
            return StripeError(500, "An unknown error occurred", type="api_error", headers=retry)
        if roll < error_rate + lock_rate:
            return StripeError(
                429,
                "This object cannot be accessed right now because another API request or Stripe "
                "process is currently accessing it.",
                code="lock_timeout",
                headers=retry,
            )
        return None

    def rate_limited(self) -> StripeError:
        headers = self._retry_after()
        if self.rate_limit_should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if self.rate_limit_should_retry else "false"
        return StripeError(429, RATE_LIMIT_MESSAGE, code="rate_limit", headers=headers)

    def _retry_after(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class RateLimiter:
    """A token bucket refilled at ``faults.rate_limit`` per second, holding one second's worth."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._lock = threading.Lock()
        self._tokens = faults.rate_limit or 0.0
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """Spend a token; ``False`` means the request is over the limit."""
        rate = self._faults.rate_limit
        if rate is None:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(rate, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
