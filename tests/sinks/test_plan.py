"""Batch planning (pure): dedup, ordering, routing, mapping errors."""

from __future__ import annotations

from typing import Any

import pytest

from upsync import ConfigurationError, MappingError, Record
from upsync.sinks.plan import plan_batch
from upsync.sinks.routes import Column, Route

COLUMNS = ["id", "updated_idx", "deleted", "data"]


def rec(key: str, version: int, collection: str = "stripe:customer", **data: Any) -> Record:
    return Record(
        id=key, upstream_id=f"up_{key}", collection_id=collection, updated_idx=version, data=data
    )


def resolver(route: Route) -> tuple[Column, ...]:
    return route.resolve(COLUMNS + list(route.columns))


ROUTES = {
    "stripe:customer": Route("stripe:customer", "customers"),
    "stripe:invoice": Route("stripe:invoice", "invoices", schema="billing"),
}


def test_dedup_keeps_the_highest_version_and_counts_the_rest() -> None:
    records = [rec("b", 3, n=1), rec("a", 1), rec("b", 9, n=2), rec("b", 5, n=3), rec("a", 1)]
    plan = plan_batch(records, resolver, ROUTES)
    (batch,) = plan.tables
    assert batch.record_ids == ["a", "b"]
    assert batch.versions == [1, 9]
    assert batch.rows[1][batch.column_names.index("data")] == {"n": 2}
    assert plan.duplicates == 3


def test_rows_are_sorted_by_key_bytewise_and_tables_by_name() -> None:
    keys = ["é", "b", "B", "a", "Z"]
    records = [rec(k, 1) for k in keys] + [rec("x", 1, "stripe:invoice")]
    plan = plan_batch(records, resolver, ROUTES)
    assert [t.route.table for t in plan.tables] == ["customers", "invoices"]  # "" < "billing"
    assert plan.tables[0].record_ids == sorted(keys)


def test_deferred_plan_has_keys_and_records_but_no_rows() -> None:
    plan = plan_batch([rec("b", 1), rec("a", 2)], resolver, ROUTES, compute_rows=False)
    (batch,) = plan.tables
    assert batch.deferred and batch.rows == []
    assert batch.keys == ["a", "b"] and [r.id for r in batch.records] == ["a", "b"]


def test_unrouted_records_are_collected_by_default() -> None:
    plan = plan_batch([rec("a", 1, "stripe:charge")], resolver, ROUTES)
    assert plan.tables == [] and [r.id for r in plan.unrouted] == ["a"]


def test_unrouted_raise_names_the_collection() -> None:
    with pytest.raises(ConfigurationError, match="'stripe:charge'"):
        plan_batch([rec("a", 1), rec("b", 1, "stripe:charge")], resolver, ROUTES, unrouted="raise")


def test_unrouted_raw_goes_to_the_raw_route() -> None:
    raw = Route("upsync:raw", "raw_records")
    plan = plan_batch(
        [rec("a", 1, "stripe:charge")], resolver, ROUTES, unrouted="raw", raw_route=raw
    )
    assert plan.tables[0].route is raw


def test_a_raising_callable_rejects_only_its_record() -> None:
    def boom(r: Record) -> Any:
        if r.id == "bad":
            raise ValueError("no plan")
        return "ok"

    routes = {"stripe:customer": Route("stripe:customer", "customers", columns={"plan": boom})}
    plan = plan_batch([rec("good", 1), rec("bad", 1)], resolver, routes)
    assert plan.tables[0].record_ids == ["good"]
    (error,) = plan.rejected
    assert isinstance(error, MappingError)
    assert (error.record_id, error.column) == ("bad", "plan")
    assert "ValueError: no plan" in str(error)


def test_a_route_that_cannot_resolve_rejects_its_records_with_the_reason() -> None:
    def missing_table(route: Route) -> tuple[Column, ...]:
        if route.table == "invoices":
            raise ConfigurationError("table billing.invoices has no column(s) ['total']")
        return resolver(route)

    plan = plan_batch([rec("a", 1), rec("x", 1, "stripe:invoice")], missing_table, ROUTES)
    assert [t.route.table for t in plan.tables] == ["customers"]
    (error,) = plan.rejected
    assert error.record_id == "x" and "['total']" in str(error)
