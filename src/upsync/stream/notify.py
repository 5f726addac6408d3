"""Wake-ups for long polls: one LISTEN connection per process, fanned out to waiters.

Writers (and ack/nack/rewind/replay) ``pg_notify`` the schema's channel with the stream id when
they commit something deliverable. :class:`Notifier` listens on a dedicated autocommit connection
and resolves every waiter of that stream. A waiter subscribes *before* it checks for messages,
so a notification that lands between the check and the wait is not missed. If the listening
connection breaks, the notifier wakes everyone (they re-check) and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import psycopg
from psycopg import sql

from upsync.errors import DatabaseUnavailable
from upsync.stream.tables import DEFAULT_SCHEMA, channel

log = logging.getLogger(__name__)


class Subscription:
    """A one-shot wake-up for one stream; await :meth:`wait`."""

    def __init__(self, notifier: Notifier, stream_id: str) -> None:
        self._notifier = notifier
        self.stream_id = stream_id
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        """True if woken, False on timeout."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._notifier._waiters[self.stream_id].discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Notifier:
    """LISTENs on a schema's channel and wakes :class:`Subscription` s by stream id."""

    def __init__(self, conninfo: str, *, schema: str = DEFAULT_SCHEMA, **kwargs: Any) -> None:
        self._conninfo = conninfo
        self._kwargs = {k: v for k, v in kwargs.items() if k != "autocommit"}
        self._channel = channel(schema)
        self._waiters: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._pid: int | None = None

    async def start(self, timeout: float = 30.0) -> None:
        """Start listening; returns once the first LISTEN is in place.

        Raises :class:`~upsync.errors.DatabaseUnavailable` if that takes longer than ``timeout``
        seconds (the notifier keeps trying in the background).
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="upsync-notifier")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise DatabaseUnavailable(
                f"could not LISTEN for new records within {timeout:g} s"
            ) from None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (None while disconnected)."""
        return self._pid

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def subscribe(self, stream_id: str) -> Subscription:
        sub = Subscription(self, stream_id)
        self._waiters[stream_id].add(sub)
        return sub

    def _wake(self, stream_id: str | None) -> None:
        groups = (
            self._waiters.values() if stream_id is None else [self._waiters.get(stream_id, set())]
        )
        for group in groups:
            for sub in group:
                sub.event.set()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, **self._kwargs
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._pid = conn.info.backend_pid
                    self._ready.set()
                    self._wake(None)  # anything may have happened while we were not listening
                    delay = 0.1
                    async for note in conn.notifies():
                        self._wake(note.payload)
            except asyncio.CancelledError:
                raise
            except psycopg.Error as e:
                self._pid = None
                log.warning(
                    "upsync notifier: listening connection lost (%s); retrying", type(e).__name__
                )
                self._wake(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
