"""TableSink.apply on a psycopg connection: semantics, counts, deletes, bad records."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg
import pytest

from upsync import ConfigurationError, MappingError, Record, RowRejected, SyncRef
from upsync.sinks import Route, TableSink, ensure_table

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


Conn = psycopg.Connection[tuple[Any, ...]]

SUBS = Route(
    "stripe:subscription",
    "subscriptions",
    columns={
        "stripe_customer_id": "data.customer",
        "plan_id": "data.items.data[0].price.id",
        "quantity": "data.quantity",
        "internal_id": "sync.external_id",
        "data": "data",
    },
)
TYPES = {"quantity": "integer", "plan_id": "varchar(12)", "stripe_customer_id": "text"}


def sub(key: str, version: int, *, deleted: bool = False, **data: Any) -> Record:
    body = {"customer": "cus_1", "quantity": 1, "items": {"data": [{"price": {"id": "p1"}}]}}
    body.update(data)
    return Record(
        id=key,
        upstream_id=f"sub_{key}",
        collection_id="stripe:subscription",
        updated_idx=version,
        deleted=deleted,
        data=body,
        sync=SyncRef("sync_1", "acme", {"tier": "gold"}),
    )


@pytest.fixture
def table(conn: Conn) -> Conn:
    ensure_table(conn, SUBS, column_types=TYPES)
    conn.commit()
    return conn


def rows(conn: Conn, *columns: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(["id", *columns])
    return conn.execute(f"select {cols} from subscriptions order by id").fetchall()  # noqa: S608


@pytest.mark.smoke
def test_apply_maps_the_guides_columns_and_counts(table: Conn) -> None:
    result = make_sink([SUBS]).apply(table, [sub("a", 1, quantity=3), sub("b", 2)])
    assert (result.inserted, result.updated, result.stale, result.rejected) == (2, 0, 0, [])
    assert rows(table, "upstream_id", "stripe_customer_id", "plan_id", "quantity") == [
        ("a", "sub_a", "cus_1", "p1", 3),
        ("b", "sub_b", "cus_1", "p1", 1),
    ]
    assert rows(table, "internal_id", "sync_id", "sync_metadata", "data->>'customer'")[0] == (
        "a",
        "acme",
        "sync_1",
        {"tier": "gold"},
        "cus_1",
    )


def test_newer_versions_update_and_older_or_equal_ones_change_nothing(table: Conn) -> None:
    sink = make_sink([SUBS])
    sink.apply(table, [sub("a", 5, quantity=5), sub("b", 5, quantity=5)])
    result = sink.apply(table, [sub("a", 4, quantity=4), sub("b", 6, quantity=6), sub("c", 1)])
    assert (result.inserted, result.updated, result.stale) == (1, 1, 1)
    replay = sink.apply(table, [sub("a", 5, quantity=99)])
    assert replay.stale == 1
    assert rows(table, "updated_idx", "quantity") == [("a", 5, 5), ("b", 6, 6), ("c", 1, 1)]


def test_in_batch_duplicates_keep_the_highest_version(table: Conn) -> None:
    result = make_sink([SUBS]).apply(
        table, [sub("a", 2, quantity=2), sub("a", 7, quantity=7), sub("a", 3, quantity=3)]
    )
    assert (result.inserted, result.duplicates) == (1, 2)
    assert rows(table, "updated_idx", "quantity") == [("a", 7, 7)]


def test_soft_delete_keeps_a_tombstone_that_blocks_older_versions(table: Conn) -> None:
    sink = make_sink([SUBS])
    sink.apply(table, [sub("a", 1)])
    assert sink.apply(table, [sub("a", 3, deleted=True, quantity=9)]).deleted == 1
    late = sink.apply(table, [sub("a", 2, quantity=2)])
    assert late.stale == 1
    assert rows(table, "deleted", "updated_idx", "quantity") == [("a", True, 3, 9)]
    assert sink.apply(table, [sub("a", 4, quantity=4)]).updated == 1  # re-created upstream
    assert rows(table, "deleted", "updated_idx") == [("a", False, 4)]


def test_hard_delete_removes_the_row_and_never_resurrects_it(table: Conn) -> None:
    sink = make_sink([SUBS], hard_delete=True)
    sink.apply(table, [sub("a", 1), sub("b", 1)])
    result = sink.apply(table, [sub("a", 3, deleted=True), sub("c", 2, deleted=True)])
    assert (result.deleted, result.stale) == (2, 0)
    assert rows(table) == [("b",)]
    late = sink.apply(table, [sub("a", 2), sub("c", 1), sub("a", 3), sub("b", 0)])
    assert late.stale == 3 and late.inserted == 0
    assert rows(table) == [("b",)]
    assert table.execute(
        "select id, updated_idx from upsync_tombstones order by id"
    ).fetchall() == [
        ("a", 3),
        ("c", 2),
    ]
    back = sink.apply(table, [sub("a", 4, quantity=4)])  # a newer version: re-created upstream
    assert back.inserted == 1
    assert rows(table, "updated_idx") == [("a", 4), ("b", 1)]


def test_hard_delete_older_than_the_row_changes_nothing(table: Conn) -> None:
    sink = make_sink([SUBS], hard_delete=True)
    sink.apply(table, [sub("a", 5)])
    result = sink.apply(table, [sub("a", 4, deleted=True)])
    assert (result.deleted, result.stale) == (0, 1)
    assert rows(table, "updated_idx") == [("a", 5)]


def test_apply_inside_the_callers_transaction_is_undone_by_its_rollback(table: Conn) -> None:
    sink = make_sink([SUBS], chunk_size=2)
    table.execute("select 1")  # the caller's transaction is open
    sink.apply(table, [sub(f"k{i}", 1) for i in range(5)])
    assert table.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    sink.apply(table, [sub(f"k{i}", 2) for i in range(5)])  # staging reused in one transaction
    assert len(rows(table)) == 5
    table.rollback()
    assert rows(table) == []


def test_apply_on_an_idle_connection_commits(table: Conn, schema_dsn: str) -> None:
    make_sink([SUBS]).apply(table, [sub("a", 1)])
    with psycopg.connect(schema_dsn) as other:
        assert other.execute("select count(*) from subscriptions").fetchone() == (1,)


def test_a_large_batch_is_chunked_in_one_transaction(table: Conn, schema_dsn: str) -> None:
    sink = make_sink([SUBS], chunk_size=7)
    first = sink.apply(table, [sub(f"k{i:03d}", 1) for i in range(50)])
    mixed = [sub(f"k{i:03d}", 2 if i % 2 else 0) for i in range(50)]
    mixed += [sub(f"n{i:03d}", 1) for i in range(20)]
    second = sink.apply(table, mixed)
    assert first.inserted == 50
    assert (second.inserted, second.updated, second.stale) == (20, 25, 25)
    with psycopg.connect(schema_dsn) as other:
        assert other.execute("select count(*) from subscriptions").fetchone() == (70,)


def test_autocommit_connection_still_gets_one_transaction(schema_dsn: str) -> None:
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        ensure_table(conn, SUBS, column_types=TYPES)
        records = [sub("a", 1), sub("b", 1, quantity="not a number")]
        with pytest.raises(RowRejected):
            make_sink([SUBS], isolate_bad_records=False).apply(conn, records)
        assert conn.execute("select count(*) from subscriptions").fetchone() == (0,)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (sub("bad", 1, items={"data": [{"price": {"id": "x" * 13}}]}), "value too long"),
        (sub("bad", 1, quantity="many"), 'invalid input syntax for type integer: "many"'),
        (replace(sub("bad", 1), sync=SyncRef("s", "nul\x00byte")), "NUL (0x00)"),
        (sub("bad", 1, note="nul\x00in json"), "\\u0000"),
    ],
    ids=["too-long", "bad-integer", "nul-in-text", "nul-in-json"],
)
def test_a_row_postgres_refuses_is_reported_and_the_rest_lands(
    table: Conn, bad: Record, reason: str
) -> None:
    good = [sub(f"g{i}", 1) for i in range(9)]
    result = make_sink([SUBS]).apply(table, [*good, bad])
    assert result.inserted == 9
    (error,) = result.rejected
    assert error.record_id == "bad"  # type: ignore[attr-defined]
    assert reason in str(error)
    assert len(rows(table)) == 9


def test_not_null_and_check_violations_are_isolated(table: Conn) -> None:
    table.execute("alter table subscriptions add check (quantity > 0)")
    table.execute("alter table subscriptions alter column stripe_customer_id set not null")
    table.commit()
    records = [sub(f"g{i}", 1) for i in range(6)]
    records += [sub("neg", 1, quantity=-1), sub("nocus", 1, customer=None)]
    result = make_sink([SUBS]).apply(table, records)
    assert result.inserted == 6
    errors = {e.record_id: e for e in result.rejected}  # type: ignore[attr-defined]
    assert set(errors) == {"neg", "nocus"}
    assert isinstance(errors["neg"], RowRejected) and errors["neg"].sqlstate == "23514"
    assert errors["nocus"].sqlstate == "23502"  # type: ignore[attr-defined]
    assert "stripe_customer_id" in str(errors["nocus"])


def test_a_mapping_error_names_record_and_column(table: Conn) -> None:
    def plan_name(r: Record) -> str:
        return str(r.data["plan"]["nickname"])

    route = Route(SUBS.collection_id, SUBS.table, columns={**SUBS.columns, "plan_id": plan_name})
    result = make_sink([route]).apply(table, [sub("ok", 1, plan={"nickname": "gold"}), sub("x", 1)])
    assert result.inserted == 1
    (error,) = result.rejected
    assert isinstance(error, MappingError)
    assert (error.record_id, error.column) == ("x", "plan_id")
    assert "KeyError" in error.reason


def test_an_object_for_a_scalar_column_is_a_mapping_error(table: Conn) -> None:
    result = make_sink([SUBS]).apply(table, [sub("x", 1, quantity={"n": 1}), sub("ok", 1)])
    (error,) = result.rejected
    assert isinstance(error, MappingError)
    assert "JSON object" in str(error) and "quantity" in str(error)


def test_table_missing_a_mapped_column_rejects_that_routes_records(table: Conn) -> None:
    route = Route("stripe:subscription", "subscriptions", columns={"nickname": "data.nickname"})
    other = Route("stripe:customer", "customers")
    ensure_table(table, other)
    result = make_sink([route, other]).apply(
        table,
        [
            sub("s", 1),
            Record(
                id="c", upstream_id="cus_1", collection_id="stripe:customer", updated_idx=1, data={}
            ),
        ],
    )
    assert result.inserted == 1  # the customer
    (error,) = result.rejected
    assert error.record_id == "s"  # type: ignore[attr-defined]
    assert "no column(s) ['nickname']" in str(error)


def test_missing_table_is_reported_and_found_once_created(table: Conn) -> None:
    route = Route("stripe:invoice", "invoices")
    sink = make_sink([route])
    record = Record(id="i", upstream_id="in_1", collection_id="stripe:invoice", updated_idx=1)
    (error,) = sink.apply(table, [record]).rejected
    assert "invoices" in str(error) and "does not exist" in str(error)
    ensure_table(table, route)
    assert sink.apply(table, [record]).inserted == 1


def test_route_without_key_column_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="'id'"):
        make_sink([Route("stripe:customer", "customers", standard=("updated_idx",))])


def test_deletes_without_a_deleted_column_need_hard_delete(table: Conn) -> None:
    table.execute("alter table subscriptions drop column deleted")
    result = make_sink([SUBS]).apply(table, [sub("a", 1), sub("b", 1, deleted=True)])
    assert result.inserted == 1
    (error,) = result.rejected
    assert "hard_delete=True" in str(error)


def test_unrouted_ignore_counts_them(table: Conn) -> None:
    other = Record(id="c", upstream_id="ch_1", collection_id="stripe:charge", updated_idx=1)
    result = make_sink([SUBS]).apply(table, [sub("a", 1), other])
    assert (result.inserted, result.unrouted) == (1, 1)


def test_unrouted_raise_writes_nothing(table: Conn) -> None:
    other = Record(id="c", upstream_id="ch_1", collection_id="stripe:charge", updated_idx=1)
    with pytest.raises(ConfigurationError, match="stripe:charge"):
        make_sink([SUBS], unrouted="raise").apply(table, [sub("a", 1), other])
    assert rows(table) == []


def test_unrouted_raw_lands_in_a_guarded_raw_table(table: Conn, schema: str) -> None:
    def charge(version: int) -> Record:
        return Record(
            id="c",
            upstream_id="ch_1",
            collection_id="stripe:charge",
            updated_idx=version,
            data={"amount": version},
        )

    sink = make_sink([SUBS], unrouted="raw", raw_table=(schema, "raw"))
    assert sink.apply(table, [sub("a", 1), charge(2)]).inserted == 2
    assert sink.apply(table, [charge(1)]).stale == 1
    raw = table.execute("select id, collection_id, upstream_id, updated_idx, data from raw")
    assert raw.fetchall() == [("c", "stripe:charge", "ch_1", 2, {"amount": 2})]


def test_hard_delete_then_a_lone_older_version_in_its_own_batch_stays_deleted(
    table: Conn,
) -> None:
    """Regression: the all-new fast path (plain COPY) must not bypass the tombstones."""
    sink = make_sink([SUBS], hard_delete=True)
    sink.apply(table, [sub("a", 1)])
    sink.apply(table, [sub("a", 5, deleted=True)])
    assert sink.apply(table, [sub("a", 4)]).stale == 1
    assert rows(table) == []


@pytest.mark.parametrize("hard", [False, True], ids=["plain", "with-tombstones"])
def test_per_row_upsert_statement_is_guarded_and_returns_inserted_flags(
    table: Conn, hard: bool
) -> None:
    """The executemany form other drivers use: one result row per applied version."""
    from upsync.sinks import sql as q

    tombstones = ("upsync_tombstones",) if hard else None
    if tombstones:
        table.execute(q.tombstone_table_statement(tombstones))
        table.execute(
            "insert into upsync_tombstones (table_name, id, updated_idx) values ('t', 'x', 0)"
        )
    route = Route("stripe:subscription", "subscriptions", standard=("id", "updated_idx", "deleted"))
    stmt = q.upsert_statement(
        route,
        ["id", "updated_idx", "deleted"],
        column_types={"id": "text", "updated_idx": "bigint", "deleted": "boolean"},
        tombstones=tombstones,
        deleted_column="deleted",
    )
    cur = table.cursor()
    params = [("a", 2, False), ("b", 1, True), ("a", 1, False), ("a", 3, False)]
    cur.executemany(stmt, params, returning=True)
    results = []
    while True:
        results.append(cur.fetchall())
        if not cur.nextset():
            break
    assert results == [[(True, False)], [(True, True)], [], [(False, False)]]
    assert rows(table, "updated_idx", "deleted") == [("a", 3, False), ("b", 1, True)]


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_a_uuid_key_column_works_on_every_path(conn: Conn, hard: bool) -> None:
    conn.execute(
        "create table things (id uuid primary key, updated_idx bigint not null, "
        "deleted boolean not null default false, n integer)"
    )
    route = Route("stripe:customer", "things", columns={"n": "data.n"})
    sink = make_sink([route], hard_delete=hard, chunk_size=2)

    def thing(i: int, version: int, deleted: bool = False) -> Record:
        key = f"00000000-0000-0000-0000-00000000000{i}"
        return Record(
            id=key,
            upstream_id=str(i),
            collection_id="stripe:customer",
            updated_idx=version,
            deleted=deleted,
            data={"n": version},
        )

    assert sink.apply(conn, [thing(i, 1) for i in range(4)]).inserted == 4
    again = sink.apply(conn, [thing(0, 2), thing(1, 0), thing(2, 3, deleted=True), thing(5, 1)])
    assert (again.inserted, again.updated, again.stale, again.deleted) == (1, 1, 1, 1)
    state = conn.execute("select id::text, updated_idx, n from things order by id").fetchall()
    expected = [("0", 2, 2), ("1", 1, 1), ("3", 1, 1), ("5", 1, 1)]
    if not hard:
        expected.insert(2, ("2", 3, 3))
    assert [(k[-1], v, n) for k, v, n in state] == expected


def test_strict_mode_raises_a_mapping_error_and_writes_nothing(table: Conn) -> None:
    records = [sub(f"g{i}", 1) for i in range(40)] + [sub("x", 1, quantity=[1, 2])]
    with pytest.raises(MappingError, match="quantity"):
        make_sink([SUBS], isolate_bad_records=False).apply(table, records)
    assert rows(table) == []
