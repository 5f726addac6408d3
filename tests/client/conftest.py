"""The HTTP API served by a live uvicorn on loopback, for the client and worker tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest
import uvicorn

from tests.client._server import Server
from upsync.api import create_app, create_token_sync, ensure_api_schema_sync


@pytest.fixture
def server(pg_dsn: str, schema: str) -> Iterator[Server]:
    """The API served by uvicorn on 127.0.0.1 (a free port), in a thread; stopped afterwards."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        ensure_api_schema_sync(conn, schema=schema)
        token = create_token_sync(conn, "client-tests", schema=schema)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so (else every
    # response waits ~40 ms for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    # listening before uvicorn starts: early requests wait in the backlog, no readiness polling
    sock.listen(64)
    port = sock.getsockname()[1]
    app = create_app(pg_dsn, schema=schema, pool_size=4)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", token, pg_dsn, schema, app)
    finally:
        uv.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive()
