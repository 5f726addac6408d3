"""Stripe's REST surface over a :class:`Store`: routing, lists, retrieve, writes.

Transport-free: ``handle(store, method, path, params)`` returns ``(status, body)`` and raises
:class:`StripeError` for error answers, so the ASGI app stays a thin shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .errors import StripeError, invalid_request, unrecognized
from .expand import expand
from .formdata import Params
from .index import Entry, Index
from .listing import paginate, parse_list_query
from .objects.accounts import account_for, check_account_header
from .resource import Filter, Resource, Sublist
from .store import Store

__all__ = ["handle"]

Predicate = Callable[[Entry], bool]


def handle(
    store: Store,
    method: str,
    path: str,
    data: dict[str, Any],
    stripe_account: str | None = None,
) -> tuple[int, Any]:
    """Serve one API request; ``path`` starts with ``/v1/``.

    ``stripe_account`` is the ``Stripe-Account`` header: it must name the platform or a
    connected account (403 otherwise) and selects the account ``GET /v1/account`` answers.
    """
    params = Params(data)
    with store.lock:
        if stripe_account is not None:
            check_account_header(store, stripe_account)
        if path.rstrip("/") == "/v1/account" and method == "GET":
            body = account_for(store, stripe_account)
        else:
            resource, rest = _route(store, method, path)
            body = _dispatch(store, method, resource, rest, params)
        if method != "DELETE":
            expand(store, body, params.array("expand"))
        return 200, body


def _route(store: Store, method: str, path: str) -> tuple[Resource, list[str]]:
    segments = [s for s in path.removeprefix("/v1/").split("/") if s]
    for resource in store.resources.values():
        if resource.path is None:
            continue
        width = resource.path.count("/") + 1
        if "/".join(segments[:width]) == resource.path:
            return resource, segments[width:]
    raise _unrecognized(method, path)


def _unrecognized(method: str, path: str) -> StripeError:
    return unrecognized(method, path)


def _dispatch(
    store: Store, method: str, resource: Resource, rest: list[str], params: Params
) -> dict[str, Any]:
    kind = (method, len(rest))
    if kind == ("GET", 0):
        return list_objects(store, resource, params)
    if kind == ("POST", 0) and resource.create is not None:
        created = resource.create(store, params)
        body = store.render(store.get(resource.object, created["id"]))
        if created["id"] in store.secrets:
            body["secret"] = store.secrets[created["id"]]  # shown once, like Stripe
        return body
    if kind == ("GET", 1):
        return retrieve(store, resource, rest[0])
    if kind == ("POST", 1) and (resource.update or resource.updatable):
        return store.update(resource.object, rest[0], params.data)
    if kind == ("DELETE", 1) and resource.delete is not None:
        return resource.delete(store, rest[0])
    if kind == ("POST", 2) and rest[1] in resource.actions:
        resource.actions[rest[1]](store, rest[0], params)
        return store.render(store.get(resource.object, rest[0]))
    if kind == ("GET", 2) and rest[1] in resource.sublists:
        return _sublist(store, resource, rest[0], resource.sublists[rest[1]], params)
    if kind == ("GET", 2) and (resource.object, rest[1]) in _ALWAYS_EMPTY:
        return _empty_sublist(store, resource, rest[0], rest[1], params)
    raise _unrecognized(method, f"/v1/{resource.path}/{'/'.join(rest)}")


def retrieve(store: Store, resource: Resource, oid: str) -> dict[str, Any]:
    """An object; a deleted one answers its ``{id, object, deleted: true}`` stub."""
    if resource.object == "event":
        store.expire_events()
    return store.retrieve(resource.object, oid)


def list_objects(store: Store, resource: Resource, params: Params) -> dict[str, Any]:
    """``GET /v1/<path>``: newest first, filtered, paginated."""
    if resource.required_filter and params.string(resource.required_filter) is None:
        name = resource.required_filter
        raise invalid_request(f"Missing required param: {name}.", name, "parameter_missing")
    query = parse_list_query(params)
    index, predicates = _narrow(store, resource, params)
    if resource.object == "event":
        store.expire_events()
        predicates.extend(_event_predicates(params))
    if resource.list_hook is not None:
        keep = resource.list_hook(store, params)
        if keep is not None:
            predicates.append(partial(_keep_obj, keep))
    predicate = _all(predicates)
    page, has_more = paginate(index, query, predicate, store.cursor_key(resource.object))
    return _envelope(store, page, has_more, f"/v1/{resource.path}")


def _narrow(store: Store, resource: Resource, params: Params) -> tuple[Index, list[Predicate]]:
    """The smallest index to scan (a parent's children when filtered by it) and predicates."""
    index = store.table(resource.object)
    predicates: list[Predicate] = []
    for f in resource.filters:
        if f.param not in params or params.raw(f.param) == "":
            continue
        if (
            f.kind == "str"
            and f.field in resource.parents
            and index is store.table(resource.object)
        ):
            index = store.children(resource.object, f.field, str(params.string(f.param)))
            continue
        predicates.append(_filter(f, params))
    return index, predicates


def _keep_obj(keep: Callable[[dict[str, Any]], bool], entry: Entry) -> bool:
    return keep(entry.obj)


def _filter(f: Filter, params: Params) -> Predicate:
    if f.kind == "bool":
        wanted: Any = params.boolean(f.param)
    elif f.kind == "int":
        wanted = params.integer(f.param)
    elif f.kind == "in":
        values = set(params.array(f.param))
        return lambda e: e.obj.get(f.field) in values
    else:
        wanted = params.string(f.param)
    return lambda e: e.obj.get(f.field) == wanted


def _event_predicates(params: Params) -> list[Predicate]:
    out: list[Predicate] = []
    type_, types = params.string("type"), params.array("types")
    if type_ is not None and types:
        raise invalid_request("You may only specify one of these parameters: type, types.", "types")
    if len(types) > 20:
        raise invalid_request("You may pass at most 20 types.", param="types")
    patterns = [type_] if type_ is not None else [str(t) for t in types]
    if patterns:
        out.append(lambda e: any(_type_matches(p, e.tag) for p in patterns))
    now = time.monotonic()
    out.append(lambda e: e.visible_at <= now)
    return out


def _type_matches(pattern: str, event_type: str) -> bool:
    """``customer.*`` matches every event type under ``customer.``; others match exactly."""
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern in ("*", event_type)


def _all(predicates: list[Predicate]) -> Predicate | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda e: all(p(e) for p in predicates)


def _sublist(
    store: Store, resource: Resource, oid: str, sub: Sublist, params: Params
) -> dict[str, Any]:
    store.get(resource.object, oid)
    query = parse_list_query(params)
    index = store.children(sub.child, sub.fk, oid)
    page, has_more = paginate(
        index, query, None, lambda cid, param: _child_key(index, cid, param, sub)
    )
    return _envelope(store, page, has_more, sub.url.format(id=oid))


_ALWAYS_EMPTY = frozenset({("customer", "sources"), ("product", "features")})
"""lists of objects the stand-in never makes: legacy payment sources (cards are payment
methods here) and product features (entitlements)"""

_SOURCE_OBJECTS = frozenset({"card", "bank_account", "source", "account"})


def _empty_sublist(
    store: Store, resource: Resource, oid: str, name: str, params: Params
) -> dict[str, Any]:
    """An empty page of ``/v1/<path>/{id}/<name>``, after Stripe's checks of its parameters."""
    store.get(resource.object, oid)
    parse_list_query(params)
    kind = params.string("object")
    if name == "sources" and kind is not None and kind not in _SOURCE_OBJECTS:
        raise invalid_request(f"Invalid object: must be one of {sorted(_SOURCE_OBJECTS)}", "object")
    return {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/{resource.path}/{oid}/{name}",
    }


def _child_key(index: Index, cid: str, param: str, sub: Sublist) -> tuple[int, int]:
    key = index.key_of(cid)
    if key is None:
        raise StripeError(
            400,
            f"No such {sub.child.replace('_', ' ')}: '{cid}'",
            code="resource_missing",
            param=param,
        )
    return key


def _envelope(store: Store, page: list[Entry], has_more: bool, url: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [store.render(e) for e in page],
        "has_more": has_more,
        "url": url,
    }
