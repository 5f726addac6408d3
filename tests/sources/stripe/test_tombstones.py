"""When the source writes a tombstone, and which ids it ever puts into a request path.

The rule (docs/syncs.md, "Deletions"): a tombstone — from a ``*.deleted`` event, a 404 or a
deleted stub on a re-read — is written only for an object the stream already holds. An id that
is not shaped like a Stripe id is never requested: a webhook naming one is refused, an event
naming one is skipped.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from tests.sources.stripe.conftest import Upstream, Wired
from tests.sources.stripe.test_source import seed_account
from upsync.errors import UpstreamRejected
from upsync.sources.stripe.collections import collection
from upsync.sources.stripe.ids import InvalidObjectId, is_object_id, path_segment
from upsync.sources.stripe.signature import sign
from upsync.sources.stripe.source import StripeSource

SECRET = "whsec_test_tombstones"


def signed(source_event: dict[str, Any]) -> tuple[bytes, str, float]:
    body = orjson.dumps(source_event)
    now = time.time()
    return body, sign(body, SECRET, int(now)), now


def event(type_: str, obj: dict[str, Any], n: int = 1) -> dict[str, Any]:
    return {
        "id": f"evt_tomb{n}",
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "data": {"object": obj},
    }


async def backfilled(wired: Wired, upstream: Upstream) -> StripeSource:
    seed_account(upstream, customers=3)
    source = wired.make_source(webhook_secrets=[SECRET])
    await source.start()
    await source.backfill()
    return source


@pytest.mark.parametrize(
    ("type_", "obj"),
    [
        ("customer.subscription.updated", {"id": "sub_doesnotexist", "object": "subscription"}),
        ("customer.subscription.deleted", {"id": "sub_doesnotexist", "object": "subscription"}),
        ("customer.updated", {"id": "cus_doesnotexist", "object": "customer"}),
        ("customer.deleted", {"id": "cus_doesnotexist", "object": "customer"}),
    ],
    ids=["sub-updated", "sub-deleted", "customer-updated", "customer-deleted"],
)
async def test_a_signed_event_for_an_object_never_held_writes_no_tombstone(
    wired: Wired, upstream: Upstream, type_: str, obj: dict[str, Any]
) -> None:
    source = await backfilled(wired, upstream)
    collection_id = f"stripe:{obj['object']}"
    before = await wired.records(collection_id)
    body, header, now = signed(event(type_, obj))
    assert not await source.handle_webhook(body, header, now=now)
    assert await wired.records(collection_id) == before
    assert obj["id"] not in before


@pytest.mark.parametrize(
    "bad_id",
    [
        "../../etc/passwd",
        "sub_1/../../v1/customers",
        "sub_x?expand[]=customer",
        "..",
        "",
        "a" * 300,
    ],
    ids=["traversal", "embedded-traversal", "query", "dots", "empty", "too-long"],
)
async def test_a_signed_webhook_with_a_malformed_id_is_refused_without_a_request(
    wired: Wired, upstream: Upstream, bad_id: str
) -> None:
    source = await backfilled(wired, upstream)
    before = await wired.records("stripe:subscription")
    requests = source.http.requests
    obj = {"id": bad_id, "object": "subscription"}
    body, header, now = signed(event("customer.subscription.updated", obj))
    with pytest.raises(UpstreamRejected, match="is not a Stripe object id"):
        await source.handle_webhook(body, header, now=now)
    assert source.http.requests == requests  # nothing was sent upstream
    assert await wired.records("stripe:subscription") == before


async def test_a_held_object_gone_upstream_still_becomes_a_tombstone(
    wired: Wired, upstream: Upstream
) -> None:
    source = await backfilled(wired, upstream)
    gone = sorted(await wired.stream_state("stripe:customer"))[0]
    upstream.delete(f"/v1/customers/{gone}")
    # an update event re-reads the object: Stripe answers with its deleted stub (or a 404)
    body, header, now = signed(event("customer.updated", {"id": gone, "object": "customer"}, 2))
    assert await source.handle_webhook(body, header, now=now)
    assert (await wired.records("stripe:customer"))[gone][1] is True


async def test_an_event_poll_skips_malformed_ids_and_tombstones_only_held_objects(
    wired: Wired, upstream: Upstream
) -> None:
    source = await backfilled(wired, upstream)
    held = sorted(await wired.stream_state("stripe:customer"))[0]
    events = [
        event("customer.deleted", {"id": held, "object": "customer"}, 3),
        event("customer.deleted", {"id": "cus_nevereverheld", "object": "customer"}, 4),
        event("customer.updated", {"id": "../../etc/passwd", "object": "customer"}, 5),
    ]
    requests = source.http.requests
    await source._apply(source._actions(events))
    assert source.http.requests == requests
    records = await wired.records("stripe:customer")
    assert records[held][1] is True
    assert "cus_nevereverheld" not in records
    assert "../../etc/passwd" not in records


@pytest.mark.parametrize(
    "value",
    ["cus_NffrFeUfNV2Hib", "sub_1MowQVLkdIwHu7ixeRlqHVzs", "gold-plan.2024", "prod_A", "x"],
)
def test_stripe_ids_pass_and_need_no_escaping(value: str) -> None:
    assert is_object_id(value)
    assert path_segment(value) == value
    assert collection("stripe:customer").retrieve_path(value) == f"/v1/customers/{value}"


@pytest.mark.parametrize(
    "value",
    ["../x", "..", ".hidden", "a/b", "a b", "a%2Fb", "a?b", "a#b", "é", "", "a" * 256, None, 7],
)
def test_anything_else_never_reaches_a_path(value: object) -> None:
    assert not is_object_id(value)
    with pytest.raises(InvalidObjectId):
        path_segment(value)
    with pytest.raises(InvalidObjectId):
        collection("stripe:customer").retrieve_path(value)  # type: ignore[arg-type]
