"""Fixtures for the stand-in's contract tests: a served stand-in and the official SDK on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from upsync.testing.stripe import RunningStandin, Store, generate, run_standin

# the SDK must never phone home: the stand-in is the only host it talks to
stripe.enable_telemetry = False


def populate_every_type(store: Store) -> None:
    """Generated data plus one object of each type the generator does not make."""
    generate(store, customers=60, seed=7)
    product = next(store.live("product"))["id"]
    store.create(
        "plan", {"amount": "100", "currency": "usd", "interval": "month", "product": product}
    )
    store.create("webhook_endpoint", {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]})
    store.create("account", {"type": "express"})
    price = next(store.live("price"))["id"]
    store.create("checkout.session", {"line_items": [{"price": price, "quantity": "2"}]})


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
