"""Invariants 6 and 7, tried to break: any multiset of versions, in any order and batching,
with deletes interleaved, leaves each row at its highest version and never resurrects one."""

from __future__ import annotations

import itertools
import random
import threading
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upsync import Record
from upsync.sinks import Route, TableSink, ensure_table

Conn = psycopg.Connection[tuple[Any, ...]]
ROUTE = Route("stripe:customer", "customers", columns={"n": "data.n", "data": "data"})
KEYS = ["a", "É", "a b"]


def version(key: str, idx: int, deleted: bool) -> Record:
    return Record(
        id=key,
        upstream_id=f"cus_{key}",
        collection_id="stripe:customer",
        updated_idx=idx,
        deleted=deleted,
        data={"n": idx, "deleted": deleted},
    )


# a version is (key, updated_idx, deleted); one idx always means one content (the contract:
# a version number names one version), so the model needs no tie-breaking
versions = st.lists(
    st.tuples(st.sampled_from(KEYS), st.integers(0, 12)).map(
        lambda kv: version(kv[0], kv[1], deleted=(kv[1] * 7 + len(kv[0])) % 3 == 0)
    ),
    max_size=30,
)


def model(records: list[Record], hard: bool) -> dict[str, tuple[int, bool, int]]:
    """Expected rows: key → (updated_idx, deleted, n) of the highest version."""
    top: dict[str, Record] = {}
    for r in records:
        if r.id not in top or r.updated_idx > top[r.id].updated_idx:
            top[r.id] = r
    return {
        k: (r.updated_idx, r.deleted, r.updated_idx)
        for k, r in top.items()
        if not (hard and r.deleted)
    }


def table_state(conn: Conn) -> dict[str, tuple[int, bool, int]]:
    rows = conn.execute("select id, updated_idx, deleted, n from customers").fetchall()
    return {r[0]: (r[1], r[2], int(r[3])) for r in rows}


@pytest.fixture
def customers(conn: Conn) -> Conn:
    ensure_table(conn, ROUTE, column_types={"n": "integer"})
    conn.commit()
    return conn


def split(records: list[Record], cuts: list[int]) -> list[list[Record]]:
    bounds = sorted({c % (len(records) + 1) for c in cuts} | {0, len(records)})
    return [records[a:b] for a, b in itertools.pairwise(bounds)]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=versions,
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 30), max_size=8),
    hard=st.booleans(),
    pipeline=st.booleans(),
)
def test_any_versions_any_order_any_batching_leave_the_highest(
    customers: Conn,
    records: list[Record],
    order: random.Random,
    cuts: list[int],
    hard: bool,
    pipeline: bool,
) -> None:
    """Applying a multiset of versions gives the model's rows; re-applying changes nothing."""
    customers.execute("truncate customers")
    customers.execute("drop table if exists upsync_tombstones")
    customers.commit()
    # chunks of 4 so a batch spans several; the write path: row pipeline or COPY + merge
    sink = TableSink(
        [ROUTE], hard_delete=hard, chunk_size=4, executemany_below=5 if pipeline else 0
    )
    shuffled = list(records)
    order.shuffle(shuffled)
    for batch in split(shuffled, cuts):
        result = sink.apply(customers, batch)
        assert result.rejected == []
        distinct = len({r.id for r in batch})
        assert result.inserted + result.updated + result.stale + result.deleted == distinct
        assert result.duplicates == len(batch) - distinct
    assert table_state(customers) == model(records, hard)
    replay = sink.apply(customers, records)
    assert replay.applied == 0
    assert table_state(customers) == model(records, hard)


@pytest.mark.parametrize("below", [0, 10**6], ids=["set-based", "row-pipeline"])
@pytest.mark.parametrize("hard", [False, True], ids=["soft-delete", "hard-delete"])
def test_concurrent_appliers_on_overlapping_keys_agree_and_never_deadlock(
    customers: Conn, schema_dsn: str, rng: random.Random, hard: bool, below: int
) -> None:
    """Four connections apply shuffled, randomly batched copies of one version set at once."""
    keys = [f"k{i:03d}" for i in range(300)]
    records = [
        version(k, idx, deleted=rng.random() < 0.2)
        for k in keys
        for idx in rng.sample(range(50), 5)
    ]
    sink = TableSink([ROUTE], hard_delete=hard, chunk_size=16, executemany_below=below)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        local = random.Random(seed)
        mine = list(records)
        local.shuffle(mine)
        try:
            with psycopg.connect(schema_dsn) as conn:
                start.wait()
                while mine:
                    size = local.randint(1, 200)
                    sink.apply(conn, mine[:size])
                    mine = mine[size:]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(rng.random(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert table_state(customers) == model(records, hard)
