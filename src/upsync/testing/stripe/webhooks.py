"""Webhook deliveries, signed exactly as Stripe signs them, retried with backoff.

``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by whsec_…>``.
Each (event, endpoint) pair is delivered by its own task, so deliveries arrive in no
particular order, like Stripe's. Only loopback URLs are accepted (see ``objects.endpoints``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from .objects.endpoints import signing_secrets
from .store import Store

__all__ = ["Delivery", "WebhookDispatcher", "sign"]

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS = (1.0, 5.0, 30.0)
"""Seconds before each retry (Stripe test mode retries 3 times over hours; compressed here)."""


def sign(payload: bytes, secret: str | list[str], timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` signed at ``timestamp``.

    Several secrets (during a secret roll) give one ``v1`` signature each.
    """
    signed = f"{timestamp}.".encode() + payload
    secrets = [secret] if isinstance(secret, str) else secret
    digests = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={d}" for d in digests)])


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt, kept for tests and ``/_standin/webhooks/deliveries``."""

    event_id: str
    endpoint_id: str
    attempt: int
    status: int | None
    """the receiver's HTTP status, ``None`` when it could not be reached"""


class WebhookDispatcher:
    """Sends each new event to the enabled endpoints that subscribe to its type.

    Runs on one asyncio loop (the server's); the store may emit events from any thread.
    """

    def __init__(
        self,
        store: Store,
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
        timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._recorded = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Any = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # trust_env=False: never route loopback deliveries through a configured proxy
        self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        self._unsubscribe = self.store.subscribe(self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def _on_event(self, event: dict[str, Any]) -> None:
        """Called under the store lock, possibly from another thread: only schedule work."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        targets = [
            e.id
            for e in self.store.table("webhook_endpoint").entries
            if _wants(e.obj, event["type"])
        ]
        event["pending_webhooks"] = len(targets)
        stored = self.store.find(event["id"])
        if stored is not None:
            stored.obj = event  # stored packed: write the count back
        for endpoint_id in targets:
            loop.call_soon_threadsafe(self._spawn, event["id"], endpoint_id)

    def _spawn(self, event_id: str, endpoint_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(event_id, endpoint_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event_id: str, endpoint_id: str) -> None:
        for attempt, delay in enumerate((0.0, *self.retry_delays), start=1):
            if delay:
                await asyncio.sleep(delay)  # backoff between attempts, as Stripe retries
            target = self._target(event_id, endpoint_id)
            if target is None:
                return
            url, payload, secret = target
            status = await self._post(url, payload, secret)
            delivered = status is not None and 200 <= status < 300
            if delivered:
                self._delivered(event_id)  # before it is recorded: waiters see the count
            self._record(Delivery(event_id, endpoint_id, attempt, status))
            if delivered:
                return
        log.info("webhook %s to %s failed after %d attempts", event_id, endpoint_id, attempt)

    def _record(self, delivery: Delivery) -> None:
        with self._recorded:
            self.deliveries.append(delivery)
            self._recorded.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Block until at least ``count`` attempts are recorded (from any thread but the server's).

        Raises:
            TimeoutError: fewer attempts were recorded within ``timeout`` seconds.
        """
        with self._recorded:
            if not self._recorded.wait_for(lambda: len(self.deliveries) >= count, timeout):
                raise TimeoutError(f"{len(self.deliveries)} of {count} webhook attempts recorded")
            return list(self.deliveries)

    def _target(self, event_id: str, endpoint_id: str) -> tuple[str, bytes, list[str]] | None:
        with self.store.lock:
            event, endpoint = self.store.find(event_id), self.store.find(endpoint_id)
            if event is None or endpoint is None or endpoint.deleted:
                return None
            if endpoint.obj["status"] != "enabled":
                return None
            hook = endpoint.obj
            body = event.obj
            # events reach an endpoint in the version it pins (shapes are the stand-in's own)
            body["api_version"] = hook.get("api_version") or body["api_version"]
            payload = orjson.dumps(body, option=orjson.OPT_INDENT_2)
            return hook["url"], payload, signing_secrets(self.store, endpoint_id)

    async def _post(self, url: str, payload: bytes, secrets: list[str]) -> int | None:
        assert self._client is not None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, secrets, int(time.time())),
        }
        try:
            response = await self._client.post(url, content=payload, headers=headers)
        except httpx.HTTPError:
            return None
        return response.status_code

    def _delivered(self, event_id: str) -> None:
        with self.store.lock:
            event = self.store.find(event_id)
            if event is not None:
                obj = event.obj
                obj["pending_webhooks"] = max(0, obj["pending_webhooks"] - 1)
                event.obj = obj


def _wants(endpoint: dict[str, Any], event_type: str) -> bool:
    enabled = endpoint["enabled_events"]
    return endpoint["status"] == "enabled" and ("*" in enabled or event_type in enabled)
