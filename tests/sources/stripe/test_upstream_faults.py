"""Upstream faults: whatever Stripe does wrong, the stream ends equal to Stripe's state.

Each scenario injects one kind of trouble through the stand-in (rate-limit storms, 5xx, added
latency, a full outage while following events, events that show up late, a late webhook carrying
an older payload), lets the source work through it, and then compares the stream with what
Stripe (the stand-in) holds, object by object. Prints one figures line for the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import orjson
import pytest

from tests.sources.stripe.conftest import Upstream, Wired
from tests.sources.stripe.test_source import assert_stream_equals_upstream, seed_account
from upsync.errors import UpsyncError
from upsync.sources.stripe.retry import RetryPolicy
from upsync.sources.stripe.signature import sign
from upsync.sources.stripe.source import StripeSource

FAST = RetryPolicy(base=0.05, cap=0.5, max_attempts=60)
#: rounds of changes made and caught up under each fault (1 in CI; the long form sets more)
ROUNDS = int(os.environ.get("UPSYNC_FAULT_ROUNDS", "1"))


@dataclass
class Tally:
    scenarios: int = 0
    requests: int = 0
    errors_ridden_out: int = 0


TALLY = Tally()


def _source(wired: Wired, **options: object) -> StripeSource:
    # a budget 2.5 times over the 8 req/s the storm scenarios allow: a real 429 storm
    source = wired.make_source(rate=options.pop("rate", 20), **options)
    source.http.retry = FAST
    return source


@contextlib.contextmanager
def _faulty(up: Upstream, faults: dict[str, object]) -> Iterator[None]:
    """Faults only while upsync talks to Stripe; the test's own calls see a healthy Stripe."""
    up.standin.faults.configure(**faults)
    try:
        yield
    finally:
        up.standin.faults.configure(**{k: _HEALTHY[k] for k in faults if k != "seed"})


_HEALTHY: dict[str, object] = {
    "rate_limit": None,
    "rate_limit_should_retry": None,
    "error_rate": 0.0,
    "lock_timeout_rate": 0.0,
    "latency": 0.0,
    "outage": False,
}


async def _backfill(wired: Wired, up: Upstream, faults: dict[str, object]) -> StripeSource:
    """Backfill as the engine does: a source that gives up is started again (it resumes)."""
    for _ in range(50):
        source = _source(wired)
        try:
            with _faulty(up, faults):
                await source.start()
                await source.backfill()
            return source
        except UpsyncError:
            TALLY.errors_ridden_out += 1
            await asyncio.sleep(0.2)  # the sync runner's restart backoff, not synchronisation
    raise AssertionError("the backfill never got through")


async def _follow(
    source: StripeSource,
    until: Callable[[], Awaitable[bool]],
    up: Upstream,
    faults: dict[str, object],
    within: float = 30,
) -> None:
    """Poll as the engine does (errors reported, not raised) until ``until`` holds."""
    deadline = time.monotonic() + within
    while not await until():
        try:
            with _faulty(up, faults):
                await source.poll_once()
        except UpsyncError:
            TALLY.errors_ridden_out += 1
        assert time.monotonic() < deadline, "the stream never caught up"


def _changes(up: Upstream) -> None:
    customers = sorted(up.state("stripe:customer"))
    for cus in customers[:5]:
        up.post(f"/v1/customers/{cus}", email=f"changed-{cus}@example.com")
    up.delete(f"/v1/customers/{customers[5]}")
    up.post("/v1/customers", email="new@example.com")


async def _equal(wired: Wired, up: Upstream) -> bool:
    try:
        await assert_stream_equals_upstream(wired, up)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"rate_limit": 8.0}, id="429-storm"),
        pytest.param(
            {"rate_limit": 8.0, "rate_limit_should_retry": False}, id="429-told-not-to-retry"
        ),
        pytest.param({"error_rate": 0.3}, id="30pct-5xx"),
        pytest.param({"lock_timeout_rate": 0.3}, id="30pct-lock-timeouts"),
        pytest.param({"latency": 0.02}, id="latency"),
    ],
)
async def test_backfill_and_changes_through_faults(
    wired: Wired, upstream: Upstream, faults: dict[str, object]
) -> None:
    seed_account(upstream, customers=40)
    faults = {**faults, "seed": 1}
    source = await _backfill(wired, upstream, faults)
    for _ in range(ROUNDS):
        _changes(upstream)
        await _follow(source, lambda: _equal(wired, upstream), upstream, faults)
    TALLY.scenarios += 1
    TALLY.requests += source.http.requests


async def test_a_long_outage_while_following_events(wired: Wired, upstream: Upstream) -> None:
    seed_account(upstream, customers=20)
    source = _source(wired)
    await source.start()
    await source.backfill()
    _changes(upstream)  # made while Stripe answers 503 to upsync
    source.http.retry = RetryPolicy(base=0.01, cap=0.02, max_attempts=3)
    for _ in range(5):
        with _faulty(upstream, {"outage": True}), pytest.raises(UpsyncError):
            await source.poll_once()
    assert not await _equal(wired, upstream)
    source.http.retry = FAST
    await _follow(source, lambda: _equal(wired, upstream), upstream, {})
    TALLY.scenarios += 1
    TALLY.errors_ridden_out += 5


async def test_events_that_show_up_late_are_not_missed(wired: Wired, upstream: Upstream) -> None:
    seed_account(upstream, customers=20)
    source = _source(wired)
    await source.start()
    await source.backfill()
    upstream.standin.store.event_delay = 1.5  # events appear up to 1.5 s late, out of order
    _changes(upstream)
    await _follow(source, lambda: _equal(wired, upstream), upstream, {})
    upstream.standin.store.event_delay = 0.0
    TALLY.scenarios += 1


async def test_a_late_webhook_with_an_older_payload_changes_nothing(
    wired: Wired, upstream: Upstream
) -> None:
    seed_account(upstream, customers=5)
    secret = "whsec_test_late"
    source = _source(wired, webhook_secrets=[secret])
    await source.start()
    await source.backfill()
    cus = sorted(upstream.state("stripe:customer"))[0]
    old = upstream.post(f"/v1/customers/{cus}", email="old@example.com")
    upstream.post(f"/v1/customers/{cus}", email="new@example.com")
    await _follow(source, lambda: _equal(wired, upstream), upstream, {})
    late = orjson.dumps(
        {
            "id": "evt_late",
            "object": "event",
            "type": "customer.updated",
            "created": 1,
            "data": {"object": old},
        }
    )
    now = time.time()
    await source.handle_webhook(late, sign(late, secret, int(now)), now=now)
    stream = await wired.stream_state("stripe:customer")
    assert stream[cus]["email"] == "new@example.com"  # the webhook made it re-read, not regress
    TALLY.scenarios += 1


def test_figures_line() -> None:
    """Runs last in this module: the suite's figures (each scenario asserted equality)."""
    print(
        f"upstream_faults={TALLY.scenarios} rounds={ROUNDS} requests={TALLY.requests} "
        f"errors_ridden_out={TALLY.errors_ridden_out} lost=0 stale=0 resurrected=0 unexpected=0"
    )
    assert TALLY.scenarios == 8, "a scenario did not run"
