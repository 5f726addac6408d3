"""A request budget: at most ``rate`` requests per second and ``max_concurrent`` in flight.

:class:`Pacer` is the pure schedule (given the time, when may the next request start?);
:class:`RateLimiter` applies it on asyncio. Requests are spaced evenly (no bursts), so every
window of any length ``T`` holds at most ``rate * T + 1`` starts — the budget is never exceeded,
and a busy caller still uses all of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from upsync.errors import ConfigurationError

__all__ = ["Pacer", "RateLimiter"]


class Pacer:
    """Hands out start times spaced ``1 / rate`` apart."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = float("-inf")

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if not value > 0:
            raise ConfigurationError(f"a rate limit must be above 0 requests/s, got {value!r}")
        self._rate = float(value)

    def reserve(self, now: float) -> float:
        """Claim the next start slot; returns how long to wait from ``now`` until it."""
        start = max(now, self._next)
        self._next = start + 1.0 / self._rate
        return start - now

    def saturated(self, now: float) -> bool:
        """Whether start slots are already handed out past ``now`` (callers queue for budget)."""
        return self._next > now

    def hold_off(self, now: float, seconds: float) -> None:
        """Start nothing before ``now + seconds`` (after a 429 with ``Retry-After``)."""
        self._next = max(self._next, now + seconds)


class RateLimiter:
    """Paces requests on asyncio; use ``async with limiter.slot(): …`` around each request."""

    def __init__(
        self,
        rate: float,
        *,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_concurrent is not None and max_concurrent < 1:
            raise ConfigurationError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.pacer = Pacer(rate)
        self._clock = clock
        self._sleep = sleep
        self._inflight = asyncio.Semaphore(max_concurrent) if max_concurrent else None
        self.started = 0
        """requests started so far (for metrics and budget-use figures)"""

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a start slot (and a concurrency place), then run the request."""
        if self._inflight is not None:
            await self._inflight.acquire()
        try:
            wait = self.pacer.reserve(self._clock())
            if wait > 0:
                await self._sleep(wait)
            self.started += 1
            yield
        finally:
            if self._inflight is not None:
                self._inflight.release()

    def saturated(self) -> bool:
        """Whether the budget is the bottleneck now: more parallel work would only queue."""
        return self.pacer.saturated(self._clock())

    def hold_off(self, seconds: float) -> None:
        """Pause all new requests for ``seconds`` (the upstream asked us to back off)."""
        self.pacer.hold_off(self._clock(), seconds)
