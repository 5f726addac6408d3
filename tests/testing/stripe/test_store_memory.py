"""The store keeps objects lean: an account of a few thousand objects and events takes less
memory than the compact JSON of those objects (Python dicts of them take about three times it).
"""

from __future__ import annotations

import gc
import tracemalloc

import orjson

from upsync.testing.stripe import Store, generate


def _json_bytes(store: Store) -> tuple[int, int]:
    """How many objects (events included) the store holds and their compact JSON's size."""
    entries = [e for type_ in store.resources for e in store.table(type_).entries]
    return len(entries), sum(len(orjson.dumps(e.obj)) for e in entries)


def test_stored_objects_take_less_than_their_json() -> None:
    Store(seed=0).create("customer", {"name": "warm-up"})  # module caches are not the store's
    gc.collect()
    tracemalloc.start()
    try:
        store = Store(seed=11)
        generate(store, customers=150, seed=11)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    count, json_size = _json_bytes(store)
    assert count > 3000, count
    print(f"{count} objects: {held / count:.0f} B each held, {json_size / count:.0f} B of JSON")
    assert held < json_size, f"{held:,} B held for {json_size:,} B of JSON"


def test_live_ids_are_the_ids_of_the_live_objects_without_rendering_them() -> None:
    store = Store(seed=3)
    generate(store, customers=30)
    gone = next(iter(store.live_ids("customer")))
    store.delete("customer", gone)
    for type_ in ("customer", "subscription", "invoice"):
        assert store.live_ids(type_) == {o["id"] for o in store.live(type_)}
    assert gone not in store.live_ids("customer")
