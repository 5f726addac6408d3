"""Growing, jittered pauses between retries: upsync's one backoff formula.

Every retry loop in upsync waits :meth:`Backoff.delay` after its n-th consecutive failure:
``min(max_s, base_s * 2**(n-1))``, less a random ``jitter`` fraction of it (so many loops
do not retry in step). The engine's loops (:mod:`upsync.engine.supervision`), webhook
deliveries (:class:`upsync.engine.webhooks.RetryPolicy`, which adds a give-up horizon) and
Stripe requests (:class:`upsync.sources.stripe.retry.RetryPolicy`, which adds which answers
are worth retrying) all use it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter (see the module doc)."""

    base_s: float = 0.2
    """the first pause, in seconds"""
    max_s: float = 30.0
    """no pause is longer than this"""
    jitter: float = 0.5
    """the largest fraction of a pause taken off at random"""

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (counted from 1)."""
        full = min(self.max_s, self.base_s * 2.0 ** max(0, min(failures - 1, 60)))
        return full * (1.0 - self.jitter * (rng or random).random())
