"""Retry decisions for upstream responses."""

from __future__ import annotations

import random

import pytest

from upsync.sources.stripe.retry import RetryPolicy


@pytest.mark.parametrize(
    ("status", "headers", "retry"),
    [
        pytest.param(429, {}, True, id="429"),
        pytest.param(500, {}, True, id="500"),
        pytest.param(503, {}, True, id="503"),
        pytest.param(409, {}, True, id="409-conflict"),
        pytest.param(None, {}, True, id="network-failure"),
        pytest.param(400, {}, False, id="400"),
        pytest.param(401, {}, False, id="401"),
        pytest.param(404, {}, False, id="404"),
        pytest.param(500, {"stripe-should-retry": "false"}, False, id="told-not-to"),
        pytest.param(429, {"stripe-should-retry": "false"}, True, id="rate-limit-always-later"),
        pytest.param(400, {"stripe-should-retry": "true"}, True, id="told-to"),
    ],
)
def test_retryable(status: int | None, headers: dict[str, str], retry: bool) -> None:
    assert RetryPolicy.retryable(status, headers) is retry


def test_backoff_grows_with_jitter_and_stays_bounded(rng: random.Random) -> None:
    policy = RetryPolicy(base=0.5, cap=4.0, max_attempts=10)
    for attempt in range(1, 10):
        delay = policy.delay(attempt, 503, {}, rng)
        assert delay is not None
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_is_honoured_but_capped(rng: random.Random) -> None:
    policy = RetryPolicy(cap=10.0)
    assert policy.delay(1, 429, {"retry-after": "3"}, rng) == 3.0
    assert policy.delay(1, 429, {"retry-after": "3600"}, rng) == 10.0


def test_gives_up_after_max_attempts_or_on_terminal_status(rng: random.Random) -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(2, 500, {}, rng) is not None
    assert policy.delay(3, 500, {}, rng) is None
    assert policy.delay(1, 404, {}, rng) is None
