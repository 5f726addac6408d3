"""Every served collection lists, retrieves and expands over HTTP on generated data."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from upsync.testing.stripe import RunningStandin, Store, generate, run_standin

PATHS = [
    "customers", "payment_methods", "setup_intents", "products", "prices", "coupons",
    "tax_rates", "subscriptions", "invoices", "invoiceitems", "credit_notes", "charges",
    "payment_intents", "refunds", "disputes", "payouts", "balance_transactions",
    "checkout/sessions", "events",
]  # fmt: skip


@pytest.fixture(scope="module")
def served() -> Iterator[RunningStandin]:
    store = Store(seed=11)
    generate(store, customers=40, seed=11)
    with run_standin(store, rate_limit=None) as standin:
        yield standin


@pytest.fixture(scope="module")
def http(served: RunningStandin) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {served.api_key}"}
    ) as c:
        yield c


@pytest.mark.parametrize("path", PATHS)
def test_each_collection_lists_and_retrieves(http: httpx.Client, path: str) -> None:
    page = http.get(f"/v1/{path}", params={"limit": 3}).json()
    assert page["object"] == "list" and page["url"] == f"/v1/{path}"
    assert page["data"], f"no {path} generated"
    first = page["data"][0]
    assert http.get(f"/v1/{path}/{first['id']}").json() == first


@pytest.mark.parametrize(
    ("path", "expand", "field"),
    [
        ("charges", "data.customer", "customer"),
        ("invoices", "data.subscription", "subscription"),
        ("refunds", "data.charge", "charge"),
        ("balance_transactions", "data.source", "source"),
    ],
    ids=["charge.customer", "invoice.subscription", "refund.charge", "txn.source"],
)
def test_list_expansion_replaces_ids_by_objects(
    http: httpx.Client, path: str, expand: str, field: str
) -> None:
    page = http.get(f"/v1/{path}", params={"limit": 5, "expand[]": expand}).json()
    values = [item[field] for item in page["data"] if item[field] is not None]
    assert values and all(isinstance(v, dict) and "object" in v for v in values)
