"""Record-bearing routes encode with orjson: the bytes must be what FastAPI's encoder gives."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from fastapi.encoders import jsonable_encoder

from upsync import Record
from upsync.api.fastjson import FastJSON
from upsync.records import SyncRef
from upsync.testing.records import stripe_customer


def test_fastjson_bytes_equal_fastapis_for_a_batch_of_records(rng: random.Random) -> None:
    at = datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC)
    records = [
        Record(
            id=f"00000000-0000-5000-8000-{i:012d}",
            upstream_id=f"cus_{i}",
            collection_id="stripe:customer",
            updated_idx=i,
            data={**stripe_customer(i, rng), "name": "Zoë ✓ \u2028", "n": 1.5},
            deleted=i % 3 == 0,
            provider="stripe",
            stream_id="s",
            sync=SyncRef("a", "org_1", {"plan": "gold"}),
            inserted_at=at,
            upstream_created_at=at,
            upstream_updated_at=None,
        )
        for i in range(20)
    ]
    payload = {
        "data": [{"ack_token": f"t{i}", "record": r.to_dict()} for i, r in enumerate(records)],
        "info": {"num_pending": 3, "num_ack_pending": 20},
    }
    expected = json.dumps(
        jsonable_encoder(payload), separators=(",", ":"), ensure_ascii=False
    ).encode()
    response = FastJSON(payload)
    assert response.body == expected
    assert response.headers["content-type"] == "application/json"
