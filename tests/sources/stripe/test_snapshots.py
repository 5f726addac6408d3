"""Snapshots and tombstones of Stripe objects (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from upsync.sources.stripe.client import encode_params
from upsync.sources.stripe.snapshots import snapshot_of, tombstone


def test_snapshot_carries_version_and_stripe_timestamps() -> None:
    obj = {"id": "prod_1", "object": "product", "created": 1700000000, "updated": 1700000500}
    snap = snapshot_of(obj, version=42)
    assert (snap.upstream_id, snap.version, snap.deleted) == ("prod_1", 42, False)
    assert snap.upstream_created_at == datetime.fromtimestamp(1700000000, UTC)
    assert snap.upstream_updated_at == datetime.fromtimestamp(1700000500, UTC)
    assert snap.data is obj


def test_deleted_stub_becomes_a_tombstone() -> None:
    snap = snapshot_of({"id": "cus_1", "object": "customer", "deleted": True}, version=7)
    assert snap == tombstone("cus_1", 7)
    assert snap.deleted


def test_bracket_encoding() -> None:
    params = {
        "limit": 100,
        "created": {"gte": 5, "lt": None},
        "expand": ["data.customer", "data.items"],
        "active": True,
        "starting_after": None,
    }
    assert encode_params(params) == [
        ("limit", "100"),
        ("created[gte]", "5"),
        ("expand[]", "data.customer"),
        ("expand[]", "data.items"),
        ("active", "true"),
    ]
