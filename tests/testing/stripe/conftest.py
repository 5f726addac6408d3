"""Fixtures for the stand-in's contract tests: a served stand-in and the official SDK on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from upsync.testing.stripe import RunningStandin, Store, run_standin

# the SDK must never phone home: the stand-in is the only host it talks to
stripe.enable_telemetry = False


@pytest.fixture
def store(seed: int) -> Store:
    return Store(seed=seed)


@pytest.fixture
def standin(store: Store) -> Iterator[RunningStandin]:
    """A stand-in without rate limit (tests that need one set it), quick webhook retries."""
    with run_standin(store, rate_limit=None, webhook_retry_delays=(0.05, 0.1)) as running:
        yield running


@pytest.fixture
def client(standin: RunningStandin) -> stripe.StripeClient:
    """The official SDK pointed at the stand-in, its own retries off."""
    return stripe.StripeClient(
        standin.api_key, base_addresses={"api": standin.url}, max_network_retries=0
    )
