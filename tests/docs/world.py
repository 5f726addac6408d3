"""What a document's examples run against: a database of their own, the Stripe stand-in synced
into it by a real ``upsync server``, and the names the documents leave to the reader.

A document's blocks share one :class:`World`. The server starts only when a block needs it
(its URL, a token, a payload of records); it is the console script a user runs, pointed at
the stand-in with ``--stripe-base-url``.

Names a ``<!-- example: setup … -->`` directive may ask for (:data:`PROVIDERS`):

- ``dsn``: a libpq URL of the document's database (``postgresql://…``);
- ``url`` / ``async_url``: the same database as SQLAlchemy URLs (psycopg / asyncpg);
- ``payload``: the body of ``GET /v1/records?collection_id=stripe:subscription`` (bytes):
  real Stripe subscriptions, synced from the stand-in; ``records``: that payload decoded;
- ``token``, ``base_url``: a bearer token and the running API's URL;
- ``conn``: a psycopg ``AsyncConnection`` (autocommit) to the database;
- ``stream``: the stream ``default`` (an ``upsync.stream.Stream``);
- ``django``: Django configured on the database (its settings, an app for the models);
- for shell blocks, environment variables: ``UPSYNC``, ``TOKEN``, ``STREAM_ID``, ``SYNC_ID``,
  ``STRIPE_KEY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from upsync import decode_records
from upsync.stream.catalog import get_stream
from upsync.testing.stripe import RunningStandin

__all__ = ["PROVIDERS", "World", "database"]

UPSYNC = Path(sys.executable).parent / "upsync"
DEADLINE_S = 90.0
WORKER_DEADLINE_S = 45.0


@contextlib.contextmanager
def database(pg_dsn: str) -> Iterator[str]:
    """A new, empty database on the test server, as a ``postgresql://`` URL; dropped after."""
    name = f"docs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _url(pg_dsn, name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _url(pg_dsn: str, dbname: str, scheme: str = "postgresql") -> str:
    params = conninfo_to_dict(pg_dsn)
    user = quote(str(params.get("user") or "postgres"))
    password = f":{quote(str(params['password']))}" if params.get("password") else ""
    host = str(params.get("host") or "")
    port = f":{params['port']}" if params.get("port") else ""
    if host.startswith("/"):  # a unix socket directory (the embedded Postgres)
        return f"{scheme}://{user}{password}@{port}/{dbname}?host={quote(host)}"
    return f"{scheme}://{user}{password}@{host}{port}/{dbname}"


class World:
    """Everything one document's examples run against. Close it with :meth:`close`."""

    def __init__(self, dsn: str, pg_dsn: str, standin: RunningStandin, home: Path) -> None:
        self.dsn = dsn
        self.pg_dsn = pg_dsn
        self.standin = standin
        self.home = home
        home.mkdir(parents=True, exist_ok=True)  # also where shell examples run (their files)
        self.runner = asyncio.Runner()
        self._server: subprocess.Popen[bytes] | None = None
        self._base_url = ""
        self._token = ""
        self._stream_id = ""
        self._sync_id = ""
        self._cleanups: list[Callable[[], None]] = []

    def env(self) -> dict[str, str]:
        """The environment of ``upsync`` commands run for this document."""
        return {
            **os.environ,
            "PATH": f"{UPSYNC.parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `upsync …`
            "UPSYNC_DATABASE_URL": self.dsn,
            "UPSYNC_HOME": str(self.home),
            "UPSYNC_STRIPE_BASE_URL": self.standin.url,
            "STRIPE_KEY": self.standin.api_key,
        }

    def upsync(self, *args: str) -> str:
        """Run ``upsync ARGS…``; its stdout. A failure fails the test with its stderr."""
        done = subprocess.run(
            [str(UPSYNC), *args], capture_output=True, text=True, env=self.env(), timeout=120
        )
        assert done.returncode == 0, f"upsync {' '.join(args)}: {done.stderr}"
        return done.stdout

    def server(self) -> str:
        """Start ``upsync server`` (once) with a Stripe sync of the stand-in, backfilled."""
        if self._server is None:
            self.upsync("init")
            self._token = self.upsync("token", "create", "docs").strip()
            sync = json.loads(
                self.upsync(
                    "syncs",
                    "create",
                    "stripe",
                    "--api-key-env",
                    "STRIPE_KEY",
                    "--collections",
                    "customer,subscription",
                    "--external-id",
                    "acme",
                    "--json",
                )
            )
            port = _free_port()
            self._base_url = f"http://127.0.0.1:{port}"
            self._server = subprocess.Popen(
                [str(UPSYNC), "server", "--port", str(port)],
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._sync_id = sync["id"]
            self._wait_for_backfill(self._sync_id)
        return self._base_url

    def _wait_for_backfill(self, sync_id: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        with httpx.Client(base_url=self._base_url, headers=self.headers()) as http:
            while time.monotonic() < deadline:
                assert self._server is not None and self._server.poll() is None, "server exited"
                with contextlib.suppress(httpx.TransportError):
                    got = http.get(f"/v1/syncs/{sync_id}")
                    if got.status_code == 200 and got.json().get("initial_backfill_completed_at"):
                        return
                time.sleep(0.1)  # polling for an outcome, with a deadline
        raise AssertionError(
            f"the sync of the stand-in did not finish its backfill in {DEADLINE_S}s"
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def token(self) -> str:
        self.server()
        return self._token

    def payload(self) -> bytes:
        """Every synced subscription, as ``GET /v1/records`` returns them."""
        with httpx.Client(base_url=self.server(), headers=self.headers()) as http:
            got = http.get(
                "/v1/records", params={"collection_id": "stripe:subscription", "limit": 1000}
            )
        assert got.status_code == 200, got.text
        assert got.json()["records"], "the stand-in has no subscriptions"
        return got.content

    def stream_id(self) -> str:
        if not self._stream_id:
            self.server()
            self._stream_id = self.stream().id
        return self._stream_id

    def sync_id(self) -> str:
        self.server()
        return self._sync_id

    def stream(self) -> Any:
        async def get() -> Any:
            async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
                return await get_stream(conn, "default")

        self.server()
        return self.runner.run(get())

    def conn(self) -> Any:
        conn = self.runner.run(psycopg.AsyncConnection.connect(self.dsn, autocommit=True))
        self._cleanups.append(lambda: self.runner.run(conn.close()))
        return conn

    def _drained(self, consumer: str) -> bool:
        try:
            info = self.consumer_info(consumer)
        except (httpx.HTTPError, AssertionError):  # not created yet by the block
            return False
        return bool(info["num_pending"] == 0 and info["num_ack_pending"] == 0)

    def consumer_info(self, name: str) -> dict[str, Any]:
        with httpx.Client(base_url=self.server(), headers=self.headers()) as http:
            got = http.get(f"/v1/http-consumers/{name}/info")
        assert got.status_code == 200, got.text
        info: dict[str, Any] = got.json()["info"]
        return info

    def interrupt_when_drained(self, consumer: str) -> threading.Event:
        """Press Ctrl-C (SIGINT to this process) once ``consumer`` has nothing pending: how a
        reader stops a worker started with ``install_signal_handlers=True``. Set the returned
        event when the block is over: no SIGINT is sent after that."""
        over = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + WORKER_DEADLINE_S
            while time.monotonic() < deadline and not over.is_set():
                if _worker_listens() and self._drained(consumer):
                    break
                over.wait(0.1)  # polling for an outcome, with a deadline
            # the check after the block says whether it drained; a SIGINT nobody handles
            # would stop the whole test run, so it is sent only to a worker that listens
            if not over.is_set() and _worker_listens():
                os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=watch, daemon=True).start()
        return over

    def django(self) -> Any:
        from tests.docs import django_setup

        self._cleanups.append(django_setup.use_database(self.dsn))
        import django

        return django

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()
        self.runner.close()
        if self._server is not None:
            self._server.send_signal(signal.SIGTERM)
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()


def _worker_listens() -> bool:
    """Whether something (``run_worker(install_signal_handlers=True)``) handles SIGINT."""
    return signal.getsignal(signal.SIGINT) is not signal.default_int_handler


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


PROVIDERS: dict[str, Callable[[World], Any]] = {
    "dsn": lambda w: w.dsn,
    "url": lambda w: w.dsn.replace("postgresql://", "postgresql+psycopg://", 1),
    "async_url": lambda w: w.dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
    "payload": World.payload,
    "records": lambda w: decode_records(w.payload()),
    "token": World.token,
    "base_url": World.server,
    "conn": World.conn,
    "stream": World.stream,
    "django": World.django,
}
"""Python names a ``setup`` directive may ask for."""

ENV_PROVIDERS: dict[str, Callable[[World], str]] = {
    "UPSYNC": World.server,
    "TOKEN": World.token,
    "STREAM_ID": World.stream_id,
    "SYNC_ID": World.sync_id,
    "STRIPE_KEY": lambda w: w.standin.api_key,
}
"""Environment variables a ``setup`` directive of a shell block may ask for."""
