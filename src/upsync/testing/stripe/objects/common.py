"""Helpers every object module shares: base fields, references, generic updates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import invalid_request
from ..formdata import Params
from ..store import Store

__all__ = ["ADDRESS_NULL", "apply_updates", "base", "ref", "set_metadata", "strip_fields"]

ADDRESS_NULL: dict[str, Any] = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}


def base(store: Store, type_: str, params: Params | None = None) -> dict[str, Any]:
    """``id``, ``object``, ``created``, ``livemode`` and ``metadata`` of a new object."""
    metadata = params.metadata() if params is not None else None
    return {
        "id": store.new_id(type_),
        "object": type_,
        "created": store.now(),
        "livemode": False,
        "metadata": metadata or {},
    }


def ref(
    store: Store, type_: str, params: Params, key: str, *, required: bool = False
) -> str | None:
    """The id given in ``params[key]``, checked to name a live ``type_`` object."""
    oid = params.req_str(key) if required else params.string(key)
    if oid is not None:
        store.get(type_, oid, param=params.name(key))
    return oid


def strip_fields(*keys: str) -> Callable[[Store, dict[str, Any]], None]:
    """A render hook dropping bookkeeping fields Stripe does not show (a line's ``created``)."""

    def hook(store: Store, obj: dict[str, Any]) -> None:
        for key in keys:
            obj.pop(key, None)

    return hook


def set_metadata(obj: dict[str, Any], params: Params) -> None:
    merged = params.metadata(obj.get("metadata"))
    if merged is not None:
        obj["metadata"] = merged


def apply_updates(obj: dict[str, Any], params: Params, updatable: dict[str, str]) -> None:
    """Set each updatable field present in ``params``, coerced by its kind.

    Kinds: ``str``, ``int``, ``bool``, ``float``, ``hash``, ``list``, ``metadata``.
    Unknown parameters are ignored (documented leniency of the stand-in).
    """
    for key, kind in updatable.items():
        if key not in params:
            continue
        if kind == "metadata":
            set_metadata(obj, params)
        elif kind == "str":
            obj[key] = params.string(key)
        elif kind == "int":
            obj[key] = params.integer(key)
        elif kind == "bool":
            obj[key] = params.boolean(key)
        elif kind == "float":
            obj[key] = params.number(key)
        elif kind == "hash":
            value = params.raw(key)
            obj[key] = None if value == "" else _merge(obj.get(key), params.hash(key).data)
        elif kind == "list":
            obj[key] = params.array(key)
        else:  # pragma: no cover - a programming error in a resource table
            raise invalid_request(f"unsupported parameter kind {kind}", param=key)


def _merge(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    out = dict(old) if isinstance(old, dict) else {}
    for k, v in new.items():
        out[k] = None if v == "" else v
    return out
