"""``expand[]`` as Stripe's OpenAPI spec defines it (the vendored ``schemas.json``).

A dotted path walks from the response object: each step must be a field the schema of the
object (or hash) it is in lists in ``x-expandableFields``; lists are walked through ``data``.
An id becomes the object it names (a deleted one: its stub); a field Stripe leaves out unless
asked for (``customer.sources``, ``checkout.session.line_items``) is filled in by
:mod:`.includes`. At most four levels, as on Stripe. A deleted object answers its stub,
whatever is asked to expand.

Fields newer than the vendored spec (the stand-in renders a newer API version) are not in
its schemas: an id there still expands to the stored object it names.
"""

from __future__ import annotations

from typing import Any

from . import spec
from .errors import invalid_request
from .includes import fabricate, include, resolve
from .store import Store

__all__ = ["MAX_DEPTH", "expand", "expandable_fields"]

MAX_DEPTH = 4

Schema = dict[str, Any]


def expandable_fields(object_type: str) -> list[str]:
    """The fields of an object type the spec lets ``expand[]`` name at the first level."""
    found: list[str] = spec.schema(object_type).get("x-expandableFields", [])
    return found


def expand(store: Store, obj: dict[str, Any], paths: list[Any]) -> None:
    """Expand each dotted path of ``paths`` in ``obj`` (in place).

    Raises:
        StripeError: a path is too deep or names a property that cannot be expanded.
    """
    if obj.get("deleted") is True:
        return  # Stripe answers a deleted object's stub, expand or not
    for path in paths:
        if not isinstance(path, str) or not path:
            raise invalid_request("Invalid expand parameter.", param="expand")
        parts = path.split(".")
        depth = len(parts) - (1 if obj.get("object") == "list" else 0)
        if depth > MAX_DEPTH:
            raise invalid_request(
                f"You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}",
                param="expand",
            )
        _walk(store, obj, parts, path, None)


def _walk(store: Store, node: Any, parts: list[str], path: str, hint: Schema | None) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(store, item, parts, path, hint)
        return
    if not isinstance(node, dict) or node.get("deleted") is True:
        return
    if node.get("object") == "list":
        _walk_list(store, node, parts, path, hint)
        return
    schema = _schema_of(node, hint)
    key, rest = parts[0], parts[1:]
    prop = _property(schema, key)
    if schema is not None and prop is not None and key not in schema.get("x-expandableFields", []):
        raise _cannot(path)
    if key not in node:
        if prop is None:
            raise _cannot(path)
        node[key] = include(store, node, key, prop)
    else:
        node[key] = _expanded(store, node[key], path, prop)
    if rest:
        _walk(store, node[key], rest, path, resolve(prop) if prop is not None else None)


def _walk_list(
    store: Store, node: dict[str, Any], parts: list[str], path: str, hint: Schema | None
) -> None:
    """A list object: ``data`` is the only step into it."""
    if parts[0] != "data":
        raise _cannot(path)
    if len(parts) > 1:
        items = (hint or {}).get("properties", {}).get("data", {}).get("items")
        _walk(store, node["data"], parts[1:], path, resolve(items) if items else None)


def _schema_of(node: dict[str, Any], hint: Schema | None) -> Schema | None:
    """An object's own schema (by its ``object``), else the one its parent's field names."""
    name = node.get("object")
    if isinstance(name, str) and name in spec.schemas():
        found: Schema = spec.schemas()[name]
        return found
    return hint


def _property(schema: Schema | None, key: str) -> Schema | None:
    if schema is None:
        return None
    found: Schema | None = schema.get("properties", {}).get(key)
    return found


def _expanded(store: Store, value: Any, path: str, prop: Schema | None) -> Any:
    if isinstance(value, list):
        return [_expanded(store, v, path, prop) for v in value]
    if not isinstance(value, str):
        return value  # null, a hash, or already expanded
    entry = store.find(value)
    if entry is not None:
        return store.render(entry)
    made = fabricate(value, prop)
    if made is None:
        raise _cannot(path)
    return made


def _cannot(path: str) -> Exception:
    return invalid_request(f"This property cannot be expanded ({path}).", param="expand")
