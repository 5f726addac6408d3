"""Stripe-shaped objects for tests and benchmarks: realistic sizes and shapes, no stand-in needed.

For a whole consistent account (customers, subscriptions, invoices …) with events and
webhooks, use :mod:`upsync.testing.stripe` instead.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["stripe_customer"]


def stripe_customer(i: int, rnd: random.Random) -> dict[str, Any]:
    """The ``i``-th Stripe-shaped customer, about 1 KB of JSON, reproducible from ``rnd``."""
    upstream = f"cus_{i:014d}"
    return {
        "id": upstream,
        "object": "customer",
        "address": {
            "city": rnd.choice(["Berlin", "Lyon", "Austin", "Osaka"]),
            "country": rnd.choice(["DE", "FR", "US", "JP"]),
            "line1": f"{rnd.randrange(1, 999)} Example Street",
            "line2": None,
            "postal_code": f"{rnd.randrange(10000, 99999)}",
            "state": None,
        },
        "balance": rnd.randrange(-5000, 5000),
        "created": 1700000000 + i,
        "currency": "usd",
        "default_source": None,
        "delinquent": rnd.random() < 0.05,
        "description": "Generated customer " + "x" * rnd.randrange(20, 60),
        "discount": None,
        "email": f"customer{i}@example.com",
        "invoice_prefix": f"{rnd.randrange(16**8):08X}",
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": f"pm_{rnd.randrange(10**14):014d}",
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {"order": str(i), "source": "upsync.testing", "tier": rnd.choice("abc")},
        "name": f"Customer {i}",
        "next_invoice_sequence": rnd.randrange(1, 50),
        "phone": f"+1555{rnd.randrange(10**7):07d}",
        "preferred_locales": ["en"],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
        "tax_ids": {
            "object": "list",
            "data": [
                {"id": f"txi_{i:014d}", "object": "tax_id", "type": "eu_vat", "value": f"DE{i:09d}"}
            ],
            "has_more": False,
            "url": f"/v1/customers/{upstream}/tax_ids",
        },
        "subscriptions": {"object": "list", "data": [], "has_more": False, "total_count": 0},
    }
