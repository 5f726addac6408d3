"""The request budget: pacing is exact and never exceeds the rate."""

from __future__ import annotations

import asyncio
import random

import pytest

from upsync import ConfigurationError
from upsync.sources.stripe.ratelimit import Pacer, RateLimiter


def test_pacer_spaces_starts_evenly() -> None:
    pacer = Pacer(rate=4)
    assert [pacer.reserve(now=10.0) for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert pacer.reserve(now=20.0) == 0.0  # an idle pacer does not bank a burst


def test_no_window_holds_more_than_its_budget(rng: random.Random) -> None:
    pacer = Pacer(rate=25)
    now, starts = 0.0, []
    for _ in range(2000):
        now += rng.choice([0.0, 0.0, 0.001, 0.03, 0.2])
        starts.append(now + pacer.reserve(now))
    for i, start in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < start + 1.0)
        assert in_window <= 25 + 1


def test_hold_off_delays_the_next_start() -> None:
    pacer = Pacer(rate=10)
    pacer.hold_off(now=0.0, seconds=2.0)
    assert pacer.reserve(now=0.5) == pytest.approx(1.5)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="above 0"):
        Pacer(rate=0)
    with pytest.raises(ConfigurationError, match="at least 1"):
        RateLimiter(5, max_concurrent=0)


async def test_limiter_uses_the_clock_it_is_given_and_caps_concurrency() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, max_concurrent=2, clock=lambda: now[0], sleep=fake_sleep)
    active = 0
    peak = 0

    async def request() -> None:
        nonlocal active, peak
        async with limiter.slot():
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0)
            active -= 1

    await asyncio.gather(*(request() for _ in range(6)))
    assert limiter.started == 6
    assert peak <= 2
    assert sum(slept) == pytest.approx(0.5)  # six starts at 10/s span half a second
