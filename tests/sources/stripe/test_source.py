"""The Stripe source end to end: stand-in → source → stream, compared with what Stripe holds."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.sources.stripe.conftest import COLLECTIONS, Upstream, Wired
from upsync import WebhookSignatureError
from upsync.sources.stripe.retry import RetryPolicy
from upsync.sources.stripe.signature import sign
from upsync.sources.stripe.source import CollectionProgress
from upsync.testing.stripe import LiveTraffic, generate


def seed_account(up: Upstream, customers: int = 30) -> None:
    product = up.post("/v1/products", name="Gold")
    price = up.post(
        "/v1/prices",
        product=product["id"],
        unit_amount="1500",
        currency="usd",
        **{"recurring[interval]": "month"},
    )
    for i in range(customers):
        cus = up.post("/v1/customers", email=f"user{i}@example.com", **{"metadata[n]": str(i)})
        if i % 3 == 0:
            up.post("/v1/subscriptions", customer=cus["id"], **{"items[0][price]": price["id"]})


async def assert_stream_equals_upstream(wired: Wired, up: Upstream) -> None:
    for collection_id in COLLECTIONS:
        expected = up.state(collection_id)
        actual = await wired.stream_state(collection_id)
        assert set(actual) == set(expected), collection_id
        for oid, obj in expected.items():
            # the SDK turns *_decimal strings into Decimal; on the wire they are strings
            assert actual[oid] == orjson.loads(orjson.dumps(obj, default=str)), oid


@pytest.mark.smoke
async def test_backfill_copies_every_collection(wired: Wired, upstream: Upstream) -> None:
    seed_account(upstream, customers=130)  # two pages of customers
    source = wired.make_source()
    await source.start()
    await source.backfill()
    await assert_stream_equals_upstream(wired, upstream)
    assert source.status.backfill["stripe:customer"].count == 130
    assert all(p.done for p in source.status.backfill.values())


async def test_changes_and_deletes_during_and_after_backfill_are_followed(
    wired: Wired, upstream: Upstream
) -> None:
    seed_account(upstream)
    source = wired.make_source()
    await source.start()  # the event cursor is taken before the backfill reads anything
    customers = list(upstream.state("stripe:customer"))
    upstream.post(f"/v1/customers/{customers[0]}", email="changed-before@example.com")
    await source.backfill()
    upstream.post(f"/v1/customers/{customers[1]}", email="changed-after@example.com")
    upstream.delete(f"/v1/customers/{customers[2]}")
    subscription = next(
        sid
        for sid, sub in upstream.state("stripe:subscription").items()
        if sub["customer"] != customers[2] and sub["status"] != "canceled"
    )
    upstream.delete(f"/v1/subscriptions/{subscription}")  # a cancellation: stays, canceled
    assert await source.poll_once() >= 3
    await assert_stream_equals_upstream(wired, upstream)
    records = await wired.records("stripe:customer")
    assert records[customers[2]][1] is True  # a tombstone, not a vanished row
    assert (await wired.stream_state("stripe:subscription"))[subscription]["status"] == "canceled"
    assert await source.poll_once() == 0  # nothing new: nothing reprocessed


async def test_restart_mid_backfill_resumes_from_the_last_durable_page(
    wired: Wired, upstream: Upstream
) -> None:
    seed_account(upstream, customers=330)
    written: list[int] = []

    def crash_after_three_pages(progress: CollectionProgress) -> None:
        if progress.collection_id == "stripe:customer":
            written.append(progress.fetched)
            if len(written) == 3:
                raise RuntimeError("simulated crash")

    first = wired.make_source(on_progress=crash_after_three_pages, parallel=2)
    await first.start()
    with pytest.raises(RuntimeError, match="simulated crash"):
        await first.backfill()
    durable = len(await wired.stream_state("stripe:customer"))
    assert 0 < durable < 330
    second = wired.make_source(parallel=2)
    await second.start()
    await second.backfill()
    await assert_stream_equals_upstream(wired, upstream)
    resumed = second.status.backfill["stripe:customer"]
    assert resumed.count == 330
    # pages and their slice cursors commit together: nothing durable is read again
    assert resumed.fetched == 330 - durable


async def test_large_collection_is_cut_into_created_slices(
    wired: Wired, upstream: Upstream
) -> None:
    seed_account(upstream, customers=10)
    for i in range(600):  # spread over time so the slices are not empty
        upstream.standin.clock.advance(3600)
        upstream.post("/v1/products", name=f"p{i}")
    # an unlimited budget: walkers split whenever one is idle, whatever the timing
    source = wired.make_source(parallel=8, rate=1e9)  # spare walkers beside the 4 collections
    await source.start()
    await source.backfill()
    progress = source.status.backfill["stripe:product"]
    assert sum(1 for p in progress.slices.values() if p.count) >= 2
    await assert_stream_equals_upstream(wired, upstream)


async def test_expired_event_cursor_reconciles_by_relisting(
    wired: Wired, upstream: Upstream
) -> None:
    seed_account(upstream)
    source = wired.make_source()
    await source.start()
    await source.backfill()
    upstream.post("/v1/customers", email="fresh@example.com")
    await source.poll_once()
    # the engine is down for 31 days; meanwhile customers change and are deleted
    customers = list(upstream.state("stripe:customer"))
    upstream.post(f"/v1/customers/{customers[0]}", email="while-away@example.com")
    upstream.delete(f"/v1/customers/{customers[1]}")
    upstream.standin.clock.advance(31 * 24 * 3600)
    upstream.post("/v1/customers", email="after-return@example.com")
    restarted = wired.make_source()
    await restarted.start()
    assert restarted.needs_reconcile
    drift = await restarted.reconcile()
    assert drift >= 3
    await restarted.poll_once()
    await assert_stream_equals_upstream(wired, upstream)
    assert (await wired.records("stripe:customer"))[customers[1]][1] is True


async def test_faults_and_rate_limits_are_ridden_out(wired: Wired, upstream: Upstream) -> None:
    seed_account(upstream, customers=120)
    upstream.standin.faults.configure(error_rate=0.2, rate_limit=40.0, seed=7)
    source = wired.make_source(rate=200)
    source.http.retry = type(source.http.retry)(base=0.01, cap=0.05, max_attempts=30)
    await source.start()
    await source.backfill()
    upstream.standin.faults.configure(error_rate=0.0, rate_limit=None)
    await assert_stream_equals_upstream(wired, upstream)


async def test_webhooks_apply_at_once_and_bad_ones_write_nothing(
    wired: Wired, upstream: Upstream
) -> None:
    seed_account(upstream, customers=3)
    secret = "whsec_test_secret"
    source = wired.make_source(webhook_secrets=[secret])
    await source.start()
    await source.backfill()
    cus = upstream.post("/v1/customers", email="hooked@example.com")
    event = {
        "id": "evt_hook1",
        "object": "event",
        "type": "customer.created",
        "created": 1,
        "data": {"object": cus},
    }
    body = orjson.dumps(event)
    now = time.time()
    assert await source.handle_webhook(body, sign(body, secret, int(now)), now=now)
    assert cus["id"] in await wired.stream_state("stripe:customer")
    assert not await source.handle_webhook(body, sign(body, secret, int(now)), now=now)  # dup
    forged = orjson.dumps({**event, "id": "evt_forged", "data": {"object": {**cus, "id": "cus_x"}}})
    with pytest.raises(WebhookSignatureError):
        await source.handle_webhook(forged, sign(body, secret, int(now)), now=now)
    assert "cus_x" not in await wired.stream_state("stripe:customer")


async def test_per_object_read_locks_do_not_accumulate(wired: Wired, upstream: Upstream) -> None:
    seed_account(upstream, customers=20)
    source = wired.make_source()
    await source.start()
    await source.backfill()
    for cus in list(upstream.state("stripe:customer"))[:10]:
        upstream.post(f"/v1/customers/{cus}", email=f"again-{cus}@example.com")
    assert await source.poll_once() >= 10  # plus the overlap window's re-reads, by design
    assert len(source._reading) == 0  # every object's lock went away once its read finished


async def test_live_traffic_faults_and_a_restart_mid_backfill_end_equal(
    wired: Wired, upstream: Upstream, seed: int
) -> None:
    """Backfill under live creates/updates/deletes, 5xx, 429s and a crash; then catch up."""
    generate(upstream.standin.store, customers=120, seed=seed, days=60)
    upstream.standin.faults.configure(error_rate=0.1, rate_limit=80.0, seed=seed)
    traffic = LiveTraffic(upstream.standin.store, rate=40.0, duration=30.0, seed=seed).start()
    fast_retries = RetryPolicy(base=0.01, cap=0.05, max_attempts=50)
    pages = 0

    def crash_mid_backfill(progress: CollectionProgress) -> None:
        nonlocal pages
        pages += 1
        if pages == 4:
            raise RuntimeError("killed mid-backfill")

    try:
        first = wired.make_source(on_progress=crash_mid_backfill, rate=300)
        first.http.retry = fast_retries
        await first.start()
        with pytest.raises(RuntimeError, match="killed mid-backfill"):
            await first.backfill()
        second = wired.make_source(rate=300)
        second.http.retry = fast_retries
        await second.start()
        await second.backfill()
        following_until = time.monotonic() + 2.0  # follow events while traffic goes on
        while time.monotonic() < following_until:
            await second.poll_once()
    finally:
        traffic.stop()
    assert traffic.operations > 20
    upstream.standin.faults.configure(error_rate=0.0, rate_limit=None)
    while await second.poll_once():  # drain what the traffic did until nothing is new
        pass
    await assert_stream_equals_upstream(wired, upstream)
    # a re-list finds nothing more: even Stripe's silent changes (finalizing an invoice bumps
    # its customer's next_invoice_sequence without an event) were caught by related re-reads
    assert await second.reconcile() == 0
    print(f"live_operations={traffic.operations}")


async def test_a_nul_inside_an_upstream_object_does_not_block_its_page(
    wired: Wired, upstream: Upstream
) -> None:
    seed_account(upstream, customers=3)
    poisoned = upstream.post(
        "/v1/customers", email="nul@example.com", **{"metadata[note]": "a\x00b"}
    )
    source = wired.make_source()
    await source.start()
    await source.backfill()
    stream = await wired.stream_state("stripe:customer")
    assert len(stream) == 4  # the page landed, the poisoned customer with it
    assert stream[poisoned["id"]]["metadata"]["note"] == "a\ufffdb"
