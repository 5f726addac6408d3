"""TableSink.apply_async on an async psycopg connection (same algorithm, async driver)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from upsync import Record, RowRejected
from upsync.sinks import Route, TableSink, ensure_table_async

# every test runs on both write paths: set-based (COPY, staging + merge) and row pipeline
# (executemany), whatever the size of its batches
_EXECUTEMANY_BELOW = 0


@pytest.fixture(autouse=True, params=["set-based", "row-pipeline"])
def write_path(request: pytest.FixtureRequest) -> None:
    global _EXECUTEMANY_BELOW
    _EXECUTEMANY_BELOW = 0 if request.param == "set-based" else 10**6


def make_sink(routes: list[Route], **options: Any) -> TableSink:
    options.setdefault("executemany_below", _EXECUTEMANY_BELOW)
    return TableSink(routes, **options)


AConn = psycopg.AsyncConnection[tuple[Any, ...]]
ROUTE = Route("stripe:customer", "customers", columns={"email": "data.email", "data": "data"})


def cus(key: str, version: int, *, deleted: bool = False, email: str = "a@b.c") -> Record:
    return Record(
        id=key,
        upstream_id=f"cus_{key}",
        collection_id="stripe:customer",
        updated_idx=version,
        deleted=deleted,
        data={"email": email},
    )


@pytest.fixture
async def customers(aconn: AConn) -> AConn:
    await ensure_table_async(aconn, ROUTE, column_types={"email": "varchar(20)"})
    await aconn.commit()
    return aconn


async def state(conn: AConn) -> list[tuple[Any, ...]]:
    cur = await conn.execute("select id, updated_idx, deleted, email from customers order by id")
    return await cur.fetchall()


@pytest.mark.smoke
async def test_apply_async_upserts_guarded_and_counts(customers: AConn) -> None:
    sink = make_sink([ROUTE])
    first = await sink.apply_async(customers, [cus("a", 1), cus("b", 1)])
    second = await sink.apply_async(
        customers, [cus("a", 2, email="new@b.c"), cus("b", 0), cus("c", 1, deleted=True)]
    )
    assert (first.inserted, second.updated, second.stale, second.deleted) == (2, 1, 1, 1)
    assert await state(customers) == [
        ("a", 2, False, "new@b.c"),
        ("b", 1, False, "a@b.c"),
        ("c", 1, True, "a@b.c"),
    ]


async def test_apply_async_hard_delete_blocks_older_versions(customers: AConn) -> None:
    sink = make_sink([ROUTE], hard_delete=True)
    await sink.apply_async(customers, [cus("a", 1)])
    await sink.apply_async(customers, [cus("a", 5, deleted=True)])
    late = await sink.apply_async(customers, [cus("a", 4)])
    assert late.stale == 1
    assert await state(customers) == []


async def test_apply_async_isolates_a_bad_row(customers: AConn) -> None:
    records = [cus("a", 1), cus("b", 1, email="x" * 30), cus("c", 1)]
    result = await make_sink([ROUTE]).apply_async(customers, records)
    assert result.inserted == 2
    (error,) = result.rejected
    assert isinstance(error, RowRejected) and error.record_id == "b"
    assert error.sqlstate == "22001"


async def test_apply_async_in_callers_transaction_rolls_back_with_it(customers: AConn) -> None:
    await customers.execute("select 1")
    await make_sink([ROUTE], chunk_size=1).apply_async(customers, [cus("a", 1), cus("b", 1)])
    await customers.rollback()
    assert await state(customers) == []
