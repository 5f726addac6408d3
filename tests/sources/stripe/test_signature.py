"""Webhook signature verification: the matrix from the security plan."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from upsync import WebhookSignatureError
from upsync.sources.stripe.signature import sign, verify

SECRET = "whsec_test_0123456789abcdef"
OTHER = "whsec_test_fedcba9876543210"
NOW = 1_700_000_000
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "customer.updated"}).encode()


def test_valid_signature_returns_its_timestamp() -> None:
    assert verify(BODY, sign(BODY, SECRET, NOW), SECRET, now=NOW) == NOW


def test_our_signatures_are_accepted_by_the_official_sdk() -> None:
    header = sign(BODY, SECRET, int(time.time()))  # the SDK checks against the real clock
    event = stripe.Webhook.construct_event(BODY, header, SECRET)
    assert event["id"] == "evt_1"


def test_rotation_any_v1_matching_passes() -> None:
    header = (
        f"t={NOW},v1={sign(BODY, OTHER, NOW).split('v1=')[1]},v1="
        + sign(BODY, SECRET, NOW).split("v1=")[1]
    )
    assert verify(BODY, header, SECRET, now=NOW) == NOW
    assert verify(BODY, sign(BODY, OTHER, NOW), [SECRET, OTHER], now=NOW) == NOW


@pytest.mark.parametrize(
    ("body", "header", "fragment"),
    [
        pytest.param(BODY, sign(BODY, OTHER, NOW), "no v1 signature matches", id="wrong-secret"),
        pytest.param(
            BODY + b" ", sign(BODY, SECRET, NOW), "no v1 signature matches", id="tampered"
        ),
        pytest.param(
            json.dumps(json.loads(BODY), indent=2).encode(),
            sign(BODY, SECRET, NOW),
            "no v1 signature matches",
            id="re-serialised-json",
        ),
        pytest.param(BODY, sign(BODY, SECRET, NOW - 301), "too old", id="stale"),
        pytest.param(BODY, sign(BODY, SECRET, NOW + 301), "future", id="future"),
        pytest.param(BODY, None, "missing", id="missing-header"),
        pytest.param(BODY, "", "missing", id="empty-header"),
        pytest.param(BODY, f"t={NOW}", "no v1", id="no-v1"),
        pytest.param(BODY, "v1=abc", "no timestamp", id="no-timestamp"),
        pytest.param(BODY, "t=soon,v1=abc", "non-integer", id="bad-timestamp"),
        pytest.param(
            BODY,
            f"t={NOW},v0={sign(BODY, SECRET, NOW).split('v1=')[1]}",
            "no v1",
            id="only-v0",
        ),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(
    body: bytes, header: str | None, fragment: str
) -> None:
    with pytest.raises(WebhookSignatureError, match=fragment) as info:
        verify(body, header, SECRET, now=NOW)
    assert SECRET not in str(info.value)


def test_no_configured_secret_is_an_error() -> None:
    with pytest.raises(WebhookSignatureError, match="no webhook signing secret"):
        verify(BODY, sign(BODY, SECRET, NOW), [], now=NOW)
