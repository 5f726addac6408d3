"""``expand[]``: replace ids in a response by the objects they name (up to 4 levels)."""

from __future__ import annotations

from typing import Any

from .errors import invalid_request
from .store import Store

__all__ = ["expand"]

MAX_DEPTH = 4


def expand(store: Store, obj: dict[str, Any], paths: list[Any]) -> None:
    """Expand each dotted path of ``paths`` in ``obj`` (in place).

    Raises:
        StripeError: a path is too deep or names a property that cannot be expanded.
    """
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
        _walk(store, obj, parts, path)


def _walk(store: Store, node: Any, parts: list[str], path: str) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(store, item, parts, path)
        return
    if not isinstance(node, dict):
        return
    key, rest = parts[0], parts[1:]
    if key not in node:
        raise invalid_request(f"This property cannot be expanded ({path}).", param="expand")
    node[key] = _expanded(store, node[key], path)
    if rest:
        _walk(store, node[key], rest, path)


def _expanded(store: Store, value: Any, path: str) -> Any:
    if isinstance(value, list):
        return [_expanded(store, v, path) for v in value]
    if not isinstance(value, str):
        return value  # null or already expanded
    entry = store.find(value)
    if entry is None:
        raise invalid_request(f"This property cannot be expanded ({path}).", param="expand")
    return store.render(entry)
