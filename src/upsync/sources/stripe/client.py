"""A small async client for the parts of Stripe's API a sync reads.

It paces every request through the sync's :class:`RateLimiter`, retries what
:class:`RetryPolicy` says is retryable, and maps failures onto upsync's error tree:
401/403 → :class:`Unauthorized`, other refusals → :class:`UpstreamRejected`, exhausted
retries → :class:`UpstreamUnavailable`. The API key travels only in the ``Authorization``
header; it never appears in an error, a log line or a repr.

Each response is returned with the time its request was *sent* (:attr:`Page.sent_at`): the
source uses it as the snapshot's version (see ``upsync.sources.stripe.source``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from upsync.errors import Unauthorized, UpstreamRejected, UpstreamUnavailable
from upsync.redact import redact
from upsync.sources.stripe.ratelimit import RateLimiter
from upsync.sources.stripe.retry import RetryPolicy

__all__ = ["Page", "StripeHTTP", "encode_params"]

Params = Mapping[str, Any]


def encode_params(
    params: Params, prefix: str = ""
) -> list[tuple[str, str | int | float | bool | None]]:
    """Stripe's bracket notation: ``{"created": {"gte": 1}}`` → ``[("created[gte]", "1")]``.

    Lists become ``key[]`` entries (``expand[]=data.customer``), booleans ``true``/``false``,
    ``None`` values are left out.
    """
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend(encode_params(value, name))
        elif isinstance(value, list | tuple):
            pairs.extend((f"{name}[]", _scalar(v)) for v in value)
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Page:
    """One response: the JSON body and when its request was sent (µs since the epoch)."""

    body: dict[str, Any]
    sent_at: int

    @property
    def data(self) -> list[dict[str, Any]]:
        """A list response's objects."""
        items = self.body.get("data")
        return items if isinstance(items, list) else []

    @property
    def has_more(self) -> bool:
        """Whether a list response has further pages."""
        return bool(self.body.get("has_more"))


class StripeHTTP:
    """GET requests against Stripe (or the stand-in), paced, retried and classified."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.stripe.com",
        limiter: RateLimiter,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        rnd: random.Random | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self._rnd = rnd or random.Random()
        self.requests = 0
        """requests sent, retries included"""
        self.nested_requests = 0
        """of which: pages of truncated embedded lists (invoice lines, subscription items)"""

    def __repr__(self) -> str:
        return f"StripeHTTP(base_url={self.base_url!r}, api_key='****')"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def get(self, path: str, params: Params | None = None) -> Page:
        """GET ``path`` (its own query kept) and return the body; retries per the policy."""
        # nested-list urls carry their own query (``?subscription=…``); httpx would replace it
        url = httpx.URL(self.base_url + path)
        query = [*url.params.multi_items(), *encode_params(params or {})]
        url = url.copy_with(query=None)
        attempt = 0
        while True:
            attempt += 1
            async with self.limiter.slot():
                sent_at = time.time_ns() // 1000
                self.requests += 1
                try:
                    response = await self._http.get(
                        self.base_url + path,
                        params=query,
                        headers=self._headers(),
                    )
                except httpx.TransportError as e:
                    status, headers, detail = None, httpx.Headers(), type(e).__name__
                else:
                    if response.status_code < 300:
                        return Page(_json(response, path), sent_at)
                    status, headers, detail = (
                        response.status_code,
                        response.headers,
                        _message(response),
                    )
            delay = self.retry.delay(attempt, status, headers, self._rnd)
            if delay is None:
                raise _classify(path, status, detail, attempt)
            self.limiter.hold_off(delay)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "Stripe-Version": "2025-03-31.basil"}


def _json(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"GET {path}: response is not JSON") from None
    if not isinstance(body, dict):
        raise UpstreamUnavailable(f"GET {path}: expected a JSON object")
    return body


def _message(response: httpx.Response) -> str:
    try:
        error = orjson.loads(response.content).get("error", {})
        text = str(error.get("message") or error.get("type") or response.reason_phrase)
    except (orjson.JSONDecodeError, AttributeError):
        text = response.reason_phrase
    return redact(text)  # upstream messages may quote the key back


def _classify(path: str, status: int | None, detail: str, attempts: int) -> Exception:
    what = f"GET {path}"
    if status is None or status == 429 or status >= 500 or status == 409:
        shown = f"HTTP {status}" if status else detail
        return UpstreamUnavailable(f"{what}: {shown} after {attempts} attempts")
    if status in (401, 403):
        return Unauthorized(
            f"{what}: Stripe refused the API key (HTTP {status}: {detail}); "
            f"check the sync's credential and its permissions"
        )
    return UpstreamRejected(f"{what}: HTTP {status}: {detail}", status=status)
