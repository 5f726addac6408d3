"""The Stripe collections registry agrees with Stripe's own spec and fixtures."""

from __future__ import annotations

import pytest

from upsync import ConfigurationError
from upsync.sinks.routes import Route
from upsync.sources.stripe.collections import COLLECTIONS, collection, for_object_type
from upsync.testing.stripe import spec


def test_every_list_path_exists_in_stripes_spec() -> None:
    paths = spec.paths()
    assert len(paths) > 100
    missing = [c.list_path for c in COLLECTIONS.values() if c.list_path not in paths]
    assert missing == []


def test_every_object_type_has_a_fixture_with_its_typed_fields() -> None:
    fixtures = spec.fixtures()
    for c in COLLECTIONS.values():
        assert c.object_type in fixtures, c.name
        fixture = fixtures[c.object_type]
        assert fixture["object"] == c.object_type
        for f in c.fields:
            top = f.source.removeprefix("data.").split(".")[0].split("[")[0]
            assert top in fixture, f"{c.name}.{f.column}: {top!r} not in Stripe's fixture"


def test_typed_fields_make_valid_routes() -> None:
    for c in COLLECTIONS.values():
        Route(c.collection_id, c.table, columns={f.column: f.source for f in c.fields})


def test_lookup_by_id_name_and_object_type() -> None:
    assert collection("stripe:checkout.session").list_path == "/v1/checkout/sessions"
    assert collection("subscription").list_params == {"status": "all"}
    assert for_object_type("subscription") is COLLECTIONS["subscription"]
    assert for_object_type("account") is None
    with pytest.raises(ConfigurationError, match="unknown Stripe collection 'stripe:widget'"):
        collection("stripe:widget")
