"""API versions: what a request pins is answered and recorded; a webhook endpoint's pinned
version is the one its events carry. Shapes are always the stand-in's own version's."""

from __future__ import annotations

from typing import Final

import httpx
import orjson
import pytest
import stripe

from upsync.testing.stripe import API_VERSION, RunningStandin

from .test_webhooks import Receiver, receiver  # noqa: F401 (a fixture)

PINNED: Final = "2026-08-26.dahlia"


def test_a_pinned_version_is_answered_and_recorded(standin: RunningStandin) -> None:
    headers = {"Authorization": f"Bearer {standin.api_key}", "Stripe-Version": PINNED}
    response = httpx.get(f"{standin.url}/v1/customers", headers=headers)
    assert response.status_code == 200
    assert response.headers["Stripe-Version"] == PINNED
    assert standin.store.pinned_versions[PINNED] == 1
    plain = httpx.get(
        f"{standin.url}/v1/customers", headers={"Authorization": headers["Authorization"]}
    )
    assert plain.headers["Stripe-Version"] == API_VERSION


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45.x y"], ids=["word", "malformed"])
def test_an_invalid_version_is_a_400(standin: RunningStandin, bad: str) -> None:
    headers = {"Authorization": f"Bearer {standin.api_key}", "Stripe-Version": bad}
    response = httpx.get(f"{standin.url}/v1/customers", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == f"Invalid Stripe API version: {bad}"


def test_the_sdk_pin_is_echoed(standin: RunningStandin) -> None:
    client = stripe.StripeClient(
        standin.api_key,
        base_addresses={"api": standin.url},
        max_network_retries=0,
        stripe_version=PINNED,
    )
    client.v1.customers.list()
    assert standin.store.pinned_versions[PINNED] == 1


def test_events_carry_the_endpoints_pinned_version(
    client: stripe.StripeClient,
    standin: RunningStandin,
    receiver: Receiver,  # noqa: F811
) -> None:
    pinned = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"], "api_version": PINNED}
    )
    assert pinned.api_version == PINNED
    client.v1.customers.create(params={"email": "v@example.com"})
    body, header = receiver.next()
    event = stripe.Webhook.construct_event(body, header, pinned.secret)
    assert event.api_version == PINNED
    stored = orjson.loads(body)
    assert client.v1.events.retrieve(stored["id"]).api_version == API_VERSION


def test_an_event_counts_the_endpoints_still_to_be_told(
    client: stripe.StripeClient,
    standin: RunningStandin,
    receiver: Receiver,  # noqa: F811
) -> None:
    receiver.statuses = [500] * 10
    client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"]}
    )
    client.v1.customers.create(params={"email": "p@example.com"})
    standin.webhooks.wait_for(1)
    event = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.pending_webhooks == 1


def test_a_delivered_event_has_none_pending(
    client: stripe.StripeClient,
    standin: RunningStandin,
    receiver: Receiver,  # noqa: F811
) -> None:
    client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"]}
    )
    client.v1.customers.create(params={"email": "d@example.com"})
    standin.webhooks.wait_for(1)
    event = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.pending_webhooks == 0
