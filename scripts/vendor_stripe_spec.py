"""Regenerate the Stripe reference data vendored in ``src/upsync/testing/stripe/reference/``.

The stand-in and its tests need only a small part of Stripe's OpenAPI repository
(github.com/stripe/openapi, MIT): the schemas of the object types the stand-in serves (and
every schema they reference), the list of API paths, and the sample object of each type those
tests compare against. This script cuts those parts out of a full copy, so the repository works
with nothing beside it. Run it by hand when moving to a newer spec; CI never runs it.

Usage::

    python scripts/vendor_stripe_spec.py --spec path/to/spec3.yaml \\
        --fixtures path/to/fixtures3.json --license path/to/LICENSE

Needs PyYAML (``pip install pyyaml``) and an installed upsync (it reads the stand-in's
registry and the source's collections to know which types to keep).

Written files:

``schemas.json``
    ``{"api_version", "paths", "schemas"}``: every path of the spec, and for each kept schema
    only ``type``, ``nullable``, ``properties``, ``required``, ``items``, ``anyOf``,
    ``oneOf``, ``allOf``, ``enum``, ``additionalProperties``, ``x-expandableFields``,
    ``x-expansionResources`` and ``x-resourceId``; ``$ref`` values are shortened to the
    schema's name. One schema per line, so a regeneration diffs readably.
``fixtures.json``
    ``{"resources": {...}}`` with the kept types' sample objects, verbatim.
``LICENSE``
    Stripe's MIT licence, copied.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src" / "upsync" / "testing" / "stripe" / "reference"

KEEP = frozenset(
    {
        "type",
        "nullable",
        "properties",
        "required",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
        "enum",
        "additionalProperties",
        "x-expandableFields",
        "x-expansionResources",
        "x-resourceId",
    }
)
"""the schema keywords kept; descriptions, lengths and formats are dropped"""

EXTRA_TYPES = (
    "account",
    "bank_account",
    "card",
    "source",
    "product_feature",
    "cash_balance",
    "tax_id",
    "discount",
    "item",
)
"""types the stand-in answers without storing them (``/v1/account``, sources, features)"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True, help="Stripe's spec3.yaml")
    parser.add_argument("--fixtures", type=Path, required=True, help="Stripe's fixtures3.json")
    parser.add_argument("--license", type=Path, required=True, help="stripe/openapi's LICENSE")
    args = parser.parse_args()
    spec = _load_yaml(args.spec)
    fixtures = json.loads(args.fixtures.read_text())["resources"]
    roots = kept_types(fixtures)
    OUT.mkdir(parents=True, exist_ok=True)
    _write_schemas(spec, roots)
    kept_fixtures = {t: fixtures[t] for t in sorted(roots) if t in fixtures}
    (OUT / "fixtures.json").write_text(json.dumps({"resources": kept_fixtures}, indent=1) + "\n")
    shutil.copyfile(args.license, OUT / "LICENSE")
    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(OUT.parents[4])}: {path.stat().st_size:,} bytes")


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml  # only this script needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as f:
        loaded: dict[str, Any] = yaml.load(f, Loader=loader)  # a safe loader
    return loaded


def kept_types(fixtures: dict[str, Any]) -> set[str]:
    """The stand-in's types, the source's collections, their deleted stubs and the extras."""
    from upsync.sources.stripe.collections import COLLECTIONS
    from upsync.testing.stripe.objects import REGISTRY

    types = {r.object for r in REGISTRY.values()} | set(EXTRA_TYPES)
    types |= {c.object_type for c in COLLECTIONS.values()}
    return types | {f"deleted_{t}" for t in types if f"deleted_{t}" in fixtures}


def _write_schemas(spec: dict[str, Any], roots: Iterable[str]) -> None:
    schemas = spec["components"]["schemas"]
    kept = {name: compact(schemas[name]) for name in sorted(closure(schemas, roots))}
    lines = [f"{json.dumps(n)}:{json.dumps(s, separators=(',', ':'))}" for n, s in kept.items()]
    head = {"api_version": spec["info"]["version"], "paths": sorted(spec["paths"])}
    text = json.dumps(head, indent=1)[:-2] + ',\n "schemas": {\n' + ",\n".join(lines) + "\n}}\n"
    json.loads(text)  # the hand-joined document must still be JSON
    (OUT / "schemas.json").write_text(text)


def closure(schemas: dict[str, Any], roots: Iterable[str]) -> set[str]:
    """The named schemas among ``roots`` and every schema they reference, transitively."""
    todo = [r for r in roots if r in schemas]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [r for r in _refs(schemas[name]) if r not in seen]
    return seen


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value.rsplit("/", 1)[1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def compact(node: dict[str, Any]) -> dict[str, Any]:
    """A schema with only the :data:`KEEP` keywords, ``$ref`` shortened to the schema name."""
    if "$ref" in node:
        return {"$ref": node["$ref"].rsplit("/", 1)[1]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: compact(sub) for name, sub in value.items()}
        elif key == "x-expansionResources":
            out[key] = [compact(sub)["$ref"] for sub in value["oneOf"]]
        elif key in KEEP:
            out[key] = _compact_value(value)
    return out


def _compact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return compact(value)
    if isinstance(value, list):
        return [compact(v) if isinstance(v, dict) else v for v in value]
    return value


if __name__ == "__main__":
    main()
