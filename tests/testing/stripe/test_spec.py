"""The vendored Stripe reference data is complete for what the stand-in serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from upsync.testing.stripe import spec
from upsync.testing.stripe.objects import REGISTRY

REFERENCE = Path(spec.__file__).parent / "reference"


def test_every_served_type_has_a_schema_and_a_fixture() -> None:
    for type_ in REGISTRY:
        assert spec.schema(type_).get("x-resourceId") == type_
        assert spec.fixtures()[type_]["object"] == type_


def test_every_referenced_schema_is_vendored() -> None:
    def refs(node: object) -> set[str]:
        if isinstance(node, dict):
            return {node["$ref"]} if "$ref" in node else set().union(*map(refs, node.values()))
        if isinstance(node, list):
            return set().union(*map(refs, node))
        return set()

    assert refs(spec.schemas()) - spec.schemas().keys() == set()


def test_unknown_schema_is_named() -> None:
    with pytest.raises(KeyError, match="no vendored Stripe schema 'widget'"):
        spec.schema("widget")


def test_stripes_licence_sits_beside_the_data_and_it_stays_small() -> None:
    assert "MIT License" in (REFERENCE / "LICENSE").read_text()
    assert sum(p.stat().st_size for p in REFERENCE.iterdir()) < 1_000_000
