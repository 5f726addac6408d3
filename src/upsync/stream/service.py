"""StreamService: the stream library as one object, mapping 1:1 onto Sequin's HTTP API.

It owns a connection pool, a :class:`~upsync.stream.notify.Notifier` for long polls and the
clock, and forwards to the connection-level functions (:mod:`catalog`, :mod:`consumers`,
:mod:`delivery`, :mod:`pages`, :mod:`write`). An HTTP layer maps each endpoint to one method:

====================================  ==============================================
``POST /v1/streams``                  :meth:`create_stream` (``list_``, ``get_``, ``delete_``)
``POST /v1/credentials``              :meth:`create_credential` (…)
``POST /v1/syncs``                    :meth:`create_sync` (``update_sync`` …)
``POST /v1/http-consumers``           :meth:`create_consumer` (``list_``, ``get_``, ``update_``,
                                      ``delete_``)
``POST /v1/http-consumers/{id}/next`` :meth:`next`
``POST …/ack``, ``POST …/nack``       :meth:`ack`, :meth:`nack`
``GET /v1/records``, ``/v1/events``   :meth:`records`, :meth:`events`
====================================  ==============================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from upsync.errors import ConfigurationError
from upsync.stream import catalog, consumers, delivery, pages
from upsync.stream.clock import Clock, db_clock
from upsync.stream.migrations import migrate
from upsync.stream.models import (
    Batch,
    Consumer,
    ConsumerInfo,
    Credential,
    DeadLetter,
    EventPage,
    RecordPage,
    Stream,
    Sync,
    UpstreamObject,
    WriteResult,
)
from upsync.stream.notify import Notifier
from upsync.stream.tables import DEFAULT_SCHEMA
from upsync.stream.write import write

MAX_BATCH_SIZE = 10_000
MAX_WAIT_FOR_MS = 10 * 60 * 1000

ConsumerRef = Consumer | str


class StreamService:
    """The record stream, its catalog and its consumers, over one Postgres schema."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        schema: str = DEFAULT_SCHEMA,
        clock: Clock = db_clock,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.clock = clock
        conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        kwargs = pool.kwargs if isinstance(pool.kwargs, dict) else {}
        self.notifier = Notifier(conninfo, schema=schema, **kwargs)

    @classmethod
    async def open(
        cls,
        conninfo: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        clock: Clock = db_clock,
        min_size: int = 1,
        max_size: int = 10,
    ) -> StreamService:
        """Create a pool, migrate the schema and start listening."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, open=False
        )
        await pool.open()
        service = cls(pool, schema=schema, clock=clock)
        try:
            await service.start()
        except BaseException:
            await pool.close()
            raise
        return service

    async def start(self) -> None:
        """Apply migrations and start the notifier."""
        async with self.pool.connection() as conn:
            await migrate(conn, schema=self.schema)
        await self.notifier.start()

    async def close(self) -> None:
        """Stop the notifier and close the pool."""
        await self.notifier.close()
        await self.pool.close()

    async def __aenter__(self) -> StreamService:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- streams, credentials, syncs -------------------------------------------------------

    async def create_stream(
        self, name: str, *, metadata: Mapping[str, Any] | None = None
    ) -> Stream:
        async with self.pool.connection() as conn:
            return await catalog.create_stream(conn, name, metadata=metadata, schema=self.schema)

    async def get_stream(self, id_or_name: str) -> Stream:
        async with self.pool.connection() as conn:
            return await catalog.get_stream(conn, id_or_name, schema=self.schema)

    async def list_streams(self) -> list[Stream]:
        async with self.pool.connection() as conn:
            return await catalog.list_streams(conn, schema=self.schema)

    async def delete_stream(self, stream_id: str) -> None:
        async with self.pool.connection() as conn:
            await catalog.delete_stream(conn, stream_id, schema=self.schema)

    async def create_credential(self, **fields: Any) -> Credential:
        async with self.pool.connection() as conn:
            return await catalog.create_credential(conn, schema=self.schema, **fields)

    async def get_credential(self, credential_id: str) -> Credential:
        async with self.pool.connection() as conn:
            return await catalog.get_credential(conn, credential_id, schema=self.schema)

    async def list_credentials(self) -> list[Credential]:
        async with self.pool.connection() as conn:
            return await catalog.list_credentials(conn, schema=self.schema)

    async def delete_credential(self, credential_id: str) -> None:
        async with self.pool.connection() as conn:
            await catalog.delete_credential(conn, credential_id, schema=self.schema)

    async def create_sync(self, **fields: Any) -> Sync:
        async with self.pool.connection() as conn:
            return await catalog.create_sync(conn, schema=self.schema, **fields)

    async def get_sync(self, sync_id: str) -> Sync:
        async with self.pool.connection() as conn:
            return await catalog.get_sync(conn, sync_id, schema=self.schema)

    async def list_syncs(self, **filters: Any) -> list[Sync]:
        async with self.pool.connection() as conn:
            return await catalog.list_syncs(conn, schema=self.schema, **filters)

    async def update_sync(self, sync_id: str, **changes: Any) -> Sync:
        async with self.pool.connection() as conn:
            return await catalog.update_sync(conn, sync_id, schema=self.schema, **changes)

    async def delete_sync(self, sync_id: str) -> None:
        async with self.pool.connection() as conn:
            await catalog.delete_sync(conn, sync_id, schema=self.schema)

    # -- writing ---------------------------------------------------------------------------

    async def write(
        self,
        sync: Sync | str,
        collection_id: str,
        objects: Iterable[UpstreamObject | Mapping[str, Any]],
    ) -> WriteResult:
        """Write snapshots of one ``(sync, collection)`` (see :func:`upsync.stream.write`)."""
        async with self.pool.connection() as conn:
            if isinstance(sync, str):
                sync = await catalog.get_sync(conn, sync, schema=self.schema)
            return await write(
                conn, sync, collection_id, objects, schema=self.schema, clock=self.clock
            )

    # -- consumers -------------------------------------------------------------------------

    async def create_consumer(self, *, stream_id: str, name: str, **settings: Any) -> Consumer:
        async with self.pool.connection() as conn:
            return await consumers.create_consumer(
                conn,
                stream_id=stream_id,
                name=name,
                schema=self.schema,
                clock=self.clock,
                **settings,
            )

    async def get_consumer(self, id_or_name: str, *, stream_id: str | None = None) -> Consumer:
        async with self.pool.connection() as conn:
            return await consumers.get_consumer(
                conn, id_or_name, stream_id=stream_id, schema=self.schema
            )

    async def list_consumers(
        self, *, stream_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> list[Consumer]:
        async with self.pool.connection() as conn:
            return await consumers.list_consumers(
                conn, stream_id=stream_id, metadata=metadata, schema=self.schema
            )

    async def update_consumer(self, consumer: ConsumerRef, **changes: Any) -> Consumer:
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            return await consumers.update_consumer(conn, c, schema=self.schema, **changes)

    async def delete_consumer(self, consumer: ConsumerRef) -> None:
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            await consumers.delete_consumer(conn, c, schema=self.schema)

    async def rewind(self, consumer: ConsumerRef, *, after_idx: int = 0) -> int:
        """Re-deliver records after ``after_idx`` (``0``: replay everything)."""
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            return await consumers.rewind(conn, c, after_idx=after_idx, schema=self.schema)

    async def _resolve(self, conn: Any, consumer: ConsumerRef) -> Consumer:
        # settings may have changed since the caller loaded it: always read them fresh
        key = consumer.id if isinstance(consumer, Consumer) else consumer
        return await consumers.get_consumer(conn, key, schema=self.schema)

    # -- consuming -------------------------------------------------------------------------

    async def next(self, consumer: ConsumerRef, batch_size: int = 1, wait_for_ms: int = 0) -> Batch:
        """Up to ``batch_size`` messages. With ``wait_for_ms`` > 0, when none is available,
        waits until one is (woken by the writer's NOTIFY, or by the earliest ack deadline) or
        the time is up. Returns as soon as at least one message is available."""
        if type(batch_size) is not int or not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ConfigurationError(
                f"batch_size: expected 1 to {MAX_BATCH_SIZE}, got {batch_size!r}"
            )
        if type(wait_for_ms) is not int or not 0 <= wait_for_ms <= MAX_WAIT_FOR_MS:
            raise ConfigurationError(
                f"wait_for: expected 0 to {MAX_WAIT_FOR_MS} ms, got {wait_for_ms!r}"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_for_ms / 1000
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
        while True:
            with self.notifier.subscribe(c.stream_id) as sub:
                async with self.pool.connection() as conn:
                    got = await delivery.claim(
                        conn, c, batch_size, schema=self.schema, clock=self.clock
                    )
                remaining = deadline - loop.time()
                if got.messages or remaining <= 0:
                    return Batch(got.messages, got.info)
                timeout = remaining
                if got.next_deadline_s is not None and self.clock is db_clock:
                    timeout = min(timeout, max(got.next_deadline_s, 0.0) + 0.005)
                await sub.wait(timeout)

    async def ack(self, consumer: ConsumerRef, ack_tokens: Sequence[str]) -> int:
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            return await delivery.ack(conn, c, ack_tokens, schema=self.schema)

    async def nack(self, consumer: ConsumerRef, ack_tokens: Sequence[str]) -> int:
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            return await delivery.nack(conn, c, ack_tokens, schema=self.schema, clock=self.clock)

    async def info(self, consumer: ConsumerRef) -> ConsumerInfo:
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            return await delivery.info(conn, c, schema=self.schema, clock=self.clock)

    async def dead_letters(self, consumer: ConsumerRef, *, limit: int = 100) -> list[DeadLetter]:
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            return await delivery.list_dead_letters(
                conn, c, limit=limit, schema=self.schema, clock=self.clock
            )

    async def replay_dead_letters(
        self, consumer: ConsumerRef, record_ids: Sequence[str] | None = None
    ) -> int:
        async with self.pool.connection() as conn:
            c = await self._resolve(conn, consumer)
            return await delivery.replay_dead_letters(conn, c, record_ids, schema=self.schema)

    # -- stream pages ----------------------------------------------------------------------

    async def records(self, **query: Any) -> RecordPage:
        """``GET /v1/records``: ``after_cursor``, ``limit``, ``stream_id``, ``sync_id``,
        ``provider``, ``collection_id``."""
        async with self.pool.connection() as conn:
            return await pages.records_page(conn, schema=self.schema, **query)

    async def events(self, **query: Any) -> EventPage:
        """``GET /v1/events``: same parameters as :meth:`records`."""
        async with self.pool.connection() as conn:
            return await pages.events_page(conn, schema=self.schema, **query)
