"""Routes and column sources (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from upsync import ConfigurationError, Record, SyncRef
from upsync.sinks.routes import STANDARD_COLUMNS, Route, compile_source


def subscription(**data: Any) -> Record:
    return Record(
        id="r1",
        upstream_id="sub_1",
        collection_id="stripe:subscription",
        updated_idx=7,
        data=data,
        sync=SyncRef("sync_1", "acme", {"tier": "gold"}),
    )


def test_sources_read_attributes_sync_and_data_paths() -> None:
    r = subscription(customer="cus_1", items={"data": [{"price": {"id": "price_1"}}]}, quantity=3)
    assert compile_source("id")(r) == "r1"
    assert compile_source("updated_idx")(r) == 7
    assert compile_source("sync.external_id")(r) == "acme"
    assert compile_source("sync.metadata")(r) == {"tier": "gold"}
    assert compile_source("data.customer")(r) == "cus_1"
    assert compile_source("data.items.data[0].price.id")(r) == "price_1"
    assert compile_source(lambda rec: rec.upstream_id.upper())(r) == "SUB_1"


@pytest.mark.parametrize(
    "path",
    ["data.missing", "data.items.data[5].price", "data.customer.id", "data.quantity[0]"],
)
def test_absent_paths_give_none(path: str) -> None:
    r = subscription(customer="cus_1", items={"data": []}, quantity=3)
    assert compile_source(path)(r) is None


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("customer", "unknown column source 'customer'"),
        ("sync.name", "unknown column source"),
        ("data.items[x]", "cannot parse data path"),
        ("", "non-empty|must be a string"),
    ],
)
def test_bad_sources_fail_when_the_route_is_built(source: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Route("stripe:subscription", "subscriptions", columns={"x": source})


def test_resolve_auto_maps_the_standard_columns_the_table_has() -> None:
    route = Route("stripe:subscription", "subscriptions", columns={"plan_id": "data.plan.id"})
    cols = route.resolve(["id", "updated_idx", "deleted", "sync_external_id", "plan_id", "other"])
    assert [c.name for c in cols] == ["id", "deleted", "updated_idx", "sync_external_id", "plan_id"]
    assert {c.name: c.source for c in cols}["sync_external_id"] == STANDARD_COLUMNS[
        "sync_external_id"
    ]


def test_resolve_rejects_missing_key_or_unknown_columns() -> None:
    with pytest.raises(ConfigurationError, match="does not map column 'updated_idx'"):
        Route("stripe:customer", "customers", standard=["id"]).resolve(None)
    route = Route("stripe:customer", "customers", columns={"email": "data.email"})
    with pytest.raises(ConfigurationError, match=r"has no column\(s\) \['email'\]"):
        route.resolve(["id", "updated_idx"])
    with pytest.raises(ConfigurationError, match="not standard columns"):
        Route("stripe:customer", "customers", standard=["idx"])
    with pytest.raises(ConfigurationError, match="provider:name"):
        Route("customer", "customers")


def test_qualified_name() -> None:
    assert Route("stripe:customer", "customers", schema="stripe").qualified_name == (
        "stripe",
        "customers",
    )
