"""The endpoints clients call first: the account, Connect accounts, sources and features,
and Stripe's JSON error for every path nothing serves."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import stripe

from upsync.testing.stripe import RunningStandin, Store, generate, run_standin


@pytest.fixture(scope="module")
def served() -> Iterator[RunningStandin]:
    store = Store(seed=5)
    generate(store, customers=5, seed=5, events=False)
    with run_standin(store, rate_limit=None) as standin:
        yield standin


@pytest.fixture(scope="module")
def http(served: RunningStandin) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {served.api_key}"}
    with httpx.Client(base_url=served.url, headers=headers) as c:
        yield c


@pytest.fixture(scope="module")
def sdk(served: RunningStandin) -> stripe.StripeClient:
    return stripe.StripeClient(
        served.api_key, base_addresses={"api": served.url}, max_network_retries=0
    )


def test_the_account_behind_the_key(sdk: stripe.StripeClient, served: RunningStandin) -> None:
    account = sdk.v1.accounts.retrieve_current()
    assert account.id == served.store.account_id and account.id.startswith("acct_")
    assert account.object == "account" and account.charges_enabled is True


def test_without_connected_accounts_the_list_is_empty(http: httpx.Client) -> None:
    page = http.get("/v1/accounts").json()
    assert page == {"object": "list", "data": [], "has_more": False, "url": "/v1/accounts"}


def test_stripe_account_header_selects_a_connected_account(
    sdk: stripe.StripeClient, http: httpx.Client
) -> None:
    created = sdk.v1.accounts.create(params={"type": "express", "email": "c@example.com"})
    try:
        mine = sdk.v1.accounts.retrieve_current(options={"stripe_account": created.id})
        assert mine.id == created.id and mine.email == "c@example.com"
        assert [a["id"] for a in http.get("/v1/accounts").json()["data"]] == [created.id]
    finally:
        sdk.v1.accounts.delete(created.id)


def test_an_unknown_stripe_account_is_stripes_403(sdk: stripe.StripeClient) -> None:
    with pytest.raises(stripe.PermissionError) as raised:
        sdk.v1.customers.list(options={"stripe_account": "acct_doesnotexist"})
    assert raised.value.http_status == 403 and "acct_doesnotexist" in str(raised.value)
    body = raised.value.json_body
    assert isinstance(body, dict) and body["error"]["code"] == "account_invalid"


def test_customer_sources_list_filters_by_object(
    sdk: stripe.StripeClient, http: httpx.Client, served: RunningStandin
) -> None:
    customer = next(served.store.live("customer"))["id"]
    page = http.get(f"/v1/customers/{customer}/sources", params={"object": "card"}).json()
    assert page == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/customers/{customer}/sources",
    }
    bad = http.get(f"/v1/customers/{customer}/sources", params={"object": "widget"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "object"
    missing = http.get("/v1/customers/cus_nope/sources")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


def test_product_features_list(http: httpx.Client, served: RunningStandin) -> None:
    product = next(served.store.live("product"))["id"]
    page = http.get(f"/v1/products/{product}/features").json()
    assert page["object"] == "list" and page["data"] == []
    assert page["url"] == f"/v1/products/{product}/features"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/widgets"), ("GET", "/"), ("GET", "/v2/core/events"), ("PUT", "/v1/customers")],
    ids=["inside-v1", "root", "outside-v1", "method"],
)
def test_unknown_paths_answer_stripes_json_error(
    http: httpx.Client, method: str, path: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"Unrecognized request URL ({method}: {path})")


def test_the_sdk_reports_an_unknown_path_as_stripes_error(sdk: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="Unrecognized request URL"):
        sdk.raw_request("get", "/nowhere")
