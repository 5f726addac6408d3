"""Generated data: reproducible, self-consistent; live traffic changes it and stops by itself."""

from __future__ import annotations

from typing import Any

from upsync.testing.stripe import LiveTraffic, RunningStandin, Store, generate


def _ids(store: Store) -> dict[str, list[str]]:
    return {t: [o["id"] for o in store.live(t)] for t in store.resources if t != "event"}


def test_the_same_seed_gives_the_same_data(seed: int) -> None:
    first, second = Store(seed=seed), Store(seed=seed)
    generate(first, customers=30, seed=seed)
    generate(second, customers=30, seed=seed)
    assert _ids(first) == _ids(second)
    assert [c["amount"] for c in first.live("charge")] == [
        c["amount"] for c in second.live("charge")
    ]


def test_generated_objects_reference_each_other_consistently(seed: int) -> None:
    store = Store(seed=seed)
    counts = generate(store, customers=80, seed=seed)
    assert counts["customer"] > 60 and counts["subscription"] > 30 and counts["refund"] >= 0
    for sub in store.live("subscription"):
        assert store.find(sub["customer"]) is not None
        for item in sub["items"]["data"]:
            assert item["subscription"] == sub["id"] and item["price"]["object"] == "price"
    for invoice in store.live("invoice"):
        lines = store.children("line_item", "invoice", invoice["id"]).entries
        assert invoice["subtotal"] == sum(line.obj["amount"] for line in lines)
        assert invoice["status"] in ("draft", "open", "paid")
    for charge in store.live("charge"):
        txn = store.find(charge["balance_transaction"])
        assert txn is not None and txn.obj["source"] == charge["id"]
        refunded = sum(r["amount"] for r in charge["refunds"]["data"])
        assert refunded == charge["amount_refunded"]


def test_history_spans_the_requested_days_and_old_events_are_gone(seed: int) -> None:
    store = Store(seed=seed)
    generate(store, customers=40, seed=seed, days=90)
    created = [c["created"] for c in store.live("customer")]
    now = store.clock.now()
    assert min(created) < now - 60 * 86400 and max(created) <= now
    store.expire_events()
    assert min(e["created"] for e in store.live("event")) >= now - 30 * 86400


def test_live_traffic_changes_the_account_and_stops_by_itself(seed: int) -> None:
    store = Store(seed=seed)
    generate(store, customers=10, seed=seed)
    before = store.count("event")
    traffic = LiveTraffic(store, rate=200.0, duration=0.3, seed=seed).start()
    assert traffic.join(timeout=10)
    assert traffic.operations > 0 and store.count("event") > before


def test_the_sdk_sees_live_traffic(client: Any, standin: RunningStandin, seed: int) -> None:
    generate(standin.store, customers=5, seed=seed)
    newest = client.v1.events.list(params={"limit": 1}).data[0]
    with LiveTraffic(standin.store, rate=100.0, duration=0.3, seed=seed) as traffic:
        assert traffic.join(timeout=10)
    newer = client.v1.events.list(params={"ending_before": newest.id, "limit": 100}).data
    assert newer


def test_without_events_only_objects_are_made(seed: int) -> None:
    store = Store(seed=seed)
    counts = generate(store, customers=20, seed=seed, days=20, events=False)
    assert counts["customer"] > 0 and counts["event"] == 0
