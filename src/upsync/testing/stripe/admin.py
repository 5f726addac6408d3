"""The stand-in's own HTTP surface under ``/_standin/`` (never a Stripe path, no API key).

``GET  /_standin/health``                 counts of live objects per type
``GET  /_standin/clock``                  ``{"now", "offset"}``
``POST /_standin/clock/advance``          ``{"seconds": 86400}`` (JSON or form) → new ``now``;
                                          renews subscriptions that came due unless
                                          ``"billing": false``
``GET  /_standin/faults``                 current fault settings
``POST /_standin/faults``                 change some, e.g. ``{"error_rate": 0.1}``; also
                                          ``event_delay`` (seconds events may show up late)
``GET  /_standin/webhooks/deliveries``    delivery attempts so far
``POST /_standin/webhook_endpoints/{id}/roll_secret``  ``{"expires_in": 86400}`` → new secret;
                                          the old one keeps signing until it expires
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .errors import StripeError
from .objects.cycles import renew_due
from .objects.endpoints import roll_secret

if TYPE_CHECKING:
    from .app import StandinApp

__all__ = ["routes"]


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        data = orjson.loads(raw)
        return data if isinstance(data, dict) else {}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _error(message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request_error", "message": message}}, 400)


def routes(standin: StandinApp) -> list[Route]:
    store, faults = standin.store, standin.faults

    async def health(request: Request) -> JSONResponse:
        with store.lock:
            counts = {name: store.count(name) for name in store.resources}
        return JSONResponse({"ok": True, "objects": counts})

    async def clock(request: Request) -> JSONResponse:
        return JSONResponse({"now": store.clock.now(), "offset": store.clock.offset})

    async def advance(request: Request) -> JSONResponse:
        body = await _body(request)
        try:
            store.clock.advance(float(body.get("seconds", 0)))
        except (TypeError, ValueError) as exc:
            return _error(f"seconds: {exc}")
        renewed = 0
        if str(body.get("billing", "true")).lower() != "false":
            renewed = renew_due(store)
        return JSONResponse(
            {"now": store.clock.now(), "offset": store.clock.offset, "renewed": renewed}
        )

    def settings() -> dict[str, Any]:
        return {**faults.settings(), "event_delay": store.event_delay}

    async def get_faults(request: Request) -> JSONResponse:
        return JSONResponse(settings())

    async def set_faults(request: Request) -> JSONResponse:
        changes = await _body(request)
        try:
            if "event_delay" in changes:
                store.event_delay = float(changes.pop("event_delay"))
            faults.configure(**changes)
        except (TypeError, ValueError) as exc:
            return _error(str(exc))
        return JSONResponse(settings())

    async def roll(request: Request) -> JSONResponse:
        body = await _body(request)
        endpoint_id = request.path_params["endpoint"]
        try:
            secret = roll_secret(store, endpoint_id, int(body.get("expires_in", 86400)))
        except StripeError as exc:
            return JSONResponse(exc.body(), exc.status)
        except (TypeError, ValueError) as exc:
            return _error(f"expires_in: {exc}")
        return JSONResponse({"id": endpoint_id, "secret": secret})

    async def deliveries(request: Request) -> JSONResponse:
        return JSONResponse([asdict(d) for d in standin.webhooks.deliveries])

    return [
        Route("/_standin/health", health),
        Route("/_standin/clock", clock),
        Route("/_standin/clock/advance", advance, methods=["POST"]),
        Route("/_standin/faults", get_faults),
        Route("/_standin/faults", set_faults, methods=["POST"]),
        Route("/_standin/webhooks/deliveries", deliveries),
        Route("/_standin/webhook_endpoints/{endpoint}/roll_secret", roll, methods=["POST"]),
    ]
