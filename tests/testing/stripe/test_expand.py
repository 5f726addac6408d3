"""``expand[]`` as Stripe's spec defines it: every expandable field of every served type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from upsync.testing.stripe import RunningStandin, Store, StripeError, run_standin, spec
from upsync.testing.stripe.expand import MAX_DEPTH, expand, expandable_fields
from upsync.testing.stripe.objects import REGISTRY

from .conftest import populate_every_type


@pytest.fixture(scope="module")
def populated() -> Store:
    store = Store(seed=7)
    populate_every_type(store)
    return store


def _id_field(type_: str, field: str) -> bool:
    return "x-expansionResources" in spec.schema(type_)["properties"][field]


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_every_expandable_field_expands(type_: str, populated: Store) -> None:
    """Ids become objects, includable fields appear, hashes stay; nothing answers 400."""
    objects = list(populated.live(type_))[:15]
    assert objects, f"no {type_} to expand"
    for field in expandable_fields(type_):
        for plain in objects:
            obj = populated.retrieve(type_, plain["id"])
            expand(populated, obj, [field])
            assert field in obj, f"{type_}.{field} missing after expand"
            value = plain.get(field)
            if isinstance(value, str) and _id_field(type_, field):
                assert isinstance(obj[field], dict), f"{type_}.{field}: {obj[field]!r}"
                assert obj[field]["id"] == value


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_fields_the_spec_does_not_mark_expandable_are_refused(type_: str, populated: Store) -> None:
    schema = spec.schema(type_)
    fixed = sorted(set(schema["properties"]) - set(schema.get("x-expandableFields", [])))
    obj = next(populated.live(type_))
    for field in [f for f in fixed if f in obj][:5]:
        with pytest.raises(StripeError, match="cannot be expanded"):
            expand(populated, dict(obj), [field])


@pytest.fixture(scope="module")
def served() -> Iterator[RunningStandin]:
    store = Store(seed=7)
    populate_every_type(store)
    with run_standin(store, rate_limit=None) as standin:
        yield standin


@pytest.fixture(scope="module")
def http(served: RunningStandin) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {served.api_key}"}
    with httpx.Client(base_url=served.url, headers=headers) as c:
        yield c


def _get(http: httpx.Client, path: str, *expand: str) -> dict[str, Any]:
    response = http.get(path, params=[("expand[]", e) for e in expand])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_customer_sources_and_default_source(http: httpx.Client, served: RunningStandin) -> None:
    customer = next(served.store.live("customer"))["id"]
    got = _get(http, f"/v1/customers/{customer}", "sources", "default_source")
    assert got["sources"]["object"] == "list"
    assert got["sources"]["url"] == f"/v1/customers/{customer}/sources"
    assert "default_source" in got
    page = _get(http, "/v1/customers", "data.sources", "data.tax", "data.cash_balance")
    assert all(c["sources"]["object"] == "list" for c in page["data"])
    assert all(c["cash_balance"]["customer"] == c["id"] for c in page["data"])


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("coupons", "applies_to"),
        ("prices", "tiers"),
        ("prices", "currency_options"),
        ("checkout/sessions", "total_details.breakdown"),
    ],
    ids=["coupon.applies_to", "price.tiers", "price.currency_options", "session.breakdown"],
)
def test_includable_fields_appear_on_retrieve_and_list(
    http: httpx.Client, path: str, field: str
) -> None:
    first = _get(http, f"/v1/{path}", f"data.{field}")["data"][0]
    one = _get(http, f"/v1/{path}/{first['id']}", field)
    head, _, tail = field.partition(".")
    assert (one[head][tail] if tail else one[head]) is not None or head == "total_details"
    assert one == first


def test_checkout_session_line_items(http: httpx.Client, served: RunningStandin) -> None:
    session = next(s for s in served.store.live("checkout.session") if s["amount_total"])
    got = _get(http, f"/v1/checkout/sessions/{session['id']}", "line_items")
    items = got["line_items"]["data"]
    assert items and items[0]["object"] == "item" and items[0]["price"]["object"] == "price"
    assert sum(i["amount_total"] for i in items) == session["amount_total"]


def test_payout_destination_without_a_stored_bank_account(http: httpx.Client) -> None:
    payout = _get(http, "/v1/payouts", "data.destination")["data"][0]
    assert payout["destination"]["object"] == "bank_account"
    assert payout["destination"]["id"].startswith("ba_")


def test_four_levels_and_no_more(http: httpx.Client, served: RunningStandin) -> None:
    refund = next(served.store.live("refund"))["id"]
    deep = "charge.payment_intent.latest_charge.balance_transaction"
    got = _get(http, f"/v1/refunds/{refund}", deep)
    assert got["charge"]["payment_intent"]["latest_charge"]["balance_transaction"]["object"] == (
        "balance_transaction"
    )
    too_deep = http.get(f"/v1/refunds/{refund}", params={"expand[]": deep + ".source"})
    assert too_deep.status_code == 400
    assert f"more than {MAX_DEPTH} levels" in too_deep.json()["error"]["message"]


def test_a_deleted_object_answers_its_stub_when_expanded(
    http: httpx.Client, served: RunningStandin
) -> None:
    customer = served.store.create("customer", {"name": "gone"})["id"]
    served.store.delete("customer", customer)
    got = _get(http, f"/v1/customers/{customer}", "sources", "default_source")
    assert got == {"id": customer, "object": "customer", "deleted": True}


def test_the_sdk_expands(served: RunningStandin) -> None:
    client = stripe.StripeClient(
        served.api_key, base_addresses={"api": served.url}, max_network_retries=0
    )
    customer = next(served.store.live("customer"))["id"]
    got = client.v1.customers.retrieve(customer, params={"expand": ["sources", "default_source"]})
    assert got.sources is not None and got.sources.data == []
