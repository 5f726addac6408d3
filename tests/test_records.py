"""The record model and its wire codec."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from upsync import Record, RecordError, SyncRef, decode_messages, decode_records, encode_records
from upsync.records import RecordIds, record_id


def wire(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "3b1f9c1e-0000-5000-8000-000000000001",
        "upstream_id": "sub_1",
        "collection_id": "stripe:subscription",
        "provider": "stripe",
        "stream_id": "str_1",
        "sync": {"id": "sync_1", "external_id": "acme", "metadata": {"plan": "gold"}},
        "data": {"id": "sub_1", "object": "subscription", "customer": "cus_1"},
        "deleted": False,
        "updated_idx": 2745327037,
        "inserted_at": "2024-11-10T18:38:01.000001Z",
        "upstream_created_at": "2024-11-10T18:38:00.070453Z",
        "upstream_updated_at": "2024-11-10T18:38:00.070453Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def test_decodes_all_twelve_fields() -> None:
    (r,) = decode_records(orjson.dumps(wire()))
    assert r.id == "3b1f9c1e-0000-5000-8000-000000000001"
    assert r.upstream_id == "sub_1"
    assert r.collection_id == "stripe:subscription"
    assert r.collection_name == "subscription"
    assert r.provider == "stripe"
    assert r.stream_id == "str_1"
    assert r.sync == SyncRef("sync_1", "acme", {"plan": "gold"})
    assert r.data["customer"] == "cus_1"
    assert r.deleted is False
    assert r.updated_idx == 2745327037
    assert r.inserted_at == datetime(2024, 11, 10, 18, 38, 1, 1, tzinfo=UTC)
    assert r.upstream_created_at == datetime(2024, 11, 10, 18, 38, 0, 70453, tzinfo=UTC)
    assert r.upstream_updated_at is not None and r.upstream_updated_at.tzinfo is UTC


def test_encode_round_trips_the_wire_json_exactly() -> None:
    original = wire(extra_field={"kept": [1, 2]})
    (r,) = decode_records(original)
    assert orjson.loads(encode_records([r])) == [original]


def test_accepts_list_envelope_and_stream_page() -> None:
    a, b = wire(id="a"), wire(id="b")
    assert [r.id for r in decode_records([a, b])] == ["a", "b"]
    envelope = {"data": [{"ack_token": "t1", "record": a}], "info": {"num_pending": 0}}
    assert [r.id for r in decode_records(envelope)] == ["a"]
    assert [(m.ack_token, m.record.id) for m in decode_messages(envelope)] == [("t1", "a")]
    assert [r.id for r in decode_records({"records": [b], "cursor": "x"})] == ["b"]


def test_timestamps_become_utc() -> None:
    (r,) = decode_records(
        wire(
            inserted_at="2023-12-15 01:29:29",
            upstream_created_at="2024-01-01T02:00:00+02:00",
            upstream_updated_at=1700000000,
        )
    )
    assert r.inserted_at == datetime(2023, 12, 15, 1, 29, 29, tzinfo=UTC)
    assert r.upstream_created_at == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert r.upstream_updated_at == datetime.fromtimestamp(1700000000, UTC)


def test_tolerates_flat_sync_id_and_missing_optionals() -> None:
    minimal = {
        "id": "x",
        "upstream_id": "cus_1",
        "collection_id": "stripe:customer",
        "updated_idx": 1,
        "data": {},
        "sync_id": "s1",
    }
    (r,) = decode_records(minimal)
    assert r.sync.id == "s1"
    assert r.provider == "stripe"
    assert r.inserted_at is None and r.stream_id is None


def test_tombstone_may_have_null_data() -> None:
    (r,) = decode_records(wire(deleted=True, data=None))
    assert r.deleted and dict(r.data) == {}


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        pytest.param({"updated_idx": ...}, "updated_idx", "missing", id="missing-updated-idx"),
        pytest.param({"updated_idx": "12"}, "updated_idx", "got string '12'", id="string-version"),
        pytest.param({"updated_idx": 1.5}, "updated_idx", "got number 1.5", id="float-version"),
        pytest.param({"updated_idx": True}, "updated_idx", "got boolean", id="bool-version"),
        pytest.param({"updated_idx": -1}, "updated_idx", "from 0", id="negative-version"),
        pytest.param({"updated_idx": 2**63}, "updated_idx", "2^63-1", id="version-over-bigint"),
        pytest.param(
            {"collection_id": "subscription"}, "collection_id", "provider:name", id="no-provider"
        ),
        pytest.param(
            {"collection_id": "stripe:"}, "collection_id", "provider:name", id="empty-name"
        ),
        pytest.param({"upstream_id": ""}, "upstream_id", "non-empty", id="empty-upstream-id"),
        pytest.param({"deleted": "no"}, "deleted", "true or false", id="string-deleted"),
        pytest.param({"data": [1]}, "data", "JSON object", id="array-data"),
        pytest.param({"data": ...}, "data", "missing", id="missing-data"),
        pytest.param({"provider": "hubspot"}, "provider", "does not match", id="provider-mismatch"),
        pytest.param({"inserted_at": "yesterday"}, "inserted_at", "ISO 8601", id="bad-timestamp"),
        pytest.param({"sync": {"id": 5}}, "sync.id", "a string", id="numeric-sync-id"),
        pytest.param(
            {"sync": {"metadata": "x"}}, "sync.metadata", "JSON object", id="bad-metadata"
        ),
    ],
)
def test_bad_input_names_record_field_and_expectation(
    overrides: dict[str, Any], field: str, fragment: str
) -> None:
    good = wire(id="good")
    bad = wire(id="bad-one", **overrides)
    with pytest.raises(RecordError) as info:
        decode_records([good, bad])
    err = info.value
    assert (err.index, err.record_id, err.field) == (1, "bad-one", field)
    assert fragment in str(err)
    assert str(err).startswith("record #1, id='bad-one', field ")


def test_bad_id_and_non_objects() -> None:
    with pytest.raises(RecordError, match=r"record #0, field 'id': missing"):
        decode_records([wire(id=...)])
    with pytest.raises(RecordError, match=r"record #2: expected a JSON object, got array"):
        decode_records([wire(), wire(), []])
    with pytest.raises(RecordError, match="invalid JSON"):
        decode_records(b"{not json")
    with pytest.raises(RecordError, match="ack_token"):
        decode_messages({"data": [{"record": wire()}]})


def test_record_error_pickles_with_its_attributes() -> None:
    err = RecordError("expected x", index=3, record_id="r", field="f")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.index, clone.record_id, clone.field, str(clone)) == (3, "r", "f", str(err))


def test_record_id_is_stable_and_distinct() -> None:
    a = record_id("sync_1", "stripe:customer", "cus_1")
    assert a == record_id("sync_1", "stripe:customer", "cus_1")
    assert a != record_id("sync_2", "stripe:customer", "cus_1")
    assert a != record_id("sync_1", "stripe:invoice", "cus_1")


timestamps = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
records = st.builds(
    Record,
    id=st.uuids().map(str),
    upstream_id=st.text(min_size=1, max_size=20),
    collection_id=st.sampled_from(["stripe:customer", "stripe:checkout.session", "hubspot:deal"]),
    updated_idx=st.integers(0, 2**63 - 1),
    data=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    deleted=st.booleans(),
    stream_id=st.none() | st.text(max_size=10),
    sync=st.builds(
        SyncRef,
        id=st.none() | st.text(max_size=10),
        external_id=st.none() | st.text(max_size=10),
        metadata=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    ),
    inserted_at=timestamps,
    upstream_created_at=timestamps,
    upstream_updated_at=timestamps,
)


@given(st.lists(records, max_size=5))
def test_encode_decode_round_trip(rs: list[Record]) -> None:
    assert decode_records(encode_records(rs)) == rs


@given(st.text(), st.text(min_size=1), st.text())
def test_record_ids_of_a_batch_equal_record_id(
    sync_id: str, collection_id: str, upstream_id: str
) -> None:
    assume(not any(0xD800 <= ord(c) <= 0xDFFF for c in sync_id + collection_id + upstream_id))
    ids = RecordIds(sync_id, collection_id)
    assert ids(upstream_id) == record_id(sync_id, collection_id, upstream_id)
