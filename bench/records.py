"""How fast records decode: upsync.decode_records against bare orjson.loads of the same bytes.

Decoding sits on every consumer's hot path, so its cost is reported as a ratio to the JSON parse
it cannot avoid. Usage: python bench/records.py [--records N] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from upsync import decode_records, encode_records
from upsync.records import Record, SyncRef, record_id


def stripe_like(i: int, rnd: random.Random) -> Record:
    upstream = f"sub_{i:014d}"
    data: dict[str, Any] = {
        "id": upstream,
        "object": "subscription",
        "customer": f"cus_{rnd.randrange(10**12):012d}",
        "status": rnd.choice(["active", "trialing", "past_due", "canceled"]),
        "created": 1700000000 + i,
        "current_period_start": 1700000000 + i,
        "current_period_end": 1702592000 + i,
        "metadata": {"order": str(i), "source": "bench"},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{i:014d}",
                    "object": "subscription_item",
                    "price": {"id": f"price_{i % 50}", "unit_amount": 1000 + i % 900},
                    "quantity": 1 + i % 5,
                }
            ],
            "has_more": False,
        },
        "description": "x" * rnd.randrange(200, 500),
    }
    return Record(
        id=record_id("sync_bench", "stripe:subscription", upstream),
        upstream_id=upstream,
        collection_id="stripe:subscription",
        updated_idx=i + 1,
        data=data,
        sync=SyncRef("sync_bench", "acme", {"plan": "gold"}),
        upstream_created_at=None,
        upstream_updated_at=None,
    )


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rnd = random.Random(1)
    payload = encode_records(stripe_like(i, rnd) for i in range(args.records))
    assert len(decode_records(payload)) == args.records
    parse = best_of(args.repeat, lambda: orjson.loads(payload))
    decode = best_of(args.repeat, lambda: decode_records(payload))
    per_record_us = decode / args.records * 1e6
    print(f"records={args.records} bytes_per_record={len(payload) // args.records}")
    print(f"orjson.loads     {args.records / parse:>12,.0f} records/s")
    print(
        f"decode_records   {args.records / decode:>12,.0f} records/s ({per_record_us:.2f} µs each)"
    )
    print(
        f"decode_vs_parse={parse / decode:.2f} decode_records_per_s={args.records / decode:.0f} "
        f"decode_us_per_record={per_record_us:.2f}"
    )


if __name__ == "__main__":
    main()
