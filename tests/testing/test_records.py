"""Stripe-shaped objects for tests and benchmarks."""

from __future__ import annotations

import json
import random

from upsync.testing.records import stripe_customer
from upsync.testing.stripe import spec


def test_customers_are_reproducible_realistic_and_about_1kb() -> None:
    a = [stripe_customer(i, random.Random(7)) for i in range(3)]
    b = [stripe_customer(i, random.Random(7)) for i in range(3)]
    assert a == b
    sizes = [len(json.dumps(c)) for c in a]
    assert all(700 < n < 1500 for n in sizes), sizes
    fixture = spec.fixtures()["customer"]
    assert set(fixture) - set(a[0]) <= {
        "cash_balance",
        "invoice_credit_balance",
        "sources",
        "subscriptions",
        "test_clock",
        "tax",
        "business_name",
        "individual_name",
        "customer_account",
    }
    assert a[0]["object"] == "customer" and a[0]["id"].startswith("cus_")
