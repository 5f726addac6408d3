"""upsync's one backoff formula, and the retry policies built on it."""

from __future__ import annotations

import random

from upsync.backoff import Backoff
from upsync.engine.webhooks import RetryPolicy as DeliveryRetry
from upsync.sources.stripe.retry import RetryPolicy as RequestRetry


def test_pauses_double_up_to_the_cap_less_at_most_the_jitter() -> None:
    rng = random.Random(4)
    backoff = Backoff(base_s=1, max_s=60, jitter=0.5)
    for failures, full in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (10_000, 60)]:
        assert full / 2 <= backoff.delay(failures, rng) <= full


def test_delivery_and_request_retries_wait_what_the_one_formula_says() -> None:
    delivery = DeliveryRetry(base_s=1, max_s=60)
    assert isinstance(delivery, Backoff) and delivery.horizon_s == 24 * 3600
    for n in (1, 4, 9):
        assert delivery.delay(n, random.Random(n)) == Backoff(1, 60).delay(n, random.Random(n))
        request = RequestRetry(base=0.5, cap=4.0, max_attempts=20)
        expected = Backoff(0.5, 4.0).delay(n, random.Random(n))
        assert request.delay(n, 503, {}, random.Random(n)) == expected
