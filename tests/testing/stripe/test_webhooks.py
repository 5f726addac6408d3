"""Webhook endpoints and deliveries, verified by the SDK's own signature check."""

from __future__ import annotations

import hashlib
import hmac
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from upsync.testing.stripe import RunningStandin, sign


@dataclass
class Receiver:
    """A loopback HTTP receiver answering scripted statuses and recording what arrived."""

    url: str
    received: queue.Queue[tuple[bytes, str]] = field(default_factory=queue.Queue)
    statuses: list[int] = field(default_factory=list)

    def next(self, timeout: float = 10.0) -> tuple[bytes, str]:
        return self.received.get(timeout=timeout)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            target = box[0]
            status = target.statuses.pop(0) if target.statuses else 200
            self.send_response(status)
            self.end_headers()
            target.received.put((body, self.headers.get("Stripe-Signature", "")))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    server.shutdown()
    server.server_close()
    thread.join()


def test_sign_matches_stripes_scheme() -> None:
    payload, secret = b'{"id": "evt_1"}', "whsec_test"
    header = sign(payload, secret, 1700000000)
    expected = hmac.new(secret.encode(), b"1700000000." + payload, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


@pytest.mark.smoke
def test_a_delivery_passes_construct_event(client: stripe.StripeClient, receiver: Receiver) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"]}
    )
    assert endpoint.id.startswith("we_")
    assert endpoint.secret is not None and endpoint.secret.startswith("whsec_")
    customer = client.v1.customers.create(params={"email": "hook@example.com"})
    body, header = receiver.next()
    event = stripe.Webhook.construct_event(body, header, endpoint.secret)
    assert event.type == "customer.created"
    assert event.data.object.id == customer.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, header, "whsec_wrong")


def test_the_secret_is_only_returned_on_create(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["*"]}
    )
    again = client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert "secret" not in again.to_dict()
    listed = client.v1.webhook_endpoints.list().data[0]
    assert "secret" not in listed.to_dict()


def test_failed_deliveries_are_retried(
    client: stripe.StripeClient, receiver: Receiver, standin: RunningStandin
) -> None:
    receiver.statuses = [500, 503]
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["*"]}
    )
    client.v1.products.create(params={"name": "retry me"})
    attempts = [receiver.next() for _ in range(3)]
    assert len({body for body, _ in attempts}) == 1  # the same event each time
    event = stripe.Webhook.construct_event(attempts[-1][0], attempts[-1][1], endpoint.secret)
    assert event.type == "product.created"
    statuses = [d.status for d in standin.webhooks.wait_for(3)]
    assert statuses == [500, 503, 200]


def test_only_subscribed_event_types_are_sent(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["product.created", "price.created"]}
    )
    client.v1.customers.create(params={"name": "not sent"})
    client.v1.products.create(params={"name": "sent"})
    body, _ = receiver.next()
    assert b'"product.created"' in body
    assert receiver.received.empty()


def test_endpoints_must_be_loopback(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.webhook_endpoints.create(
            params={"url": "https://example.com/hook", "enabled_events": ["*"]}
        )
    assert info.value.param == "url"


def test_during_a_secret_roll_both_secrets_verify(
    client: Any, receiver: Receiver, standin: RunningStandin
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["*"]}
    )
    rolled = httpx.post(
        f"{standin.url}/_standin/webhook_endpoints/{endpoint.id}/roll_secret",
        json={"expires_in": 3600},
    )
    new_secret = rolled.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != endpoint.secret
    client.v1.products.create(params={"name": "rolled"})
    body, header = receiver.next()
    assert header.count("v1=") == 2
    for secret in (new_secret, endpoint.secret):
        assert stripe.Webhook.construct_event(body, header, secret).type == "product.created"
    standin.clock.advance(3601)
    client.v1.products.create(params={"name": "after"})
    body, header = receiver.next()
    assert header.count("v1=") == 1
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, header, endpoint.secret)
