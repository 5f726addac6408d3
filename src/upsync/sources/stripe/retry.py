"""When to retry a Stripe request, and after how long. Pure: no clock, no I/O.

Stripe's own SDK does not retry a plain 429 and ignores ``Retry-After`` (stripe-contract §1.7);
a sync engine must, because a backfill is expected to run into the rate limit. Rules, in order:
a 429 always retries (a rate limit is about timing); otherwise ``Stripe-Should-Retry: false``
never retries and ``true`` always does; without the header 409, 5xx and network failures (no
status) retry and other statuses do not. The delay honours
``Retry-After`` when given (capped), else upsync's one backoff formula
(:class:`upsync.backoff.Backoff`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from upsync.backoff import Backoff

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded, jittered exponential backoff for upstream requests."""

    base: float = 0.5
    """first delay in seconds"""
    cap: float = 30.0
    """no single delay exceeds this"""
    max_attempts: int = 8
    """attempts in all, the first one included"""

    def delay(
        self,
        attempt: int,
        status: int | None,
        headers: Mapping[str, str],
        rnd: random.Random,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up now.

        ``attempt`` counts from 1; ``status`` is ``None`` for a network failure; ``headers``
        must be case-insensitive (httpx's are) or lower-cased.
        """
        if attempt >= self.max_attempts or not self.retryable(status, headers):
            return None
        retry_after = _seconds(headers.get("retry-after"))
        if retry_after is not None:
            return min(retry_after, self.cap)
        return Backoff(self.base, self.cap).delay(attempt, rnd)

    @staticmethod
    def retryable(status: int | None, headers: Mapping[str, str]) -> bool:
        """Whether a response with this status and these headers is worth another try."""
        if status == 429:
            # a rate limit is about timing, never about the request: always worth a later try
            # (honouring "false" here let a poll needing more reads than one second's budget
            # fail forever — found by the upstream fault suite)
            return True
        advice = (headers.get("stripe-should-retry") or "").lower()
        if advice in ("true", "false"):
            return advice == "true"
        return status is None or status in (409, 429) or status >= 500


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date; Stripe does not send those, so backoff applies
    return max(seconds, 0.0)
