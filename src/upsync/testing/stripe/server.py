"""Serving the stand-in: in a background thread for tests (:func:`run_standin`), or blocking."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from .app import StandinApp
from .clock import Clock
from .faults import Faults
from .store import Store
from .webhooks import DEFAULT_RETRY_DELAYS, WebhookDispatcher

__all__ = ["RunningStandin", "run_standin", "serve"]

DEFAULT_API_KEY = "sk_test_upsync_standin"


@dataclass
class RunningStandin:
    """A stand-in serving on loopback: point the SDK at ``url`` with ``api_key``."""

    url: str
    api_key: str
    store: Store
    faults: Faults
    webhooks: WebhookDispatcher
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def clock(self) -> Clock:
        return self.store.clock

    def stop(self) -> None:
        """Stop serving and wait for the server thread (idempotent)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def _loopback_socket(port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every response waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def _server(standin: StandinApp) -> uvicorn.Server:
    config = uvicorn.Config(
        standin.asgi,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


@contextmanager
def run_standin(
    store: Store | None = None,
    *,
    port: int = 0,
    api_key: str = DEFAULT_API_KEY,
    faults: Faults | None = None,
    rate_limit: float | None = 25.0,
    webhook_retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    **store_options: Any,
) -> Iterator[RunningStandin]:
    """Serve a stand-in on ``127.0.0.1`` (a free port by default) in a background thread.

    Args:
        store: the state to serve; a fresh ``Store(**store_options)`` by default
            (``seed=``, ``clock=``).
        api_key: the key ``.api_key`` reports (any ``sk_test_…`` key is accepted).
        faults: fault settings; by default ``Faults(rate_limit=rate_limit)``.
        webhook_retry_delays: seconds before each webhook retry.

    Yields:
        the running stand-in; it stops when the block exits.

    Example:
        with run_standin(seed=1) as standin:
            client = stripe.StripeClient(standin.api_key, base_addresses={"api": standin.url})
    """
    store = store or Store(**store_options)
    faults = faults or Faults(rate_limit=rate_limit)
    app = StandinApp(store, faults, webhook_retry_delays=webhook_retry_delays)
    sock = _loopback_socket(port)
    server = _server(app)
    started = threading.Event()
    thread = threading.Thread(
        target=_run, args=(server, sock, started), name="stripe-standin", daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    running = RunningStandin(url, api_key, store, faults, app.webhooks, server, thread)
    try:
        # the socket already listens, so early requests wait in its backlog; this waits for startup
        if not started.wait(timeout=15):
            raise RuntimeError("the Stripe stand-in did not start within 15 s")
        yield running
    finally:
        running.stop()
        sock.close()


def _run(server: uvicorn.Server, sock: socket.socket, started: threading.Event) -> None:
    original = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original(sockets=sockets)
        started.set()

    server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=[sock])


def serve(app: StandinApp, port: int) -> None:
    """Serve on ``127.0.0.1:port`` until interrupted (the command-line entry point)."""
    sock = _loopback_socket(port)
    try:
        _server(app).run(sockets=[sock])
    finally:
        sock.close()
