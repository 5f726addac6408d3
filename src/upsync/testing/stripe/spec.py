"""Stripe's own reference data, vendored: the OpenAPI schemas and sample objects (``fixtures``).

The files live in ``reference/`` beside this module (package data, so installed copies of
``upsync.testing`` have them too) and are cut from github.com/stripe/openapi (MIT) by
``scripts/vendor_stripe_spec.py``. ``$UPSYNC_STRIPE_REFERENCE`` may name a directory holding a
full ``fixtures3.json`` to compare against instead (the schemas always come from here).
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "REFERENCE_ENV",
    "fixtures",
    "paths",
    "schema",
    "schemas",
    "spec_version",
    "vendored_fixtures",
]

REFERENCE_ENV = "UPSYNC_STRIPE_REFERENCE"


def _read(name: str) -> Any:
    return orjson.loads(resources.files(__package__).joinpath("reference", name).read_bytes())


@functools.cache
def _schemas_file() -> dict[str, Any]:
    loaded: dict[str, Any] = _read("schemas.json")
    return loaded


def schemas() -> dict[str, Any]:
    """Every vendored schema by name (``customer``, ``checkout.session``, ``address`` …)."""
    found: dict[str, Any] = _schemas_file()["schemas"]
    return found


def schema(name: str) -> dict[str, Any]:
    """One schema by name; ``KeyError`` names it when it was not vendored."""
    try:
        found: dict[str, Any] = schemas()[name]
    except KeyError:
        raise KeyError(f"no vendored Stripe schema {name!r}") from None
    return found


def paths() -> frozenset[str]:
    """Every path of Stripe's API (``/v1/customers/{customer}`` …)."""
    return frozenset(_schemas_file()["paths"])


def spec_version() -> str:
    """The API version the vendored spec describes."""
    version: str = _schemas_file()["api_version"]
    return version


@functools.cache
def fixtures() -> dict[str, Any]:
    """Stripe's sample object per type, from ``$UPSYNC_STRIPE_REFERENCE`` when set."""
    configured = os.environ.get(REFERENCE_ENV)
    if configured:
        full = Path(configured) / "fixtures3.json"
        loaded: dict[str, Any] = orjson.loads(full.read_bytes())["resources"]
        return loaded
    return vendored_fixtures()


@functools.cache
def vendored_fixtures() -> dict[str, Any]:
    """Stripe's sample objects as vendored here (whatever ``$UPSYNC_STRIPE_REFERENCE`` says)."""
    vendored: dict[str, Any] = _read("fixtures.json")["resources"]
    return vendored
