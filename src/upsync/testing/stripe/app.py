"""The ASGI app: Stripe's wire contract around :mod:`.api`, plus the ``/_standin`` admin surface.

Per API request, in order: simulated faults (outage, 5xx, latency), authentication (401),
the rate limit (429), idempotent replay, then the operation. Every response carries
``Request-Id`` and ``Stripe-Version``; POSTs echo ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import admin
from .api import handle
from .auth import api_key_from
from .errors import StripeError, invalid_request, unrecognized
from .faults import Faults, RateLimiter
from .formdata import decode_pairs
from .idempotency import IdempotencyCache, Saved
from .store import API_VERSION, RequestInfo, Store
from .webhooks import DEFAULT_RETRY_DELAYS, WebhookDispatcher

__all__ = ["StandinApp", "create_app"]

log = logging.getLogger(__name__)

_ALNUM = string.ascii_letters + string.digits
_VERSION = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(\.[a-z]+)?")
_METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS")


class StandinApp:
    """Everything one running stand-in needs: store, faults, limiter, webhooks, the ASGI app."""

    def __init__(
        self,
        store: Store,
        faults: Faults | None = None,
        api_keys: frozenset[str] | None = None,
        webhook_retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        self.store = store
        self.faults = faults or Faults()
        self.api_keys = api_keys
        self.limiter = RateLimiter(self.faults)
        self.idempotency = IdempotencyCache()
        self.webhooks = WebhookDispatcher(store, retry_delays=webhook_retry_delays)
        routes = [
            Route("/v1/{path:path}", self.endpoint, methods=list(_METHODS)),
            *admin.routes(self),
            Route("/{path:path}", self.unknown, methods=list(_METHODS)),
        ]
        self.asgi = Starlette(routes=routes, lifespan=self._lifespan)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.webhooks.start()
        try:
            yield
        finally:
            await self.webhooks.stop()

    async def endpoint(self, request: Request) -> Response:
        # not from the store's seeded ids: request counts must not shift generated ids
        request_id = "req_" + "".join(secrets.choice(_ALNUM) for _ in range(14))
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        version = request.headers.get("stripe-version")
        idem_key = request.headers.get("idempotency-key")
        if idem_key is not None and request.method == "POST":
            headers["Idempotency-Key"] = idem_key
        try:
            if version is not None:
                headers["Stripe-Version"] = self._pin(version)
            status, body = await self._serve(request, request_id, idem_key, headers)
        except StripeError as error:
            status, body = error.status, orjson.dumps(error.body(request_id))
            headers.update(error.headers)
        except Exception:  # a stand-in bug: answer like Stripe's own 500s, keep serving
            log.exception("stand-in failed on %s %s", request.method, request.url.path)
            bug = StripeError(500, "An unknown error occurred", type="api_error")
            status, body = 500, orjson.dumps(bug.body(request_id))
        return Response(body, status, headers=headers, media_type="application/json")

    def _pin(self, version: str) -> str:
        """Record a request's pinned version; it is answered as given (shapes stay the same).

        Raises:
            StripeError: not a version Stripe could name (``YYYY-MM-DD`` with a release name).
        """
        if _VERSION.fullmatch(version) is None:
            raise invalid_request(f"Invalid Stripe API version: {version}")
        with self.store.lock:
            self.store.pinned_versions[version] += 1
        return version

    async def unknown(self, request: Request) -> Response:
        """Outside ``/v1`` (and the admin surface): Stripe's JSON 404, never a text page."""
        request_id = "req_" + "".join(secrets.choice(_ALNUM) for _ in range(14))
        error = unrecognized(request.method, request.url.path)
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        body = orjson.dumps(error.body(request_id))
        return Response(body, error.status, headers=headers, media_type="application/json")

    async def _serve(
        self, request: Request, request_id: str, idem_key: str | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        fault = self.faults.draw()
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)  # simulated network latency
        if fault is not None:
            raise fault
        key = api_key_from(request.headers.get("authorization"), self.api_keys)
        if not self.limiter.take():
            raise self.faults.rate_limited()
        if request.method not in ("GET", "POST", "DELETE"):
            raise unrecognized(request.method, request.url.path)
        params = await _params(request)
        path = request.url.path
        account = request.headers.get("stripe-account")
        if request.method != "POST" or idem_key is None:
            return self._run(request.method, path, params, RequestInfo(request_id), account)
        scope = (hashlib.sha256(key.encode()).hexdigest(), idem_key)
        fingerprint = IdempotencyCache.fingerprint(request.method, path, params)
        saved = self.idempotency.lookup(scope, fingerprint, self.store.clock.now())
        if saved is not None:
            headers["Idempotent-Replayed"] = "true"
            return saved.status, saved.body
        info = RequestInfo(request_id, idem_key)
        status, body = self._run(request.method, path, params, info, account)
        self.idempotency.save(scope, Saved(fingerprint, status, body, self.store.clock.now()))
        return status, body

    def _run(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        info: RequestInfo,
        account: str | None = None,
    ) -> tuple[int, bytes]:
        with self.store.request(info):
            status, body = handle(self.store, method, path, params, account)
        return status, orjson.dumps(body)


async def _params(request: Request) -> dict[str, Any]:
    """Query-string parameters, plus the form body of a POST, decoded from bracket notation."""
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method == "POST":
        raw = (await request.body()).decode("utf-8", errors="replace")
        pairs += parse_qsl(raw, keep_blank_values=True)
    return decode_pairs(pairs)


def create_app(
    store: Store | None = None,
    faults: Faults | None = None,
    **options: Any,
) -> StandinApp:
    """A stand-in app over ``store`` (a fresh empty one by default); serve ``.asgi``."""
    return StandinApp(store or Store(), faults, **options)
