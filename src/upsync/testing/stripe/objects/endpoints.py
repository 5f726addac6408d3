"""Webhook endpoints (their signing secret is shown once, on create) and events."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..errors import invalid_request
from ..formdata import Params
from ..resource import Resource
from ..store import API_VERSION, Store
from .common import apply_updates, base

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _url(params: Params, required: bool) -> str | None:
    url = params.req_str("url") if required else params.string("url")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK_HOSTS:
        # the stand-in never sends traffic off the machine
        raise invalid_request(
            "The stand-in only delivers webhooks to loopback URLs (127.0.0.1).", param="url"
        )
    return url


def _events(params: Params, required: bool) -> list[str] | None:
    events = params.array("enabled_events")
    if not events:
        if required:
            raise invalid_request(
                "Missing required param: enabled_events.", "enabled_events", "parameter_missing"
            )
        return None
    return [str(e) for e in events]


def webhook_endpoint(store: Store, params: Params) -> dict[str, Any]:
    obj = base(store, "webhook_endpoint", params)
    obj.update(
        api_version=params.string("api_version") or API_VERSION,
        application=None,
        description=params.string("description"),
        enabled_events=_events(params, True),
        status="enabled",
        url=_url(params, True),
    )
    store.secrets[obj["id"]] = store.ids.secret("whsec_", 32)
    store.insert("webhook_endpoint", obj, event=None)
    return obj


def roll_secret(store: Store, endpoint_id: str, expires_in: int = 86400) -> str:
    """A new signing secret; the old one keeps signing for ``expires_in`` seconds.

    Stripe's dashboard does this when a secret is rolled: meanwhile each delivery carries one
    ``v1`` signature per active secret.
    """
    with store.lock:
        store.get("webhook_endpoint", endpoint_id)
        old = store.secrets[endpoint_id]
        if expires_in > 0:
            keep = store.rolled_secrets.setdefault(endpoint_id, [])
            keep.append((old, store.clock.now() + expires_in))
        store.secrets[endpoint_id] = store.ids.secret("whsec_", 32)
        return store.secrets[endpoint_id]


def signing_secrets(store: Store, endpoint_id: str) -> list[str]:
    """The secrets a delivery to this endpoint is signed with, current first."""
    now = store.clock.now()
    earlier = [s for s, until in store.rolled_secrets.get(endpoint_id, []) if until > now]
    return [store.secrets[endpoint_id], *earlier]


def update_endpoint(store: Store, obj: dict[str, Any], params: Params) -> None:
    apply_updates(obj, params, {"description": "str", "metadata": "metadata"})
    url, events = _url(params, False), _events(params, False)
    if url is not None:
        obj["url"] = url
    if events is not None:
        obj["enabled_events"] = events
    if "disabled" in params:
        obj["status"] = "disabled" if params.boolean("disabled") else "enabled"


RESOURCES = (
    Resource(
        "webhook_endpoint",
        "webhook_endpoints",
        "we",
        create=webhook_endpoint,
        update=update_endpoint,
        delete=lambda store, oid: store.remove("webhook_endpoint", oid, event=None),
    ),
    # type/types filters (with wildcards) are applied by the API layer
    Resource("event", "events", "evt"),
)
