"""The wire contract around every request: auth, rate limit, faults, idempotency, headers."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
import stripe

from upsync.testing.stripe import RunningStandin


def _sdk(standin: RunningStandin, key: str | None = None, retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(
        key or standin.api_key, base_addresses={"api": standin.url}, max_network_retries=retries
    )


@pytest.mark.parametrize(
    "key",
    ["sk_live_abcdef123456", "pk_test_abc", "nonsense"],
    ids=["live", "publishable", "garbage"],
)
def test_a_non_test_secret_key_is_refused(standin: RunningStandin, key: str) -> None:
    with pytest.raises(stripe.AuthenticationError) as info:
        _sdk(standin, key).v1.customers.list()
    assert info.value.http_status == 401
    assert key not in str(info.value)  # keys are never echoed whole


def test_a_missing_key_gets_stripes_error_json(standin: RunningStandin) -> None:
    response = httpx.get(f"{standin.url}/v1/customers")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "API key" in error["message"]
    assert response.headers["Request-Id"].startswith("req_")


def test_basic_auth_with_the_key_as_user_is_accepted(standin: RunningStandin) -> None:
    token = base64.b64encode(f"{standin.api_key}:".encode()).decode()
    response = httpx.get(f"{standin.url}/v1/customers", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200 and response.json()["object"] == "list"


def test_over_the_rate_limit_the_sdk_raises_rate_limit_error(standin: RunningStandin) -> None:
    standin.faults.configure(rate_limit=2.0)
    client = _sdk(standin)
    with pytest.raises(stripe.RateLimitError) as info:
        for _ in range(5):
            client.v1.customers.list()
    assert info.value.http_status == 429
    body: Any = info.value.json_body
    headers: Any = info.value.headers
    assert body["error"]["code"] == "rate_limit"
    assert "Stripe-Should-Retry" not in headers


def test_rate_limit_answers_carry_configured_retry_headers(standin: RunningStandin) -> None:
    standin.faults.configure(rate_limit=1.0, retry_after=2, rate_limit_should_retry=False)
    auth = {"Authorization": f"Bearer {standin.api_key}"}
    statuses = [httpx.get(f"{standin.url}/v1/customers", headers=auth) for _ in range(3)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "2"
    assert limited[0].headers["Stripe-Should-Retry"] == "false"
    assert limited[0].json()["error"]["code"] == "rate_limit"


def test_injected_5xx_say_retry_and_the_sdk_retries_through_them(standin: RunningStandin) -> None:
    standin.faults.configure(error_rate=1.0)
    with pytest.raises(stripe.APIError) as info:
        _sdk(standin).v1.customers.list()
    assert info.value.http_status == 500
    headers: Any = info.value.headers
    assert headers["Stripe-Should-Retry"] == "true"
    standin.faults.configure(error_rate=0.0)
    assert _sdk(standin, retries=2).v1.customers.list().data == []


def test_an_outage_answers_503_until_it_ends(standin: RunningStandin) -> None:
    httpx.post(f"{standin.url}/_standin/faults", json={"outage": True}).raise_for_status()
    with pytest.raises(stripe.APIError) as info:
        _sdk(standin).v1.customers.list()
    assert info.value.http_status == 503
    httpx.post(f"{standin.url}/_standin/faults", json={"outage": False}).raise_for_status()
    assert _sdk(standin).v1.customers.list().data == []


def test_idempotency_key_replays_the_first_response(standin: RunningStandin) -> None:
    url, auth = f"{standin.url}/v1/customers", {"Authorization": f"Bearer {standin.api_key}"}
    headers = {**auth, "Idempotency-Key": "once"}
    first = httpx.post(url, data={"name": "A"}, headers=headers)
    again = httpx.post(url, data={"name": "A"}, headers=headers)
    assert first.json()["id"] == again.json()["id"]
    assert (
        again.headers["Idempotent-Replayed"] == "true"
        and again.headers["Idempotency-Key"] == "once"
    )
    assert standin.store.count("customer") == 1
    other = httpx.post(url, data={"name": "B"}, headers=headers)
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"


def test_unknown_paths_are_404_in_stripes_shape(standin: RunningStandin) -> None:
    response = httpx.get(
        f"{standin.url}/v1/nothing_here", headers={"Authorization": f"Bearer {standin.api_key}"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_admin_surface_reports_health_and_faults(standin: RunningStandin) -> None:
    health = httpx.get(f"{standin.url}/_standin/health").json()
    assert health["ok"] is True and health["objects"]["customer"] == 0
    bad = httpx.post(f"{standin.url}/_standin/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400
    assert httpx.get(f"{standin.url}/_standin/faults").json()["rate_limit"] is None
