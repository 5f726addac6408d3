"""The write path: stable ids, monotonic versions, staleness, tombstones, events."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from upsync.errors import ConfigurationError, RecordError
from upsync.records import record_id
from upsync.stream import Stream, Sync, UpstreamObject, create_sync, deletion, write

from .helpers import RoundTrips, records, table

AConn = psycopg.AsyncConnection[Any]
U = UpstreamObject
COL = "stripe:customer"


async def test_records_get_stable_ids_and_the_sync_they_came_from(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"name": "a"}, 1)], schema=schema)
    await write(db, sync, COL, [U("cus_1", {"name": "b"}, 2)], schema=schema)
    rows = await records(db, schema)
    assert str(rows["cus_1"]["id"]) == record_id(sync.id, COL, "cus_1")
    assert str(rows["cus_1"]["sync_id"]) == sync.id
    assert rows["cus_1"]["provider"] == "stripe"
    assert rows["cus_1"]["data"] == {"name": "b"}
    assert len(rows) == 1


async def test_updated_idx_increases_on_every_change_across_the_stream(
    db: AConn, schema: str, sync: Sync
) -> None:
    seen: list[int] = []
    for version in range(1, 6):
        await write(
            db,
            sync,
            COL,
            [U("cus_1", {"v": version}, version), U("cus_2", {"v": version}, version)],
            schema=schema,
        )
        rows = await records(db, schema)
        seen += [rows["cus_1"]["updated_idx"], rows["cus_2"]["updated_idx"]]
    assert len(set(seen)) == len(seen)
    assert seen[::2] == sorted(seen[::2]) and seen[1::2] == sorted(seen[1::2])
    assert seen[-2] > seen[0] and seen[-1] > seen[1]


async def test_unchanged_data_bumps_nothing_and_emits_no_event(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"a": 1, "b": [1, 2]}, 1)], schema=schema)
    before = (await records(db, schema))["cus_1"]["updated_idx"]
    result = await write(db, sync, COL, [U("cus_1", {"b": [1, 2], "a": 1}, 5)], schema=schema)
    assert result.unchanged == 1 and result.changed == 0
    row = (await records(db, schema))["cus_1"]
    assert row["updated_idx"] == before
    assert row["source_version"] == 5  # newer knowledge is kept for later staleness checks
    assert len(await table(db, schema, "events")) == 1


async def test_an_older_snapshot_never_replaces_a_newer_one(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"v": "new"}, 20)], schema=schema)
    result = await write(db, sync, COL, [U("cus_1", {"v": "old"}, 10)], schema=schema)
    assert result.stale == 1
    assert (await records(db, schema))["cus_1"]["data"] == {"v": "new"}


async def test_an_older_snapshot_stays_stale_after_an_unchanged_newer_one(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"v": "a"}, 10)], schema=schema)
    await write(db, sync, COL, [U("cus_1", {"v": "a"}, 30)], schema=schema)
    result = await write(db, sync, COL, [U("cus_1", {"v": "b"}, 20)], schema=schema)
    assert result.stale == 1
    assert (await records(db, schema))["cus_1"]["data"] == {"v": "a"}


async def test_at_an_equal_version_the_later_write_wins(db: AConn, schema: str, sync: Sync) -> None:
    await write(db, sync, COL, [U("cus_1", {"v": "a"}, 10)], schema=schema)
    result = await write(db, sync, COL, [U("cus_1", {"v": "b"}, 10)], schema=schema)
    assert result.updated == 1
    assert (await records(db, schema))["cus_1"]["data"] == {"v": "b"}


async def test_within_a_batch_the_highest_version_then_the_last_one_wins(
    db: AConn, schema: str, sync: Sync
) -> None:
    batch = [
        U("cus_1", {"v": 3}, 3),
        U("cus_1", {"v": 9}, 9),
        U("cus_1", {"v": 1}, 1),
        U("cus_2", {"v": "first"}, 5),
        U("cus_2", {"v": "second"}, 5),
    ]
    result = await write(db, sync, COL, batch, schema=schema)
    assert result.created == 2
    rows = await records(db, schema)
    assert rows["cus_1"]["data"] == {"v": 9}
    assert rows["cus_2"]["data"] == {"v": "second"}


async def test_a_deletion_writes_a_tombstone_with_its_own_higher_idx(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"name": "a"}, 1)], schema=schema)
    live = (await records(db, schema))["cus_1"]
    result = await write(db, sync, COL, [deletion("cus_1", 2)], schema=schema)
    assert result.deleted == 1
    tomb = (await records(db, schema))["cus_1"]
    assert tomb["deleted"] is True
    assert tomb["updated_idx"] > live["updated_idx"]
    assert tomb["data"] == {"name": "a"}  # data=None keeps what was deleted


async def test_a_delete_is_not_undone_by_an_older_or_equal_snapshot(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"name": "a"}, 1)], schema=schema)
    await write(db, sync, COL, [deletion("cus_1", 5)], schema=schema)
    older = await write(db, sync, COL, [U("cus_1", {"name": "late"}, 4)], schema=schema)
    equal = await write(db, sync, COL, [U("cus_1", {"name": "tie"}, 5)], schema=schema)
    assert older.stale == equal.stale == 1
    assert (await records(db, schema))["cus_1"]["deleted"] is True


async def test_deleting_an_unknown_object_leaves_a_tombstone_against_late_snapshots(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [deletion("cus_9", 7)], schema=schema)
    await write(db, sync, COL, [U("cus_9", {"x": 1}, 6)], schema=schema)
    row = (await records(db, schema))["cus_9"]
    assert row["deleted"] is True and row["data"] == {}


async def test_a_newer_snapshot_after_a_delete_recreates_the_record(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"n": 1}, 1), deletion("cus_1", 2)], schema=schema)
    await write(db, sync, COL, [U("cus_1", {"n": 2}, 3)], schema=schema)
    row = (await records(db, schema))["cus_1"]
    assert row["deleted"] is False and row["data"] == {"n": 2}
    events = [e["event"] for e in await table(db, schema, "events", "seq")]
    assert events == ["deleted", "created"]  # first batch: one winner (the tombstone)


async def test_events_carry_the_previous_values_of_changed_top_level_fields(
    db: AConn, schema: str, sync: Sync
) -> None:
    await write(db, sync, COL, [U("cus_1", {"a": 1, "b": {"x": 1}, "c": "same"}, 1)], schema=schema)
    await write(
        db, sync, COL, [U("cus_1", {"a": 2, "b": {"x": 1}, "c": "same", "d": 0}, 2)], schema=schema
    )
    await write(db, sync, COL, [deletion("cus_1", 3)], schema=schema)
    events = await table(db, schema, "events", "seq")
    assert [e["event"] for e in events] == ["created", "updated", "deleted"]
    assert events[0]["changes"] is None
    assert events[1]["changes"] == {"a": 1, "d": None}
    assert events[2]["data"] == {"a": 2, "b": {"x": 1}, "c": "same", "d": 0}
    rows = await records(db, schema)
    assert events[2]["seq"] == rows["cus_1"]["updated_idx"]


async def test_timestamps_are_stored_and_kept_when_a_later_snapshot_omits_them(
    db: AConn, schema: str, sync: Sync
) -> None:
    created = datetime(2024, 5, 1, tzinfo=UTC)
    await write(
        db, sync, COL, [U("cus_1", {"a": 1}, 1, upstream_created_at=created)], schema=schema
    )
    await write(db, sync, COL, [U("cus_1", {"a": 2}, 2)], schema=schema)
    assert (await records(db, schema))["cus_1"]["upstream_created_at"] == created


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (U("", {"a": 1}, 1), "upstream_id"),
        (U("cus_2", {"a": 1}, "1"), "source_version"),  # type: ignore[arg-type]
        (U("cus_2", None, 1), "data"),
        (U("cus_2", {"a": object()}, 1), "data"),
        (U("cus_2", {"a": "\x00"}, 1), "data"),
        (U("cus_2", {"a": 1}, 1, upstream_created_at=datetime(2024, 1, 1)), "upstream_created_at"),
    ],
    ids=["empty-id", "str-version", "no-data", "unserialisable", "nul", "naive-time"],
)
async def test_a_bad_object_is_named_and_nothing_of_its_batch_is_written(
    db: AConn, schema: str, sync: Sync, obj: UpstreamObject, field: str
) -> None:
    with pytest.raises(RecordError) as err:
        await write(db, sync, COL, [U("cus_1", {"ok": True}, 1), obj], schema=schema)
    assert err.value.index == 1 and err.value.field == field
    await db.rollback()
    assert await records(db, schema) == {}


async def test_a_collection_of_another_provider_is_refused(
    db: AConn, schema: str, sync: Sync
) -> None:
    with pytest.raises(ConfigurationError, match="does not belong"):
        await write(db, sync, "hubspot:contact", [U("c1", {}, 1)], schema=schema)


async def test_a_write_inside_the_callers_transaction_rolls_back_with_it(
    db: AConn, schema: str, sync: Sync
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with db.transaction():
            await write(db, sync, COL, [U("cus_1", {"a": 1}, 1)], schema=schema)
            _ = 1 / 0
    await db.execute("SELECT 1")  # an open transaction: write() joins it
    await write(db, sync, COL, [U("cus_2", {"a": 1}, 1)], schema=schema)
    await db.commit()
    assert set(await records(db, schema)) == {"cus_2"}


async def test_a_large_batch_takes_as_many_round_trips_as_a_small_one(
    db: AConn, schema: str, sync: Sync
) -> None:
    """Counted on the wire (libpq protocol trace), not by timing."""
    trips = []
    for size in (10, 5000):
        objs = [U(f"cus_{size}_{i}", {"i": i, "pad": "x" * 50}, 1) for i in range(size)]
        with RoundTrips(db) as rt:
            result = await write(db, sync, COL, objs, schema=schema)
        assert result.created == size
        trips.append(rt.count)
    assert trips[0] == trips[1] <= 6
    assert len(await records(db, schema)) == 5010


async def test_two_syncs_writing_the_same_upstream_id_get_different_records(
    db: AConn, schema: str, stream: Stream, sync: Sync
) -> None:
    other = await create_sync(
        db, stream_id=stream.id, provider="stripe", name="b", collection_ids=[COL], schema=schema
    )
    await write(db, sync, COL, [U("cus_1", {"who": "a"}, 1)], schema=schema)
    await write(db, other, COL, [U("cus_1", {"who": "b"}, 1)], schema=schema)
    rows = await table(db, schema, "records")
    assert len({r["id"] for r in rows}) == 2


async def test_a_repeatable_read_transaction_is_refused_with_the_reason(
    db: AConn, schema: str, sync: Sync
) -> None:
    await db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    with pytest.raises(ConfigurationError, match="READ COMMITTED"):
        await write(db, sync, COL, [U("cus_1", {}, 1)], schema=schema)
    await db.rollback()
    assert await records(db, schema) == {}


async def test_a_batch_split_into_chunks_keeps_every_rule(
    db: AConn, schema: str, sync: Sync, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    monkeypatch.setattr(importlib.import_module("upsync.stream.write"), "MAX_CHUNK", 2)
    batch = [U("a", {"v": 2}, 2), U("b", {"v": 1}, 1), U("a", {"v": 1}, 1), deletion("b", 1)]
    result = await write(db, sync, COL, batch, schema=schema)
    assert (result.created, result.stale, result.deleted) == (2, 1, 1)
    rows = await records(db, schema)
    assert rows["a"]["data"] == {"v": 2} and rows["b"]["deleted"] is True
    assert result.max_updated_idx == max(r["updated_idx"] for r in rows.values())


async def test_versions_follow_the_batch_order_and_every_later_chunk_is_above(
    db: AConn, schema: str, sync: Sync, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    monkeypatch.setattr(importlib.import_module("upsync.stream.write"), "MAX_CHUNK", 3)
    names = [f"cus_{i}" for i in range(8)]
    await write(db, sync, COL, [U(n, {"n": n}, 1) for n in names], schema=schema)
    rows = await records(db, schema)
    idx = [rows[n]["updated_idx"] for n in names]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    # each chunk takes one sequence value: versions within a chunk share their high bits
    assert [i >> 20 for i in idx] == sorted(i >> 20 for i in idx)
    assert len({i >> 20 for i in idx}) == 3


async def test_concurrent_writers_of_one_collection_keep_the_newest_snapshot(
    db: AConn, other_conn: AConn, schema: str, sync: Sync, rng: random.Random
) -> None:
    ids = [f"cus_{i}" for i in range(30)]
    batches = [
        [U(i, {"v": v}, v) for i in rng.sample(ids, 10) for v in [rng.randrange(1000)]]
        for _ in range(20)
    ]
    newest: dict[str, int] = {}
    for batch in batches:
        for o in batch:
            newest[o.upstream_id] = max(newest.get(o.upstream_id, -1), o.source_version)

    async def writer(conn: AConn, mine: list[list[UpstreamObject]]) -> None:
        for batch in mine:
            await write(conn, sync, COL, batch, schema=schema)

    await asyncio.gather(writer(db, batches[::2]), writer(other_conn, batches[1::2]))
    rows = await records(db, schema)
    assert {k: r["source_version"] for k, r in rows.items()} == newest
    assert {k: r["data"]["v"] for k, r in rows.items()} == newest


async def test_a_batch_of_new_objects_lands_as_the_staged_path_would_land_it(
    db: AConn, schema: str, stream: Stream, sync: Sync, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New objects go by COPY straight into ``records``; the same batch forced through the
    staging table must give the same records and events (ids, versions and times aside)."""
    import importlib

    module = importlib.import_module("upsync.stream.write")
    twin = await create_sync(
        db, stream_id=stream.id, provider="stripe", name="twin", collection_ids=[COL], schema=schema
    )
    at = datetime(2024, 5, 1, tzinfo=UTC)
    batch = [
        UpstreamObject(f"cus_{i}", {"n": i, "tags": ["a", i]}, 10 + i, upstream_updated_at=at)
        for i in range(5)
    ]
    bulk = await write(db, sync, COL, batch, schema=schema)
    monkeypatch.setattr(module, "_all_new_candidates", lambda rows: False)
    staged = await write(db, twin, COL, batch, schema=schema)
    assert bulk.created == staged.created == 5

    def shape(rows: list[dict[str, Any]], sync_id: str, key: str) -> list[tuple[Any, ...]]:
        mine = sorted((r for r in rows if str(r["sync_id"]) == sync_id), key=lambda r: r[key])
        first = mine[0][key]
        return [
            (r["upstream_id"], r["data"], r[key] - first, r.get("event"), r.get("changes"))
            for r in mine
        ]

    recs = await table(db, schema, "records")
    events = await table(db, schema, "events")
    assert shape(recs, sync.id, "updated_idx") == shape(recs, twin.id, "updated_idx")
    assert shape(events, sync.id, "seq") == shape(events, twin.id, "seq")
    assert {e["event"] for e in events} == {"created"}
    by_id = {str(r["id"]): r for r in recs}
    for e in events:  # each event is its record's version
        assert e["seq"] == by_id[str(e["record_id"])]["updated_idx"]
    assert all(r["upstream_updated_at"] == at for r in recs)
    # one of them known already: the whole batch takes the staged path, with the same rules
    again = await write(
        db, sync, COL, [*batch[:1], UpstreamObject("cus_9", {"n": 9}, 1)], schema=schema
    )
    assert (again.created, again.unchanged) == (1, 1)
