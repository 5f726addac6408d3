"""A faithful local Stripe stand-in (test mode) for upsync's tests, benchmarks and demo.

An ASGI app keeping one simulated account in memory and speaking Stripe's wire contract, so
the official ``stripe`` SDK works against it unmodified. See ``docs/stripe-standin.md``.

Example:
    with run_standin(seed=1) as standin:
        generate(standin.store, customers=50)
        client = stripe.StripeClient(standin.api_key, base_addresses={"api": standin.url})
        for customer in client.v1.customers.list().auto_paging_iter():
            ...
"""

from __future__ import annotations

from .app import StandinApp, create_app
from .clock import Clock
from .errors import StripeError
from .faults import Faults
from .generator import LiveTraffic, generate
from .objects.cycles import renew_due
from .objects.endpoints import roll_secret
from .server import RunningStandin, run_standin
from .store import API_VERSION, EVENT_RETENTION, Store
from .webhooks import Delivery, WebhookDispatcher, sign

__all__ = [
    "API_VERSION",
    "EVENT_RETENTION",
    "Clock",
    "Delivery",
    "Faults",
    "LiveTraffic",
    "RunningStandin",
    "StandinApp",
    "Store",
    "StripeError",
    "WebhookDispatcher",
    "create_app",
    "generate",
    "renew_due",
    "roll_secret",
    "run_standin",
    "sign",
]
